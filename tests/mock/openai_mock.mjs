#!/usr/bin/env node
// In-tree mock of OpenAI's HTTP API, byte-for-byte in OpenAI's wire format.
// No dependencies: plain node:http.
//
//   node tests/mock/openai_mock.mjs [--port 0] [--host 127.0.0.1] [--key sk-mock] [--max-log 10000]
//
// Prints one JSON line {"port": N} on stdout once listening. Stops on SIGTERM/SIGINT.
//
// Endpoints (with or without the /v1 prefix):
//   POST /v1/chat/completions   chat.completion / chat.completion.chunk SSE, tool calls when `tools` is set
//   POST /v1/embeddings         float or base64 (little-endian float32) embeddings
//   GET  /v1/models             model list;  GET /v1/models/{id}
//   POST /v1/responses/input_tokens  {"object":"response.input_tokens","input_tokens":N}, N =
//                               countInputTokens(body) (exported); 400 without `model` or with
//                               chat-style `messages`
// Test introspection (no auth):
//   GET /__requests  DELETE /__requests  GET /__stats  DELETE /__stats
//   GET /__faults    DELETE /__faults   (counters of the fault-<status>-first-<n> faults)
// Every /__requests entry: {time, t, method, path, query, headers, body[, raw]}, taken when the
// request's body was complete: `time` is Date.now(); `t` is the monotonic clock in fractional ms
// (process.hrtime, CLOCK_MONOTONIC: one clock for every process on the machine, not epoch-based),
// so tests can order the requests of several mock processes and measure the gap between attempts.
//
// Fault injection is chosen by the request's model name (or an `x-mock-fault` header, handy for GET
// /models). Several faults may be combined with '+', e.g. "gpt-4o+fault-trickle-100".
//   fault-429  fault-500  fault-502  fault-503  fault-400  fault-401  fault-403  fault-404
//   fault-hang                    never answers
//   fault-slow-first-byte-<ms>    wait <ms> before sending anything
//   fault-count-slow-<ms>         POST /responses/input_tokens only: answer after <ms>
//   fault-count-<status>          POST /responses/input_tokens only: answer that status
//   fault-slow-every-<n>-<ms>     every n-th request with this model string waits <ms> first
//                                 (deterministic tail latency for the hedging benchmark)
//   fault-trickle-<ms>            stream: every event delayed by <ms>
//   fault-stall-after-<n>         stream: n chunks, then silence forever (socket stays open)
//   fault-reset-after-<n>         stream: n chunks, then the socket is destroyed
//   fault-truncate-after-<n>      stream: n chunks, then a clean end without finish_reason or [DONE]
//   fault-error-after-<n>         stream: n chunks, then an in-stream error event and the end
//   fault-malformed               200 with an invalid JSON body (stream: an invalid JSON event)
//   fault-200-error               200 with an OpenAI error body
//   fault-big-<n>                 content of n bytes
//   fault-parallel                with >= 2 tools: call the first two tools in parallel
//   fault-<status>-first-<n>      the first n requests carrying this exact model string (the
//                                 whole string, e.g. "gpt-4o+fault-503-first-2"; the x-mock-fault
//                                 header's value when it carries the fault) fail with <status>,
//                                 later ones are answered normally (other faults still apply).
//                                 Counters reset with DELETE /__faults and DELETE /__stats
//   fault-retry-after-<s>         error answers carry `retry-after: <s>` (instead of 429's default 1)
//   fault-retry-after-ms-<ms>     error answers carry `retry-after-ms: <ms>` and no `retry-after`
//   fault-context                 400 context_length_exceeded, as OpenAI sends it
//   fault-content-filter          400 content_filter (invalid_request_error), as Azure OpenAI sends
//                                 a prompt refused by its content management policy
//   fault-stream-error-first      stream: 200 SSE whose first event is an error event, then the end
//   fault-stream-empty            stream: 200 SSE headers, then the end without any event
import http from 'node:http';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------------------------
// Deterministic content helpers (exported so tests can compute expectations)
// ---------------------------------------------------------------------------------------------

/** Text of a message's content: string, or array of parts ({type:"text", text}). */
export function contentText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (typeof p === 'string' ? p : p && typeof p.text === 'string' ? p.text : ''))
      .join('');
  }
  return '';
}

