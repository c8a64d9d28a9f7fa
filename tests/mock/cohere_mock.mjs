#!/usr/bin/env node
// In-tree mock of Cohere's v2 API (chat and embed), in Cohere's wire format, for loopback tests.
// No dependencies: node:http + node:crypto (scaffold in ./lib/common.mjs).
//
//   import { startCohereMock } from '../mock/cohere_mock.mjs';
//   const m = await startCohereMock({ key: 'co-mock' });   // m.url, m.port, m.stop(), m.requests(), m.clearRequests(), m.stats()
//   node tests/mock/cohere_mock.mjs [--port 0] [--host 127.0.0.1] [--key co-mock]   → prints {"port":N}
//
// Options: key (default 'co-mock'; sent as `Authorization: Bearer <key>`), maxLog.
//
// Endpoints:
//   POST /v2/chat    chat response JSON, or (stream: true) SSE, each event as
//                    `event: <type>` + `data: {"type":<type>,...}`, in the exact order:
//                    message-start; text: content-start, content-delta per word, content-end;
//                    tools: tool-plan-delta per word, then per call tool-call-start, tool-call-delta
//                    per argument fragment (split at odd places), tool-call-end; message-end
//                    {delta: {finish_reason, usage}}.
//   POST /v2/embed   {id, texts, embeddings: {float: [[...]]}, meta: {api_version, billed_units},
//                    response_type: "embeddings_by_type"}
//   GET/DELETE /__requests, /__stats (no auth).
//
// Deterministic behaviour (helpers exported below compute the expectations):
//   - Reply text: "You said: <text of the last user message>"; when the conversation ends with
//     tool messages: "Tool said: <their texts (document data as JSON), joined with ' | '>".
//   - Tool call: when tools are given, tool_choice is not NONE, the conversation does not end with
//     tool messages, and the user text contains "use tool" / "parallel tools" (or tool_choice is
//     REQUIRED). The tool is the first whose name appears in the text, else the first tool;
//     "parallel tools" calls two. The answer has tool_plan "I will use <name>." and tool_calls
//     with arguments JSON.stringify(toolArgs(name, text)); finish_reason TOOL_CALL.
//   - Token counts: billed input = ceil(chars/4) of all message texts and tool JSON; `tokens`
//     input = billed + 7 (Cohere's prompt template); output = one per streamed word / fragment.
//   - max_tokens smaller than the reply: cut to max_tokens words, MAX_TOKENS. A stop_sequences
//     member found in the reply: cut there, STOP_SEQUENCE.
//   - Embeddings: embeddingOf(text, output_dimension || 16); billed input tokens = ceil(chars/4).
// Faults: same tokens as openai_mock (`fault-429`, `fault-500`, `fault-401`, `fault-hang`,
//   `fault-slow-first-byte-<ms>`, `fault-trickle-<ms>`, `fault-stall-after-<n>`,
//   `fault-reset-after-<n>`, `fault-truncate-after-<n>`, `fault-error-after-<n>` (a message-end
//   with finish_reason ERROR and an error text), `fault-malformed`) from the model name, the
//   x-mock-fault header or the last user text (embed: the texts). Errors are Cohere's
//   {"id","message"}; 429 has retry-after.
//
// Validated like the real API (400 {"id","message":"invalid request: ..."}): unknown top-level
// fields (OpenAI's n, top_p, stop, tool_choice "auto", stream_options, ...), model and messages
// required, roles, unknown members on messages, content item types (user: text/image_url;
// system: text; assistant: text/thinking; tool: text/document), empty user content, tool
// messages answering a tool call id of an earlier assistant turn, tool call shape (arguments a
// JSON text), tool definitions ({type:function, function:{name, description, parameters}}),
// tool_choice REQUIRED/NONE only with tools, response_format (text/json_object, not with tools),
// k 0..500, p 0.01..0.99, temperature >= 0, max_tokens >= 1, stop_sequences (<= 5 strings),
// thinking; embed: model, input_type (required), texts (1..96 strings), embedding_types,
// output_dimension (256, 512, 1024, 1536 - or small test sizes 4..64), truncate.
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createServer, startInProcess, runCli, parseFaults, tokensOf, splitWords, splitOdd, embeddingOf } from './lib/common.mjs';

