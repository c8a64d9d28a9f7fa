#!/usr/bin/env bash
# bench/run.sh — aigw against nginx (the C reference), on loopback, in one interleaved run.
#
#   bench/run.sh [--quick] [--nginx-only] [--keep-tmp]
#
# Layout (2 cores): core 0 = the system under test (aigw or the nginx reverse proxy, one at a
# time under load); core 1 = wrk + the mock upstream (a separate nginx serving fixed OpenAI
# answers). See bench/README.md for what is measured and the targets.
#
# Environment: AIGW_BUILD (build dir, default "build"), BENCH_ROUNDS (default 2),
# BENCH_DURATION / BENCH_WARMUP (seconds), BENCH_CORE_SUT (0), BENCH_CORE_LOAD (1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${AIGW_BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
LUA=$ROOT/bench/post.lua

QUICK=0 NGINX_ONLY=0 KEEP_TMP=0
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    --nginx-only) NGINX_ONLY=1 ;;
    --keep-tmp) KEEP_TMP=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$a' (try --help)" >&2; exit 2 ;;
  esac
done

if ((QUICK)); then DUR=${BENCH_DURATION:-3}; else DUR=${BENCH_DURATION:-10}; fi
WARM=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-2}
CORE_SUT=${BENCH_CORE_SUT:-0}
CORE_LOAD=${BENCH_CORE_LOAD:-1}

die() { echo "run.sh: error: $*" >&2; exit 1; }
note() { echo "run.sh: $*" >&2; }

. "$ROOT/bench/lib.sh"
bench_need run.sh nginx wrk taskset curl awk

# ---------------------------------------------------------------- temp dir, results, cleanup
TS=$(date +%Y%m%d-%H%M%S)
OUT=$ROOT/bench/results/$TS
mkdir -p "$OUT/raw"
bench_tmp bench
cd "$TMP"                   # nothing below writes relative paths; be safe anyway

# ---------------------------------------------------------------- helpers
# wait_http NAME PID URL [curl args...]: until URL answers 2xx (10 s)
wait_http() {
  local name=$1 pid=$2 url=$3 code i
  shift 3
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true)
    [[ $code == 2* ]] && return 0
    sleep 0.1
  done
  note "$name did not answer 2xx on $url (last status: $code)"
  return 1
}

# pid + direct children (nginx master + workers)
proc_tree() { local p=$1; echo "$p"; cat "/proc/$p/task/"*/children 2>/dev/null | tr ' ' '\n' | sed '/^$/d'; }
# mem_kb PID FIELD: sum of FIELD (VmRSS / VmHWM) over the process tree, in kB
mem_kb() {
  local p s=0 v
  for p in $(proc_tree "$1"); do
    v=$(awk -v f="$2:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    s=$((s + ${v:-0}))
  done
  echo "$s"
}
# cpu_ticks PID: utime+stime over the process tree (clock ticks)
cpu_ticks() {
  local p s=0 v
  for p in $(proc_tree "$1"); do
    v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || true)
    s=$((s + ${v:-0}))
  done
  echo "$s"
}
CLK_TCK=$(getconf CLK_TCK)
# core_ticks N: "busy total" jiffies of CPU N from /proc/stat
core_ticks() { awk -v c="cpu$1" '$1 == c { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6 }' /proc/stat; }
busy_pct() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ")
  d = y[2] - x[2]; printf "%.0f", (d > 0 ? (y[1] - x[1]) / d * 100 : 0) }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }

# ---------------------------------------------------------------- mock upstream (nginx)
pick_port MOCK_PORT
pick_port REF_PORT
pick_port AIGW_PORT
pick_port AIGW_ADMIN
pick_port AIGWP_PORT
pick_port AIGWP_ADMIN

CHAT_JSON='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_bench"}'

mkdir -p "$TMP/mock/www" "$TMP/ref"
{
  chunk() {  # chunk DELTA_JSON FINISH
    printf 'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}\n\n' "$1" "$2"
  }
  chunk '{"role":"assistant","content":"","refusal":null}' null
  for w in Hello "!" " How" " can" " I" " help" " you" " today" "?" " I" " am" " a" " small" " mock" " answer" " for" " the" " bench" "."; do
    chunk "{\"content\":\"$w\"}" null
  done
  chunk '{}' '"stop"'
  printf 'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":19,"total_tokens":28}}\n\n'
  printf 'data: [DONE]\n\n'
} >"$TMP/mock/www/sse.txt"
chmod -R a+rX "$TMP/mock"