/** The reply text the mock gives for a chat request body. */
export function replyText(body) {
  const msgs = Array.isArray(body?.messages) ? body.messages : [];
  const last = msgs[msgs.length - 1];
  if (last && last.role === 'assistant' && msgs.length > 1) {
    // an assistant prefill (a gateway continuing a broken stream): go on from where it stops
    const prefill = contentText(last.content);
    const full = replyText({ ...body, messages: msgs.slice(0, -1) });
    return prefill && full.startsWith(prefill) ? full.slice(prefill.length) : full;
  }
  if (last && last.role === 'tool') return `Tool said: ${contentText(last.content)}`;
  for (let i = msgs.length - 1; i >= 0; i--) {
    if (msgs[i] && msgs[i].role === 'user') return `You said: ${contentText(msgs[i].content)}`;
  }
  return 'Hello from the mock.';
}

/** The texts of a Responses input_tokens request, in order: instructions, input (a string, or the
 * items' text parts, function_call names and arguments, function_call_output outputs), and the
 * tools' names, descriptions and JSON parameters. */
export function inputTokenTexts(body) {
  const out = [];
  const partTexts = (c) => {
    if (typeof c === 'string') out.push(c);
    else if (Array.isArray(c)) for (const p of c) {
      if (p && typeof p.text === 'string') out.push(p.text);
      else if (p && typeof p.refusal === 'string') out.push(p.refusal);
    }
  };
  if (typeof body?.instructions === 'string') out.push(body.instructions);
  const input = body?.input;
  if (typeof input === 'string') out.push(input);
  else if (Array.isArray(input)) for (const it of input) {
    if (!it || typeof it !== 'object') continue;
    if (it.type === 'function_call') out.push(String(it.name ?? ''), String(it.arguments ?? ''));
    else if (it.type === 'function_call_output') partTexts(it.output);
    else partTexts(it.content);
  }
  if (Array.isArray(body?.tools)) for (const t of body.tools) {
    if (!t || typeof t !== 'object') continue;
    out.push(String(t.name ?? ''));
    if (typeof t.description === 'string') out.push(t.description);
    if (t.parameters !== undefined) out.push(JSON.stringify(t.parameters));
  }
  return out;
}

/** The mock's input token count for a Responses input_tokens request: ceil(length / 4) per text
 * (at least 1 for a non-empty one) plus 3 per input item. Deterministic, so tests can compute it. */
export function countInputTokens(body) {
  let n = 0;
  for (const t of inputTokenTexts(body)) if (t.length) n += Math.max(1, Math.ceil(t.length / 4));
  if (Array.isArray(body?.input)) n += 3 * body.input.length;
  return n;
}

/** Split a text into the content deltas the mock streams (words with their trailing space). */
export function splitDeltas(text) {
  if (text.length > 4096) {
    const out = [];
    for (let i = 0; i < text.length; i += 1024) out.push(text.slice(i, i + 1024));
    return out;
  }
  const parts = text.match(/\s*\S+\s*/g);
  return parts && parts.length ? parts : [text];
}

/** prompt_tokens the mock reports: ceil(chars/4) of all message texts, at least 1. */
export function promptTokens(body) {
  const msgs = Array.isArray(body?.messages) ? body.messages : [];
  let chars = 0;
  for (const m of msgs) chars += contentText(m?.content).length;
  return Math.max(1, Math.ceil(chars / 4));
}

/** Arguments JSON string of a mock tool call. */
export function toolArguments(body, toolName) {
  const msgs = Array.isArray(body?.messages) ? body.messages : [];
  let text = '';
  for (let i = msgs.length - 1; i >= 0; i--) {
    if (msgs[i] && msgs[i].role === 'user') { text = contentText(msgs[i].content); break; }
  }
  return JSON.stringify({ tool: toolName, query: text, n: 42, nested: { ok: true, list: [1, 2, 3] } });
}

/** Split tool-call arguments into the pieces the mock streams. */
export function splitArguments(args) {
  const out = [];
  for (let i = 0; i < args.length; i += 7) out.push(args.slice(i, i + 7));
  return out.length ? out : [''];
}

function hash32(s) {
  const h = crypto.createHash('sha256').update(s).digest();
  return h;
}

/** Deterministic embedding of a text (values are exact float32). */
export function embeddingOf(text, dims = 8) {
  const out = new Array(dims);
  let block = null;
  for (let i = 0; i < dims; i++) {
    if (i % 16 === 0) block = hash32(`${text}\u0000${i / 16}`);
    const v = block.readUInt16LE((i % 16) * 2) / 65535; // 0..1
    out[i] = Math.fround(v * 2 - 1);
  }
  return out;
}