export const DEFAULT_KEY = 'co-mock';
export const TEMPLATE_TOKENS = 7;

const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);
const uuid = () => crypto.randomUUID();

// ---------------------------------------------------------------------------------------------
// Deterministic helpers (exported for tests)
// ---------------------------------------------------------------------------------------------

/** Text of a content value (string or items): text items only. */
export function contentText(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((b) => (isObj(b) && b.type === 'text' && typeof b.text === 'string' ? b.text : '')).join('');
}

function toolContentText(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((b) => {
    if (isObj(b) && b.type === 'text') return String(b.text ?? '');
    if (isObj(b) && b.type === 'document') return JSON.stringify(b.document?.data ?? {});
    return '';
  }).join('');
}

function msgs(body) { return Array.isArray(body?.messages) ? body.messages : []; }

/** The user's text the mock reacts to (last user message). */
export function userText(body) {
  const m = msgs(body);
  for (let i = m.length - 1; i >= 0; i--) if (m[i]?.role === 'user') return contentText(m[i].content);
  return '';
}

/** Tool messages at the end of the conversation. */
function trailingTools(body) {
  const m = msgs(body);
  const out = [];
  for (let i = m.length - 1; i >= 0 && m[i]?.role === 'tool'; i--) out.unshift(m[i]);
  return out;
}

/** The reply text for a request body. */
export function replyText(body) {
  const tr = trailingTools(body);
  if (tr.length) return `Tool said: ${tr.map((t) => toolContentText(t.content)).join(' | ')}`;
  return `You said: ${userText(body)}`;
}

/** The arguments object of a mock tool call for tool `name`. */
export function toolArgs(name, text) {
  return { tool: name, query: text, n: 42, nested: { ok: true, list: [1, 2, 3], s: 'a "quoted" \\ back\u00e9' } };
}

/** The tool names the mock calls for a body ([] when no tool call). */
export function toolCallsFor(body) {
  const tools = Array.isArray(body.tools) ? body.tools.filter((t) => isObj(t) && isObj(t.function) && t.function.name) : [];
  if (!tools.length || body.tool_choice === 'NONE') return [];
  if (trailingTools(body).length) return [];
  const text = userText(body);
  const lower = text.toLowerCase();
  const parallel = lower.includes('parallel tools');
  if (!(parallel || lower.includes('use tool') || body.tool_choice === 'REQUIRED')) return [];
  const named = tools.filter((t) => text.includes(t.function.name));
  const chosen = named.length ? [...named, ...tools.filter((t) => !named.includes(t))] : tools;
  return chosen.slice(0, parallel ? Math.min(2, chosen.length) : 1).map((t) => t.function.name);
}

