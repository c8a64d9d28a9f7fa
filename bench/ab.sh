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
CORE_SUT=${BENCH_CORE_SUT:-0} CORE_LOAD=${BENCH_CORE_LOAD:-1}
TMP=$(mktemp -d /tmp/aigw-ab.XXXXXX); chmod 755 "$TMP"
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK=$(port)
CHAT_JSON='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}'
mkdir -p "$TMP/mock"
cat >"$TMP/mock/nginx.conf" <<NG
worker_processes 1; daemon off; pid $TMP/mock/nginx.pid; error_log $TMP/mock/error.log warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $TMP/mock/cb; proxy_temp_path $TMP/mock/p; fastcgi_temp_path $TMP/mock/f;
  uwsgi_temp_path $TMP/mock/u; scgi_temp_path $TMP/mock/s; keepalive_requests 1000000; keepalive_timeout 120s;
  server { listen 127.0.0.1:$MOCK reuseport backlog=4096;
    location = /v1/chat/completions { default_type application/json; return 200 '$CHAT_JSON'; }
    location = /allow { default_type application/json; return 200 '{"allow":true}'; } } }
NG
taskset -c "$CORE_LOAD" nginx -p "$TMP/mock" -c "$TMP/mock/nginx.conf" -e "$TMP/mock/error.log" >/dev/null 2>&1 &
PIDS+=($!)
EX=$TMP/ex; mkdir -p "$EX"
for ex in hello async_callout; do
  ${CC:-cc} -std=c11 -O2 -shared -fPIC -fvisibility=hidden -I"$ROOT/sdk/include" "$ROOT/examples/plugins/$ex"/*.c -o "$EX/$ex.so"
done
declare -A PORT PID
start() {  # start NAME BUILD PLUGINS(0|1)
  local p ad plug=""; p=$(port); ad=$(port)
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
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
declare -A RPS US
echo "load before: $(cat /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
  for v in a_chat b_chat a_plug b_plug; do
    url="http://127.0.0.1:${PORT[$v]}/v1/chat/completions"
    taskset -c "$CORE_LOAD" wrk -t1 -c64 -d1s -s "$ROOT/bench/post.lua" "$url" >/dev/null 2>&1 || true
    t0=$(ticks "${PID[$v]}")
    out=$(taskset -c "$CORE_LOAD" wrk -t1 -c64 -d"${DUR}s" -s "$ROOT/bench/post.lua" "$url" 2>&1 || true)
    t1=$(ticks "${PID[$v]}")
    n=$(awk '/requests in/ { print $1 }' <<<"$out"); non=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
    RPS[$v|$r]=$(awk -v n="${n:-0}" -v d="$DUR" 'BEGIN { printf "%.0f", n / d }')
    US[$v|$r]=$(awk -v n="${n:-0}" -v a="$t0" -v b="$t1" -v h="$HZ" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) / h * 1e6 / n : 0) }')
    printf 'round %d %-7s %7s rps %7s us/req%s\n' "$r" "$v" "${RPS[$v|$r]}" "${US[$v|$r]}" "${non:+  NON-2XX: $non}"
  done
done
echo "load after: $(cat /proc/loadavg)"
med() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for c in chat plug; do
  ra="" rb="" ua="" ub=""
  for ((r = 1; r <= ROUNDS; r++)); do ra+="${RPS[a_$c|$r]} "; rb+="${RPS[b_$c|$r]} "; ua+="${US[a_$c|$r]} "; ub+="${US[b_$c|$r]} "; done
  awk -v c="$c" -v ra="$(med "$ra")" -v rb="$(med "$rb")" -v ua="$(med "$ua")" -v ub="$(med "$ub")" 'BEGIN {
    printf "%-5s median: A %6.0f rps %6.1f us/req | B %6.0f rps %6.1f us/req | B/A rps %.2f, us/req %.2f\n",
      c, ra, ua, rb, ub, (ra > 0 ? rb / ra : 0), (ua > 0 ? ub / ua : 0) }'
done