export function float32ToBase64(arr) {
  const buf = Buffer.alloc(arr.length * 4);
  for (let i = 0; i < arr.length; i++) buf.writeFloatLE(arr[i], i * 4);
  return buf.toString('base64');
}

export const MODELS = [
  { id: 'gpt-4o-mini', object: 'model', created: 1721172741, owned_by: 'system' },
  { id: 'gpt-4o', object: 'model', created: 1715367049, owned_by: 'system' },
  { id: 'gpt-4.1', object: 'model', created: 1744316542, owned_by: 'system' },
  { id: 'o3-mini', object: 'model', created: 1737146383, owned_by: 'system' },
  { id: 'text-embedding-3-small', object: 'model', created: 1705948997, owned_by: 'system' },
  { id: 'text-embedding-3-large', object: 'model', created: 1705953180, owned_by: 'system' },
];

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

export function parseFaults(model, header) {
  const f = {};
  const tokens = [];
  for (const src of [model, header]) {
    if (typeof src === 'string' && src) tokens.push(...src.split(/[+,\s]+/));
  }
  for (const t0 of tokens) {
    const i = t0.indexOf('fault-');
    if (i < 0) continue;
    const t = t0.slice(i + 6);
    let m;
    if ((m = /^(\d{3})$/.exec(t))) f.status = Number(m[1]);
    else if (t === 'hang') f.hang = true;
    else if ((m = /^slow-first-byte-(\d+)$/.exec(t))) f.firstByteMs = Number(m[1]);
    else if ((m = /^trickle-(\d+)$/.exec(t))) f.trickleMs = Number(m[1]);
    else if ((m = /^stall-after-(\d+)$/.exec(t))) f.stallAfter = Number(m[1]);
    else if ((m = /^reset-after-(\d+)$/.exec(t))) f.resetAfter = Number(m[1]);
    else if ((m = /^truncate-after-(\d+)$/.exec(t))) f.truncateAfter = Number(m[1]);
    else if ((m = /^error-after-(\d+)$/.exec(t))) f.errorAfter = Number(m[1]);
    else if (t === 'malformed') f.malformed = true;
    else if (t === '200-error') f.okError = true;
    else if ((m = /^big-(\d+)$/.exec(t))) f.big = Number(m[1]);
    else if (t === 'parallel') f.parallel = true;
    else if ((m = /^(\d{3})-first-(\d+)$/.exec(t))) { f.firstStatus = Number(m[1]); f.firstN = Number(m[2]); }
    else if ((m = /^retry-after-ms-(\d+)$/.exec(t))) f.retryAfterMs = Number(m[1]);
    else if ((m = /^retry-after-(\d+)$/.exec(t))) f.retryAfter = Number(m[1]);
    else if (t === 'context') f.context = true;
    else if (t === 'content-filter') f.contentFilter = true;
    else if (t === 'stream-error-first') f.streamErrorFirst = true;
    else if (t === 'stream-empty') f.streamEmpty = true;
    else if ((m = /^slow-every-(\d+)-(\d+)$/.exec(t))) { f.slowEvery = Number(m[1]); f.slowEveryMs = Number(m[2]); }
    else if ((m = /^count-slow-(\d+)$/.exec(t))) f.countSlowMs = Number(m[1]);
    else if ((m = /^count-(\d{3})$/.exec(t))) f.countStatus = Number(m[1]);
  }
  return f;
}

/** The key of the fault-<status>-first-<n> counter of a request: its model string when that carries
 * the fault, else the x-mock-fault header's value. */
export function firstFaultKey(model, header) {
  for (const src of [model, header]) {
    if (typeof src === 'string' && /fault-\d{3}-first-\d+/.test(src)) return src;
  }
  return null;
}

/** OpenAI's answer to a prompt over the model's context window. */
export function contextLengthError(model = 'gpt-4o-mini') {
  void model;
  return errorBody(
    "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 tokens. Please reduce the length of the messages.",
    'invalid_request_error', 'messages', 'context_length_exceeded');
}

/** Azure OpenAI's answer to a prompt refused by its content filter. */
export function contentFilterError() {
  const e = errorBody(
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
    'invalid_request_error', 'prompt', 'content_filter');
  e.error.status = 400;
  e.error.innererror = {
    code: 'ResponsibleAIPolicyViolation',
    content_filter_result: {
      hate: { filtered: false, severity: 'safe' },
      jailbreak: { filtered: false, detected: false },
      self_harm: { filtered: false, severity: 'safe' },
      sexual: { filtered: false, severity: 'safe' },
      violence: { filtered: true, severity: 'high' },
    },
  };
  return e;
}