/** Billed input tokens of a chat body. */
export function inputTokens(body) {
  let chars = 0;
  for (const m of msgs(body)) {
    if (!isObj(m)) continue;
    chars += m.role === 'tool' ? toolContentText(m.content).length : contentText(m.content).length;
    if (typeof m.tool_plan === 'string') chars += m.tool_plan.length;
    if (Array.isArray(m.tool_calls)) chars += JSON.stringify(m.tool_calls).length;
  }
  if (Array.isArray(body.tools)) chars += JSON.stringify(body.tools).length;
  return Math.max(1, tokensOf(chars));
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

const CHAT_FIELDS = new Set(['model', 'messages', 'tools', 'strict_tools', 'documents', 'citation_options', 'response_format',
  'safety_mode', 'max_tokens', 'stop_sequences', 'temperature', 'seed', 'frequency_penalty', 'presence_penalty', 'k', 'p',
  'logprobs', 'tool_choice', 'thinking', 'priority', 'stream']);
const MSG_FIELDS = {
  system: ['role', 'content'],
  user: ['role', 'content'],
  assistant: ['role', 'content', 'tool_calls', 'tool_plan', 'citations'],
  tool: ['role', 'tool_call_id', 'content'],
};
const ITEM_TYPES = { system: ['text'], user: ['text', 'image_url'], assistant: ['text', 'thinking'], tool: ['text', 'document'] };

class Invalid extends Error {}
const bad = (msg) => { throw new Invalid(`invalid request: ${msg}`); };

function checkItems(content, path, role) {
  if (typeof content === 'string') return;
  if (!Array.isArray(content)) bad(`${path}.content must be a string or a list of content items`);
  content.forEach((b, k) => {
    const p = `${path}.content[${k}]`;
    if (!isObj(b)) bad(`${p} must be an object`);
    if (!ITEM_TYPES[role].includes(b.type)) bad(`${p}.type '${b.type}' is not valid for ${role} messages; expected one of ${ITEM_TYPES[role].join(', ')}`);
    const allowed = { text: ['type', 'text'], image_url: ['type', 'image_url'], thinking: ['type', 'thinking'], document: ['type', 'document'] }[b.type];
    for (const f of Object.keys(b)) if (!allowed.includes(f)) bad(`${p}: unknown field '${f}'`);
    if (b.type === 'text' && typeof b.text !== 'string') bad(`${p}.text must be a string`);
    if (b.type === 'thinking' && typeof b.thinking !== 'string') bad(`${p}.thinking must be a string`);
    if (b.type === 'image_url') {
      if (!isObj(b.image_url) || typeof b.image_url.url !== 'string') bad(`${p}.image_url.url is required`);
      if (!/^(https?:\/\/|data:image\/(png|jpeg|gif|webp);base64,)/.test(b.image_url.url)) bad(`${p}.image_url.url must be a web URL or a base64 data URI of a png, jpeg, gif or webp image`);
      for (const f of Object.keys(b.image_url)) if (!['url', 'detail'].includes(f)) bad(`${p}.image_url: unknown field '${f}'`);
      if (b.image_url.detail !== undefined && !['auto', 'low', 'high'].includes(b.image_url.detail)) bad(`${p}.image_url.detail must be auto, low or high`);
    }
    if (b.type === 'document' && (!isObj(b.document) || !isObj(b.document.data))) bad(`${p}.document.data must be an object`);
  });
}

export function validateChat(body) {
  if (!isObj(body)) bad('body must be a JSON object');
  for (const k of Object.keys(body)) if (!CHAT_FIELDS.has(k)) bad(`unknown field: parameter '${k}' is not a valid field`);
  if (typeof body.model !== 'string' || !body.model) bad('model is required');
  if (!Array.isArray(body.messages) || !body.messages.length) bad('messages must be a non-empty list');
  const callIds = new Set();
  body.messages.forEach((m, i) => {
    const path = `messages[${i}]`;
    if (!isObj(m)) bad(`${path} must be an object`);
    const allowed = MSG_FIELDS[m.role];
    if (!allowed) bad(`${path}.role must be one of system, user, assistant, tool; got '${m.role}'`);
    for (const f of Object.keys(m)) if (!allowed.includes(f)) bad(`${path}: unknown field '${f}' for ${m.role} messages`);
    if (m.role !== 'assistant' && m.content === undefined) bad(`${path}.content is required`);
    if (m.content !== undefined) checkItems(m.content, path, m.role);
    if (m.role === 'user' && (m.content === '' || (Array.isArray(m.content) && !m.content.length))) bad('message must be at least 1 token long or tool results must be specified.');
    if (m.role === 'assistant') {
      if (m.content === undefined && m.tool_calls === undefined) bad(`${path}: an assistant message needs content or tool_calls`);
      if (m.tool_plan !== undefined && typeof m.tool_plan !== 'string') bad(`${path}.tool_plan must be a string`);
      if (m.tool_calls !== undefined) {
        if (!Array.isArray(m.tool_calls)) bad(`${path}.tool_calls must be a list`);
        m.tool_calls.forEach((tc, k) => {
          const p = `${path}.tool_calls[${k}]`;
          if (!isObj(tc) || typeof tc.id !== 'string' || !tc.id) bad(`${p}.id is required`);
          if (tc.type !== undefined && tc.type !== 'function') bad(`${p}.type must be 'function'`);
          if (!isObj(tc.function) || typeof tc.function.name !== 'string') bad(`${p}.function.name is required`);
          for (const f of Object.keys(tc)) if (!['id', 'type', 'function'].includes(f)) bad(`${p}: unknown field '${f}'`);
          if (typeof tc.function.arguments !== 'string') bad(`${p}.function.arguments must be a JSON string`);
          try { JSON.parse(tc.function.arguments); } catch { bad(`${p}.function.arguments is not valid JSON`); }
          callIds.add(tc.id);
        });
      }
    }
    if (m.role === 'tool') {
      if (typeof m.tool_call_id !== 'string') bad(`${path}.tool_call_id is required`);
      if (!callIds.has(m.tool_call_id)) bad(`${path}.tool_call_id '${m.tool_call_id}' does not match a tool call of an earlier assistant message`);
    }
  });
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) bad('tools must be a list');
    const names = new Set();
    body.tools.forEach((t, k) => {
      const p = `tools[${k}]`;
      if (!isObj(t) || t.type !== 'function') bad(`${p}.type must be 'function'`);
      for (const f of Object.keys(t)) if (!['type', 'function'].includes(f)) bad(`${p}: unknown field '${f}'`);
      if (!isObj(t.function) || typeof t.function.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(t.function.name)) bad(`${p}.function.name is required`);
      for (const f of Object.keys(t.function)) if (!['name', 'description', 'parameters'].includes(f)) bad(`${p}.function: unknown field '${f}'`);
      if (t.function.parameters !== undefined && (!isObj(t.function.parameters) || t.function.parameters.type !== 'object')) bad(`${p}.function.parameters must be a JSON schema object`);
      if (names.has(t.function.name)) bad('tool names must be unique');
      names.add(t.function.name);
    });
  }
  if (body.tool_choice !== undefined) {
    if (!['REQUIRED', 'NONE'].includes(body.tool_choice)) bad("tool_choice must be one of 'REQUIRED', 'NONE'");
    if (!Array.isArray(body.tools) || !body.tools.length) bad('tool_choice requires tools');
  }
  if (body.response_format !== undefined) {
    const rf = body.response_format;
    if (!isObj(rf) || !['text', 'json_object'].includes(rf.type)) bad("response_format.type must be 'text' or 'json_object'");
    for (const f of Object.keys(rf)) if (!['type', 'json_schema'].includes(f)) bad(`response_format: unknown field '${f}'`);
    if (rf.type === 'text' && rf.json_schema !== undefined) bad('response_format.json_schema must not be set with type text');
    if (Array.isArray(body.tools) && body.tools.length) bad('response_format is not supported with tools');
  }
  const num = (k, lo, hi, int = false) => {
    if (body[k] === undefined) return;
    if (typeof body[k] !== 'number' || body[k] < lo || body[k] > hi || (int && !Number.isInteger(body[k]))) bad(`${k} must be ${int ? 'an integer' : 'a number'} between ${lo} and ${hi}`);
  };
  num('k', 0, 500, true);
  num('p', 0.01, 0.99);
  num('temperature', 0, 5);
  num('max_tokens', 1, 1e6, true);
  num('seed', 0, 2 ** 53, true);
  num('frequency_penalty', 0, 1);
  num('presence_penalty', 0, 1);
  if (body.stop_sequences !== undefined && (!Array.isArray(body.stop_sequences) || body.stop_sequences.length > 5 || body.stop_sequences.some((s) => typeof s !== 'string'))) bad('stop_sequences must be a list of at most 5 strings');
  if (body.thinking !== undefined) {
    const t = body.thinking;
    if (!isObj(t) || !['enabled', 'disabled'].includes(t.type)) bad("thinking.type must be 'enabled' or 'disabled'");
    if (t.token_budget !== undefined && (!Number.isInteger(t.token_budget) || t.token_budget < 1)) bad('thinking.token_budget must be a positive integer');
  }
  if (body.stream !== undefined && typeof body.stream !== 'boolean') bad('stream must be a boolean');
}