nginx_common() {  # nginx_common DIR
  cat <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; multi_accept on; }
EOF
}
nginx_http_common() {
  cat <<EOF
    access_log off;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    tcp_nodelay on;
EOF
}

{
  nginx_common "$TMP/mock"
  cat <<EOF
http {
$(nginx_http_common "$TMP/mock")
    sendfile on;
    server {
        listen 127.0.0.1:$MOCK_PORT reuseport backlog=4096;
        location = /v1/chat/completions {
            default_type application/json;
            return 200 '$CHAT_JSON';
        }
        # the static module refuses POST (405): hand it to an internal location, which
        # error_page reaches with GET, and answer 200 with the file.
        location = /sse/v1/chat/completions {
            error_page 405 =200 /_sse_body;
            return 405;
        }
        location = /_sse_body {
            internal;
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            alias $TMP/mock/www/sse.txt;
        }
        location = /allow {
            default_type application/json;
            return 200 '{"allow":true}';
        }
        location = /_status { stub_status; }   # "accepts" = upstream connections opened
        location / { return 404; }
    }
}
EOF
} >"$TMP/mock/nginx.conf"

# ---------------------------------------------------------------- reference proxy (nginx)
{
  nginx_common "$TMP/ref"
  cat <<EOF
http {
$(nginx_http_common "$TMP/ref")
    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$REF_PORT backlog=4096;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Authorization "Bearer sk-bench";
        location /v1/ {
            proxy_pass http://mock;
        }
        location /sse/v1/ {
            proxy_pass http://mock;
            proxy_buffering off;
        }
    }
}
EOF
} >"$TMP/ref/nginx.conf"

