#!/usr/bin/env node
// In-tree mock of Anthropic's Messages API, in Anthropic's real wire format, for loopback tests.
// No dependencies: node:http + node:crypto (scaffold in ./lib/common.mjs).
//
//   import { startAnthropicMock } from '../mock/anthropic_mock.mjs';
//   const m = await startAnthropicMock({ key: 'sk-ant-mock' });   // m.url, m.port, m.stop(), m.requests(), m.clearRequests(), m.stats()
//   node tests/mock/anthropic_mock.mjs [--port 0] [--host 127.0.0.1] [--key sk-ant-mock]   → prints {"port":N}
//
// Options: key (default 'sk-ant-mock'; accepted as `x-api-key: <key>` or `Authorization: Bearer <key>`),
//   strictAlternation (default true: user/assistant must alternate and the first message must be
//   user, as the API used to require; false: consecutive same-role turns are accepted as the API
//   does today), anyModel (default false: a model not starting with "claude" → 404 not_found_error),
//   maxLog.
//
// Endpoints:
//   POST /v1/messages               Message JSON, or SSE with the exact event sequence:
//                                   message_start, then per block content_block_start / *_delta /
//                                   content_block_stop (a ping after the first block start),
//                                   message_delta (stop_reason, usage), message_stop
//   POST /v1/messages/count_tokens  {"input_tokens": N}
//   GET  /v1/models, GET /v1/models/{id}
//   GET/DELETE /__requests, /__stats (no auth). Each request is recorded with path, headers and
//   parsed body; `anthropic-beta` values are also listed in the entry's `betas`, counted in stats.
// Headers: anthropic-version is required (400 without it); every answer has a request-id header.
//
// Deterministic behaviour (helpers exported below compute the expectations):
//   - Reply text: "You said: <text of the last user message>"; when the last user message holds
//     tool_result blocks: "Tool said: <their text, joined>".
//   - Tool call: when custom `tools` are given, tool_choice is not `none`, the last user turn holds
//     no tool_result, and either the user text contains "use tool" / "parallel tools" or
//     tool_choice is `any` / `tool`. The tool is tool_choice.name, else the first tool whose name
//     appears in the text, else the first tool. "parallel tools" (and >= 2 tools, parallel not
//     disabled) calls two tools. The answer is a text block "Let me use <name>." then tool_use
//     block(s) with input toolInput(name, text); stop_reason "tool_use". In streams the input JSON
//     arrives as input_json_delta fragments split at odd places (splitOdd).
//   - Thinking: with thinking {type: enabled|adaptive}: a first thinking block
//     "Thinking about: <user text>" with a signature (HMAC minted by this mock instance, verified
//     when it comes back: a changed or foreign signature is a 400 like the real API); none after a
//     tool_result unless anthropic-beta has interleaved-thinking-*. User text
//     containing "redacted thinking" adds a redacted_thinking block.
//   - Cache: every block carrying cache_control (tools, system, messages; top-level cache_control
//     = end of the last message) is a breakpoint. The first time a breakpoint's prefix is seen its
//     tokens are written (cache_creation_input_tokens, split by ttl in usage.cache_creation); when
//     seen again they are read (cache_read_input_tokens). input_tokens excludes both, as the API.
//     No minimum cacheable length.
//   - Token counts: input = ceil(chars/4) of all texts (system, messages, tool JSON); output =
//     one token per streamed text word / thinking word / input_json fragment.
//   - max_tokens smaller than the reply: the text is cut to max_tokens words, stop_reason
//     "max_tokens". A stop_sequences member found in the reply: cut there, stop_reason
//     "stop_sequence" and stop_sequence set.
// Faults: same tokens as openai_mock (`fault-429`, `fault-529`, `fault-500`, `fault-401`,
//   `fault-hang`, `fault-slow-first-byte-<ms>`, `fault-trickle-<ms>`, `fault-stall-after-<n>`,
//   `fault-reset-after-<n>`, `fault-truncate-after-<n>`, `fault-error-after-<n>` (mid-stream
//   `event: error` overloaded_error), `fault-malformed`), taken from the model name
//   ("claude-sonnet-4-5+fault-429"), the x-mock-fault header, or the last user text. Errors use
//   Anthropic's shape {"type":"error","error":{"type","message"},"request_id"}; 429 has retry-after.
//
// Validated like the real API (400 invalid_request_error naming the field): unknown top-level
// fields (e.g. OpenAI's stream_options, n, response_format, frequency_penalty, tool_choice as a
// string), missing model / max_tokens / messages, role values, extra members on messages (e.g.
// tool_calls, tool_call_id, name), content block types and their members, empty text, roles not
// alternating / first not user (strictAlternation), tool_use only in assistant / tool_result only
// in user turns, every tool_use answered by a tool_result in the next turn and every tool_result
// matching a tool_use of the previous turn, tool_results first in their turn, tool_use id pattern,
// tool definitions (name pattern, input_schema, OpenAI-style {type:function} rejected, unique
// names), tool_choice shape and name, thinking budget (>= 1024, < max_tokens), temperature/top_k
// vs thinking, forced tool use vs thinking, a final assistant tool-use turn starting with a
// thinking block when thinking is on, thinking signatures, temperature / top_p ranges,
// stop_sequences, metadata members, at most 4 cache_control blocks, image / document sources.
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  createServer, startInProcess, runCli, parseFaults, tokensOf, splitWords, splitOdd, rid,
} from './lib/common.mjs';

export const DEFAULT_KEY = 'sk-ant-mock';