const EMBED_FIELDS = new Set(['model', 'texts', 'images', 'inputs', 'input_type', 'embedding_types', 'truncate', 'output_dimension', 'max_tokens', 'priority']);
export function validateEmbed(body) {
  if (!isObj(body)) bad('body must be a JSON object');
  for (const k of Object.keys(body)) if (!EMBED_FIELDS.has(k)) bad(`unknown field: parameter '${k}' is not a valid field`);
  if (typeof body.model !== 'string' || !body.model) bad('model is required');
  if (!['search_document', 'search_query', 'classification', 'clustering', 'image'].includes(body.input_type)) bad('input_type is required for embed models v3 and higher');
  if (!Array.isArray(body.texts) || !body.texts.length || body.texts.length > 96 || body.texts.some((t) => typeof t !== 'string')) bad('texts must be a list of 1 to 96 strings');
  if (body.embedding_types !== undefined && (!Array.isArray(body.embedding_types) || body.embedding_types.some((t) => !['float', 'int8', 'uint8', 'binary', 'ubinary', 'base64'].includes(t)))) bad('embedding_types must be a list of float, int8, uint8, binary, ubinary, base64');
  if (body.truncate !== undefined && !['NONE', 'START', 'END'].includes(body.truncate)) bad('truncate must be NONE, START or END');
  if (body.output_dimension !== undefined && !(Number.isInteger(body.output_dimension) && ([256, 512, 1024, 1536].includes(body.output_dimension) || (body.output_dimension >= 4 && body.output_dimension <= 64)))) bad('output_dimension must be one of 256, 512, 1024, 1536');
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

const ERROR_MESSAGES = {
  400: 'invalid request: injected fault', 401: 'invalid api token', 402: 'Please add or update your payment method',
  404: 'model not found', 422: 'unprocessable entity', 429: "You are using a Trial key, which is limited to 10 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'.",
  498: 'invalid api token', 500: 'internal server error, this has been reported to our developers', 503: 'service unavailable',
};

export function createCohereMock({ key = DEFAULT_KEY, maxLog } = {}) {
  const base = createServer({ name: 'cohere_mock', maxLog, handle });
  const { send, later } = base;

  function sendErr(res, status, message) {
    const h = { 'x-debug-trace-id': uuid() };
    if (status === 429) h['retry-after'] = '1';
    send(res, status, { id: uuid(), message }, h);
  }

  function plan(body, faults) {
    const text = userText(body);
    const calls = toolCallsFor(body);
    const p = { text: '', textWords: [], toolPlan: '', planWords: [], calls: [], finish: 'COMPLETE', outputTokens: 0 };
    if (calls.length) {
      p.toolPlan = `I will use ${calls[0]}.`;
      p.planWords = splitWords(p.toolPlan);
      p.calls = calls.map((name) => {
        const args = JSON.stringify(toolArgs(name, text));
        return { id: `${name}_${crypto.randomBytes(6).toString('hex')}`, name, args, pieces: splitOdd(args) };
      });
      p.finish = 'TOOL_CALL';
      p.outputTokens = p.planWords.length + p.calls.reduce((a, c) => a + c.pieces.length, 0);
      return p;
    }
    let reply = faults.big !== undefined ? 'x'.repeat(faults.big) : replyText(body);
    let stopAt = -1;
    for (const s of Array.isArray(body.stop_sequences) ? body.stop_sequences : []) {
      const at = reply.indexOf(s);
      if (at >= 0 && (stopAt < 0 || at < stopAt)) stopAt = at;
    }
    if (stopAt >= 0) { reply = reply.slice(0, stopAt); p.finish = 'STOP_SEQUENCE'; }
    let words = splitWords(reply);
    if (body.max_tokens !== undefined && words.length > body.max_tokens) { words = words.slice(0, body.max_tokens); p.finish = 'MAX_TOKENS'; }
    p.text = words.join('');
    p.textWords = p.text ? words : [];
    p.outputTokens = Math.max(1, p.textWords.length);
    return p;
  }

  function usageOf(body, p) {
    const inTok = inputTokens(body);
    return { billed_units: { input_tokens: inTok, output_tokens: p.outputTokens }, tokens: { input_tokens: inTok + TEMPLATE_TOKENS, output_tokens: p.outputTokens } };
  }

  async function chat(req, res, ctx, faults) {
    const body = ctx.body;
    try {
      validateChat(body);
    } catch (e) {
      if (e instanceof Invalid) return sendErr(res, 400, e.message);
      throw e;
    }
    const p = plan(body, faults);
    const id = uuid();
    const usage = usageOf(body, p);
    const headers = { 'x-debug-trace-id': uuid(), 'num_tokens': String(usage.tokens.input_tokens + p.outputTokens) };
    if (!body.stream) {
      if (faults.malformed) return send(res, 200, `{"id":"${id}","finish_reason":"COMPLETE","message":{"role":"assis`, headers);
      const message = { role: 'assistant' };
      if (p.calls.length) {
        message.tool_plan = p.toolPlan;
        message.tool_calls = p.calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.args } }));
      } else {
        message.content = [{ type: 'text', text: p.text }];
      }
      return send(res, 200, { id, finish_reason: p.finish, message, usage }, headers);
    }
    const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const events = [ev('message-start', { id, delta: { message: { role: 'assistant', content: [], tool_plan: '', tool_calls: [], citations: [] } } })];
    if (p.calls.length) {
      for (const w of p.planWords) events.push(ev('tool-plan-delta', { delta: { message: { tool_plan: w } } }));
      p.calls.forEach((c, index) => {
        events.push(ev('tool-call-start', { index, delta: { message: { tool_calls: { id: c.id, type: 'function', function: { name: c.name, arguments: '' } } } } }));
        for (const piece of c.pieces) events.push(ev('tool-call-delta', { index, delta: { message: { tool_calls: { function: { arguments: piece } } } } }));
        events.push(ev('tool-call-end', { index }));
      });
    } else if (p.textWords.length) {
      events.push(ev('content-start', { index: 0, delta: { message: { content: { type: 'text', text: '' } } } }));
      for (const w of p.textWords) events.push(ev('content-delta', { index: 0, delta: { message: { content: { text: w } } } }));
      events.push(ev('content-end', { index: 0 }));
    }
    events.push(ev('message-end', { delta: { finish_reason: p.finish, usage } }));
    return base.stream(req, res, ctx, events, {
      faults,
      headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-debug-trace-id': uuid() },
      errorEvent: () => ev('message-end', { delta: { error: 'internal server error, this has been reported to our developers', finish_reason: 'ERROR' } }),
      malformedEvent: 'event: content-delta\ndata: {"type":"content-delta","index":0,"delta":{"mess\n\n',
    });
  }

  function embed(req, res, ctx) {
    const body = ctx.body;
    try {
      validateEmbed(body);
    } catch (e) {
      if (e instanceof Invalid) return sendErr(res, 400, e.message);
      throw e;
    }
    const dims = body.output_dimension ?? 16;
    const chars = body.texts.reduce((a, t) => a + t.length, 0);
    return send(res, 200, {
      id: uuid(),
      texts: body.texts,
      embeddings: { float: body.texts.map((t) => embeddingOf(t, dims)) },
      meta: { api_version: { version: '2' }, billed_units: { input_tokens: Math.max(1, tokensOf(chars)) } },
      response_type: 'embeddings_by_type',
    }, { 'x-debug-trace-id': uuid() });
  }

  async function handle(req, res, ctx) {
    const { path, body } = ctx;
    const auth = req.headers.authorization;
    if (auth === undefined) return sendErr(res, 401, 'no api key supplied');
    if (auth !== `Bearer ${key}`) return sendErr(res, 401, 'invalid api token');
    const faultText = isObj(body) ? (Array.isArray(body.texts) ? body.texts.join(' ') : userText(body)) : undefined;
    const faults = parseFaults(isObj(body) ? body.model : undefined, req.headers['x-mock-fault'], faultText);
    if (faults.hang) return;
    if (faults.firstByteMs) {
      await later(faults.firstByteMs);
      if (res.destroyed || ctx.closed) return;
    }
    if (faults.status) return sendErr(res, faults.status, ERROR_MESSAGES[faults.status] || `injected status ${faults.status}`);
    if (ctx.parseError) return sendErr(res, 400, 'invalid request: unable to parse the request body as JSON');
    const wrongMethod = () => sendErr(res, 405, `method ${req.method} not allowed for ${path}`);
    if (path === '/v2/chat') return req.method === 'POST' ? chat(req, res, ctx, faults) : wrongMethod();
    if (path === '/v2/embed') return req.method === 'POST' ? embed(req, res, ctx) : wrongMethod();
    return sendErr(res, 404, `path ${path} not found`);
  }

  return base;
}

/** Start the mock in this process. Returns { url, port, key, stop(), requests(), clearRequests(), stats(), resetStats() }. */
export async function startCohereMock(opts = {}) {
  const mock = createCohereMock(opts);
  return startInProcess(mock, { port: opts.port ?? 0, host: opts.host ?? '127.0.0.1', extra: { key: opts.key ?? DEFAULT_KEY } });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runCli('cohere_mock', process.argv.slice(2), (o) => startCohereMock(o));
}
