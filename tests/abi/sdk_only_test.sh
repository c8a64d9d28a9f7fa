#!/usr/bin/env bash
# sdk_only_test.sh - proves scripts/sdk_only_check.sh catches a plugin that reaches into the core:
# a core header by absolute path, by a relative path, and by a bare name that only -Icore would
# find are each rejected and named; a plugin using <aigw/plugin.h>, plugins/common and a dependency
# header passes. Prints "N passed, N failed".
set -uo pipefail
ROOT=$(CDPATH="" cd -- "$(dirname -- "$0")/../.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/aigw-sdkonlytest.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0; fail=0
rel=$(realpath --relative-to="$TMP/p" "$ROOT/core/plugin_loader.h")

# check <name> <want exit> <what the report must say> <file content>
check() {
  local name=$1 want=$2 expect=$3 content=$4
  mkdir -p "$TMP/p" && rm -f "$TMP/p"/*.c
  printf '%s\n' "$content" >"$TMP/p/$name.c"
  "$ROOT/scripts/sdk_only_check.sh" "$TMP/p" >"$TMP/out.txt" 2>&1
  local rc=$?
  if [ $rc -eq "$want" ] && grep -q -- "$expect" "$TMP/out.txt"; then
    echo "ok   $name: exit $rc ($(grep -m1 . "$TMP/out.txt" | cut -c1-120))"; pass=$((pass + 1))
  else
    echo "FAIL $name: exit $rc, expected $want with '$expect':"; sed 's/^/    /' "$TMP/out.txt"; fail=$((fail + 1))
  fi
}
check core-absolute 1 "includes core/core.h" "#include <aigw/plugin.h>
#include \"$ROOT/core/core.h\"
int x;"
check core-relative 1 "includes core/plugin_loader.h" "#include <aigw/plugin.h>
#include \"$rel\"
int x;"
check core-by-name 1 "does not compile with only the public SDK" "#include <aigw/plugin.h>
#include \"pipeline.h\"
int x;"
check sdk-common-deps 0 "build against the public SDK only" "#include <aigw/plugin.h>
#include \"pcommon.h\"
#include <cjson/cJSON.h>
#include <openssl/evp.h>
int x;"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