export const ANTHROPIC_MODELS = [
  { type: 'model', id: 'claude-opus-4-1-20250805', display_name: 'Claude Opus 4.1', created_at: '2025-08-05T00:00:00Z' },
  { type: 'model', id: 'claude-sonnet-4-5-20250929', display_name: 'Claude Sonnet 4.5', created_at: '2025-09-29T00:00:00Z' },
  { type: 'model', id: 'claude-haiku-4-5-20251001', display_name: 'Claude Haiku 4.5', created_at: '2025-10-01T00:00:00Z' },
  { type: 'model', id: 'claude-3-5-haiku-20241022', display_name: 'Claude Haiku 3.5', created_at: '2024-10-22T00:00:00Z' },
];

// ---------------------------------------------------------------------------------------------
// Deterministic helpers (exported for tests)
// ---------------------------------------------------------------------------------------------

const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);

/** Text of a content value (string or blocks): text blocks only. */
export function blocksText(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((b) => (b && b.type === 'text' && typeof b.text === 'string' ? b.text : '')).join('');
}

/** Text of a tool_result's content. */
function toolResultText(b) {
  return typeof b.content === 'string' ? b.content : blocksText(b.content);
}

function lastUser(body) {
  const msgs = Array.isArray(body?.messages) ? body.messages : [];
  for (let i = msgs.length - 1; i >= 0; i--) if (msgs[i] && msgs[i].role === 'user') return msgs[i];
  return null;
}

/** The user's text the mock reacts to (text blocks of the last user message). */
export function userText(body) {
  const u = lastUser(body);
  return u ? blocksText(u.content) : '';
}

function toolResults(msg) {
  return msg && Array.isArray(msg.content) ? msg.content.filter((b) => b && b.type === 'tool_result') : [];
}

/** The reply text for a request body. */
export function replyText(body) {
  const u = lastUser(body);
  const trs = toolResults(u);
  if (trs.length) return `Tool said: ${trs.map(toolResultText).join(' | ')}`;
  if (!u) return 'Hello from the mock.';
  return `You said: ${blocksText(u.content)}`;
}

/** The input object of a mock tool_use for tool `name`. */
export function toolInput(name, text) {
  return { tool: name, query: text, n: 42, nested: { ok: true, list: [1, 2, 3], s: 'a "quoted" \\ back\u00e9' } };
}

export function thinkingText(body) {
  return `Thinking about: ${userText(body)}`;
}

/** The tool names the mock calls for a body ([] when no tool call). */
export function toolCallsFor(body) {
  const tools = Array.isArray(body.tools) ? body.tools.filter((t) => isObj(t) && (t.type === undefined || t.type === 'custom') && t.name) : [];
  const tc = isObj(body.tool_choice) ? body.tool_choice : { type: 'auto' };
  if (!tools.length || tc.type === 'none') return [];
  const u = lastUser(body);
  if (toolResults(u).length) return [];
  const text = userText(body);
  const lower = text.toLowerCase();
  const parallel = lower.includes('parallel tools');
  const asked = parallel || lower.includes('use tool') || tc.type === 'any' || tc.type === 'tool';
  if (!asked) return [];
  let chosen;
  if (tc.type === 'tool') chosen = tools.filter((t) => t.name === tc.name);
  else {
    const named = tools.filter((t) => text.includes(t.name));
    chosen = named.length ? [...named, ...tools.filter((t) => !named.includes(t))] : tools;
  }
  const n = parallel && !tc.disable_parallel_tool_use && tc.type !== 'tool' ? Math.min(2, chosen.length) : 1;
  return chosen.slice(0, n).map((t) => t.name);
}

/** Input token accounting: { total, breakpoints: [{ tokens, hash, ttl }] } */
export function inputAccounting(body) {
  let chars = 0;
  const h = crypto.createHash('sha256');
  const bps = [];
  const add = (s, cc) => {
    chars += s.length;
    h.update(s);
    h.update('\u0000');
    if (isObj(cc)) bps.push({ tokens: tokensOf(chars), hash: h.copy().digest('hex'), ttl: cc.ttl === '1h' ? '1h' : '5m' });
  };
  add(`model:${body.model}`, null);
  chars -= `model:${body.model}`.length; // the model name is part of the cache key, not of the count
  for (const t of Array.isArray(body.tools) ? body.tools : []) {
    const { cache_control: cc, ...rest } = isObj(t) ? t : {};
    add(JSON.stringify(rest), cc);
  }
  if (typeof body.system === 'string') add(body.system, null);
  else if (Array.isArray(body.system)) for (const b of body.system) add(isObj(b) ? String(b.text ?? '') : '', b?.cache_control);
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  msgs.forEach((m, i) => {
    const last = i === msgs.length - 1;
    if (!isObj(m)) return;
    if (typeof m.content === 'string') add(m.content, last ? body.cache_control : null);
    else if (Array.isArray(m.content)) {
      m.content.forEach((b, j) => {
        let s = '';
        if (isObj(b)) {
          if (b.type === 'text') s = String(b.text ?? '');
          else if (b.type === 'tool_use') s = `${b.name}${JSON.stringify(b.input ?? {})}`;
          else if (b.type === 'tool_result') s = toolResultText(b);
          else if (b.type === 'thinking') s = String(b.thinking ?? '');
          else s = JSON.stringify(b.source ?? b.data ?? '').slice(0, 400);
        }
        const cc = b?.cache_control ?? (last && j === m.content.length - 1 ? body.cache_control : null);
        add(s, cc);
      });
    }
  });
  return { total: Math.max(1, tokensOf(chars)), breakpoints: bps };
}

