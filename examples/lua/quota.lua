-- quota.lua: a per-user daily request quota, counted in the gateway's shared store (all workers,
-- and all nodes when the store is Redis-backed). Each answer carries x-quota-limit and
-- x-quota-remaining; past the limit the client gets 429 (rate_limit_error, which the SDKs raise as
-- RateLimitError) with retry-after set to the next UTC midnight.
--
-- config: {"header": "x-user-id",   -- who the user is (set by an auth layer in front)
--          "limit": 1000,           -- requests per user per UTC day
--          "fail_open": false}      -- when the store fails: let the request through (true) or 503
local cfg = aigw.config
local header = cfg.header or "x-user-id"
local limit = cfg.limit or 1000
local DAY_MS = 86400000

function on_request(ctx)
  local user = aigw.req.header(header)
  if not user or user == "" then
    return aigw.deny(401, "the " .. header .. " header is required")
  end
  if #user > 200 then return aigw.deny(400, "the " .. header .. " header is too long") end
  local day = os.date("!%Y-%m-%d")
  -- one key per user and UTC day; the window only has to outlive the day
  local used, err = aigw.store.incr("quota:" .. user .. ":" .. day, 1, DAY_MS + 3600000)
  if not used then
    aigw.log("warn", "quota store unavailable:", err)
    if cfg.fail_open then return end
    return aigw.deny(503, "the quota service is unavailable")
  end
  aigw.resp.set_header("x-quota-limit", tostring(limit))
  aigw.resp.set_header("x-quota-remaining", tostring(math.max(limit - used, 0)))
  aigw.log_field("quota_used", used)
  if used > limit then
    local now = os.time()
    aigw.resp.set_header("retry-after", tostring(DAY_MS // 1000 - now % (DAY_MS // 1000)))
    return aigw.deny(429, "daily request quota of " .. limit .. " exceeded for user " .. user)
  end
end
