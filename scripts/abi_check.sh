#!/usr/bin/env bash
# abi_check.sh - the plugin ABI guard: compares the ABI of <aigw/plugin.h> with the committed
# baseline of its major version (sdk/abi/aigw-abi-<major>.xml + .consts: the ABI as last
# recorded) and fails on any change a plugin built against the baseline would notice.
#
#   scripts/abi_check.sh               check sdk/include against the baseline (CI)
#   scripts/abi_check.sh --include DIR check DIR/aigw/plugin.h instead (tests/abi/abi_guard_test.sh)
#   scripts/abi_check.sh --update      record the current header as the baseline: only when it is
#                                      compatible with the recorded one (so the baseline itself only
#                                      ever grows at the end), or when its major has no baseline yet
#
# Appended members pass the check and are listed as "not yet recorded": record them with --update
# in the same commit as the header change, so that a later removal of them fails too.
#
# How: sdk/abi/abi_dump.c is compiled with debug info against the header; abidw (libabigail,
# Debian package abigail-tools) writes the layout of every public type (members, offsets, the
# function-pointer signatures of the host table, enums). The one change allowed within a major is
# growth at the END of a struct that carries a struct_size (aigw_host, aigw_plugin, aigw_provider,
# aigw_usage, aigw_http_spec): the members appended past the baseline's size are cut from the
# current dump, then abidiff must find no difference at all. So removed, reordered, renamed or
# retyped members, members inserted in the middle or into the old tail padding, changed enum
# values, a grown aigw_str and changed function signatures all fail; new enumerators (a harmless
# change for abidiff) and appended struct members pass. Constants that debug info does not carry
# (macros, the anonymous enums) are compared as text: the same value, AIGW_ABI_MINOR may only grow.
# A public name the dump does not cover fails too (add it to sdk/abi/abi_dump.c).
#
# Member and enumerator NAMES are compared too (a rename keeps the binary layout but breaks every
# plugin's source), as is the order of the recorded members.
#
# Exit status: 0 compatible, 1 incompatible, 2 the check itself could not run.
set -uo pipefail
ROOT=$(CDPATH="" cd -- "$(dirname -- "$0")/.." && pwd)
INC=$ROOT/sdk/include
UPDATE=0
CC=${ABI_CC:-gcc} # the baseline was made with gcc; another compiler's debug info may differ
while [ $# -gt 0 ]; do
  case $1 in
    --include) INC=$(CDPATH="" cd -- "$2" && pwd) || exit 2; shift 2 ;;
    --update) UPDATE=1; shift ;;
    *) echo "usage: $0 [--include DIR] [--update]" >&2; exit 2 ;;
  esac
done
HDR=$INC/aigw/plugin.h
[ -f "$HDR" ] || { echo "abi_check: $HDR not found" >&2; exit 2; }
for t in abidw abidiff "$CC"; do
  command -v "$t" >/dev/null || { echo "abi_check: $t not found (scripts/deps.sh installs abigail-tools)" >&2; exit 2; }
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/aigw-abi.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# 1. dump the header's ABI
CFLAGS="-std=c11 -Wall -Wextra -Werror -I$INC"
if ! $CC $CFLAGS -g -O0 -shared -fPIC "$ROOT/sdk/abi/abi_dump.c" -o "$TMP/abi.so" 2>"$TMP/cc.log" ||
   ! $CC $CFLAGS -DAIGW_ABI_CONSTANTS "$ROOT/sdk/abi/abi_dump.c" -o "$TMP/consts" 2>>"$TMP/cc.log"; then
  echo "abi_check: INCOMPATIBLE: sdk/abi/abi_dump.c does not compile against $HDR" \
       "(a public type, member or constant it names is gone):"
  sed 's/^/  /' "$TMP/cc.log" | head -30
  exit 1
fi
abidw --no-corpus-path --no-comp-dir-path --no-show-locs --type-id-style hash "$TMP/abi.so" \
  >"$TMP/cur.raw.xml" 2>"$TMP/abidw.log" || { cat "$TMP/abidw.log" >&2; exit 2; }
# the translation unit's path is the checkout's: keep the recorded baseline free of it
sed "s|path='$ROOT/|path='|" "$TMP/cur.raw.xml" >"$TMP/cur.xml"
"$TMP/consts" >"$TMP/cur.consts" || exit 2
MAJOR=$(awk '$1 == "AIGW_ABI_MAJOR" {print $2}' "$TMP/cur.consts")
BASE=$ROOT/sdk/abi/aigw-abi-$MAJOR

# 2. every public name is covered (types in the dump, enumerators in the dump or the constants)
missing=""
for ty in $(grep -oE '(typedef (struct|enum)|^struct) aigw_[a-z0-9_]+' "$HDR" | awk '{print $NF}' | sort -u); do
  grep -q "name='$ty'" "$TMP/cur.xml" || missing="$missing type:$ty"
done
for en in $(grep -oE '^[[:space:]]*AIGW_[A-Z0-9_]+[[:space:]]*=' "$HDR" | tr -d ' =' | sort -u) \
          $(grep -oE '^#define AIGW_[A-Z0-9_]+[[:space:]]+[0-9"]' "$HDR" | awk '{print $2}' | sort -u); do
  grep -q "<enumerator name='$en'" "$TMP/cur.xml" || grep -q "^$en " "$TMP/cur.consts" || missing="$missing $en"
done
if [ -n "$missing" ]; then
  echo "abi_check: public names the guard does not cover (add them to sdk/abi/abi_dump.c):$missing"
  exit 1
fi

