#!/usr/bin/env bash
# abi_guard_test.sh - proves the ABI guard (scripts/abi_check.sh) works: edits a temporary copy of
# sdk/include/aigw/plugin.h in ways that break plugins built against ABI 1's baseline and checks
# that the guard rejects each one (exit 1), then in ways the ABI allows (appending to a struct that
# carries struct_size, a new enumerator, comments) and checks that it accepts them (exit 0).
# Each edit must change the header (a sed that no longer matches fails the case, so the test
# cannot pass vacuously). Prints "N passed, N failed" (scripts/test.sh counts it).
set -uo pipefail
ROOT=$(CDPATH="" cd -- "$(dirname -- "$0")/../.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/aigw-abitest.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
HDR=$ROOT/sdk/include/aigw/plugin.h
pass=0; fail=0

# case <expected exit> <name> <what the report must mention> <sed args...>
case_() {
  local want=$1 name=$2 expect=$3; shift 3
  local dir=$TMP/$name
  mkdir -p "$dir/aigw"
  sed "$@" "$HDR" >"$dir/aigw/plugin.h"
  if cmp -s "$HDR" "$dir/aigw/plugin.h"; then
    echo "FAIL $name: the edit did not apply to plugin.h (update this test)"; fail=$((fail + 1)); return
  fi
  "$ROOT/scripts/abi_check.sh" --include "$dir" >"$dir/report.txt" 2>&1
  local rc=$?
  if [ $rc -ne "$want" ]; then
    echo "FAIL $name: abi_check exited $rc, expected $want"; sed 's/^/    /' "$dir/report.txt" | head -40
    fail=$((fail + 1)); return
  fi
  if [ -n "$expect" ] && ! grep -q -- "$expect" "$dir/report.txt"; then
    echo "FAIL $name: the report does not mention '$expect'"; sed 's/^/    /' "$dir/report.txt" | head -40
    fail=$((fail + 1)); return
  fi
  local verdict=accepted; [ "$want" = 1 ] && verdict=rejected
  echo "ok   $name: $verdict ($(grep -m1 -E "INCOMPATIBLE|compatible|not cover" "$dir/report.txt" | cut -c1-110))"
  pass=$((pass + 1))
}

# the unchanged header passes (baseline sanity)
if "$ROOT/scripts/abi_check.sh" >"$TMP/clean.txt" 2>&1; then
  echo "ok   unchanged: accepted ($(cut -c1-110 "$TMP/clean.txt"))"; pass=$((pass + 1))
else
  echo "FAIL unchanged header rejected:"; sed 's/^/    /' "$TMP/clean.txt"; fail=$((fail + 1))
fi

echo "--- incompatible edits (must be rejected)"
HOSTFN='int (\*method)(aigw_req \*r, aigw_str \*out);'
case_ 1 host-reorder "offset changed" -e "/$HOSTFN/{h;d}" -e '/int (\*path)(aigw_req \*r, aigw_str \*out);/G'
case_ 1 host-remove-middle "body_changed" -e '/void (\*body_changed)(aigw_req \*r, aigw_which which);/d'
case_ 1 host-insert-middle "new_fn" -e 's/^  int (\*set_upstream_url)/  int (*new_fn)(aigw_req *r);\n&/'
case_ 1 host-remove-last "body_member_raw" -e '/int (\*body_member_raw)(/d'
case_ 1 host-return-type "long int" -e 's/^  int (\*status)(aigw_req \*r, aigw_which which);/  long (*status)(aigw_req *r, aigw_which which);/'
case_ 1 host-param-type "float" -e 's/const aigw_str \*label_values, double v);/const aigw_str *label_values, float v);/'
case_ 1 host-rename "aigw_host.json_len" -e 's/(\*json_len)/(*json_size)/'
case_ 1 done-fn-params "aigw_done_fn" -e 's/typedef void (\*aigw_done_fn)(aigw_req \*r, aigw_call \*c, aigw_call_status st, void \*ud);/typedef void (*aigw_done_fn)(aigw_req *r, aigw_call *c, void *ud, aigw_call_status st);/'
case_ 1 descriptor-field-type "flags" -e 's/^  uint32_t flags;$/  uint64_t flags;/'
case_ 1 descriptor-hook-signature "on_done" -e 's/void (\*on_done)(void \*inst, aigw_req \*r, void \*rctx);/void (*on_done)(void *inst, aigw_req *r, void **rctx);/'
case_ 1 provider-reorder "offset changed" -e '/^typedef struct aigw_provider {/,/^} aigw_provider;/{/(\*prepare)(/{h;d};/(\*on_response)(/G}'
case_ 1 usage-reorder "cached_tokens" -e '/int64_t cached_tokens;/{h;d}' -e '/int64_t cache_write_tokens;/G'
case_ 1 spec-into-tail-padding "priority" -e 's/^  uint32_t max_response_bytes;.*$/&\n  uint32_t priority;/'
case_ 1 str-grows "aigw_str" -e 's/^  size_t n;$/  size_t n;\n  size_t cap;/'
case_ 1 enum-value "AIGW_PAUSE" -e 's/AIGW_PAUSE = 2,/AIGW_PAUSE = 7,/'
case_ 1 enum-removed "AIGW_EV_DONE" -e 's/^  AIGW_EV_ERROR = 5, /  AIGW_EV_ERROR = 5  /' -e '/^  AIGW_EV_DONE = 6 /d'
case_ 1 enum-renamed "AIGW_LOG_WARN" -e 's/AIGW_LOG_WARN = 2,/AIGW_LOG_WARNING = 2,/'
case_ 1 return-code "AIGW_E_STATE changed" -e 's/AIGW_E_STATE = -5 /AIGW_E_STATE = -6 /'
case_ 1 flag-value "AIGW_IS_PROVIDER changed" -e 's/AIGW_IS_PROVIDER = 1u << 1/AIGW_IS_PROVIDER = 1u << 2/'
case_ 1 entry-symbol "AIGW_PLUGIN_ENTRY_SYMBOL" -e 's/#define AIGW_PLUGIN_ENTRY_SYMBOL "aigw_plugin_entry"/#define AIGW_PLUGIN_ENTRY_SYMBOL "aigw_plugin_entry_v2"/'
case_ 1 major-bump "no baseline for ABI major 2" -e 's/#define AIGW_ABI_MAJOR 1/#define AIGW_ABI_MAJOR 2/'
case_ 1 type-removed "does not compile" -e 's/aigw_metric_kind/aigw_metric_type/g'
case_ 1 uncovered-constant "does not cover" -e 's/^  AIGW_E_STATE = -5 .*$/&,\n  AIGW_E_BUSY = -6/'

echo "--- compatible edits (must be accepted)"
# (anchored on the host table's LAST member and the current minor: update both when the ABI grows)
case_ 0 host-append "aigw_host.new_fn" -e 's/^  int (\*credential)(aigw_req \*r, aigw_str \*out);$/&\n  int (*new_fn)(aigw_req *r, aigw_str *out);/' -e 's/#define AIGW_ABI_MINOR 3/#define AIGW_ABI_MINOR 4/'
case_ 0 descriptor-append "aigw_plugin.on_reload" -e 's/^  const aigw_provider \*provider; .*$/&\n  void (*on_reload)(void *inst);/'
case_ 0 provider-append "aigw_provider.on_x" -e 's/^  aigw_status (\*on_stream_end)(void \*inst, aigw_req \*r, void \*\*rctx);$/&\n  aigw_status (*on_x)(void *inst, aigw_req *r);/'
case_ 0 usage-append "aigw_usage.audio_tokens" -e 's/^  int64_t reasoning_tokens;$/&\n  int64_t audio_tokens;/'
case_ 0 spec-append "aigw_http_spec.proxy" -e 's/^  uint32_t max_response_bytes;.*$/&\n  const char *proxy;/'
case_ 0 enum-append "compatible" -e 's/^  AIGW_EV_DONE = 6 /  AIGW_EV_DONE = 6, AIGW_EV_REASONING = 7 /'
case_ 0 comments-only "compatible" -e 's|^/\* aigw/plugin.h - the aigw plugin ABI, version 1.|/* aigw/plugin.h - the aigw plugin ABI, version 1 (edited comment).|'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
