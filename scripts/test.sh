#!/usr/bin/env bash
# The whole test suite (`make test`, and so CI): builds with gcc, runs the C unit tests and the
# integration tests (official openai SDK, mock providers on loopback); builds the SDK's examples
# out of tree against the installed SDK; checks the plugin ABI against its baseline (abidiff); rebuilds with clang + AddressSanitizer + UBSan and runs the
# unit and integration tests again; builds the libFuzzer targets and runs each briefly.
# Prints "total: N passed, N failed" at the end and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=$(nproc 2>/dev/null || echo 2)
FUZZ_SECONDS=${FUZZ_SECONDS:-15}
LOGDIR=$ROOT/build-logs
rm -rf "$LOGDIR"; mkdir -p "$LOGDIR"
passed=0; failed=0; stage_fail=()

note() { printf '\n=== %s\n' "$*"; }
count_unit() { # parse "N passed, N failed" lines
  local p f
  p=$(grep -Eh '^[0-9]+ passed, [0-9]+ failed' "$@" | awk '{s+=$1} END {print s+0}')
  f=$(grep -Eh '^[0-9]+ passed, [0-9]+ failed' "$@" | awk '{s+=$3} END {print s+0}')
  passed=$((passed + p)); failed=$((failed + f))
}
count_node() {
  local p f
  p=$(grep -Eh '^# pass [0-9]+' "$1" | awk '{s+=$3} END {print s+0}')
  f=$(grep -Eh '^# fail [0-9]+' "$1" | awk '{s+=$3} END {print s+0}')
  passed=$((passed + p)); failed=$((failed + f))
}
fail_stage() { stage_fail+=("$1"); }

build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" "$@" >"$LOGDIR/$(basename "$dir")-configure.log" 2>&1 &&
    cmake --build "$dir" -j"$JOBS" >"$LOGDIR/$(basename "$dir")-build.log" 2>&1
}

unit_tests() { # build dir, label
  local dir=$1 label=$2 rc=0
  for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    local name; name=$(basename "$t")
    if ! (cd "$ROOT" && "$t") >"$LOGDIR/$label-$name.log" 2>&1; then
      echo "FAILED: $label $name (log: build-logs/$label-$name.log)"; tail -20 "$LOGDIR/$label-$name.log"; rc=1
      grep -Eq '^[0-9]+ passed, [0-9]+ failed' "$LOGDIR/$label-$name.log" || failed=$((failed + 1))
    fi
  done
  count_unit "$LOGDIR/$label"-test_*.log
  return $rc
}

integration() { # aigw binary, plugin dir, label
  local log="$LOGDIR/integration-$3.log"
  (cd tests/integration && AIGW_BIN="$1" AIGW_PLUGIN_DIR="$2" AIGW_EXAMPLES_DIR="$ROOT/build-sdk/examples" \
     AIGW_TEST_PLUGIN_DIR="$(dirname "$2")/test-plugins" \
     node --test --test-concurrency=1 --test-reporter=tap) >"$log" 2>&1
  local rc=$?
  count_node "$log"
  if [ $rc -ne 0 ]; then echo "FAILED: integration ($3), log: build-logs/integration-$3.log"; grep -E '^not ok|^# (pass|fail)' "$log" | head -40; fi
  return $rc
}

note "build (gcc)"
if build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc; then echo ok; else
  tail -40 "$LOGDIR/build-build.log"; echo "total: 0 passed, 1 failed"; exit 1; fi

note "unit tests (gcc)"
unit_tests build gcc || fail_stage unit-gcc

note "SDK install + out-of-tree example plugins"
rm -rf build-sdk; mkdir -p build-sdk/examples
if cmake --install build --prefix "$ROOT/build-sdk/prefix" >"$LOGDIR/sdk-install.log" 2>&1; then
  ok=1
  for ex in examples/plugins/*/ examples/plugin-template/; do
    n=$(basename "$ex")
    if ! (cmake -S "$ex" -B "build-sdk/$n" -DCMAKE_PREFIX_PATH="$ROOT/build-sdk/prefix" >"$LOGDIR/sdk-$n.log" 2>&1 &&
          cmake --build "build-sdk/$n" >>"$LOGDIR/sdk-$n.log" 2>&1); then
      echo "FAILED: example $n does not build against the installed SDK"; tail -20 "$LOGDIR/sdk-$n.log"; ok=0
    else
      find "build-sdk/$n" -maxdepth 2 -name '*.so' -exec cp {} build-sdk/examples/ \;
    fi
    # the same with pkg-config alone
    if ! PKG_CONFIG_PATH="$ROOT/build-sdk/prefix/lib/pkgconfig" cc -std=c11 -Wall -Wextra -Werror -shared -fPIC \
         $(PKG_CONFIG_PATH="$ROOT/build-sdk/prefix/lib/pkgconfig" pkg-config --cflags aigw-sdk) "$ex"/*.c -o "build-sdk/$n-pc.so" >>"$LOGDIR/sdk-$n.log" 2>&1; then
      echo "FAILED: example $n does not build with pkg-config aigw-sdk"; ok=0
    fi
  done
  # the examples as published with the FIRST SDK (tests/abi/sdk-1.0, frozen) and the template, built
  # against that header: loaded into today's gateway by the "first SDK" integration run below
  mkdir -p build-sdk/examples-1.0
  for src in tests/abi/sdk-1.0/examples/*/*.c examples/plugin-template/my_plugin.c; do
    cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden -Itests/abi/sdk-1.0/include "$src" \
       -o "build-sdk/examples-1.0/$(basename "$src" .c).so" >>"$LOGDIR/sdk-1.0.log" 2>&1 ||
      { echo "FAILED: $src does not build against the first SDK"; tail -20 "$LOGDIR/sdk-1.0.log"; ok=0; }
  done
  if [ $ok = 1 ]; then passed=$((passed + 1)); echo ok; else failed=$((failed + 1)); fail_stage sdk; fi