if [ ! -f "$BASE.xml" ] || [ ! -f "$BASE.consts" ]; then
  if [ $UPDATE = 1 ]; then
    cp "$TMP/cur.xml" "$BASE.xml" && cp "$TMP/cur.consts" "$BASE.consts" || exit 2
    echo "abi_check: wrote ${BASE#"$ROOT"/}.xml and .consts: the first baseline of ABI $MAJOR"
    exit 0
  fi
  echo "abi_check: INCOMPATIBLE: no baseline for ABI major $MAJOR (${BASE#"$ROOT"/}.xml)." \
       "A new major is a breaking release: create its baseline with --update."
  exit 1
fi

# 3. cut what was appended to the growable structs (those with a struct_size member) past the
#    baseline's size; list it
awk -v cur="$TMP/cur.xml" -v out="$TMP/cut.xml" -v added="$TMP/added.txt" '
  function attr(s, a,   m) { if (match(s, a "=\x27[^\x27]*\x27")) { m = substr(s, RSTART + length(a) + 2, RLENGTH - length(a) - 3); return m } return "" }
  FNR == NR {                                   # baseline: sizes of the growable structs
    if ($0 ~ /<class-decl / && $0 !~ /\/>$/) { cls = attr($0, "name"); sz[cls] = attr($0, "size-in-bits") }
    if ($0 ~ /<\/class-decl>/) cls = ""
    if (cls != "" && $0 ~ /<var-decl name=\x27struct_size\x27/) grow[cls] = sz[cls]
    next
  }
  {
    if ($0 ~ /<class-decl / && $0 !~ /\/>$/) {
      cls = attr($0, "name")
      if (cls in grow) sub(/size-in-bits=\x27[0-9]+\x27/, "size-in-bits=\x27" grow[cls] "\x27")
    }
    if ($0 ~ /<\/class-decl>/) cls = ""
    if (cls in grow && $0 ~ /<data-member / && attr($0, "layout-offset-in-bits") + 0 >= grow[cls] + 0) { skip = 1; next }
    if (skip) {
      if ($0 ~ /<var-decl /) printf "%s.%s\n", cls, attr($0, "name") >> added
      if ($0 ~ /<\/data-member>/) skip = 0
      next
    }
    print > out
  }' "$BASE.xml" "$TMP/cur.xml"
touch "$TMP/added.txt"

# 4. nothing else may differ
abidiff --no-default-suppression --no-show-locs "$BASE.xml" "$TMP/cut.xml" >"$TMP/diff.txt" 2>&1
rc=$?
fail=0
if [ $rc -ne 0 ]; then
  if [ $((rc & 3)) -ne 0 ]; then echo "abi_check: abidiff failed (exit $rc):"; cat "$TMP/diff.txt"; exit 2; fi
  echo "abi_check: INCOMPATIBLE: the layout differs from ABI $MAJOR's baseline (${BASE#"$ROOT"/}.xml):"
  sed 's/^/  /' "$TMP/diff.txt"
  fail=1
fi
# 5. constants
while read -r name val; do
  now=$(awk -v n="$name" '$1 == n {print $2}' "$TMP/cur.consts")
  if [ -z "$now" ]; then echo "abi_check: INCOMPATIBLE: $name is gone"; fail=1
  elif [ "$name" = AIGW_ABI_MINOR ]; then
    [ "$now" -ge "$val" ] || { echo "abi_check: INCOMPATIBLE: AIGW_ABI_MINOR went down ($val -> $now)"; fail=1; }
  elif [ "$now" != "$val" ]; then echo "abi_check: INCOMPATIBLE: $name changed from $val to $now"; fail=1
  fi
done <"$BASE.consts"
# 6. names and order: every recorded member (struct.member@offset) and enumerator (enum.name=value)
#    is still there; abidiff calls a rename of a member or enumerator harmless, plugins' sources do not
names() {
  awk 'function attr(s, a) { if (match(s, a "=\x27[^\x27]*\x27")) return substr(s, RSTART + length(a) + 2, RLENGTH - length(a) - 3); return "" }
    /<class-decl / && !/\/>$/ { c = attr($0, "name") } /<\/class-decl>/ { c = "" }
    /<enum-decl / { e = attr($0, "name") } /<\/enum-decl>/ { e = "" }
    /<data-member / { off = attr($0, "layout-offset-in-bits") }
    c != "" && /<var-decl / { print c "." attr($0, "name") "@" off }
    e != "" && /<enumerator / { print e "." attr($0, "name") "=" attr($0, "value") }' "$1" | sort -u
}
names "$BASE.xml" >"$TMP/base.names"
names "$TMP/cur.xml" >"$TMP/cur.names"
gone=$(comm -23 "$TMP/base.names" "$TMP/cur.names")
if [ -n "$gone" ]; then
  echo "abi_check: INCOMPATIBLE: recorded members / enumerators missing or renamed:"
  printf '  %s\n' $gone
  fail=1
fi
[ $fail = 0 ] || exit 1

nadd=$(grep -c . "$TMP/added.txt")
if [ $UPDATE = 1 ]; then
  cp "$TMP/cur.xml" "$BASE.xml" && cp "$TMP/cur.consts" "$BASE.consts" || exit 2
  echo "abi_check: compatible; recorded the current ABI as ${BASE#"$ROOT"/}.xml ($nadd appended member(s) added to it)"
  exit 0
fi
echo "abi_check: compatible with ABI $MAJOR's baseline ($(grep -c '<class-decl name=.aigw_[a-z_]*. size' "$BASE.xml") structs," \
     "$(grep -c '<enumerator ' "$BASE.xml") enumerators, $(grep -c . "$BASE.consts") constants)$( [ "$nadd" -gt 0 ] &&
     printf '; appended, not yet recorded (scripts/abi_check.sh --update): %s' "$(paste -sd' ' "$TMP/added.txt")")"
exit 0