function errorBody(message, type, param = null, code = null) {
  return { error: { message, type, param, code } };
}

const STATUS_ERRORS = {
  400: () => errorBody("Invalid value for 'temperature': mock fault-400 (injected).", 'invalid_request_error', 'temperature', 'invalid_value'),
  401: () => errorBody('Incorrect API key provided: sk-mo****. You can find your API key at https://platform.openai.com/account/api-keys.', 'invalid_request_error', null, 'invalid_api_key'),
  403: () => errorBody('You are not allowed to sample from this model', 'invalid_request_error', null, 'model_not_allowed'),
  404: () => errorBody('The model `fault-404` does not exist or you do not have access to it.', 'invalid_request_error', null, 'model_not_found'),
  409: () => errorBody('Conflict (injected).', 'invalid_request_error', null, null),
  422: () => errorBody('Unprocessable (injected).', 'invalid_request_error', null, null),
  429: () => errorBody('Rate limit reached for gpt-4o-mini in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s.', 'requests', null, 'rate_limit_exceeded'),
  500: () => errorBody('The server had an error while processing your request. Sorry about that!', 'server_error', null, null),
  502: () => errorBody('Bad gateway.', 'server_error', null, null),
  503: () => errorBody('The engine is currently overloaded, please try again later.', 'server_error', null, null),
  504: () => errorBody('Gateway timeout.', 'server_error', null, null),
};

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The machine's monotonic clock in fractional ms (the same clock in every process on Linux). */
export const monotonicMs = () => Number(process.hrtime.bigint()) / 1e6;

