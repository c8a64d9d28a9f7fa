#!/usr/bin/env bash
# bench/routing.sh - what routing and resilience cost and buy, measured in one run on loopback:
#
#   1. balancer decision cost per request (bench_balance: plan + breaker check, 10 targets);
#   2. a dead primary (connection refused) with a healthy fallback and a breaker: success rate
#      and the latency added over the healthy route once the breaker is open (wrk, 1 connection);
#   3. hedging: one target answering 200 ms late on every 20th request (5%), p99 with and without
#      a 30 ms hedge on a second target (wrk, 4 connections).
#
#   bench/routing.sh            (AIGW_BUILD: build dir, default "build"; BENCH_DURATION: s, default 10)
#
# The upstream is the in-tree OpenAI mock (node). Every process started here is stopped by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${AIGW_BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
DUR=${BENCH_DURATION:-10}
. "$ROOT/bench/lib.sh"
bench_need routing.sh wrk node curl python3
[ -x "$BUILD/aigw" ] && [ -x "$BUILD/bench_balance" ] || { echo "routing.sh: build $BUILD first (aigw, bench_balance)" >&2; exit 1; }

bench_tmp routing

echo "== 1. balancer decision cost (plan + breaker check, 10 targets)"
"$BUILD/bench_balance" 200000

pick_port MPORT; pick_port GPORT; pick_port APORT; pick_port DEAD
node "$ROOT/tests/mock/openai_mock.mjs" --port "$MPORT" --max-log 10 >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$MPORT/v1/models" -H 'authorization: Bearer sk-mock' >/dev/null && break; sleep 0.1; done
cat >"$TMP/aigw.json" <<EOF
{ "listen": [{"address": "127.0.0.1", "port": $GPORT}], "workers": 1,
  "admin": {"address": "127.0.0.1", "port": $APORT, "token": "t"},
  "plugin_paths": ["$BUILD/plugins"],
  "providers": {
    "up":   {"plugin": "openai", "config": {"base_url": "http://127.0.0.1:$MPORT/v1", "api_key": "sk-mock"}},
    "dead": {"plugin": "openai", "config": {"base_url": "http://127.0.0.1:$DEAD/v1", "api_key": "sk-mock"}}
  },
  "routes": [
    {"name": "healthy", "match": {"path": "/healthy/v1/chat/completions"}, "api": "chat",
     "targets": [{"name": "B", "provider": "up", "model": "gpt-4o-mini"}]},
    {"name": "dead_primary", "match": {"path": "/dead/v1/chat/completions"}, "api": "chat",
     "targets": [{"name": "dead", "provider": "dead"}, {"name": "B", "provider": "up", "model": "gpt-4o-mini"}],
     "breaker": {"failure_rate": 0.5, "min_requests": 5, "window_ms": 10000, "cooldown_ms": 600000}},
    {"name": "nohedge", "match": {"path": "/nohedge/v1/chat/completions"}, "api": "chat",
     "targets": [{"name": "A", "provider": "up", "model": "gpt-4o-mini+fault-slow-every-20-200"},
                 {"name": "B", "provider": "up", "model": "gpt-4o-mini"}]},
    {"name": "hedge", "match": {"path": "/hedge/v1/chat/completions"}, "api": "chat",
     "targets": [{"name": "A", "provider": "up", "model": "gpt-4o-mini+fault-slow-every-20-200"},
                 {"name": "B", "provider": "up", "model": "gpt-4o-mini"}],
     "hedge": {"delay_ms": 30}}
  ]}
EOF
"$BUILD/aigw" -c "$TMP/aigw.json" >"$TMP/aigw.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$APORT/health" >/dev/null && break; sleep 0.1; done

run() { # name url conns -> "BENCH ..." line
  wrk -t1 -c"$3" -d"${DUR}s" --latency -s "$ROOT/bench/post.lua" "$2" 2>/dev/null | grep '^BENCH' | sed "s/^BENCH/$1/"
}
field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<"$1"; }

echo
echo "== 2. dead primary (connection refused) + healthy fallback, breaker on; 1 connection, ${DUR}s each"
# the first requests pay the refused connect, then the breaker opens and skips the dead target
warm_ok=0
for i in $(seq 20); do
  c=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GPORT/dead/v1/chat/completions" \
    -H 'content-type: application/json' -d '{"model":"m","messages":[{"role":"user","content":"hello"}]}')
  [ "$c" = 200 ] && warm_ok=$((warm_ok + 1))
done
echo "warm-up while the breaker opens: $warm_ok/20 answered 200"
H=$(run healthy "http://127.0.0.1:$GPORT/healthy/v1/chat/completions" 1)
D=$(run dead_primary "http://127.0.0.1:$GPORT/dead/v1/chat/completions" 1)
H2=$(run healthy "http://127.0.0.1:$GPORT/healthy/v1/chat/completions" 1)
echo "$H"; echo "$D"; echo "$H2"
python3 - "$H" "$D" "$H2" <<'PY'
import sys, re
def p(s): return {k: float(v) for k, v in re.findall(r'(\w+)=([0-9.]+)', s)}
h, d, h2 = map(p, sys.argv[1:])
ok = 100.0 * (d['requests'] - d['non2xx']) / max(d['requests'], 1)
base50 = (h['p50_us'] + h2['p50_us']) / 2
basemean = (h['mean_us'] + h2['mean_us']) / 2
print(f"dead primary: success {ok:.2f}% of {int(d['requests'])} requests; "
      f"p50 {d['p50_us']:.0f} us vs healthy {base50:.0f} us (added {d['p50_us'] - base50:+.0f} us, "
      f"ratio {d['p50_us'] / base50:.3f}); mean added {d['mean_us'] - basemean:+.0f} us")
PY

echo
echo "== 3. hedging: A is 200 ms late on every 20th request; 4 connections, ${DUR}s each"
N=$(run no_hedge "http://127.0.0.1:$GPORT/nohedge/v1/chat/completions" 4)
Y=$(run hedge_30ms "http://127.0.0.1:$GPORT/hedge/v1/chat/completions" 4)
echo "$N"; echo "$Y"
python3 - "$N" "$Y" <<'PY'
import sys, re
def p(s): return {k: float(v) for k, v in re.findall(r'(\w+)=([0-9.]+)', s)}
n, y = map(p, sys.argv[1:])
print(f"p99 without hedging {n['p99_us'] / 1000:.1f} ms, with a 30 ms hedge {y['p99_us'] / 1000:.1f} ms "
      f"(ratio {y['p99_us'] / n['p99_us']:.3f}); p50 {n['p50_us']:.0f} vs {y['p50_us']:.0f} us; "
      f"rps {n['rps']:.0f} vs {y['rps']:.0f}; non-2xx {int(n['non2xx'])} / {int(y['non2xx'])}")
PY
grep -c "hedging on" "$TMP/aigw.log" | sed 's/^/hedges sent: /'