start_nginx() {  # start_nginx NAME DIR CORE -> sets LAST_PID
  local name=$1 dir=$2 core=$3
  nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/test.log" 2>&1 ||
    { cat "$dir/test.log" >&2; die "$name: nginx config test failed ($dir/nginx.conf)"; }
  taskset -c "$core" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
    >"$dir/stdout.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

start_nginx mock "$TMP/mock" "$CORE_LOAD"; MOCK_PID=$LAST_PID
wait_http mock "$MOCK_PID" "http://127.0.0.1:$MOCK_PORT/allow" || die "mock nginx did not start ($TMP/mock/error.log)"
start_nginx reference "$TMP/ref" "$CORE_SUT"; REF_PID=$LAST_PID
wait_http reference "$REF_PID" "http://127.0.0.1:$REF_PORT/v1/chat/completions" -X POST -d '{}' ||
  die "reference nginx did not start ($TMP/ref/error.log)"

# ---------------------------------------------------------------- aigw
HAVE_AIGW=0 HAVE_PLUGINS=0 PLUGINS_NOTE=""
AIGW_PID="" AIGWP_PID=""
if ((!NGINX_ONLY)); then
  if [[ ! -x $BUILD/aigw ]]; then
    note "no aigw binary at $BUILD/aigw: building it (Release) — log: $OUT/build.log"
    if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
           cmake --build "$BUILD" -j2; } >"$OUT/build.log" 2>&1; then
      tail -n 20 "$OUT/build.log" >&2 || true
    fi
  fi
  [[ -x $BUILD/aigw ]] || die "the aigw binary is missing: $BUILD/aigw does not exist and building it failed
  (see $OUT/build.log). Build it with
      cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2
  or point AIGW_BUILD at a build directory, or run 'bench/run.sh --nginx-only' for the reference half."
  btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
  [[ $btype == Release ]] || note "warning: $BUILD is a '${btype:-unknown}' build, not Release — numbers may be pessimistic"

  mkdir -p "$TMP/aigw" "$TMP/aigwp"
  aigw_config() {  # aigw_config PORT ADMIN DIR PLUGIN_PATHS_JSON CHAT_PLUGINS_JSON
    cat <<EOF
{
  "listen": [{ "address": "127.0.0.1", "port": $1 }],
  "workers": 1,
  "admin": { "address": "127.0.0.1", "port": $2, "token": "bench" },
  "plugin_paths": $4,
  "access_log": { "path": "$3/access.log" },
  "providers": {
    "up":    { "plugin": "openai", "config": { "base_url": "http://127.0.0.1:$MOCK_PORT/v1", "api_key": "sk-bench" } },
    "upsse": { "plugin": "openai", "config": { "base_url": "http://127.0.0.1:$MOCK_PORT/sse/v1", "api_key": "sk-bench" } }
  },
  "routes": [
    { "name": "chat", "match": { "methods": ["POST"], "path": "/v1/chat/completions" }, "api": "chat",
      "targets": [{ "provider": "up" }]$5 },
    { "name": "sse", "match": { "methods": ["POST"], "path": "/sse/v1/chat/completions" }, "api": "chat",
      "targets": [{ "provider": "upsse" }] }
  ]
}
EOF
  }
  aigw_config "$AIGW_PORT" "$AIGW_ADMIN" "$TMP/aigw" "[\"$BUILD/plugins\"]" "" >"$TMP/aigw/aigw.json"

  start_aigw() {  # start_aigw NAME DIR PORT -> sets LAST_PID, returns 1 on failure
    local name=$1 dir=$2 port=$3
    taskset -c "$CORE_SUT" "$BUILD/aigw" -c "$dir/aigw.json" >"$dir/stdout.log" 2>"$dir/stderr.log" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    if ! wait_http "$name" "$LAST_PID" "http://127.0.0.1:$port/v1/chat/completions" -X POST \
         -H 'Content-Type: application/json' -H 'Authorization: Bearer x' \
         -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'; then
      note "$name failed to start or to answer; its stderr ($dir/stderr.log):"
      tail -n 20 "$dir/stderr.log" >&2 || true
      cp "$dir/aigw.json" "$dir/stderr.log" "$OUT/" 2>/dev/null || true
      return 1
    fi
  }
  start_aigw aigw "$TMP/aigw" "$AIGW_PORT" || die "aigw did not start with $TMP/aigw/aigw.json (copied to $OUT/)"
  AIGW_PID=$LAST_PID
  HAVE_AIGW=1

  # optional variant: the two example plugins on the chat route. Use $BUILD/examples/*.so when
  # present; otherwise build them from examples/plugins/ against the SDK headers (headers only,
  # as with `pkg-config --cflags aigw-sdk`), -O2, into the temp dir.
  find_so() { find "$BUILD/examples" -name "$1.so" -print -quit 2>/dev/null || true; }
  HELLO_SO=$(find_so hello) CALLOUT_SO=$(find_so async_callout)
  if [[ -z $HELLO_SO || -z $CALLOUT_SO ]]; then
    mkdir -p "$TMP/examples"
    for ex in hello async_callout; do
      src=$ROOT/examples/plugins/$ex
      compgen -G "$src/*.c" >/dev/null || continue
      ${CC:-cc} -std=c11 -O2 -Wall -Wextra -shared -fPIC -fvisibility=hidden -I"$ROOT/sdk/include" \
        "$src"/*.c -o "$TMP/examples/$ex.so" >>"$OUT/examples-build.log" 2>&1 || rm -f "$TMP/examples/$ex.so"
    done
    [[ -f $TMP/examples/hello.so ]] && HELLO_SO=$TMP/examples/hello.so
    [[ -f $TMP/examples/async_callout.so ]] && CALLOUT_SO=$TMP/examples/async_callout.so
  fi
  if [[ -n $HELLO_SO && -n $CALLOUT_SO ]]; then
    pp="[\"$BUILD/plugins\", \"$(dirname "$HELLO_SO")\""
    [[ $(dirname "$CALLOUT_SO") != "$(dirname "$HELLO_SO")" ]] && pp+=", \"$(dirname "$CALLOUT_SO")\""
    pp+="]"
    aigw_config "$AIGWP_PORT" "$AIGWP_ADMIN" "$TMP/aigwp" "$pp" \
      ", \"plugins\": [{ \"name\": \"hello\" }, { \"name\": \"async_callout\", \"config\": { \"url\": \"http://127.0.0.1:$MOCK_PORT/allow\" } }]" \
      >"$TMP/aigwp/aigw.json"
    if start_aigw aigw+plugins "$TMP/aigwp" "$AIGWP_PORT"; then
      AIGWP_PID=$LAST_PID HAVE_PLUGINS=1
    else
      PLUGINS_NOTE="plugins variant skipped: aigw did not start with the example plugins (see $OUT/stderr.log)"
    fi
  else
    PLUGINS_NOTE="plugins variant skipped: no hello.so / async_callout.so in $BUILD/examples and building them from examples/plugins/ failed or found no sources (see $OUT/examples-build.log)"
  fi
  [[ -n $PLUGINS_NOTE ]] && note "$PLUGINS_NOTE"
fi

# ---------------------------------------------------------------- sanity: every side answers correctly
CHAT_BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
SSE_BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"stream":true}'
check() {  # check LABEL URL BODY EXPECT
  local f="$OUT/raw/check-$1.txt" code
  code=$(curl -s -N -o "$f" -w '%{http_code}' --max-time 5 -X POST -H 'Content-Type: application/json' \
    -H 'Authorization: Bearer x' -d "$3" "$2" || true)
  if [[ $code != 200 ]] || ! grep -qF -- "$4" "$f"; then
    note "warning: $1: POST $2 gave HTTP $code without '$4' (body in $f)"
    return 1
  fi
}
check mock-chat "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" "$CHAT_BODY" '"usage"' || die "mock upstream broken"
check mock-sse "http://127.0.0.1:$MOCK_PORT/sse/v1/chat/completions" "$SSE_BODY" 'data: [DONE]' || die "mock upstream broken"
check nginx-chat "http://127.0.0.1:$REF_PORT/v1/chat/completions" "$CHAT_BODY" '"usage"' || die "reference proxy broken"
check nginx-sse "http://127.0.0.1:$REF_PORT/sse/v1/chat/completions" "$SSE_BODY" 'data: [DONE]' || die "reference proxy broken"
if ((HAVE_AIGW)); then
  check aigw-chat "http://127.0.0.1:$AIGW_PORT/v1/chat/completions" "$CHAT_BODY" 'chat.completion' || true
  check aigw-sse "http://127.0.0.1:$AIGW_PORT/sse/v1/chat/completions" "$SSE_BODY" '[DONE]' || true
fi
if ((HAVE_PLUGINS)); then
  check aigwp-chat "http://127.0.0.1:$AIGWP_PORT/v1/chat/completions" "$CHAT_BODY" 'chat.completion' || true
fi

# ---------------------------------------------------------------- idle memory
REF_IDLE=$(mem_kb "$REF_PID" VmRSS)
AIGW_IDLE=0; ((HAVE_AIGW)) && AIGW_IDLE=$(mem_kb "$AIGW_PID" VmRSS)
AIGWP_IDLE=0; ((HAVE_PLUGINS)) && AIGWP_IDLE=$(mem_kb "$AIGWP_PID" VmRSS)

{
  echo "date: $(date -Is)"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "kernel: $(uname -r)"
  echo "cpu: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "nginx: $(nginx -v 2>&1)"
  echo "wrk: $(wrk -v 2>&1 | head -n 1)"
  echo "duration: ${DUR}s  warmup: ${WARM}s  rounds: $ROUNDS  sut core: $CORE_SUT  load core: $CORE_LOAD"
  echo "aigw: $BUILD/aigw"
} >"$OUT/env.txt"
cp "$TMP/mock/nginx.conf" "$OUT/mock-nginx.conf"
cp "$TMP/ref/nginx.conf" "$OUT/reference-nginx.conf"
((HAVE_AIGW)) && cp "$TMP/aigw/aigw.json" "$OUT/aigw.json"
((HAVE_PLUGINS)) && cp "$TMP/aigwp/aigw.json" "$OUT/aigw-plugins.json"

# ---------------------------------------------------------------- is the machine quiet?
q0a=$(core_ticks "$CORE_SUT") q0b=$(core_ticks "$CORE_LOAD"); sleep 1
q1a=$(core_ticks "$CORE_SUT") q1b=$(core_ticks "$CORE_LOAD")
IDLE_BUSY_SUT=$(busy_pct "$q0a" "$q1a") IDLE_BUSY_LOAD=$(busy_pct "$q0b" "$q1b")
echo "background load before the run: core $CORE_SUT ${IDLE_BUSY_SUT}% busy, core $CORE_LOAD ${IDLE_BUSY_LOAD}% busy" >>"$OUT/env.txt"
NOISE_NOTE=""
if ((IDLE_BUSY_SUT > 10 || IDLE_BUSY_LOAD > 10)); then
  NOISE_NOTE="WARNING: the machine was not idle before the run (core $CORE_SUT ${IDLE_BUSY_SUT}% / core $CORE_LOAD ${IDLE_BUSY_LOAD}% busy with nothing under load): expect noisy numbers; compare the per-round rows"
  note "$NOISE_NOTE"
fi

# ---------------------------------------------------------------- load
declare -A RES      # RES[case|side|round|key]
WARNF=$OUT/warnings.txt; : >"$WARNF"   # run_wrk runs in a subshell: collect warnings in a file

# kv LINE KEY: the value of KEY= in a BENCH line, 0 when absent
kv() { local v; v=$(sed -n "s/.*[ ]$2=\([^ ]*\).*/\1/p" <<<" $1"); echo "${v:-0}"; }

