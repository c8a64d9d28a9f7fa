-- allowlist.lua: ask an external allow-list service whether this user may use this model. The call
-- does not block the worker: aigw.http suspends the script (a coroutine) until the answer comes.
--
-- The service gets   POST <url>  {"user": "<x-user-id>", "model": "<model>"}
-- and must answer    200 {"allow": true}   to let the request through (any other answer: 403).
-- When it cannot be reached or times out: 503, or through with "fail_open": true.
--
-- config: {"url": "http://127.0.0.1:9000/check", "timeout_ms": 500, "header": "x-user-id",
--          "fail_open": false}
local cfg = aigw.config
assert(type(cfg.url) == "string", "allowlist.lua: config.url is required")
local header = cfg.header or "x-user-id"

function on_request(ctx)
  local user = aigw.req.header(header) or ""
  local res, err = aigw.http {
    url = cfg.url,
    method = "POST",
    body = {user = user, model = aigw.model() or ""},
    timeout_ms = cfg.timeout_ms or 1000,
    response_headers = {"x-allow-reason"},
  }
  if not res then
    aigw.log("warn", "allow-list service failed:", err)
    aigw.log_field("allowlist", "unavailable")
    if cfg.fail_open then return end
    return aigw.deny(503, "the allow-list service is unavailable")
  end
  local verdict = res.status == 200 and aigw.json.decode(res.body)
  if type(verdict) == "table" and verdict.allow == true then
    aigw.log_field("allowlist", res.headers["x-allow-reason"] or "allowed")
    return
  end
  aigw.log_field("allowlist", "denied")
  return aigw.deny(403, "user '" .. user .. "' may not use this model")
end
