-- deny.lua: refuse a request whose prompt contains a blocked keyword, or that asks for a blocked
-- model, before anything is sent upstream. The client gets the error in its own format (OpenAI or
-- Anthropic shape) and the access log says why (field lua_denied).
--
-- config: {"keywords": ["project orion", "password"],   -- case-insensitive, plain substrings
--          "models":   ["gpt-4", "o1-*"],                -- exact names, or a prefix ending in *
--          "status": 403}
local cfg = aigw.config

local keywords = {}
for _, k in ipairs(cfg.keywords or {}) do keywords[#keywords + 1] = string.lower(k) end

local exact, prefixes = {}, {}
for _, m in ipairs(cfg.models or {}) do
  if m:sub(-1) == "*" then prefixes[#prefixes + 1] = m:sub(1, -2) else exact[m] = true end
end
local status = cfg.status or 403

local function model_blocked(model)
  if exact[model] then return true end
  for _, p in ipairs(prefixes) do
    if model:sub(1, #p) == p then return true end
  end
  return false
end

function on_request(ctx)
  local model = aigw.model()
  if model and model_blocked(model) then
    aigw.log_field("lua_denied", "model")
    return aigw.deny(status, "model '" .. model .. "' is not allowed on this gateway")
  end
  if #keywords == 0 then return end
  for _, m in ipairs(aigw.req.messages()) do
    local text = string.lower(m.text)
    for _, k in ipairs(keywords) do
      if text:find(k, 1, true) then
        aigw.log_field("lua_denied", "keyword")
        return aigw.deny(status, "the request contains a blocked term")
      end
    end
  end
end
