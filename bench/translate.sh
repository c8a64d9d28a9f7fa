#!/usr/bin/env bash
# bench/translate.sh — the CPU cost of format translation, per request, against the same-format
# (passthrough) route, measured in one run on one aigw process.
#
#   AIGW_BUILD=build bench/translate.sh [--quick]
#
# One aigw (pinned to core 0, one worker) in front of an nginx mock upstream (core 1, with wrk)
# that serves fixed OpenAI and Anthropic answers (JSON and SSE). Cases, each at 16 connections:
#   chat -> openai          OpenAI client, OpenAI upstream: no translation (the reference)
#   chat -> anthropic       OpenAI client, Anthropic upstream: request + response translated
#   messages -> anthropic   Anthropic client, Anthropic upstream: no translation
#   messages -> openai      Anthropic client, OpenAI upstream: translated
# and the same four streamed (19 content events per answer). Reported: aigw CPU µs per request
# (utime+stime over the wrk run / requests) and the ratio to the untranslated case of the same
# client shape. Cases are interleaved over BENCH_ROUNDS rounds; the median is reported.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${AIGW_BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
QUICK=0
[[ ${1:-} == --quick ]] && QUICK=1
if ((QUICK)); then DUR=${BENCH_DURATION:-3}; else DUR=${BENCH_DURATION:-8}; fi
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-16}
die() { echo "translate.sh: error: $*" >&2; exit 1; }
. "$ROOT/bench/lib.sh"
bench_need translate.sh nginx wrk taskset curl awk
[[ -x $BUILD/aigw ]] || die "no $BUILD/aigw (build first: cmake -S . -B $BUILD && cmake --build $BUILD)"

bench_tmp xbench
pick_port MOCK_PORT; pick_port GW_PORT

# ---- fixed upstream answers
OA_JSON='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}'
AN_JSON='{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello! How can I help you today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}'
WORDS=(Hello "!" " How" " can" " I" " help" " you" " today" "?" " I" " am" " a" " small" " mock" " answer" " for" " the" " bench" ".")
mkdir -p "$TMP/www"
{
  c() { printf 'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}\n\n' "$1" "$2"; }
  c '{"role":"assistant","content":""}' null
  for w in "${WORDS[@]}"; do c "{\"content\":\"$w\"}" null; done
  c '{}' '"stop"'
  printf 'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":19,"total_tokens":28}}\n\n'
  printf 'data: [DONE]\n\n'
} >"$TMP/www/oa.sse"
{
  e() { printf 'event: %s\ndata: %s\n\n' "$1" "$2"; }
  e message_start '{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}'
  e content_block_start '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
  for w in "${WORDS[@]}"; do e content_block_delta "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"$w\"}}"; done
  e content_block_stop '{"type":"content_block_stop","index":0}'
  e message_delta '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":19}}'
  e message_stop '{"type":"message_stop"}'
} >"$TMP/www/an.sse"
chmod -R a+rX "$TMP/www"

mkdir -p "$TMP/mock"
cat >"$TMP/mock/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/mock/nginx.pid;
error_log $TMP/mock/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/mock/cb; proxy_temp_path $TMP/mock/px; fastcgi_temp_path $TMP/mock/fc;
    uwsgi_temp_path $TMP/mock/uw; scgi_temp_path $TMP/mock/sc;
    keepalive_requests 1000000; keepalive_timeout 120s; tcp_nodelay on;
    server {
        listen 127.0.0.1:$MOCK_PORT reuseport backlog=4096;
        location = /v1/chat/completions { default_type application/json; return 200 '$OA_JSON'; }
        location = /v1/messages { default_type application/json; return 200 '$AN_JSON'; }
        location = /sse/v1/chat/completions { error_page 405 =200 /_oa; return 405; }
        location = /sse/v1/messages { error_page 405 =200 /_an; return 405; }
        location = /_oa { internal; default_type text/event-stream; alias $TMP/www/oa.sse; }
        location = /_an { internal; default_type text/event-stream; alias $TMP/www/an.sse; }
        location / { return 404; }
    }
}
EOF
taskset -c 1 nginx -p "$TMP/mock" -c "$TMP/mock/nginx.conf" -e "$TMP/mock/error.log" &
PIDS+=($!)

