# bench/lib.sh - what the bench scripts share; sourced by them (`. "$ROOT/bench/lib.sh"`), not run.
#
#   bench_need NAME TOOL...    exit 1 naming the first TOOL not on PATH
#   bench_tmp NAME             TMP = a fresh /tmp/aigw-NAME.XXXXXX (mode 755: nginx workers may run
#                              as "nobody"), PIDS = (), and the traps that run bench_cleanup
#   bench_cleanup              stop every PID in PIDS (TERM, then KILL after 5 s), remove TMP
#                              unless KEEP_TMP=1
#   pick_port VAR              VAR = a free loopback port (no subshell: ports picked in one script
#                              are never handed out twice, even before anything listens on them)
#   bench_mock_nginx [LOC...]  MOCK = the port of an nginx on core CORE_LOAD answering CHAT_JSON
#                              on POST /v1/chat/completions, plus any extra `location` blocks given
#   ticks PID                  utime + stime of PID, in clock ticks
#   med "N N N"                the median of a space-separated list
#   bench_wrk V R PID URL [ARG...]
#                              a 1 s warm-up, then wrk -d DUR s at 64 connections on CORE_LOAD with
#                              bench/post.lua (ARG... are the script's arguments); sets
#                              RPS[V|R] (requests/s), US[V|R] (CPU us per request of PID) and
#                              BENCH_NON2XX (the non-2xx count, empty when none)
#
# Inputs: ROOT (the repository), CORE_SUT / CORE_LOAD (default 0 / 1, or BENCH_CORE_SUT /
# BENCH_CORE_LOAD), DUR for bench_wrk. Every process a script starts goes into PIDS and is stopped
# by PID; nothing is stopped by name.

CORE_SUT=${CORE_SUT:-${BENCH_CORE_SUT:-0}}
CORE_LOAD=${CORE_LOAD:-${BENCH_CORE_LOAD:-1}}
KEEP_TMP=${KEEP_TMP:-0}

bench_need() {
  local name=$1 t
  shift
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$name: '$t' not found" >&2; exit 1; }
  done
}

bench_cleanup() {
  local p i
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if ((KEEP_TMP)); then echo "temp dir kept: $TMP" >&2; else rm -rf "$TMP"; fi
}

bench_tmp() {
  TMP=$(mktemp -d "/tmp/aigw-$1.XXXXXX")
  chmod 755 "$TMP"
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# Ports below the kernel's ephemeral range (wrk, curl and the proxies' upstream connections take
# ephemeral ports, so a port the kernel handed out once may be taken by a client later), not in
# /proc/net/tcp*, nothing listening.
BENCH_USED_PORTS=" "
read -r BENCH_EPH_LO _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || BENCH_EPH_LO=32768
((BENCH_EPH_LO > 12000)) || BENCH_EPH_LO=60000
bench_port_free() {
  ! grep -qs -- "$(printf ':%04X ' "$1")" /proc/net/tcp /proc/net/tcp6 || return 1
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
pick_port() {
  # locals are prefixed: printf -v must reach the caller's VAR, not a local of the same name
  local _pp_p _pp_i
  for ((_pp_i = 0; _pp_i < 500; _pp_i++)); do
    _pp_p=$((10000 + RANDOM % (BENCH_EPH_LO - 10000)))
    [[ $BENCH_USED_PORTS == *" $_pp_p "* ]] && continue
    if bench_port_free "$_pp_p"; then
      BENCH_USED_PORTS+="$_pp_p "
      printf -v "$1" %d "$_pp_p"
      return 0
    fi
  done
  echo "no free loopback port found" >&2
  exit 1
}

CHAT_JSON='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}'

bench_mock_nginx() {
  local i
  pick_port MOCK
  mkdir -p "$TMP/mock"
  cat >"$TMP/mock/nginx.conf" <<NG
worker_processes 1; daemon off; pid $TMP/mock/nginx.pid; error_log $TMP/mock/error.log warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $TMP/mock/cb; proxy_temp_path $TMP/mock/p; fastcgi_temp_path $TMP/mock/f;
  uwsgi_temp_path $TMP/mock/u; scgi_temp_path $TMP/mock/s; keepalive_requests 1000000; keepalive_timeout 120s;
  server { listen 127.0.0.1:$MOCK reuseport backlog=4096;
    location = /v1/chat/completions { default_type application/json; return 200 '$CHAT_JSON'; }
    $* } }
NG
  taskset -c "$CORE_LOAD" nginx -p "$TMP/mock" -c "$TMP/mock/nginx.conf" -e "$TMP/mock/error.log" >/dev/null 2>&1 &
  PIDS+=($!)
  for ((i = 0; i < 50; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$MOCK/" && return 0
    sleep 0.1
  done
  echo "the nginx mock did not start: $(tail -3 "$TMP/mock/error.log" 2>/dev/null)" >&2
  exit 1
}

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
BENCH_HZ=$(getconf CLK_TCK)

med() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

bench_wrk() {
  local v=$1 r=$2 pid=$3 url=$4 out n t0 t1
  shift 4
  local args=()
  (($# > 0)) && args=(-- "$@")
  taskset -c "$CORE_LOAD" wrk -t1 -c64 -d1s -s "$ROOT/bench/post.lua" "$url" "${args[@]}" >/dev/null 2>&1 || true
  t0=$(ticks "$pid")
  out=$(taskset -c "$CORE_LOAD" wrk -t1 -c64 -d"${DUR}s" -s "$ROOT/bench/post.lua" "$url" "${args[@]}" 2>&1 || true)
  t1=$(ticks "$pid")
  n=$(awk '/requests in/ { print $1 }' <<<"$out")
  BENCH_NON2XX=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
  RPS[$v|$r]=$(awk -v n="${n:-0}" -v d="$DUR" 'BEGIN { printf "%.0f", n / d }')
  US[$v|$r]=$(awk -v n="${n:-0}" -v a="$t0" -v b="$t1" -v h="$BENCH_HZ" 'BEGIN { printf "%.2f", (n > 0 ? (b - a) / h * 1e6 / n : 0) }')
}
