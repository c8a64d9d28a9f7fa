-- wrk script for bench/run.sh: POST a small, realistic OpenAI chat request.
--
--   wrk ... -s bench/post.lua http://127.0.0.1:PORT/v1/chat/completions
--   wrk ... -s bench/post.lua http://127.0.0.1:PORT/sse/v1/chat/completions -- stream
--
-- At the end it prints one machine-readable line that run.sh parses:
--   BENCH requests=N duration_us=N rps=F p50_us=N p90_us=N p99_us=N p999_us=N
--         max_us=N mean_us=F non2xx=N connect_err=N read_err=N write_err=N timeout_err=N
-- (wrk counts responses with status > 399 in errors.status; its text summary prints the
--  same number as "Non-2xx or 3xx responses".)

local stream = false
local auth = "x"

function init(args)
   for _, a in ipairs(args) do
      if a == "stream" then stream = true end
      if a:sub(1, 5) == "auth=" then auth = a:sub(6) end -- the bearer token (-- auth=<key>)
   end
   local body
   if stream then
      body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"stream":true}'
   else
      body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
   end
   wrk.method = "POST"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = "Bearer " .. auth
   if stream then wrk.headers["Accept"] = "text/event-stream" end
end

function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.2f p50_us=%d p90_us=%d p99_us=%d p999_us=%d " ..
      "max_us=%d mean_us=%.2f non2xx=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d\n",
      summary.requests, summary.duration, summary.requests / secs,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean,
      e.status, e.connect, e.read, e.write, e.timeout))
end