# to_us VALUE: wrk's "45.00us" / "1.23ms" / "2.00s" / "1.00m" -> microseconds
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
  m = (u == "us") ? 1 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : 1; printf "%.0f", n * m }'; }

# fallback when the Lua done() line is missing: parse wrk's text output
# ("Latency Distribution" 50%/90%/99%, "Requests/sec", "Non-2xx or 3xx responses")
parse_text() {
  local f=$1 rps p50 p90 p99 non
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
  p50=$(awk '$1 == "50%" { print $2 }' "$f"); p90=$(awk '$1 == "90%" { print $2 }' "$f")
  p99=$(awk '$1 == "99%" { print $2 }' "$f")
  non=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$f")
  echo "BENCH rps=${rps:-0} p50_us=$(to_us "${p50:-0}") p90_us=$(to_us "${p90:-0}") p99_us=$(to_us "${p99:-0}") non2xx=${non:-0}"
}

# mock_accepts: connections the mock has accepted so far (the status request itself included)
mock_accepts() {
  curl -s --max-time 2 "http://127.0.0.1:$MOCK_PORT/_status" | awk 'NR == 3 { print $1 }' || true
}

# run_wrk LABEL URL CONNS DURATION PID [stream] -> prints the BENCH line (plus cpu=)
run_wrk() {
  local label=$1 url=$2 conns=$3 dur=$4 pid=$5 extra=${6:-} f t0 t1 l0 l1 s0 s1 a0 a1 line
  f="$OUT/raw/$label.txt"
  a0=$(mock_accepts)
  t0=$(cpu_ticks "$pid") l0=$(core_ticks "$CORE_LOAD") s0=$(core_ticks "$CORE_SUT")
  taskset -c "$CORE_LOAD" wrk -t1 -c"$conns" -d"${dur}s" --timeout 5s --latency -s "$LUA" "$url" \
    ${extra:+-- "$extra"} >"$f" 2>&1 || true
  t1=$(cpu_ticks "$pid") l1=$(core_ticks "$CORE_LOAD") s1=$(core_ticks "$CORE_SUT")
  a1=$(mock_accepts)
  line=$(grep '^BENCH ' "$f" | tail -n 1 || true)
  if [[ -z $line ]]; then
    line=$(parse_text "$f")
    [[ $(kv "$line" rps) != 0 ]] || echo "WARNING: $label: wrk produced no result (see $f)" >>"$WARNF"
  fi
  echo "$line cpu=$(awk -v a="$t0" -v b="$t1" -v h="$CLK_TCK" -v d="$dur" 'BEGIN { printf "%.0f", (b - a) / h / d * 100 }')" \
    "cpuus=$(awk -v a="$t0" -v b="$t1" -v h="$CLK_TCK" -v d="$dur" -v r="$(kv "$line" rps)" 'BEGIN { printf "%.1f", (r > 0 ? (b - a) / h * 1e6 / (r * d) : 0) }')" \
    "sutcore=$(busy_pct "$s0" "$s1") loadcore=$(busy_pct "$l0" "$l1") upconns=$((${a1:-0} - ${a0:-0} - 1))"
}

