#!/usr/bin/env bash
# bench/lua.sh — the lua plugin's cost per request: the same chat route without Lua, with a trivial
# request hook, and with a hook that edits the body, in one aigw build, interleaved, on loopback.
#
#   bench/lua.sh [BUILD (build)] [ROUNDS (5)] [DURATION s (3)]
#
# Variants (one aigw process each, "workers": 1, access log on, upstream = a fixed nginx answer):
#   plain  the route without plugins
#   noop   lua, on_request(ctx) does nothing                      (the plugin's fixed cost)
#   hdr    lua, reads a request header and sets a response header (a trivial hook)
#   body   lua, decodes the body into a table, sets two members, encodes it back (aigw.req.body /
#          set_body)
#   model  lua, aigw.set_model (one member edited in the host's JSON tree)
# Printed: requests/s and CPU µs per request of the aigw process (utime+stime over the run ÷
# requests) per round, then medians and the overhead of each variant over plain. Layout as
# ab.sh: core 0 = the aigw under load (one at a time), core 1 = wrk + the nginx upstream.
# BENCH_CALLGRIND=1 also runs each variant under valgrind --tool=callgrind for a fixed number of
# requests and prints instructions per request (noise-free; slow).
# Needs nginx, wrk, taskset, curl (and valgrind for BENCH_CALLGRIND).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
ROUNDS=${2:-5} DUR=${3:-3}
[[ -x $BUILD/aigw && -f $BUILD/plugins/lua.so ]] || { echo "lua.sh: $BUILD/aigw or $BUILD/plugins/lua.so missing" >&2; exit 1; }
. "$ROOT/bench/lib.sh"
bench_need lua.sh nginx wrk taskset curl
bench_tmp luabench
bench_mock_nginx

cat >"$TMP/noop.lua" <<'L'
function on_request(ctx) end
L
cat >"$TMP/hdr.lua" <<'L'
function on_request(ctx)
  local auth = aigw.req.header("authorization")
  aigw.resp.set_header("x-lua", auth and "auth" or "anon")
end
L
cat >"$TMP/body.lua" <<'L'
function on_request(ctx)
  local b = aigw.req.body()
  b.temperature = 0
  b.user = "bench"
  aigw.req.set_body(b)
end
L
cat >"$TMP/model.lua" <<'L'
function on_request(ctx)
  aigw.set_model("gpt-4o-mini")
end
L

VARIANTS=(plain noop hdr body model)
declare -A PORT PID
config() {  # config NAME PORT ADMIN ACCESS_LOG -> json
  local plug=""
  [[ $1 != plain ]] && plug=', "plugins": [{ "name": "lua", "config": { "script": "'$TMP/$1.lua'" } }]'
  cat <<CF
{ "listen": [{ "address": "127.0.0.1", "port": $2 }], "workers": 1,
  "admin": { "address": "127.0.0.1", "port": $3, "token": "t" },
  "plugin_paths": ["$BUILD/plugins"], "access_log": { "path": "$4" },
  "providers": { "up": { "plugin": "openai", "config": { "base_url": "http://127.0.0.1:$MOCK/v1", "api_key": "sk" } } },
  "routes": [{ "name": "chat", "match": { "methods": ["POST"], "path": "/v1/chat/completions" }, "api": "chat",
               "targets": [{ "provider": "up" }]$plug }] }
CF
}
wait_up() {
  local i; for ((i = 0; i < 100; i++)); do
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}' \
      "http://127.0.0.1:$1/v1/chat/completions" && return 0; sleep 0.1; done
  echo "lua.sh: aigw on port $1 did not start" >&2; exit 1
}
for v in "${VARIANTS[@]}"; do
  pick_port p; pick_port ad
  config "$v" "$p" "$ad" "$TMP/$v.log" >"$TMP/$v.json"
  taskset -c "$CORE_SUT" "$BUILD/aigw" -c "$TMP/$v.json" >"$TMP/$v.out" 2>&1 &
  PID[$v]=$! PORT[$v]=$p; PIDS+=($!)
done
for v in "${VARIANTS[@]}"; do wait_up "${PORT[$v]}"; done