else
  tail -20 "$LOGDIR/sdk-install.log"; failed=$((failed + 1)); fail_stage sdk-install
fi

note "plugin ABI guard (scripts/abi_check.sh against sdk/abi/, and its self-test)"
if scripts/abi_check.sh >"$LOGDIR/abi-check.log" 2>&1; then passed=$((passed + 1)); cat "$LOGDIR/abi-check.log"
else failed=$((failed + 1)); fail_stage abi-check; head -60 "$LOGDIR/abi-check.log"; fi
tests/abi/abi_guard_test.sh >"$LOGDIR/abi-guard-test.log" 2>&1 || { fail_stage abi-guard-test; grep -A12 '^FAIL' "$LOGDIR/abi-guard-test.log" | head -60; }
count_unit "$LOGDIR/abi-guard-test.log"; tail -1 "$LOGDIR/abi-guard-test.log"

note "bundled plugins build against the public SDK only (scripts/sdk_only_check.sh, and its self-test)"
if scripts/sdk_only_check.sh >"$LOGDIR/sdk-only.log" 2>&1; then passed=$((passed + 1)); tail -1 "$LOGDIR/sdk-only.log"
else failed=$((failed + 1)); fail_stage sdk-only; head -40 "$LOGDIR/sdk-only.log"; fi
tests/abi/sdk_only_test.sh >"$LOGDIR/sdk-only-test.log" 2>&1 || { fail_stage sdk-only-test; cat "$LOGDIR/sdk-only-test.log"; }
count_unit "$LOGDIR/sdk-only-test.log"; tail -1 "$LOGDIR/sdk-only-test.log"

note "integration tests (gcc build, official openai SDK)"
integration "$ROOT/build/aigw" "$ROOT/build/plugins" gcc || fail_stage integration-gcc

note "plugins built against the first SDK (tests/abi/sdk-1.0) in today's gateway"
log=$LOGDIR/integration-sdk-1.0.log
(cd tests/integration && AIGW_BIN="$ROOT/build/aigw" AIGW_PLUGIN_DIR="$ROOT/build/plugins" \
   AIGW_EXAMPLES_DIR="$ROOT/build-sdk/examples-1.0" node --test --test-concurrency=1 --test-reporter=tap \
   gateway.examples.test.mjs gateway.template.test.mjs) >"$log" 2>&1
rc=$?; count_node "$log"
if [ $rc -ne 0 ] || ! grep -qE '^# skipped 0$' "$log" || grep -qE '^# pass 0$' "$log"; then
  fail_stage integration-sdk-1.0; echo "FAILED: first-SDK plugins (log: build-logs/integration-sdk-1.0.log)"
  grep -E '^not ok|^# (pass|fail|skipped)' "$log" | head -20
else grep -E '^# (pass|fail)' "$log" | paste -sd' '; fi

note "build (clang, AddressSanitizer + UndefinedBehaviorSanitizer)"
if build build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DAIGW_SANITIZE=ON; then
  echo ok
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  note "unit tests (ASan+UBSan)"
  unit_tests build-asan asan || fail_stage unit-asan
  note "integration tests (ASan+UBSan build)"
  AIGW_SANITIZE=1 integration "$ROOT/build-asan/aigw" "$ROOT/build-asan/plugins" asan || fail_stage integration-asan
  note "integration tests (ASan+UBSan build, upstream through libcurl instead of the built-in client)"
  AIGW_SANITIZE=1 AIGW_TEST_HTTP_CLIENT=libcurl integration "$ROOT/build-asan/aigw" "$ROOT/build-asan/plugins" asan-libcurl ||
    fail_stage integration-asan-libcurl
  unset ASAN_OPTIONS UBSAN_OPTIONS
else
  tail -40 "$LOGDIR/build-asan-build.log"; failed=$((failed + 1)); fail_stage build-asan
fi

note "fuzz targets (libFuzzer, ${FUZZ_SECONDS}s each)"
if build build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DAIGW_FUZZ=ON; then
  for f in build-fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    n=$(basename "$f")
    corpus=tests/fuzz/corpus/${n#fuzz_}
    [ -d "$corpus" ] || corpus=tests/fuzz/corpus/$n
    mkdir -p "build-fuzz/corpus-$n"
    if "$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=1024 -print_final_stats=1 "build-fuzz/corpus-$n" \
         $( [ -d "$corpus" ] && echo "$corpus" ) >"$LOGDIR/$n.log" 2>&1; then
      passed=$((passed + 1)); echo "$n: ok ($(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$LOGDIR/$n.log" | grep -Eo '[0-9]+$') execs)"
    else
      failed=$((failed + 1)); fail_stage "$n"; echo "FAILED: $n"; tail -30 "$LOGDIR/$n.log"
    fi
  done
else
  tail -40 "$LOGDIR/build-fuzz-build.log"; failed=$((failed + 1)); fail_stage build-fuzz
fi

echo
if [ ${#stage_fail[@]} -gt 0 ]; then echo "failed stages: ${stage_fail[*]}"; fi
echo "total: $passed passed, $failed failed"
[ ${#stage_fail[@]} -eq 0 ] && [ "$failed" -eq 0 ]