record() {  # record CASE SIDE ROUND LINE
  local pair
  for pair in ${4#BENCH }; do
    RES[$1|$2|$3|${pair%%=*}]=${pair#*=}
  done
}

check_errors() {  # check_errors LABEL LINE
  local n e
  n=$(kv "$2" non2xx)
  e=$(( $(kv "$2" connect_err) + $(kv "$2" read_err) + $(kv "$2" write_err) + $(kv "$2" timeout_err) ))
  if ((n > 0)); then
    echo "WARNING: $1: $n non-2xx responses (wrk: \"Non-2xx or 3xx responses\") — see $OUT/raw/$1.txt"
  fi
  if ((e > 0)); then
    echo "WARNING: $1: $e socket errors (connect/read/write/timeout) — see $OUT/raw/$1.txt"
  fi
  return 0
}

CASES=()
add_case() { CASES+=("$1"); }   # name:path:conns:stream:aigw-side
add_case "chat c1:/v1/chat/completions:1::aigw"
add_case "chat c64:/v1/chat/completions:64::aigw"
add_case "sse c1:/sse/v1/chat/completions:1:stream:aigw"
add_case "sse c64:/sse/v1/chat/completions:64:stream:aigw"
if ((HAVE_PLUGINS)); then
  add_case "chat+plugins c1:/v1/chat/completions:1::aigwp"
  add_case "chat+plugins c64:/v1/chat/completions:64::aigwp"
fi

side_port() { case $1 in nginx) echo "$REF_PORT" ;; aigw) echo "$AIGW_PORT" ;; aigwp) echo "$AIGWP_PORT" ;; esac; }
side_pid() { case $1 in nginx) echo "$REF_PID" ;; aigw) echo "$AIGW_PID" ;; aigwp) echo "$AIGWP_PID" ;; esac; }