// ---------------------------------------------------------------------------------------------
// Validation (messages mirror the real API's pydantic-style "<path>: <problem>")
// ---------------------------------------------------------------------------------------------

const CREATE_FIELDS = new Set(['model', 'messages', 'max_tokens', 'system', 'metadata', 'stop_sequences', 'stream',
  'temperature', 'top_p', 'top_k', 'tools', 'tool_choice', 'thinking', 'service_tier', 'container', 'mcp_servers',
  'context_management', 'cache_control', 'output_config', 'inference_geo']);
const COUNT_FIELDS = new Set(['model', 'messages', 'system', 'tools', 'tool_choice', 'thinking', 'mcp_servers',
  'context_management', 'cache_control', 'output_config']);
const BLOCK_FIELDS = {
  text: ['type', 'text', 'cache_control', 'citations'],
  image: ['type', 'source', 'cache_control'],
  document: ['type', 'source', 'cache_control', 'title', 'context', 'citations'],
  tool_use: ['type', 'id', 'name', 'input', 'cache_control'],
  tool_result: ['type', 'tool_use_id', 'content', 'is_error', 'cache_control'],
  thinking: ['type', 'thinking', 'signature'],
  redacted_thinking: ['type', 'data'],
  search_result: ['type', 'source', 'title', 'content', 'cache_control', 'citations'],
  server_tool_use: ['type', 'id', 'name', 'input', 'cache_control'],
  web_search_tool_result: ['type', 'tool_use_id', 'content', 'cache_control'],
};
const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'];

class Invalid extends Error {}
const bad = (msg) => { throw new Invalid(msg); };

function checkCacheControl(cc, path, counter) {
  if (cc === undefined || cc === null) return;
  if (!isObj(cc) || cc.type !== 'ephemeral') bad(`${path}.cache_control.type: Input should be 'ephemeral'`);
  if (cc.ttl !== undefined && cc.ttl !== '5m' && cc.ttl !== '1h') bad(`${path}.cache_control.ttl: Input should be '5m' or '1h'`);
  counter.n++;
}

function checkBlock(b, path, role, counter, ctx) {
  if (!isObj(b)) bad(`${path}: Input should be a valid dictionary or object to extract fields from`);
  const allowed = BLOCK_FIELDS[b.type];
  if (!allowed) {
    bad(`${path}: Input tag '${b.type}' found using 'type' does not match any of the expected tags: ${Object.keys(BLOCK_FIELDS).map((t) => `'${t}'`).join(', ')}`);
  }
  for (const k of Object.keys(b)) if (!allowed.includes(k)) bad(`${path}.${b.type}.${k}: Extra inputs are not permitted`);
  checkCacheControl(b.cache_control, path, counter);
  switch (b.type) {
    case 'text':
      if (typeof b.text !== 'string') bad(`${path}.text.text: Field required`);
      if (b.text === '') bad('messages: text content blocks must be non-empty');
      break;
    case 'image': {
      const s = b.source;
      if (!isObj(s)) bad(`${path}.image.source: Field required`);
      if (s.type === 'base64') {
        if (!IMAGE_TYPES.includes(s.media_type)) bad(`${path}.image.source.base64.media_type: Input should be ${IMAGE_TYPES.map((t) => `'${t}'`).join(', ')}`);
        if (typeof s.data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s.data)) bad(`${path}.image.source.base64.data: The image data is not valid base64`);
      } else if (s.type === 'url') {
        if (typeof s.url !== 'string' || !/^https?:\/\//.test(s.url)) bad(`${path}.image.source.url.url: Input should be a valid URL`);
      } else if (s.type !== 'file') bad(`${path}.image.source: Input tag '${s.type}' found using 'type' does not match any of the expected tags: 'base64', 'url', 'file'`);
      break;
    }
    case 'document': {
      const s = b.source;
      if (!isObj(s)) bad(`${path}.document.source: Field required`);
      if (s.type === 'base64' && s.media_type !== 'application/pdf') bad(`${path}.document.source.base64.media_type: Input should be 'application/pdf'`);
      if (s.type === 'text' && s.media_type !== 'text/plain') bad(`${path}.document.source.text.media_type: Input should be 'text/plain'`);
      if (!['base64', 'text', 'url', 'content', 'file'].includes(s.type)) bad(`${path}.document.source: Input tag '${s.type}' found using 'type' does not match any of the expected tags: 'base64', 'content', 'text', 'url', 'file'`);
      break;
    }
    case 'tool_use':
    case 'server_tool_use':
      if (role !== 'assistant') bad(`${path}: \`${b.type}\` blocks can only be in \`assistant\` messages`);
      if (typeof b.id !== 'string') bad(`${path}.${b.type}.id: Field required`);
      if (!/^[a-zA-Z0-9_-]+$/.test(b.id)) bad(`${path}.${b.type}.id: String should match pattern '^[a-zA-Z0-9_-]+$'`);
      if (typeof b.name !== 'string') bad(`${path}.${b.type}.name: Field required`);
      if (!isObj(b.input)) bad(`${path}.${b.type}.input: Input should be a valid dictionary`);
      if (ctx.ids.has(b.id)) bad(`messages: \`tool_use\` ids must be unique (found duplicate id: ${b.id})`);
      ctx.ids.add(b.id);
      break;
    case 'tool_result':
      if (role !== 'user') bad(`${path}: \`tool_result\` blocks can only be in \`user\` messages`);
      if (typeof b.tool_use_id !== 'string') bad(`${path}.tool_result.tool_use_id: Field required`);
      if (b.is_error !== undefined && typeof b.is_error !== 'boolean') bad(`${path}.tool_result.is_error: Input should be a valid boolean`);
      if (b.content !== undefined && typeof b.content !== 'string') {
        if (!Array.isArray(b.content)) bad(`${path}.tool_result.content: Input should be a valid list`);
        b.content.forEach((c, k) => {
          if (!isObj(c) || !['text', 'image', 'search_result', 'document'].includes(c.type)) {
            bad(`${path}.tool_result.content.${k}: Input tag '${c?.type}' found using 'type' does not match any of the expected tags: 'text', 'image', 'search_result', 'document'`);
          }
          checkBlock(c, `${path}.tool_result.content.${k}`, role, counter, ctx);
        });
      }
      break;
    case 'thinking':
      if (role !== 'assistant') bad(`${path}: \`thinking\` blocks can only be in \`assistant\` messages`);
      if (typeof b.thinking !== 'string') bad(`${path}.thinking.thinking: Field required`);
      if (typeof b.signature !== 'string') bad(`${path}.thinking.signature: Field required`);
      if (!ctx.verifySignature(b.thinking, b.signature)) bad(`${path}: Invalid \`signature\` in \`thinking\` block`);
      break;
    case 'redacted_thinking':
      if (role !== 'assistant') bad(`${path}: \`redacted_thinking\` blocks can only be in \`assistant\` messages`);
      if (typeof b.data !== 'string') bad(`${path}.redacted_thinking.data: Field required`);
      if (!ctx.verifyRedacted(b.data)) bad(`${path}: Invalid \`data\` in \`redacted_thinking\` block`);
      break;
    default:
  }
}