export function createMock(opts = {}) {
  const key = opts.key ?? 'sk-mock';
  const maxLog = opts.maxLog ?? 10000;
  const requests = [];
  const stats = {
    connections_open: 0,
    connections_total: 0,
    requests_total: 0,
    requests_in_flight: 0,
    requests_aborted: 0, // client went away before a non-stream answer was complete
    streams_started: 0,
    streams_completed: 0,
    streams_aborted: 0, // client closed the socket before the stream finished
    streams_reset: 0, // the mock destroyed the socket on purpose (fault-reset-after)
    streams_stalled: 0, // streams currently stalled on purpose (fault-stall-after)
    by_path: {},
  };
  const sockets = new Set();
  const timers = new Set();

  function later(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(() => { timers.delete(t); resolve(); }, ms);
      timers.add(t);
    });
  }

  function send(res, status, obj, extraHeaders = {}) {
    if (res.destroyed || res.writableEnded) return;
    const body = typeof obj === 'string' ? obj : JSON.stringify(obj);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'openai-processing-ms': '1',
      'openai-version': '2020-10-01',
      'x-request-id': `req_${crypto.randomBytes(12).toString('hex')}`,
      ...extraHeaders,
    });
    res.end(body);
  }

  function sendError(res, status, body, faults = {}) {
    const extra = {};
    if (faults.retryAfterMs !== undefined) extra['retry-after-ms'] = String(faults.retryAfterMs);
    else if (faults.retryAfter !== undefined) extra['retry-after'] = String(faults.retryAfter);
    else if (status === 429) extra['retry-after'] = '1';
    send(res, status, body, extra);
  }

  // fault-<status>-first-<n>: requests seen per key
  const firstCounts = new Map();
  const slowCounters = new Map(); // fault-slow-every-<n>-<ms>: requests seen per model string

  // ---- chat ---------------------------------------------------------------------------------
  async function chat(req, res, body, faults, ctx) {
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      return sendError(res, 400, errorBody('We could not parse the JSON body of your request.', 'invalid_request_error'));
    }
    if (body.model === undefined) {
      return sendError(res, 400, errorBody("you must provide a model parameter", 'invalid_request_error', null, null));
    }
    if (!Array.isArray(body.messages)) {
      return sendError(res, 400, errorBody("Missing required parameter: 'messages'.", 'invalid_request_error', 'messages', 'missing_required_parameter'));
    }
    if (body.messages.length === 0) {
      return sendError(res, 400, errorBody("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", 'invalid_request_error', 'messages', 'empty_array'));
    }
    const stream = body.stream === true;
    if (!stream && body.stream_options != null) {
      return sendError(res, 400, errorBody("The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'invalid_request_error', 'stream_options', null));
    }
    const model = String(body.model);
    const id = `chatcmpl-${crypto.randomBytes(15).toString('base64url')}`;
    const created = Math.floor(Date.now() / 1000);
    const tools = Array.isArray(body.tools) ? body.tools.filter((t) => t && t.type === 'function' && t.function) : [];
    let calls = [];
    if (tools.length && body.tool_choice !== 'none') {
      const last = body.messages[body.messages.length - 1];
      if (!(last && last.role === 'tool')) {
        let chosen = tools;
        const tc = body.tool_choice;
        if (tc && typeof tc === 'object' && tc.function && tc.function.name) {
          chosen = tools.filter((t) => t.function.name === tc.function.name);
          if (!chosen.length) chosen = tools;
        }
        const n = faults.parallel && body.parallel_tool_calls !== false ? Math.min(2, chosen.length) : 1;
        calls = chosen.slice(0, n).map((t, i) => ({
          id: `call_${crypto.createHash('sha1').update(`${id}${i}`).digest('hex').slice(0, 24)}`,
          type: 'function',
          function: { name: t.function.name, arguments: toolArguments(body, t.function.name) },
        }));
      }
    }
    const text = faults.big !== undefined ? 'x'.repeat(faults.big) : replyText(body);
    const deltas = calls.length ? [] : splitDeltas(text);
    const argPieces = calls.map((c) => splitArguments(c.function.arguments));
    const completionTokens = calls.length ? argPieces.reduce((a, p) => a + p.length, 0) + calls.length : deltas.length;
    const pTokens = promptTokens(body);
    const usage = {
      prompt_tokens: pTokens,
      completion_tokens: completionTokens,
      total_tokens: pTokens + completionTokens,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    };
    const finish = calls.length ? 'tool_calls' : 'stop';

    if (!stream) {
      if (faults.malformed) {
        return send(res, 200, `{"id":"${id}","object":"chat.completion","created":${created},"model":"${model}","choices":[{"index":0,"message":{"role":"assistant","content":"trunc`);
      }
      const message = calls.length
        ? { role: 'assistant', content: null, tool_calls: calls, refusal: null, annotations: [] }
        : { role: 'assistant', content: text, refusal: null, annotations: [] };
      return send(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
        usage,
        service_tier: 'default',
        system_fingerprint: 'fp_mock',
      });
    }

    // ---- streaming
    const includeUsage = !!(body.stream_options && body.stream_options.include_usage === true);
    const chunk = (delta, finishReason = null, extra = {}) => {
      const c = {
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        service_tier: 'default',
        system_fingerprint: 'fp_mock',
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      };
      if (includeUsage) c.usage = null;
      return Object.assign(c, extra);
    };
    const events = [];
    if (calls.length) {
      calls.forEach((c, i) => {
        const pieces = argPieces[i];
        const first = {
          tool_calls: [{ index: i, id: c.id, type: 'function', function: { name: c.function.name, arguments: '' } }],
        };
        if (i === 0) events.push(chunk({ role: 'assistant', content: null, ...first, refusal: null }));
        else events.push(chunk(first));
        for (const p of pieces) events.push(chunk({ tool_calls: [{ index: i, function: { arguments: p } }] }));
      });
    } else {
      events.push(chunk({ role: 'assistant', content: '', refusal: null }));
      for (const d of deltas) events.push(chunk({ content: d }));
    }
    events.push(chunk({}, finish));
    if (includeUsage) {
      const u = { id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: 'fp_mock', choices: [], usage };
      events.push(u);
    }

    stats.streams_started++;
    ctx.stream = true;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'openai-processing-ms': '1',
      'openai-version': '2020-10-01',
      'x-request-id': `req_${crypto.randomBytes(12).toString('hex')}`,
    });
    if (typeof res.flushHeaders === 'function') res.flushHeaders();

    let lastWrite = Promise.resolve();
    const write = (s) => {
      if (!res.destroyed && !res.writableEnded) lastWrite = new Promise((r) => res.write(s, () => r()));
    };
    if (faults.streamErrorFirst || faults.streamEmpty) {
      if (faults.streamErrorFirst) {
        write(`data: ${JSON.stringify(errorBody('The server had an error while processing your request. Sorry about that!', 'server_error'))}\n\n`);
      }
      ctx.done = true;
      res.end();
      return;
    }
    let sent = 0;
    for (const ev of events) {
      if (res.destroyed || ctx.closed) return;
      if (faults.stallAfter !== undefined && sent >= faults.stallAfter) {
        stats.streams_stalled++;
        ctx.stalled = true;
        return; // never writes again; the socket stays open until the client closes it
      }
      if (faults.resetAfter !== undefined && sent >= faults.resetAfter) {
        stats.streams_reset++;
        ctx.selfDestroyed = true;
        await lastWrite; // make sure the n chunks really left before the reset
        await later(20);
        req.socket.destroy();
        return;
      }
      if (faults.truncateAfter !== undefined && sent >= faults.truncateAfter) {
        ctx.done = true;
        res.end();
        return;
      }
      if (faults.errorAfter !== undefined && sent >= faults.errorAfter) {
        write(`data: ${JSON.stringify(errorBody('The server had an error while processing your request. Sorry about that!', 'server_error'))}\n\n`);
        ctx.done = true;
        res.end();
        return;
      }
      if (faults.trickleMs) await later(faults.trickleMs);
      if (res.destroyed || ctx.closed) return;
      if (faults.malformed && sent === 1) write('data: {"id":"broken", "choices": [\n\n');
      write(`data: ${JSON.stringify(ev)}\n\n`);
      sent++;
    }
    if (faults.trickleMs) await later(faults.trickleMs);
    if (res.destroyed || ctx.closed) return;
    write('data: [DONE]\n\n');
    ctx.done = true;
    stats.streams_completed++;
    res.end();
  }

  // ---- embeddings ---------------------------------------------------------------------------
  function embeddings(req, res, body) {
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      return sendError(res, 400, errorBody('We could not parse the JSON body of your request.', 'invalid_request_error'));
    }
    if (body.model === undefined) {
      return sendError(res, 400, errorBody('you must provide a model parameter', 'invalid_request_error'));
    }
    const input = body.input;
    let items;
    if (typeof input === 'string') items = [input];
    else if (Array.isArray(input) && input.length && input.every((x) => typeof x === 'string')) items = input;
    else if (Array.isArray(input) && input.length && input.every((x) => Number.isInteger(x))) items = [input.join(' ')];
    else if (Array.isArray(input) && input.length && input.every((x) => Array.isArray(x) && x.every(Number.isInteger))) items = input.map((x) => x.join(' '));
    else if (input === undefined) {
      return sendError(res, 400, errorBody("Missing required parameter: 'input'.", 'invalid_request_error', 'input', 'missing_required_parameter'));
    } else {
      return sendError(res, 400, errorBody("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", 'invalid_request_error', null, null));
    }
    const fmt = body.encoding_format ?? 'float';
    if (fmt !== 'float' && fmt !== 'base64') {
      return sendError(res, 400, errorBody(`Invalid value for 'encoding_format': '${fmt}'. Expected 'float' or 'base64'.`, 'invalid_request_error', 'encoding_format', 'invalid_value'));
    }
    const dims = Number.isInteger(body.dimensions) && body.dimensions > 0 ? Math.min(body.dimensions, 4096) : 8;
    let tokens = 0;
    const data = items.map((t, index) => {
      tokens += Math.max(1, Math.ceil(t.length / 4));
      const e = embeddingOf(t, dims);
      return { object: 'embedding', index, embedding: fmt === 'base64' ? float32ToBase64(e) : e };
    });
    send(res, 200, { object: 'list', data, model: String(body.model), usage: { prompt_tokens: tokens, total_tokens: tokens } });
  }

  // ---- request dispatch ---------------------------------------------------------------------
  async function handle(req, res, rawBody) {
    const url = new URL(req.url, 'http://mock');
    let path = url.pathname.replace(/\/+$/, '') || '/';

    // introspection, no auth
    if (path === '/__requests') {
      if (req.method === 'DELETE') { requests.length = 0; return send(res, 200, { ok: true }); }
      return send(res, 200, requests);
    }
    if (path === '/__stats') {
      if (req.method === 'DELETE') {
        firstCounts.clear();
        for (const k of Object.keys(stats)) if (typeof stats[k] === 'number' && !['connections_open', 'requests_in_flight', 'streams_stalled'].includes(k)) stats[k] = 0;
        stats.by_path = {};
        return send(res, 200, { ok: true });
      }
      return send(res, 200, stats);
    }
    if (path === '/__faults') {
      if (req.method === 'DELETE') { firstCounts.clear(); return send(res, 200, { ok: true }); }
      return send(res, 200, { first: Object.fromEntries(firstCounts) });
    }
    if (path === '/__health') return send(res, 200, { ok: true });

    stats.requests_total++;
    stats.by_path[path] = (stats.by_path[path] || 0) + 1;

    let body;
    let parseError = false;
    const ct = String(req.headers['content-type'] || '');
    if (rawBody.length) {
      try { body = JSON.parse(rawBody.toString('utf8')); } catch { parseError = true; }
    }
    const entry = {
      time: Date.now(),
      t: monotonicMs(),
      method: req.method,
      path: url.pathname,
      query: url.search,
      headers: req.headers,
      body: parseError ? null : body ?? null,
    };
    if (parseError) entry.raw = rawBody.toString('utf8').slice(0, 65536);
    requests.push(entry);
    if (requests.length > maxLog) requests.splice(0, requests.length - maxLog);

    // auth
    const auth = req.headers.authorization;
    if (auth !== `Bearer ${key}`) {
      const msg = auth
        ? `Incorrect API key provided: ${String(auth).replace(/^Bearer\s+/i, '').slice(0, 6)}****. You can find your API key at https://platform.openai.com/account/api-keys.`
        : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (i.e. providing your API key as the username and no password) when using HTTPS.";
      return sendError(res, 401, errorBody(msg, 'invalid_request_error', null, 'invalid_api_key'));
    }

    if (path.startsWith('/v1/')) path = path.slice(3);
    else if (path === '/v1') path = '/';

    const bodyModel = body && typeof body === 'object' ? body.model : undefined;
    const faults = parseFaults(bodyModel, req.headers['x-mock-fault']);
    const ctx = res.__ctx;
    if (faults.firstStatus !== undefined) {
      // counted when the request arrives (before any delay), so the order of arrival decides
      const k = firstFaultKey(typeof bodyModel === 'string' ? bodyModel : undefined, req.headers['x-mock-fault']);
      const n = (firstCounts.get(k) || 0) + 1;
      firstCounts.set(k, n);
      entry.fault_seq = n;
      if (n <= faults.firstN) faults.status = faults.firstStatus;
    }

    if (faults.hang) return; // never answer
    if (faults.slowEvery) {
      const key = String(bodyModel);
      const n = (slowCounters.get(key) || 0) + 1;
      slowCounters.set(key, n);
      if (n % faults.slowEvery === 0) {
        await later(faults.slowEveryMs);
        if (res.destroyed || ctx.closed) return;
      }
    }
    if (faults.firstByteMs) {
      await later(faults.firstByteMs);
      if (res.destroyed || ctx.closed) return;
    }
    if (faults.status) {
      const mk = STATUS_ERRORS[faults.status] || (() => errorBody(`Injected status ${faults.status}.`, faults.status >= 500 ? 'server_error' : 'invalid_request_error'));
      return sendError(res, faults.status, mk(), faults);
    }
    if (faults.context) return sendError(res, 400, contextLengthError(), faults);
    if (faults.contentFilter) return sendError(res, 400, contentFilterError(), faults);
    if (faults.okError) {
      return send(res, 200, errorBody('The server had an error while processing your request. Sorry about that!', 'server_error', null, null));
    }

    if (parseError && req.method === 'POST') {
      return sendError(res, 400, errorBody(
        `We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)`,
        'invalid_request_error'));
    }
    void ct;

    if (path === '/chat/completions') {
      if (req.method !== 'POST') return sendError(res, 405, errorBody(`Invalid method for URL (${req.method} ${url.pathname})`, 'invalid_request_error'));
      return chat(req, res, body, faults, ctx);
    }
    if (path === '/embeddings') {
      if (req.method !== 'POST') return sendError(res, 405, errorBody(`Invalid method for URL (${req.method} ${url.pathname})`, 'invalid_request_error'));
      if (faults.malformed) return send(res, 200, '{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,');
      return embeddings(req, res, body);
    }
    if (path === '/responses/input_tokens') {
      if (req.method !== 'POST') return sendError(res, 405, errorBody(`Invalid method for URL (${req.method} ${url.pathname})`, 'invalid_request_error'));
      if (!body || typeof body !== 'object' || Array.isArray(body)) return sendError(res, 400, errorBody('The request body must be a JSON object.', 'invalid_request_error'));
      if (body.messages !== undefined) return sendError(res, 400, errorBody("Unknown parameter: 'messages'.", 'invalid_request_error', 'messages', 'unknown_parameter'));
      if (typeof body.model !== 'string' || !body.model) return sendError(res, 400, errorBody("Missing required parameter: 'model'.", 'invalid_request_error', 'model', 'missing_required_parameter'));
      if (body.input !== undefined && typeof body.input !== 'string' && !Array.isArray(body.input)) return sendError(res, 400, errorBody("Invalid type for 'input': expected a string or an array of input items.", 'invalid_request_error', 'input', 'invalid_type'));
      if (faults.malformed) return send(res, 200, '{"object":"response.input_tokens","input_tok');
      if (faults.countSlowMs) {
        await later(faults.countSlowMs);
        if (res.destroyed || ctx.closed) return;
      }
      if (faults.countStatus) return sendError(res, faults.countStatus, errorBody(`Injected count status ${faults.countStatus}.`, 'server_error'));
      return send(res, 200, { object: 'response.input_tokens', input_tokens: countInputTokens(body) });
    }
    if (path === '/models') {
      if (req.method !== 'GET') return sendError(res, 405, errorBody(`Invalid method for URL (${req.method} ${url.pathname})`, 'invalid_request_error'));
      if (faults.malformed) return send(res, 200, '{"object":"list","data":[{"id":"gpt');
      return send(res, 200, { object: 'list', data: MODELS });
    }
    if (path.startsWith('/models/')) {
      const id = decodeURIComponent(path.slice('/models/'.length));
      const m = MODELS.find((x) => x.id === id);
      if (!m) return sendError(res, 404, errorBody(`The model '${id}' does not exist`, 'invalid_request_error', 'model', 'model_not_found'));
      return send(res, 200, m);
    }
    return sendError(res, 404, errorBody(`Invalid URL (${req.method} ${url.pathname})`, 'invalid_request_error'));
  }

  const server = http.createServer((req, res) => {
    const ctx = { closed: false, done: false, stream: false, stalled: false, selfDestroyed: false };
    res.__ctx = ctx;
    const introspect = String(req.url).startsWith('/__');
    if (!introspect) stats.requests_in_flight++;
    res.on('close', () => {
      if (!introspect) stats.requests_in_flight--;
      ctx.closed = true;
      if (ctx.stalled) stats.streams_stalled--;
      const finished = res.writableFinished || ctx.done;
      if (!finished && !ctx.selfDestroyed) {
        if (ctx.stream) stats.streams_aborted++;
        else if (!introspect) stats.requests_aborted++;
      }
    });
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks)).catch((e) => {
        process.stderr.write(`openai_mock: handler error: ${e && e.stack}\n`);
        if (!res.headersSent) send(res, 500, errorBody('mock internal error', 'server_error'));
        else res.destroy();
      });
    });
    req.on('error', () => {});
  });
  server.keepAliveTimeout = 30000;
  server.headersTimeout = 35000;
  server.requestTimeout = 0; // fault-hang must really hang
  server.on('connection', (sock) => {
    stats.connections_open++;
    stats.connections_total++;
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.on('close', () => { stats.connections_open--; sockets.delete(sock); });
  });

  return {
    server,
    stats,
    requests,
    listen(port = 0, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve(server.address().port));
      });
    },
    close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

function parseArgs(argv) {
  const o = { port: 0, host: '127.0.0.1', key: 'sk-mock', maxLog: 10000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    if (a === '--port') o.port = Number(v());
    else if (a === '--host') o.host = v();
    else if (a === '--key') o.key = v();
    else if (a === '--max-log') o.maxLog = Number(v());
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: openai_mock.mjs [--port 0] [--host 127.0.0.1] [--key sk-mock] [--max-log 10000]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error('bad --port');
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`openai_mock: ${e.message}\n`);
    process.exit(2);
  }
  const mock = createMock({ key: o.key, maxLog: o.maxLog });
  mock.listen(o.port, o.host).then(
    (port) => process.stdout.write(`${JSON.stringify({ port })}\n`),
    (e) => { process.stderr.write(`openai_mock: listen failed: ${e.message}\n`); process.exit(1); },
  );
  const stop = () => { mock.close().finally(() => process.exit(0)); setTimeout(() => process.exit(0), 500).unref(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // die with the parent if stdin is a pipe that closes (e.g. test runner killed)
  if (process.env.OPENAI_MOCK_EXIT_ON_STDIN_EOF === '1') {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }
}

void sleep;