ncases=${#CASES[@]}
sides_per=$((HAVE_AIGW ? 2 : 1))
est=$((ncases * ROUNDS * sides_per * (DUR + WARM)))
note "mock :$MOCK_PORT (core $CORE_LOAD), nginx proxy :$REF_PORT (core $CORE_SUT)$( ((HAVE_AIGW)) && echo ", aigw :$AIGW_PORT (core $CORE_SUT)")"
note "$ncases cases x $ROUNDS rounds x $sides_per sides, ${DUR}s each (+${WARM}s warm-up): about ${est}s"
note "raw results: $OUT"

for c in "${CASES[@]}"; do
  IFS=: read -r cname cpath cconns cstream caigw <<<"$c"
  slug=${cname// /-}; slug=${slug//+/-}
  sides=(nginx); ((HAVE_AIGW)) && sides+=("$caigw")
  for ((r = 1; r <= ROUNDS; r++)); do
    for s in "${sides[@]}"; do
      sname=$s; [[ $s == aigwp ]] && sname=aigw
      url="http://127.0.0.1:$(side_port "$s")$cpath"
      wline=$(run_wrk "$slug-$sname-r$r-warmup" "$url" "$cconns" "$WARM" "$(side_pid "$s")" "$cstream")
      check_errors "$slug-$sname-r$r-warmup" "$wline" >>"$WARNF"
      line=$(run_wrk "$slug-$sname-r$r" "$url" "$cconns" "$DUR" "$(side_pid "$s")" "$cstream")
      check_errors "$slug-$sname-r$r" "$line" >>"$WARNF"
      record "$cname" "$sname" "$r" "$line"
      note "$(printf '%-18s %-5s round %d: %9.0f rps  p50 %6d us  p99 %6d us  cpu %3s%%' "$cname" "$sname" "$r" \
        "${RES[$cname|$sname|$r|rps]}" "${RES[$cname|$sname|$r|p50_us]}" "${RES[$cname|$sname|$r|p99_us]}" \
        "${RES[$cname|$sname|$r|cpu]:-?}")"
    done
  done
done

# ---------------------------------------------------------------- peak memory
REF_PEAK=$(mem_kb "$REF_PID" VmHWM)
AIGW_PEAK=0; ((HAVE_AIGW)) && AIGW_PEAK=$(mem_kb "$AIGW_PID" VmHWM)
AIGWP_PEAK=0; ((HAVE_PLUGINS)) && AIGWP_PEAK=$(mem_kb "$AIGWP_PID" VmHWM)

if ((HAVE_AIGW)); then
  curl -s --max-time 3 -H 'Authorization: Bearer bench' "http://127.0.0.1:$AIGW_ADMIN/metrics" \
    >"$OUT/aigw-metrics.txt" 2>/dev/null || true
  AIGW_LOG_LINES=$(wc -l <"$TMP/aigw/access.log" 2>/dev/null || echo 0)
  tail -n 3 "$TMP/aigw/access.log" >"$OUT/aigw-access-log-tail.txt" 2>/dev/null || true
fi

# ---------------------------------------------------------------- report
# stat CASE SIDE KEY FN(median|mean|min|max)
stat() {
  local vals="" r
  for ((r = 1; r <= ROUNDS; r++)); do vals+="${RES[$1|$2|$r|$3]:-} "; done
  awk -v fn="$4" -v s="$vals" 'BEGIN {
    n = split(s, a, " "); if (n == 0) { print "nan"; exit }
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    if (fn == "min") { print a[1]; exit }
    if (fn == "max") { print a[n]; exit }
    if (fn == "mean") { s2 = 0; for (i = 1; i <= n; i++) s2 += a[i]; print s2 / n; exit }
    print (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }'
}
spread() {  # half the min-max range, as % of the median
  awk -v lo="$(stat "$1" "$2" "$3" min)" -v hi="$(stat "$1" "$2" "$3" max)" -v m="$(stat "$1" "$2" "$3" median)" \
    'BEGIN { if (m > 0) printf "±%.0f%%", (hi - lo) / 2 / m * 100; else printf "-" }'
}

TABLE=$OUT/table.md
{
  echo "aigw vs nginx — $(date '+%Y-%m-%d %H:%M'), ${DUR}s per run, $ROUNDS interleaved rounds (median; ± = half the min–max spread), latencies in µs"
  echo
  echo "| case | nginx rps | aigw rps | ratio | nginx p50 | aigw p50 | p50 ratio | nginx p99 | aigw p99 | added p99 (µs) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in "${CASES[@]}"; do
    IFS=: read -r cname _ <<<"$c"
    nr=$(stat "$cname" nginx rps median) n50=$(stat "$cname" nginx p50_us median) n99=$(stat "$cname" nginx p99_us median)
    if ((HAVE_AIGW)); then
      ar=$(stat "$cname" aigw rps median) a50=$(stat "$cname" aigw p50_us median) a99=$(stat "$cname" aigw p99_us median)
      awk -v c="$cname" -v nr="$nr" -v ns="$(spread "$cname" nginx rps)" -v ar="$ar" -v as="$(spread "$cname" aigw rps)" \
          -v n50="$n50" -v a50="$a50" -v n99="$n99" -v a99="$a99" 'BEGIN {
        printf "| %s | %.0f %s | %.0f %s | %.2f | %.0f | %.0f | %.2f | %.0f | %.0f | %+.0f |\n",
          c, nr, ns, ar, as, (nr > 0 ? ar / nr : 0), n50, a50, (n50 > 0 ? a50 / n50 : 0), n99, a99, a99 - n99 }'
    else
      awk -v c="$cname" -v nr="$nr" -v ns="$(spread "$cname" nginx rps)" -v n50="$n50" -v n99="$n99" 'BEGIN {
        printf "| %s | %.0f %s | - | - | %.0f | - | - | %.0f | - | - |\n", c, nr, ns, n50, n99 }'
    fi
  done
  echo
  echo "Memory (RSS; nginx = master + worker): idle after start, before load / peak (VmHWM) after all runs"
  echo
  echo "| process | idle RSS | peak RSS |"
  echo "|---|---:|---:|"
  echo "| nginx reference proxy | $(mb "$REF_IDLE") | $(mb "$REF_PEAK") |"
  ((HAVE_AIGW)) && echo "| aigw (workers 1, access log + metrics) | $(mb "$AIGW_IDLE") | $(mb "$AIGW_PEAK") |"
  ((HAVE_PLUGINS)) && echo "| aigw + hello + async_callout | $(mb "$AIGWP_IDLE") | $(mb "$AIGWP_PEAK") |"
  echo
  echo "Per round (latencies in µs; cpu = the process under test; core $CORE_SUT / core $CORE_LOAD = whole-core"
  echo "busy % of the SUT core and of the load core (wrk + mock) — a load core near 100% means the load side,"
  echo "not the proxy, limited that run; up conns = connections the proxy opened to the mock during the run —"
  echo "with upstream keep-alive working it stays near the client connection count, not the request count):"
  echo
  echo "| case | side | round | rps | p50 | p99 | p99.9 | cpu | cpu µs/req | core $CORE_SUT | core $CORE_LOAD | up conns |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in "${CASES[@]}"; do
    IFS=: read -r cname _ <<<"$c"
    for s in nginx aigw; do
      ((HAVE_AIGW)) || [[ $s == nginx ]] || continue
      for ((r = 1; r <= ROUNDS; r++)); do
        printf '| %s | %s | %d | %.0f | %s | %s | %s | %s%% | %s | %s%% | %s%% | %s |\n' "$cname" "$s" "$r" \
          "${RES[$cname|$s|$r|rps]:-0}" "${RES[$cname|$s|$r|p50_us]:-}" "${RES[$cname|$s|$r|p99_us]:-}" \
          "${RES[$cname|$s|$r|p999_us]:-}" "${RES[$cname|$s|$r|cpu]:-?}" "${RES[$cname|$s|$r|cpuus]:-?}" "${RES[$cname|$s|$r|sutcore]:-?}" \
          "${RES[$cname|$s|$r|loadcore]:-?}" "${RES[$cname|$s|$r|upconns]:-?}"
      done
    done
  done
  echo
  [[ -n $PLUGINS_NOTE ]] && echo "Note: $PLUGINS_NOTE" && echo
  ((HAVE_AIGW)) && echo "aigw access log: ${AIGW_LOG_LINES:-0} records written during the run" && echo

  # targets
  if ((HAVE_AIGW)); then
    echo "Targets:"
    verdict() { awk -v v="$2" -v op="$3" -v t="$4" -v what="$1" -v unit="${5:-}" 'BEGIN {
      ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0)
      printf "  %-5s %-58s %s%s (target %s %s%s)\n", ok ? "PASS" : "FAIL", what, v, unit, op, t, unit }'; }
    ratio() { awk -v a="$(stat "$1" aigw "$2" median)" -v n="$(stat "$1" nginx "$2" median)" 'BEGIN { printf "%.2f", (n > 0 ? a / n : 0) }'; }
    added() { awk -v a="$(stat "$1" aigw "$2" median)" -v n="$(stat "$1" nginx "$2" median)" 'BEGIN { printf "%.0f", a - n }'; }
    verdict "chat c64 rps vs nginx (access log + metrics on)" "$(ratio 'chat c64' rps)" ">=" 0.80
    if ((HAVE_PLUGINS)); then
      verdict "chat+plugins c64 rps vs nginx (hello + async_callout)" "$(ratio 'chat+plugins c64' rps)" ">=" 0.60
    else
      echo "  SKIP chat+plugins c64 rps vs nginx (plugins variant skipped, see the note above)"
    fi
    verdict "sse c64 rps vs nginx" "$(ratio 'sse c64' rps)" ">=" 0.80
    verdict "chat c1 p50 vs nginx p50" "$(ratio 'chat c1' p50_us)" "<=" 1.5 x
    # a p99 far above p50 for nginx itself at 1 connection means something else ran on the cores
    p99check() {
      if awk -v p50="$(stat "$1" nginx p50_us median)" -v p99="$(stat "$1" nginx p99_us median)" \
           'BEGIN { exit !(p50 > 0 && p99 > 5 * p50) }'; then
        printf '  %-5s %-58s %s µs (nginx p99 is %s µs against p50 %s µs: the machine was busy; run again)\n' \
          "NOISY" "$1 added p99" "$(added "$1" p99_us)" "$(printf %.0f "$(stat "$1" nginx p99_us median)")" \
          "$(printf %.0f "$(stat "$1" nginx p50_us median)")"
      else
        verdict "$1 added p99" "$(added "$1" p99_us)" "<=" 150 " µs"
      fi
    }
    p99check 'chat c1'
    p99check 'sse c1'
    verdict "aigw idle RSS" "$(awk -v k="$AIGW_IDLE" 'BEGIN { printf "%.1f", k / 1024 }')" "<=" 15 " MB"
    echo
  fi
  [[ -n $NOISE_NOTE ]] && echo "$NOISE_NOTE"
  cat "$WARNF"
} >"$TABLE"

echo
cat "$TABLE"
echo "(saved: $TABLE and raw wrk outputs in $OUT/raw/)"
((NGINX_ONLY)) && note "--nginx-only: aigw was not measured"
exit 0
