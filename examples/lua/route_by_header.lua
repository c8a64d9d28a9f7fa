-- route_by_header.lua: choose the route's target (and optionally the model) from a request header,
-- e.g. a tier set by an API-key proxy in front of the gateway.
--
-- config: {"header": "x-tier",
--          "targets": {"premium": "big", "free": "small"},   -- header value -> target name
--          "models":  {"free": "gpt-4o-mini"},                -- header value -> model (optional)
--          "only": false}     -- true: no fallback to the route's other targets
-- Values are compared lower-cased. Unknown values leave the route's own choice alone.
local cfg = aigw.config
local header = cfg.header or "x-tier"
local targets, models = {}, {}
for k, v in pairs(cfg.targets or {}) do targets[string.lower(k)] = v end
for k, v in pairs(cfg.models or {}) do models[string.lower(k)] = v end

function on_request(ctx)
  local v = aigw.req.header(header)
  if not v then return end
  v = string.lower(v)
  local target = targets[v]
  if target then aigw.set_target(target, cfg.only == true) end
  local model = models[v]
  if model then aigw.set_model(model) end
  if target or model then aigw.resp.set_header("x-routed-by", header .. "=" .. v) end
end