declare -A RPS US
echo "load before: $(cat /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
  for v in "${VARIANTS[@]}"; do
    bench_wrk "$v" "$r" "${PID[$v]}" "http://127.0.0.1:${PORT[$v]}/v1/chat/completions"
    printf 'round %d %-6s %7s rps %7s us/req%s\n' "$r" "$v" "${RPS[$v|$r]}" "${US[$v|$r]}" "${BENCH_NON2XX:+  NON-2XX: $BENCH_NON2XX}"
  done
done
echo "load after: $(cat /proc/loadavg)"
declare -A MR MU
for v in "${VARIANTS[@]}"; do
  rr="" uu=""
  for ((r = 1; r <= ROUNDS; r++)); do rr+="${RPS[$v|$r]} "; uu+="${US[$v|$r]} "; done
  MR[$v]=$(med "$rr") MU[$v]=$(med "$uu")
done
echo
echo "variant   median rps   median CPU us/req   overhead vs plain (CPU us/req)"
for v in "${VARIANTS[@]}"; do
  awk -v v="$v" -v r="${MR[$v]}" -v u="${MU[$v]}" -v p="${MU[plain]}" 'BEGIN {
    printf "%-8s %11.0f %19.2f %+21.2f\n", v, r, u, u - p }'
done
# the same difference per round (each round's variants ran back to back), to show the spread
echo
printf 'per-round overhead vs plain (us/req):'
for v in "${VARIANTS[@]}"; do [[ $v == plain ]] && continue; printf ' %s' "$v"; done; echo
for ((r = 1; r <= ROUNDS; r++)); do
  printf '  round %d:' "$r"
  for v in "${VARIANTS[@]}"; do [[ $v == plain ]] && continue
    awk -v a="${US[$v|$r]}" -v b="${US[plain|$r]}" 'BEGIN { printf " %+6.2f", a - b }'; done; echo
done

if [[ ${BENCH_CALLGRIND:-0} == 1 ]]; then
  command -v valgrind >/dev/null || { echo "lua.sh: valgrind not found" >&2; exit 1; }
  N=${BENCH_CALLGRIND_REQUESTS:-3000}
  echo
  echo "callgrind: instructions per request (aigw process, $N requests after 200 warm-up, 8 connections)"
  for v in "${VARIANTS[@]}"; do
    pick_port p; pick_port ad
    config "$v" "$p" "$ad" "$TMP/cg-$v.access" >"$TMP/cg-$v.json"
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg-$v.out" --instr-atstart=no \
      "$BUILD/aigw" -c "$TMP/cg-$v.json" >"$TMP/cg-$v.log" 2>&1 &
    cpid=$!; PIDS+=($cpid)
    for ((i = 0; i < 300; i++)); do curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
      -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}' "http://127.0.0.1:$p/v1/chat/completions" && break; sleep 0.2; done
    url="http://127.0.0.1:$p/v1/chat/completions"
    for ((i = 0; i < 200; i++)); do curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer x' \
      -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}' "$url"; done
    callgrind_control -i on "$cpid" >/dev/null 2>&1
    sleep 0.5
    before=$(wc -l <"$TMP/cg-$v.access")
    wrk -t1 -c8 -d60s -s "$ROOT/bench/post.lua" "$url" >/dev/null 2>&1 &
    wpid=$!
    # stop after about N requests (counted in the access log)
    while :; do
      sleep 0.5
      got=$(( $(wc -l <"$TMP/cg-$v.access") - before ))
      ((got >= N)) && break
      kill -0 "$wpid" 2>/dev/null || break
    done
    callgrind_control -i off "$cpid" >/dev/null 2>&1
    kill "$wpid" 2>/dev/null || true; wait "$wpid" 2>/dev/null || true
    sleep 0.5
    reqs=$(( $(wc -l <"$TMP/cg-$v.access") - before ))
    callgrind_control -d "$cpid" >/dev/null 2>&1 || true
    kill -TERM "$cpid"; wait "$cpid" 2>/dev/null || true
    ir=$(cat "$TMP"/cg-"$v".out* 2>/dev/null | awk '/^totals:/ { s += $2 } END { print s + 0 }')
    awk -v v="$v" -v ir="$ir" -v n="$reqs" 'BEGIN { printf "  %-6s %9.0f instructions/request (%d requests)\n", v, (n > 0 ? ir / n : 0), n }'
  done
fi