function checkTools(body, counter) {
  if (body.tools === undefined) return [];
  if (!Array.isArray(body.tools)) bad('tools: Input should be a valid list');
  const names = new Set();
  body.tools.forEach((t, k) => {
    if (!isObj(t)) bad(`tools.${k}: Input should be a valid dictionary or object to extract fields from`);
    const type = t.type ?? 'custom';
    if (type === 'custom') {
      for (const f of Object.keys(t)) {
        if (!['type', 'name', 'description', 'input_schema', 'cache_control', 'strict', 'input_examples', 'defer_loading', 'allowed_callers', 'eager_input_streaming'].includes(f)) {
          bad(`tools.${k}.custom.${f}: Extra inputs are not permitted`);
        }
      }
      if (typeof t.name !== 'string') bad(`tools.${k}.custom.name: Field required`);
      if (!/^[a-zA-Z0-9_-]{1,64}$/.test(t.name)) bad(`tools.${k}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`);
      if (t.description !== undefined && typeof t.description !== 'string') bad(`tools.${k}.custom.description: Input should be a valid string`);
      if (t.input_schema === undefined) bad(`tools.${k}.custom.input_schema: Field required`);
      if (!isObj(t.input_schema) || t.input_schema.type !== 'object') bad(`tools.${k}.custom.input_schema.type: Input should be 'object'`);
    } else if (/^[a-z_]+_\d{8}$/.test(type)) {
      if (typeof t.name !== 'string') bad(`tools.${k}.${type}.name: Field required`);
    } else {
      bad(`tools.${k}: Input tag '${type}' found using 'type' does not match any of the expected tags: 'custom', 'bash_20250124', 'text_editor_20250124', 'web_search_20250305', ...`);
    }
    checkCacheControl(t.cache_control, `tools.${k}.${type}`, counter);
    if (names.has(t.name)) bad('tools: Tool names must be unique.');
    names.add(t.name);
  });
  return [...names];
}

