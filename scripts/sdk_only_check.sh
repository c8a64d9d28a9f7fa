#!/usr/bin/env bash
# sdk_only_check.sh - every bundled plugin builds against the public SDK only.
#
#   scripts/sdk_only_check.sh            plugins/*/ (plugins/common included) and tests/plugins/
#   scripts/sdk_only_check.sh DIR...     those plugin source directories instead
#
# Each .c file is compiled (-fsyntax-only) with an include path holding nothing of the tree but
# sdk/include, plugins/common and the plugin's own directory, plus the include directories of the
# libraries plugins may use (pkg-config; see DEPS). Then the compiler's own list of the headers it
# read (-MD) is checked: a header from anywhere else in the tree (core/, tests/, a build
# directory, ...), reached by a relative or absolute #include, is a violation. System and
# dependency headers are fine. So a plugin that needs a core-internal header fails twice over: it
# does not compile with the SDK's include path, and a path that sneaks one in is named.
#
# Exit status: 0 clean, 1 a violation (each one named), 2 the check could not run.
set -uo pipefail
ROOT=$(CDPATH="" cd -- "$(dirname -- "$0")/.." && pwd)
CC=${CC:-cc}
# Libraries a plugin may include (pkg-config names; the ones not installed are skipped).
DEPS="libcjson openssl zlib lua5.4 hiredis libcurl"
DEPFLAGS=""
for d in $DEPS; do
  if pkg-config --exists "$d" 2>/dev/null; then DEPFLAGS="$DEPFLAGS $(pkg-config --cflags-only-I "$d")"; fi
done

if [ $# -gt 0 ]; then dirs=("$@"); else
  dirs=()
  for d in "$ROOT"/plugins/*/ "$ROOT/tests/plugins/"; do [ -d "$d" ] && dirs+=("${d%/}"); done
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/aigw-sdkonly.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

bad=0; nfiles=0; ndirs=0
for dir in "${dirs[@]}"; do
  dir=$(CDPATH="" cd -- "$dir" && pwd) || { echo "sdk_only_check: no directory $dir"; exit 2; }
  ndirs=$((ndirs + 1))
  for src in "$dir"/*.c; do
    [ -f "$src" ] || continue
    nfiles=$((nfiles + 1))
    rel=${src#"$ROOT"/}
    dep=$TMP/$nfiles.d
    # shellcheck disable=SC2086
    if ! $CC -std=c11 -D_GNU_SOURCE -fsyntax-only -MD -MF "$dep" \
         -I"$ROOT/sdk/include" -I"$ROOT/plugins/common" -I"$dir" $DEPFLAGS "$src" >"$TMP/cc.log" 2>&1; then
      echo "VIOLATION $rel: does not compile with only the public SDK (sdk/include), plugins/common and"
      echo "  dependency headers on the include path:"
      grep -E 'error|fatal' "$TMP/cc.log" | head -8 | sed 's/^/    /'
      bad=$((bad + 1))
      continue
    fi
    # the headers the compiler read, one per line, resolved
    sed -e 's/^[^:]*://' -e 's/\\$//' "$dep" | tr ' ' '\n' | grep -v '^$' | while read -r h; do
      h=$(realpath -m "$h")
      [ "$h" = "$src" ] && continue
      case $h in
        "$ROOT"/sdk/include/aigw/*|"$ROOT"/plugins/common/*|"$dir"/*) ;;
        "$ROOT"/*) echo "VIOLATION $rel: includes ${h#"$ROOT"/} (not public SDK: only <aigw/...>, plugins/common/ and the plugin's own headers)" ;;
        *) ;; # system or dependency header
      esac
    done >"$TMP/v.txt"
    if [ -s "$TMP/v.txt" ]; then cat "$TMP/v.txt"; bad=$((bad + 1)); fi
  done
done

if [ $bad -gt 0 ]; then
  echo "sdk_only_check: $bad of $nfiles plugin source files reach beyond the public SDK"
  exit 1
fi
echo "sdk_only_check: $nfiles source files in $ndirs plugin directories build against the public SDK only"
exit 0
