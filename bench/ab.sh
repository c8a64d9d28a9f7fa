#!/usr/bin/env bash
# bench/ab.sh — two aigw builds against each other, interleaved, on loopback (no nginx reference):
# requests/s and CPU µs per request of the process under test, for the plain chat route and the
# chat route with the example plugins (hello + async_callout), at 64 connections.
#
#   bench/ab.sh BUILD_A BUILD_B [ROUNDS (4)] [DURATION s (3)]
#
# Meant for "did this change make the hot path cheaper or dearer": under background load the
# absolute numbers move, but A and B run alternately under the same load, so compare the B/A
# ratios and the per-round rows. Same layout as run.sh: core 0 = aigw under test (one at a
# time under load), core 1 = wrk + the mock upstream (nginx). Needs nginx, wrk, taskset, curl.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $# -ge 2 ]] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
A=$(cd "$1" && pwd) B=$(cd "$2" && pwd) ROUNDS=${3:-4} DUR=${4:-3}
. "$ROOT/bench/lib.sh"
bench_need ab.sh nginx wrk taskset curl
bench_tmp ab
bench_mock_nginx "location = /allow { default_type application/json; return 200 '{\"allow\":true}'; }"
EX=$TMP/ex; mkdir -p "$EX"
for ex in hello async_callout; do
  ${CC:-cc} -std=c11 -O2 -shared -fPIC -fvisibility=hidden -I"$ROOT/sdk/include" "$ROOT/examples/plugins/$ex"/*.c -o "$EX/$ex.so"
done
declare -A PORT PID
start() {  # start NAME BUILD PLUGINS(0|1)
  local p ad plug=""; pick_port p; pick_port ad
  ((${3})) && plug=', "plugins": [{ "name": "hello" }, { "name": "async_callout", "config": { "url": "http://127.0.0.1:'$MOCK'/allow" } }]'
  cat >"$TMP/$1.json" <<CF
{ "listen": [{ "address": "127.0.0.1", "port": $p }], "workers": 1,
  "admin": { "address": "127.0.0.1", "port": $ad, "token": "t" },
  "plugin_paths": ["$2/plugins", "$EX"], "access_log": { "path": "$TMP/$1.log" },
  "providers": { "up": { "plugin": "openai", "config": { "base_url": "http://127.0.0.1:$MOCK/v1", "api_key": "sk" } } },
  "routes": [{ "name": "chat", "match": { "methods": ["POST"], "path": "/v1/chat/completions" }, "api": "chat",
               "targets": [{ "provider": "up" }]$plug }] }
CF
  taskset -c "$CORE_SUT" "$2/aigw" -c "$TMP/$1.json" >"$TMP/$1.out" 2>&1 &
  PID[$1]=$! PORT[$1]=$p; PIDS+=($!)
  local i; for ((i = 0; i < 50; i++)); do
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}' \
      "http://127.0.0.1:$p/v1/chat/completions" && return 0; sleep 0.1; done
  echo "ab.sh: $1 did not start: $(tail -3 "$TMP/$1.out")" >&2; exit 1
}
start a_chat "$A" 0; start b_chat "$B" 0; start a_plug "$A" 1; start b_plug "$B" 1
declare -A RPS US
echo "load before: $(cat /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
  for v in a_chat b_chat a_plug b_plug; do
    bench_wrk "$v" "$r" "${PID[$v]}" "http://127.0.0.1:${PORT[$v]}/v1/chat/completions"
    printf 'round %d %-7s %7s rps %7s us/req%s\n' "$r" "$v" "${RPS[$v|$r]}" "${US[$v|$r]}" "${BENCH_NON2XX:+  NON-2XX: $BENCH_NON2XX}"
  done
done
echo "load after: $(cat /proc/loadavg)"
for c in chat plug; do
  ra="" rb="" ua="" ub=""
  for ((r = 1; r <= ROUNDS; r++)); do ra+="${RPS[a_$c|$r]} "; rb+="${RPS[b_$c|$r]} "; ua+="${US[a_$c|$r]} "; ub+="${US[b_$c|$r]} "; done
  awk -v c="$c" -v ra="$(med "$ra")" -v rb="$(med "$rb")" -v ua="$(med "$ua")" -v ub="$(med "$ub")" 'BEGIN {
    printf "%-5s median: A %6.0f rps %6.1f us/req | B %6.0f rps %6.1f us/req | B/A rps %.2f, us/req %.2f\n",
      c, ra, ua, rb, ub, (ra > 0 ? rb / ra : 0), (ua > 0 ? ub / ua : 0) }'
done
