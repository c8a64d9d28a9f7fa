-- billing_tags.lua: tag every request with its team and cost center, for billing: fields in the
-- access-log record (billing: {team, cost_center, model, status}), request metadata for other
-- plugins (billing.team), a response header, and a counter per team and model.
--
-- config:  {"header": "x-team", "default_team": "unassigned",
--           "cost_centers": {"search": "CC-100", "ads": "CC-200"}}
-- plugin metrics (declared next to "config"):
--   "metrics": {"requests_by_team": {"type": "counter", "help": "requests per team",
--                                    "labels": ["team", "model"]}}
local cfg = aigw.config
local header = cfg.header or "x-team"
local centers = cfg.cost_centers or {}

local function clean(s)
  return (string.lower(s):gsub("[^%w_%-]", "_"):sub(1, 64))
end

function on_request(ctx)
  local team = aigw.req.header(header)
  team = team and team ~= "" and clean(team) or (cfg.default_team or "unassigned")
  ctx.team = team
  ctx.cost_center = centers[team] or "unassigned"
  aigw.set_meta("billing.team", team)
  aigw.resp.set_header("x-billing-team", team)
end

function on_log(ctx)
  if not ctx.team then return end -- the request never reached on_request
  local model = aigw.model() or ""
  aigw.log_field("billing", {team = ctx.team, cost_center = ctx.cost_center, model = model,
                             status = aigw.resp.status()})
  aigw.metric("requests_by_team", 1, {ctx.team, model})
end