/** Validate a create (or count_tokens) body; throws Invalid. */
function validate(body, { count = false, strictAlternation = true, verifySignature, verifyRedacted }) {
  if (!isObj(body)) bad('Input should be a valid dictionary or object to extract fields from');
  const fields = count ? COUNT_FIELDS : CREATE_FIELDS;
  for (const k of Object.keys(body)) if (!fields.has(k)) bad(`${k}: Extra inputs are not permitted`);
  if (body.model === undefined) bad('model: Field required');
  if (typeof body.model !== 'string' || !body.model) bad('model: Input should be a valid string');
  if (!count) {
    if (body.max_tokens === undefined) bad('max_tokens: Field required');
    if (!Number.isInteger(body.max_tokens)) bad('max_tokens: Input should be a valid integer');
    if (body.max_tokens < 1) bad('max_tokens: Input should be greater than or equal to 1');
    if (body.stream !== undefined && typeof body.stream !== 'boolean') bad('stream: Input should be a valid boolean');
    if (body.temperature !== undefined) {
      if (typeof body.temperature !== 'number') bad('temperature: Input should be a valid number');
      if (body.temperature < 0) bad('temperature: Input should be greater than or equal to 0');
      if (body.temperature > 1) bad('temperature: Input should be less than or equal to 1');
    }
    if (body.top_p !== undefined && (typeof body.top_p !== 'number' || body.top_p < 0 || body.top_p > 1)) bad('top_p: Input should be less than or equal to 1');
    if (body.top_k !== undefined && (!Number.isInteger(body.top_k) || body.top_k < 0)) bad('top_k: Input should be a valid integer');
    if (body.stop_sequences !== undefined) {
      if (!Array.isArray(body.stop_sequences)) bad('stop_sequences: Input should be a valid list');
      body.stop_sequences.forEach((s, k) => {
        if (typeof s !== 'string') bad(`stop_sequences.${k}: Input should be a valid string`);
        if (!s.trim()) bad('stop_sequences: each stop sequence must contain non-whitespace');
      });
    }
    if (body.metadata !== undefined) {
      if (!isObj(body.metadata)) bad('metadata: Input should be a valid dictionary or object to extract fields from');
      for (const k of Object.keys(body.metadata)) if (k !== 'user_id') bad(`metadata.${k}: Extra inputs are not permitted`);
      if (body.metadata.user_id != null && typeof body.metadata.user_id !== 'string') bad('metadata.user_id: Input should be a valid string');
    }
    if (body.service_tier !== undefined && !['auto', 'standard_only'].includes(body.service_tier)) bad("service_tier: Input should be 'auto' or 'standard_only'");
  }
  const counter = { n: 0 };
  if (body.cache_control !== undefined && body.cache_control !== null && (!isObj(body.cache_control) || body.cache_control.type !== 'ephemeral')) bad("cache_control.type: Input should be 'ephemeral'");
  // system
  if (body.system !== undefined) {
    if (typeof body.system !== 'string') {
      if (!Array.isArray(body.system)) bad('system: Input should be a valid string');
      body.system.forEach((b, k) => {
        if (!isObj(b) || b.type !== 'text') bad(`system.${k}.type: Input should be 'text'`);
        for (const f of Object.keys(b)) if (!BLOCK_FIELDS.text.includes(f)) bad(`system.${k}.${f}: Extra inputs are not permitted`);
        if (typeof b.text !== 'string') bad(`system.${k}.text: Field required`);
        if (b.text === '') bad('system: text content blocks must be non-empty');
        checkCacheControl(b.cache_control, `system.${k}`, counter);
      });
    }
  }
  const toolNames = checkTools(body, counter);
  // tool_choice
  const tc = body.tool_choice;
  if (tc !== undefined) {
    if (!isObj(tc)) bad('tool_choice: Input should be a valid dictionary or object to extract fields from');
    if (!['auto', 'any', 'tool', 'none'].includes(tc.type)) bad(`tool_choice: Input tag '${tc.type}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'`);
    const allowed = tc.type === 'tool' ? ['type', 'name', 'disable_parallel_tool_use'] : tc.type === 'none' ? ['type'] : ['type', 'disable_parallel_tool_use'];
    for (const k of Object.keys(tc)) if (!allowed.includes(k)) bad(`tool_choice.${tc.type}.${k}: Extra inputs are not permitted`);
    if (tc.type === 'tool') {
      if (typeof tc.name !== 'string') bad('tool_choice.tool.name: Field required');
      if (!toolNames.includes(tc.name)) bad(`tool_choice.tool.name: Tool '${tc.name}' not found in tools.`);
    }
    if (tc.type !== 'none' && tc.type !== 'auto' && !toolNames.length) bad('tool_choice: `tool_choice` may only be specified while providing `tools`.');
  }
  // thinking
  const th = body.thinking;
  let thinkingOn = false;
  if (th !== undefined) {
    if (!isObj(th) || !['enabled', 'disabled', 'adaptive'].includes(th.type)) bad(`thinking: Input tag '${th?.type}' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'`);
    const allowed = th.type === 'enabled' ? ['type', 'budget_tokens', 'display'] : th.type === 'adaptive' ? ['type', 'display'] : ['type'];
    for (const k of Object.keys(th)) if (!allowed.includes(k)) bad(`thinking.${th.type}.${k}: Extra inputs are not permitted`);
    if (th.type === 'enabled') {
      if (!Number.isInteger(th.budget_tokens)) bad('thinking.enabled.budget_tokens: Field required');
      if (th.budget_tokens < 1024) bad('thinking.enabled.budget_tokens: Input should be greater than or equal to 1024');
      if (!count && th.budget_tokens >= body.max_tokens) bad('`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size');
    }
    thinkingOn = th.type !== 'disabled';
    if (thinkingOn && !count) {
      if (body.temperature !== undefined && body.temperature !== 1) bad('`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility');
      if (body.top_k !== undefined) bad('`top_k` must be unset when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility');
      if (body.top_p !== undefined && body.top_p < 0.95) bad('`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility');
    }
    if (thinkingOn && isObj(tc) && (tc.type === 'any' || tc.type === 'tool')) bad('Thinking may not be enabled when tool_choice forces tool use.');
  }
  // messages
  if (body.messages === undefined) bad('messages: Field required');
  if (!Array.isArray(body.messages)) bad('messages: Input should be a valid list');
  const msgs = body.messages;
  if (!msgs.length) bad('messages: at least one message is required');
  const ctx = { ids: new Set(), verifySignature, verifyRedacted };
  let prevToolUse = [];
  msgs.forEach((m, i) => {
    if (!isObj(m)) bad(`messages.${i}: Input should be a valid dictionary or object to extract fields from`);
    for (const k of Object.keys(m)) if (k !== 'role' && k !== 'content') bad(`messages.${i}.${k}: Extra inputs are not permitted`);
    if (m.role === undefined) bad(`messages.${i}.role: Field required`);
    if (m.role !== 'user' && m.role !== 'assistant') bad(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    if (m.content === undefined) bad(`messages.${i}.content: Field required`);
    if (m.content === null || (typeof m.content !== 'string' && !Array.isArray(m.content))) bad(`messages.${i}.content: Input should be a valid list`);
    const isFinalAssistant = i === msgs.length - 1 && m.role === 'assistant';
    if ((m.content === '' || (Array.isArray(m.content) && !m.content.length)) && !isFinalAssistant) {
      bad(`messages.${i}: all messages must have non-empty content except for the optional final assistant message`);
    }
    if (strictAlternation) {
      if (i === 0 && m.role !== 'user') bad('messages: first message must use the "user" role');
      if (i > 0 && msgs[i - 1]?.role === m.role) bad(`messages: roles must alternate between "user" and "assistant", but found multiple "${m.role}" roles in a row`);
    }
    const blocks = Array.isArray(m.content) ? m.content : [];
    blocks.forEach((b, j) => checkBlock(b, `messages.${i}.content.${j}`, m.role, counter, ctx));
    if (isFinalAssistant) {
      const t = typeof m.content === 'string' ? m.content : blocks.at(-1)?.type === 'text' ? blocks.at(-1).text : '';
      if (t && /\s$/.test(t)) bad('messages: final assistant content cannot end with trailing whitespace');
    }
    // tool_use / tool_result pairing
    const results = blocks.map((b, j) => ({ b, j })).filter((x) => x.b.type === 'tool_result');
    if (m.role === 'user') {
      const seenNonResult = blocks.findIndex((b) => b.type !== 'tool_result');
      results.forEach(({ b, j }) => {
        if (!prevToolUse.includes(b.tool_use_id)) {
          bad(`messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${b.tool_use_id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`);
        }
        if (seenNonResult >= 0 && seenNonResult < j) {
          bad(`messages.${i}.content.${j}: \`tool_result\` blocks must come first in the content of a \`user\` message, before any other content.`);
        }
      });
      const missing = prevToolUse.filter((id) => !results.some(({ b }) => b.tool_use_id === id));
      if (missing.length) {
        bad(`messages.${i - 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`);
      }
      prevToolUse = [];
    } else {
      if (prevToolUse.length) {
        bad(`messages.${i - 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${prevToolUse.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`);
      }
      prevToolUse = blocks.filter((b) => b.type === 'tool_use').map((b) => b.id);
    }
  });
  if (counter.n > 4) bad(`A maximum of 4 blocks with cache_control may be provided. Found ${counter.n}.`);
  // thinking in a tool loop: the assistant turn before the final tool_result turn starts with thinking
  if (thinkingOn && msgs.length >= 2) {
    const last = msgs.at(-1);
    const prev = msgs.at(-2);
    if (last.role === 'user' && toolResults(last).length && prev.role === 'assistant' && Array.isArray(prev.content)) {
      const first = prev.content[0];
      if (!first || (first.type !== 'thinking' && first.type !== 'redacted_thinking')) {
        bad(`messages.${msgs.length - 2}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${first?.type}\`. When \`thinking\` is enabled, a final \`assistant\` message must start with a thinking block (preceeding the lastmost set of \`tool_use\` and \`tool_result\` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable \`thinking\`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking`);
      }
    }
  }
  return { thinkingOn };
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

const ERROR_TYPES = {
  400: 'invalid_request_error', 401: 'authentication_error', 402: 'billing_error', 403: 'permission_error',
  404: 'not_found_error', 408: 'timeout_error', 413: 'request_too_large', 429: 'rate_limit_error', 500: 'api_error',
  502: 'api_error', 503: 'api_error', 504: 'timeout_error', 529: 'overloaded_error',
};
const ERROR_MESSAGES = {
  401: 'invalid x-api-key', 403: 'Your API key does not have permission to use the specified resource.',
  404: 'Not found', 413: 'Request exceeds the maximum allowed number of bytes.',
  429: 'This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.',
  500: 'Internal server error', 529: 'Overloaded',
};

export function anthropicError(type, message, requestId = rid('req_011C', 10)) {
  return { type: 'error', error: { type, message }, request_id: requestId };
}

export function createAnthropicMock(opts = {}) {
  const key = opts.key ?? DEFAULT_KEY;
  const strictAlternation = opts.strictAlternation ?? true;
  const anyModel = !!opts.anyModel;
  const secret = crypto.randomBytes(32);
  const cacheSeen = new Set();

  const sign = (text) => {
    const mac = crypto.createHmac('sha256', secret).update(text).digest();
    return Buffer.concat([Buffer.from('EqMBCkgIBxABGAIiQ'), mac, mac]).toString('base64');
  };
  const verifySignature = (text, sig) => sig === sign(text);
  const redactedData = (text) => Buffer.concat([Buffer.from('mock-redacted:'), crypto.createHmac('sha256', secret).update(`r${text}`).digest()]).toString('base64');
  const verifyRedacted = (data) => {
    const raw = Buffer.from(String(data), 'base64');
    return raw.subarray(0, 14).toString() === 'mock-redacted:';
  };

  const base = createServer({ name: 'anthropic_mock', maxLog: opts.maxLog, extraStats: { betas: {}, cache_writes: 0, cache_reads: 0 }, handle });
  const { stats, send, later } = base;

  function headersFor(requestId, extra = {}) {
    return { 'request-id': requestId, 'anthropic-organization-id': '00000000-0000-4000-8000-000000000000', 'x-robots-tag': 'none', ...extra };
  }
  function sendErr(res, status, type, message, extra = {}) {
    const requestId = rid('req_011C', 10);
    const h = headersFor(requestId, extra);
    if (status === 429) Object.assign(h, { 'retry-after': '1', 'anthropic-ratelimit-requests-limit': '50', 'anthropic-ratelimit-requests-remaining': '0' });
    if (status === 529 || status === 500) h['x-should-retry'] = 'true';
    send(res, status, anthropicError(type, message, requestId), h);
  }

  function usageFor(body) {
    const acc = inputAccounting(body);
    const bps = acc.breakpoints;
    let read = 0;
    for (const bp of bps) if (cacheSeen.has(bp.hash)) read = Math.max(read, bp.tokens);
    const last = bps.at(-1);
    let write5m = 0;
    let write1h = 0;
    if (last && last.tokens > read) {
      // tokens between the read prefix and each later breakpoint are written with that breakpoint's ttl
      let from = read;
      for (const bp of bps) {
        if (bp.tokens <= from) continue;
        if (bp.ttl === '1h') write1h += bp.tokens - from; else write5m += bp.tokens - from;
        from = bp.tokens;
      }
    }
    for (const bp of bps) cacheSeen.add(bp.hash);
    const write = write5m + write1h;
    if (write) stats.cache_writes++;
    if (read) stats.cache_reads++;
    return {
      input_tokens: Math.max(0, acc.total - read - write),
      cache_creation_input_tokens: write,
      cache_read_input_tokens: read,
      cache_creation: { ephemeral_5m_input_tokens: write5m, ephemeral_1h_input_tokens: write1h },
    };
  }

  /** Build the content blocks (with their stream deltas) for a validated body. */
  function plan(body, thinkingOn, faults, betas = []) {
    const blocks = []; // { block (final), start (content_block_start), deltas: [delta] , tokens }
    const text = userText(body);
    // after a tool_result the assistant turn goes on without a new thinking block, unless the
    // interleaved-thinking beta is on
    const interleaved = betas.some((b) => b.startsWith('interleaved-thinking'));
    if (thinkingOn && (interleaved || !toolResults(lastUser(body)).length)) {
      const t = thinkingText(body);
      const sig = sign(t);
      const words = splitWords(t);
      const omitted = body.thinking.display === 'omitted';
      blocks.push({
        block: { type: 'thinking', thinking: omitted ? '' : t, signature: omitted ? sign('') : sig },
        start: { type: 'thinking', thinking: '', signature: '' },
        deltas: [...(omitted ? [] : words.map((w) => ({ type: 'thinking_delta', thinking: w }))), { type: 'signature_delta', signature: omitted ? sign('') : sig }],
        tokens: words.length,
      });
      if (text.toLowerCase().includes('redacted thinking')) {
        const data = redactedData(t);
        blocks.push({ block: { type: 'redacted_thinking', data }, start: { type: 'redacted_thinking', data }, deltas: [], tokens: 1 });
      }
    }
    const calls = toolCallsFor(body);
    let stopReason = 'end_turn';
    let stopSequence = null;
    if (calls.length) {
      const pre = `Let me use ${calls[0]}.`;
      const pw = splitWords(pre);
      blocks.push({ block: { type: 'text', text: pre }, start: { type: 'text', text: '' }, deltas: pw.map((w) => ({ type: 'text_delta', text: w })), tokens: pw.length });
      calls.forEach((name, i) => {
        const id = `toolu_01${crypto.createHash('sha256').update(`${Date.now()}${Math.random()}${i}`).digest('base64url').replace(/[^A-Za-z0-9]/g, '').slice(0, 22)}`;
        const input = toolInput(name, text);
        const pieces = ['', ...splitOdd(JSON.stringify(input))];
        blocks.push({
          block: { type: 'tool_use', id, name, input },
          start: { type: 'tool_use', id, name, input: {} },
          deltas: pieces.map((p) => ({ type: 'input_json_delta', partial_json: p })),
          tokens: pieces.length,
        });
      });
      stopReason = 'tool_use';
    } else {
      let reply = faults.big !== undefined ? 'x'.repeat(faults.big) : replyText(body);
      for (const s of Array.isArray(body.stop_sequences) ? body.stop_sequences : []) {
        const at = reply.indexOf(s);
        if (at >= 0 && (stopSequence === null || at < reply.indexOf(stopSequence))) stopSequence = s;
      }
      if (stopSequence !== null) { reply = reply.slice(0, reply.indexOf(stopSequence)); stopReason = 'stop_sequence'; }
      let words = splitWords(reply);
      const used = blocks.reduce((a, b) => a + b.tokens, 0);
      const room = Math.max(1, body.max_tokens - used);
      if (words.length > room) { words = words.slice(0, room); stopReason = 'max_tokens'; stopSequence = null; }
      reply = words.join('');
      if (reply) blocks.push({ block: { type: 'text', text: reply }, start: { type: 'text', text: '' }, deltas: words.map((w) => ({ type: 'text_delta', text: w })), tokens: words.length });
    }
    const outputTokens = blocks.reduce((a, b) => a + b.tokens, 0);
    return { blocks, stopReason, stopSequence, outputTokens };
  }

  async function messages(req, res, ctx, faults) {
    const body = ctx.body;
    let thinkingOn;
    try {
      ({ thinkingOn } = validate(body, { strictAlternation, verifySignature, verifyRedacted }));
    } catch (e) {
      if (e instanceof Invalid) return sendErr(res, 400, 'invalid_request_error', e.message);
      throw e;
    }
    if (!anyModel && !/^claude/.test(body.model)) return sendErr(res, 404, 'not_found_error', `model: ${body.model}`);
    const usage = usageFor(body);
    const p = plan(body, thinkingOn, faults, ctx.entry.betas);
    const id = `msg_01${crypto.randomBytes(16).toString('base64url').replace(/[^A-Za-z0-9]/g, '').slice(0, 22)}`;
    const requestId = rid('req_011C', 10);
    if (!body.stream) {
      if (faults.malformed) return send(res, 200, `{"id":"${id}","type":"message","role":"assistant","content":[{"type":"text","text":"trunc`, headersFor(requestId));
      return send(res, 200, {
        id,
        type: 'message',
        role: 'assistant',
        model: body.model,
        content: p.blocks.map((b) => b.block),
        stop_reason: p.stopReason,
        stop_sequence: p.stopSequence,
        usage: { ...usage, output_tokens: p.outputTokens, service_tier: 'standard' },
      }, headersFor(requestId));
    }
    const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const events = [ev('message_start', {
      message: {
        id, type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null,
        usage: { ...usage, output_tokens: 1, service_tier: 'standard' },
      },
    })];
    p.blocks.forEach((b, index) => {
      events.push(ev('content_block_start', { index, content_block: b.start }));
      if (index === 0) events.push(ev('ping', {}));
      for (const d of b.deltas) events.push(ev('content_block_delta', { index, delta: d }));
      events.push(ev('content_block_stop', { index }));
    });
    events.push(ev('message_delta', {
      delta: { stop_reason: p.stopReason, stop_sequence: p.stopSequence },
      usage: {
        input_tokens: usage.input_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
        output_tokens: p.outputTokens,
      },
    }));
    events.push(ev('message_stop', {}));
    return base.stream(req, res, ctx, events, {
      faults,
      headers: headersFor(requestId, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' }),
      errorEvent: () => `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' }, request_id: requestId })}\n\n`,
      malformedEvent: 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_de\n\n',
    });
  }

  function countTokens(req, res, ctx) {
    try {
      validate(ctx.body, { count: true, strictAlternation, verifySignature, verifyRedacted });
    } catch (e) {
      if (e instanceof Invalid) return sendErr(res, 400, 'invalid_request_error', e.message);
      throw e;
    }
    return send(res, 200, { input_tokens: inputAccounting(ctx.body).total }, headersFor(rid('req_011C', 10)));
  }

  async function handle(req, res, ctx) {
    const { path, body, entry } = ctx;
    const beta = req.headers['anthropic-beta'];
    if (beta) {
      entry.betas = String(beta).split(',').map((s) => s.trim()).filter(Boolean);
      for (const b of entry.betas) stats.betas[b] = (stats.betas[b] || 0) + 1;
    }
    // auth
    const apiKey = req.headers['x-api-key'];
    const auth = req.headers.authorization;
    if (apiKey === undefined && auth === undefined) return sendErr(res, 401, 'authentication_error', 'x-api-key header is required');
    if (apiKey !== undefined ? apiKey !== key : auth !== `Bearer ${key}`) {
      return sendErr(res, 401, 'authentication_error', apiKey !== undefined ? 'invalid x-api-key' : 'Invalid bearer token');
    }
    const version = req.headers['anthropic-version'];
    if (version === undefined) return sendErr(res, 400, 'invalid_request_error', 'anthropic-version: header is required');
    if (!/^\d{4}-\d{2}-\d{2}$/.test(version)) return sendErr(res, 400, 'invalid_request_error', `anthropic-version: invalid version "${version}"`);

    const faults = parseFaults(isObj(body) ? body.model : undefined, req.headers['x-mock-fault'], isObj(body) ? userText(body) : undefined);
    if (faults.hang) return;
    if (faults.firstByteMs) {
      await later(faults.firstByteMs);
      if (res.destroyed || ctx.closed) return;
    }
    if (faults.status) {
      return sendErr(res, faults.status, ERROR_TYPES[faults.status] || (faults.status >= 500 ? 'api_error' : 'invalid_request_error'), ERROR_MESSAGES[faults.status] || `Injected status ${faults.status}.`);
    }
    if (ctx.parseError && req.method === 'POST') return sendErr(res, 400, 'invalid_request_error', 'There was an error parsing the body of your request. Please ensure that your request body is valid JSON.');

    const methodNotAllowed = () => sendErr(res, 405, 'invalid_request_error', `Method ${req.method} not allowed for ${path}`);
    if (path === '/v1/messages') return req.method === 'POST' ? messages(req, res, ctx, faults) : methodNotAllowed();
    if (path === '/v1/messages/count_tokens') return req.method === 'POST' ? countTokens(req, res, ctx) : methodNotAllowed();
    if (path === '/v1/models') {
      if (req.method !== 'GET') return methodNotAllowed();
      return send(res, 200, { data: ANTHROPIC_MODELS, has_more: false, first_id: ANTHROPIC_MODELS[0].id, last_id: ANTHROPIC_MODELS.at(-1).id }, headersFor(rid('req_011C', 10)));
    }
    if (path.startsWith('/v1/models/')) {
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      const m = ANTHROPIC_MODELS.find((x) => x.id === id);
      if (!m) return sendErr(res, 404, 'not_found_error', `model: ${id}`);
      return send(res, 200, m, headersFor(rid('req_011C', 10)));
    }
    return sendErr(res, 404, 'not_found_error', 'Not Found');
  }

  return base;
}

/** Start the mock in this process. Returns { url, port, key, stop(), requests(), clearRequests(), stats(), resetStats() }. */
export async function startAnthropicMock(opts = {}) {
  const mock = createAnthropicMock(opts);
  return startInProcess(mock, { port: opts.port ?? 0, host: opts.host ?? '127.0.0.1', extra: { key: opts.key ?? DEFAULT_KEY } });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runCli('anthropic_mock', process.argv.slice(2), (o) => startAnthropicMock({
    ...o, port: o.port, strictAlternation: o.strictAlternation !== 'false', anyModel: o.anyModel === 'true',
  }));
}
