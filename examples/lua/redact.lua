-- redact.lua: replace a custom pattern (employee ids, ticket numbers, internal host names, ...) in
-- prompts before they leave, and in answers before the client sees them - streamed answers
-- included, where a match may be cut across two deltas: the last `max_match` bytes of the text
-- are held back until the next delta (or the end of the answer) shows whether they complete a
-- match. Counts of replacements go to the access log (redacted_prompt, redacted_answer).
--
-- config: {"patterns": ["EMP%-%d+", "ticket #%d+"],   -- Lua patterns
--          "replacement": "[REDACTED]",
--          "max_match": 64}          -- the longest text one match can span, in bytes
-- Streams: chat completions (OpenAI format) get the hold-back; other formats are redacted per
-- delta only.
local cfg = aigw.config
local patterns = cfg.patterns or {}
local replacement = cfg.replacement or "[REDACTED]"
local hold = cfg.max_match or 64
for i, p in ipairs(patterns) do
  assert(type(p) == "string" and not (""):find(p), "redact.lua: pattern " .. i .. " is empty or matches the empty string")
end

local function redact(s)
  local total = 0
  for _, p in ipairs(patterns) do
    local n
    s, n = s:gsub(p, replacement)
    total = total + n
  end
  return s, total
end

-- Splits s into a part that is safe to redact and send now, and a tail to hold back: the last
-- `hold` bytes, moved back to the start of any match that reaches into them, and to a UTF-8
-- boundary.
local function split(s)
  local cut = #s - hold
  if cut <= 0 then return "", s end
  local moved = true
  while moved do
    moved = false
    for _, p in ipairs(patterns) do
      local init = 1
      while true do
        local a, b = s:find(p, init)
        if not a or a > cut then break end
        if b > cut then cut, moved = a - 1, true break end
        init = b + 1
      end
    end
  end
  while cut > 0 do
    local c = s:byte(cut + 1)
    if c < 0x80 or c >= 0xC0 then break end
    cut = cut - 1
  end
  return s:sub(1, cut), s:sub(cut + 1)
end

function on_request(ctx)
  local n = 0
  for i, m in ipairs(aigw.req.messages()) do
    local s, c = redact(m.text)
    if c > 0 then
      aigw.req.set_message(i, s)
      n = n + c
    end
  end
  ctx.prompt, ctx.answer = n, 0
end

-- non-streamed answers: chat completions and Anthropic messages
function on_response(ctx)
  local b = aigw.resp.body()
  if type(b) ~= "table" then return end
  local n = 0
  for _, ch in ipairs(b.choices or {}) do
    if ch.message and type(ch.message.content) == "string" then
      local c
      ch.message.content, c = redact(ch.message.content)
      n = n + c
    end
  end
  for _, part in ipairs(b.content or {}) do
    if part.type == "text" and type(part.text) == "string" then
      local c
      part.text, c = redact(part.text)
      n = n + c
    end
  end
  if n > 0 then
    aigw.resp.set_body(b)
    ctx.answer = (ctx.answer or 0) + n
  end
end

-- The held-back text goes out in place of the stop chunk, which is sent again right after it.
local function flush(ctx)
  local pending = ctx.pending
  ctx.pending = nil
  if not pending or pending == "" then return end
  local text, c = redact(pending)
  ctx.answer = (ctx.answer or 0) + c
  local orig = aigw.event.data()
  local j = aigw.event.json()
  if j and j.choices and j.choices[1] then
    j.choices[1].delta = {content = text}
    j.choices[1].finish_reason = aigw.null
    j.usage = nil
    aigw.event.set_data(j)
    aigw.emit(orig)
  end
end

function on_event(ctx)
  local kind = aigw.event.kind()
  if kind == "delta" then
    local text = aigw.event.text()
    if not text then return end
    if aigw.api() ~= "chat" then -- per delta only
      local s, c = redact(text)
      if c > 0 then aigw.event.set_text(s) ctx.answer = (ctx.answer or 0) + c end
      return
    end
    local now, rest = split((ctx.pending or "") .. text)
    ctx.pending = rest
    if now == "" then return aigw.DROP end
    local s, c = redact(now)
    ctx.answer = (ctx.answer or 0) + c
    aigw.event.set_text(s)
  elseif kind == "stop" then
    flush(ctx)
  end
end

function on_log(ctx)
  if ctx.prompt and ctx.prompt > 0 then aigw.log_field("redacted_prompt", ctx.prompt) end
  if ctx.answer and ctx.answer > 0 then aigw.log_field("redacted_answer", ctx.answer) end
end