cat >"$TMP/aigw.json" <<EOF
{
  "listen": [{ "address": "127.0.0.1", "port": $GW_PORT }],
  "workers": 1,
  "admin": { "address": "127.0.0.1", "port": 0 },
  "plugin_paths": ["$BUILD/plugins"],
  "access_log": { "path": null },
  "providers": {
    "oa": { "plugin": "openai", "config": { "base_url": "http://127.0.0.1:$MOCK_PORT/v1", "api_key": "k" } },
    "an": { "plugin": "anthropic", "config": { "base_url": "http://127.0.0.1:$MOCK_PORT", "api_key": "k" } },
    "oas": { "plugin": "openai", "config": { "base_url": "http://127.0.0.1:$MOCK_PORT/sse/v1", "api_key": "k" } },
    "ans": { "plugin": "anthropic", "config": { "base_url": "http://127.0.0.1:$MOCK_PORT/sse", "api_key": "k" } }
  },
  "routes": [
    { "name": "c_oa", "match": { "path": "/c_oa" }, "api": "chat", "targets": [{ "provider": "oa" }] },
    { "name": "c_an", "match": { "path": "/c_an" }, "api": "chat", "targets": [{ "provider": "an" }] },
    { "name": "m_an", "match": { "path": "/m_an" }, "api": "messages", "targets": [{ "provider": "an" }] },
    { "name": "m_oa", "match": { "path": "/m_oa" }, "api": "messages", "targets": [{ "provider": "oa" }] },
    { "name": "sc_oa", "match": { "path": "/sc_oa" }, "api": "chat", "targets": [{ "provider": "oas" }] },
    { "name": "sc_an", "match": { "path": "/sc_an" }, "api": "chat", "targets": [{ "provider": "ans" }] },
    { "name": "sm_an", "match": { "path": "/sm_an" }, "api": "messages", "targets": [{ "provider": "ans" }] },
    { "name": "sm_oa", "match": { "path": "/sm_oa" }, "api": "messages", "targets": [{ "provider": "oas" }] }
  ]
}
EOF
taskset -c 0 "$BUILD/aigw" -c "$TMP/aigw.json" >"$TMP/aigw.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/" && break; sleep 0.1; done

CHAT_BODY='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello there, how are you today?"}],"temperature":0.7,"max_tokens":256'
MSG_BODY='{"model":"claude-sonnet-4-5","system":"You are a helpful assistant.","messages":[{"role":"user","content":"Hello there, how are you today?"}],"temperature":0.7,"max_tokens":256'
lua() {  # lua FILE BODY
  local b=${2//\\/\\\\}
  b=${b//\"/\\\"}
  printf 'wrk.method = "POST"\nwrk.body = "%s"\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["anthropic-version"] = "2023-06-01"\n' "$b" >"$1"
}
lua "$TMP/chat.lua" "$CHAT_BODY}"
lua "$TMP/msg.lua" "$MSG_BODY}"
lua "$TMP/schat.lua" "$CHAT_BODY,\"stream\":true}"
lua "$TMP/smsg.lua" "$MSG_BODY,\"stream\":true}"

# sanity: every case answers 200 with the expected shape
check() {  # check PATH LUA GREP
  local body; body=$(sed -n 's/^wrk.body = "\(.*\)"$/\1/p' "$TMP/$2" | sed 's/\\"/"/g; s/\\\\/\\/g')
  local out; out=$(curl -s -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -d "$body" "http://127.0.0.1:$GW_PORT$1")
  grep -q -- "$3" <<<"$out" || die "case $1 does not answer as expected: ${out:0:300}"
}
check /c_oa chat.lua '"chat.completion"'; check /c_an chat.lua '"chat.completion"'
check /m_an msg.lua '"type":"message"'; check /m_oa msg.lua '"type":"message"'
check /sc_oa schat.lua 'data: \[DONE\]'; check /sc_an schat.lua 'data: \[DONE\]'
check /sm_an smsg.lua 'message_stop'; check /sm_oa smsg.lua 'message_stop'

CASES=("chat -> openai (same format):/c_oa:chat.lua" "chat -> anthropic (translated):/c_an:chat.lua"
  "messages -> anthropic (same format):/m_an:msg.lua" "messages -> openai (translated):/m_oa:msg.lua"
  "stream chat -> openai (same format):/sc_oa:schat.lua" "stream chat -> anthropic (translated):/sc_an:schat.lua"
  "stream messages -> anthropic (same format):/sm_an:smsg.lua" "stream messages -> openai (translated):/sm_oa:smsg.lua")
declare -A US
for ((round = 1; round <= ROUNDS; round++)); do
  for c in "${CASES[@]}"; do
    IFS=: read -r name path script <<<"$c"
    t0=$(ticks "$GW_PID")
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$TMP/$script" "http://127.0.0.1:$GW_PORT$path" 2>&1)
    t1=$(ticks "$GW_PID")
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    grep -q "Non-2xx" <<<"$out" && die "$name: non-2xx answers: $out"
    US[$name]+="$(awk -v t=$((t1 - t0)) -v n="$n" -v k="$BENCH_HZ" 'BEGIN { printf "%.2f", t / k * 1e6 / n }') "
  done
done
echo
echo "aigw CPU per request (µs, median of $ROUNDS interleaved ${DUR}s runs at c$CONNS; one worker pinned to core 0)"
echo
echo "| case | CPU µs/req | vs same-format | runs |"
echo "|---|---|---|---|"
ref=""
for c in "${CASES[@]}"; do
  IFS=: read -r name _ _ <<<"$c"
  m=$(med "${US[$name]}")
  if [[ $name == *"same format"* ]]; then ref=$m; r="1.00"; else r=$(awk -v a="$m" -v b="$ref" 'BEGIN { printf "%.2f", a / b }'); fi
  echo "| $name | $m | $r | ${US[$name]}|"
done
