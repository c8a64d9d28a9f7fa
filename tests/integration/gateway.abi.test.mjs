// The plugin ABI, one host-call family per test plugin (tests/plugins/abi_*.c, Redis's habit),
// loaded into a real gateway and driven over real sockets: the official openai SDK or raw HTTP
// as the client, tests/mock/openai_mock.mjs as the upstream, a small node server for call-outs.
//
//   abi_request (+ abi_request_peer)  request/response hooks, headers, bodies, text view, respond,
//                                     respond_error, ERROR, meta across instances, logs, metrics
//   abi_async                         http_call, timer, cancel, resume, store_*; exactly-once
//                                     callbacks and CANCELLED-before-on_done, read from stderr
//   abi_stream                        event kinds, event_set_text, DROP, emit_event, end_stream
//
// Plugins are loaded from AIGW_TEST_PLUGIN_DIR (default: test-plugins beside AIGW_PLUGIN_DIR).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import OpenAI from 'openai';
import {
  useGateway, skipUnlessGateway, AIGW_TEST_PLUGIN_DIR, AIGW_PLUGIN_DIR, ADMIN_TOKEN, CLIENT_KEY,
  accessLogFor, closedPort, readStream, rawRequest, openAIError, sleep, until,
} from './lib/harness.mjs';
import { replyText, splitDeltas } from '../mock/openai_mock.mjs';

function skipReason() {
  const s = skipUnlessGateway();
  if (s) return s;
  for (const p of ['abi_request', 'abi_request_peer', 'abi_async', 'abi_stream']) {
    if (!fs.existsSync(path.join(AIGW_TEST_PLUGIN_DIR, `${p}.so`))) {
      return `test plugin ${p}.so not found in ${AIGW_TEST_PLUGIN_DIR} (build the tree, or set AIGW_TEST_PLUGIN_DIR) — ABI tests skipped`;
    }
  }
  return false;
}
const skip = skipReason();

const PLUGINS = [
  { name: 'abi_async' }, // 20
  { name: 'abi_stream' }, // 15
  { name: 'abi_request', config: { tag: 'a' } }, // 10
  { name: 'abi_request_peer', config: { tag: 'b', actions: false } }, // 5
];

/** The default config plus the test plugins on every chat route and three extra routes. */
function abiConfig(downPort) {
  return (cfg) => {
    cfg.plugin_paths = [AIGW_PLUGIN_DIR, AIGW_TEST_PLUGIN_DIR];
    cfg.drain_timeout_ms = 5000;
    cfg.providers.down = { plugin: 'openai', config: { base_url: `http://127.0.0.1:${downPort}/v1`, api_key: 'sk-x' } };
    const chat = cfg.routes.find((r) => r.name === 'chat');
    chat.plugins = PLUGINS;
    const route = (name, prefix, provider, plugins) => ({
      name,
      match: { methods: ['POST'], path: `${prefix}/v1/chat/completions` },
      api: 'chat',
      targets: [{ provider }],
      timeouts: chat.timeouts,
      plugins,
    });
    cfg.routes.push(
      // the same two instances, priorities overridden in the route: the order flips
      route('flip', '/flip', 'up', [
        { name: 'abi_request', config: { tag: 'a' }, priority: 10 },
        { name: 'abi_request_peer', config: { tag: 'b', actions: false }, priority: 30 },
      ]),
      route('down', '/down', 'down', PLUGINS), // upstream refuses connections
      route('local', '/local', 'local', PLUGINS), // the in-process mock provider (provider_reply)
      { name: 'messages', match: { methods: ['POST'], path: '/v1/messages' }, api: 'messages', targets: [{ provider: 'local' }], plugins: PLUGINS },
    );
    return cfg;
  };
}

// ---------------------------------------------------------------------------------------------
// a tiny call-out target for abi_async
// ---------------------------------------------------------------------------------------------
function startCalloutServer() {
  const state = { hits: [], inflight: 0, peak: 0, sockets: new Set(), closedHang: 0, hangArrived: 0, server: null, port: 0 };
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const u = new URL(req.url, 'http://x');
      state.hits.push({ method: req.method, path: u.pathname, query: u.search, headers: req.headers, body });
      state.inflight++;
      state.peak = Math.max(state.peak, state.inflight);
      let finished = false;
      const finish = () => { if (!finished) { finished = true; state.inflight--; } };
      res.on('close', finish);
      const send = (status, obj, extra = {}) => {
        if (res.destroyed) return;
        const b = typeof obj === 'string' ? obj : JSON.stringify(obj);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b), 'x-echo-server': 'yes', ...extra });
        res.end(b);
      };
      if (u.pathname === '/echo') return send(200, { method: req.method, query: u.search, headers: req.headers, body });
      if (u.pathname === '/status') return send(Number(u.searchParams.get('code') || 200), { status: true });
      if (u.pathname === '/slow') {
        const t = setTimeout(() => send(200, { slow: Number(u.searchParams.get('ms')) }), Number(u.searchParams.get('ms') || 100));
        res.on('close', () => clearTimeout(t));
        return undefined;
      }
      if (u.pathname === '/hang') {
        state.hangArrived++;
        req.socket.once('close', () => { state.closedHang++; });
        return undefined; // never answers
      }
      if (u.pathname === '/big') return send(200, 'x'.repeat(100000));
      return send(404, { error: 'no such path' });
    });
  });
  server.on('connection', (s) => { state.sockets.add(s); s.once('close', () => state.sockets.delete(s)); });
  state.server = server;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    state.port = server.address().port;
    state.url = `http://127.0.0.1:${state.port}`;
    state.stop = () => new Promise((r) => {
      for (const s of state.sockets) s.destroy();
      server.close(() => r());
    });
    resolve(state);
  }));
}

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------
const userMsg = (content, model = 'gpt-4o-mini') => ({ model, messages: [{ role: 'user', content }] });
let traceSeq = 0;
const newTrace = (p) => `${p}-${process.pid}-${++traceSeq}`;

/** POST a chat request with fetch; returns { status, headers (Headers), json, text, ms }. */
async function post(gw, headers = {}, body = userMsg('hello'), prefix = '') {
  const t0 = Date.now();
  const r = await fetch(`${gw.url}${prefix}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, json, text, ms: Date.now() - t0 };
}

async function metricsText(gw) {
  const r = await gw.admin('/metrics', { token: ADMIN_TOKEN });
  return r.text();
}

/** Sum of the samples of a metric whose labels include all of `labels`. */
function metricValue(text, name, labels = {}) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) sum += Number(line.trim().split(/\s+/).pop());
  }
  return sum;
}

/** The "ABI-TRACE id=<id> seq=... calls=N dones=N" summary abi_async logs in on_done. */
async function traceOf(gw, id, timeoutMs = 5000) {
  const line = await gw.waitForStderr(new RegExp(`ABI-TRACE id=${id} `), timeoutMs);
  const m = /seq=(\S+) calls=(\d+) dones=(\d+)/.exec(line);
  assert.ok(m, `trace line: ${line}`);
  return { seq: m[1].split(','), calls: Number(m[2]), dones: Number(m[3]), line };
}

/** Every "ABI-EV id=<id> ev=<e>" line, in order. */
function eventsOf(gw, id) {
  const re = new RegExp(`ABI-EV id=${id} ev=(\\S+)`);
  return gw.stderrLines().map((l) => re.exec(l)).filter(Boolean).map((m) => m[1]);
}

async function streamText(stream) {
  let text = '';
  for await (const chunk of stream) text += chunk.choices?.[0]?.delta?.content ?? '';
  return text;
}

// =============================================================================================
describe('ABI: test plugins loaded into the gateway', { skip }, () => {
  let callout;
  let downPort;
  before(async () => {
    callout = await startCalloutServer();
    downPort = await closedPort();
  });
  const ctx = useGateway({ config: (cfg) => abiConfig(downPort)(cfg) });
  after(async () => { await callout?.stop(); });

  // -------------------------------------------------------------------------------------------
  describe('abi_request: request and response hooks', () => {
    test('reads method, path, headers; header edits reach the upstream; response header edits reach the client', async () => {
      await ctx.mock.clearRequests();
      const r = await post(ctx.gw, {
        'x-abi-echo': 'hello there', 'x-abi-remove-me': 'secret', 'x-abi-replace-me': 'orig',
      }, userMsg('hi'), '');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-abi-method'), 'POST');
      assert.equal(r.headers.get('x-abi-path'), '/v1/chat/completions');
      assert.equal(r.headers.get('x-abi-echo-back'), 'hello there');
      assert.equal(r.headers.get('x-abi-remove-check'), 'notfound', 'header() after removal is NOTFOUND');
      assert.equal(r.headers.get('x-abi-bad-header-rc'), '-1', 'a CR/LF header value is refused with AIGW_E_INVAL');
      assert.equal(r.headers.get('x-abi-bad'), null);
      assert.ok(Number(r.headers.get('x-abi-nheaders')) >= 5, 'header_at iterates the client headers');
      // upstream request
      const reqs = await ctx.mock.requests();
      assert.equal(reqs.length, 1);
      const h = reqs[0].headers;
      assert.equal(h['x-abi-injected'], 'yes');
      assert.equal(h['x-abi-multi'], 'one, two', 'add_header adds a second value');
      assert.equal(h['x-abi-remove-me'], undefined, 'removed header does not reach the upstream');
      assert.equal(h['x-abi-replace-me'], 'replaced');
      assert.equal(h['x-abi-echo'], 'hello there', 'untouched headers pass');
      // client response (on_response)
      assert.equal(r.headers.get('x-abi-from-request'), 'a');
      assert.equal(r.headers.get('x-abi-from-response'), '200', 'status(CLIENT_RESPONSE) in on_response');
      assert.equal(r.headers.get('openai-processing-ms'), null, 'on_response removed an upstream header');
      assert.equal(r.headers.get('x-abi-resp-multi'), 'one, two');
      assert.equal(r.json.choices[0].message.content, 'You said: hi');
    });

    test('path() includes the query string', async () => {
      const r = await fetch(`${ctx.gw.url}/v1/chat/completions?debug=1&x=y`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(userMsg('q')),
      });
      await r.arrayBuffer();
      assert.equal(r.headers.get('x-abi-path'), '/v1/chat/completions?debug=1&x=y');
    });

    test('body JSON edits (model, prepended system message) reach the upstream; response JSON edit reaches the client', async () => {
      await ctx.mock.clearRequests();
      const { data, response } = await ctx.client.chat.completions.create(
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'edit me' }] },
        { headers: { 'x-abi-set-model': 'gpt-4o-abi-edited', 'x-abi-system': 'Be "terse".', 'x-abi-resp-edit': '1' } },
      ).withResponse();
      const reqs = await ctx.mock.requests();
      assert.equal(reqs.length, 1);
      const body = reqs[0].body;
      assert.equal(body.model, 'gpt-4o-abi-edited');
      assert.deepEqual(body.messages[0], { role: 'system', content: 'Be "terse".' });
      assert.deepEqual(body.messages[1], { role: 'user', content: 'edit me' });
      assert.equal(body.messages.length, 2);
      assert.equal(data.model, 'gpt-4o-abi-edited', 'the mock answers for the edited model');
      assert.equal(data.abi_note, 'edited', 'CLIENT_RESPONSE body edit + body_changed');
      assert.equal(response.headers.get('x-abi-from-request'), 'a');
    });

    test('text view: text_count/text_get/text_set redact a word in user messages only (string and parts content)', async () => {
      await ctx.mock.clearRequests();
      const messages = [
        { role: 'system', content: 'the secret system prompt' },
        { role: 'user', content: 'my secret is secret' },
        { role: 'assistant', content: 'no secret here' },
        { role: 'user', content: [{ type: 'text', text: 'part with secret' }, { type: 'text', text: 'clean part' }] },
      ];
      const { data, response } = await ctx.client.chat.completions.create(
        { model: 'gpt-4o-mini', messages }, { headers: { 'x-abi-redact': 'secret' } },
      ).withResponse();
      assert.equal(response.headers.get('x-abi-redacted'), '2');
      const sent = (await ctx.mock.requests())[0].body.messages;
      assert.equal(sent[0].content, 'the secret system prompt', 'system text untouched');
      assert.equal(sent[1].content, 'my [redacted] is [redacted]');
      assert.equal(sent[2].content, 'no secret here', 'assistant text untouched');
      assert.deepEqual(sent[3].content, [{ type: 'text', text: 'part with [redacted]' }, { type: 'text', text: 'clean part' }]);
      assert.ok(!data.choices[0].message.content.includes('secret'), data.choices[0].message.content);
    });

    test('text view over an Anthropic-format request: system, user blocks and tool_result texts, with roles', async () => {
      const body = {
        model: 'claude-x', max_tokens: 50,
        system: [{ type: 'text', text: 'sys one' }],
        messages: [
          { role: 'user', content: 'weather?' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'w', input: {} }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'rainy' }] }, { type: 'text', text: 'and now?' }] },
        ],
      };
      const r = await fetch(`${ctx.gw.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-abi-text-roles': '1', 'x-abi-redact': 'now' }, body: JSON.stringify(body) });
      assert.equal(r.status, 200, await r.clone().text());
      assert.equal(r.headers.get('x-abi-text-roles'), 'system:sys one|user:weather?|tool:rainy|user:and [redacted]?', 'listed after the redaction ran');
      assert.equal(r.headers.get('x-abi-redacted'), '1');
      const j = await r.json();
      assert.equal(j.type, 'message');
      assert.match(j.content[0].text, /and \[redacted\]\?/, 'the redacted text is what the provider saw');
    });

    test('respond + STOP: local answer, upstream not called, lower-priority plugin skipped, response hooks still run', async () => {
      await ctx.mock.clearRequests();
      const { data, response } = await ctx.client.chat.completions.create(
        userMsg('local please'), { headers: { 'x-abi-respond': '200' } },
      ).withResponse();
      assert.equal(data.choices[0].message.content, 'local answer from a');
      assert.equal((await ctx.mock.requests()).length, 0, 'upstream not called');
      assert.equal(response.headers.get('x-abi-order'), 'a><a', 'b (priority 5) never ran; a\'s on_response did');
      assert.equal(response.headers.get('x-abi-from-request'), 'a');
      assert.equal(response.headers.get('x-abi-from-response'), '200');
    });

    test('respond + CONTINUE counts as STOP', async () => {
      await ctx.mock.clearRequests();
      const r = await post(ctx.gw, { 'x-abi-respond-continue': '201' });
      assert.equal(r.status, 201);
      assert.equal(r.json.choices[0].message.content, 'local answer from a');
      assert.equal(r.headers.get('x-abi-order'), 'a><a');
      assert.equal((await ctx.mock.requests()).length, 0);
    });

    test('respond_error: OpenAI-shaped error with the given status; the SDK maps it to the right class', async () => {
      const cases = [
        [400, 'invalid_request_error', OpenAI.BadRequestError],
        [401, 'authentication_error', OpenAI.AuthenticationError],
        [403, 'permission_error', OpenAI.PermissionDeniedError],
        [404, 'not_found_error', OpenAI.NotFoundError],
        [422, 'invalid_request_error', OpenAI.UnprocessableEntityError],
        [429, 'rate_limit_error', OpenAI.RateLimitError],
        [503, 'service_unavailable_error', OpenAI.InternalServerError],
      ];
      await ctx.mock.clearRequests();
      for (const [status, type, Cls] of cases) {
        await assert.rejects(
          ctx.client.chat.completions.create(userMsg('no'), { headers: { 'x-abi-error': `${status}:${type}` } }),
          (e) => {
            assert.ok(e instanceof Cls, `${status}: got ${e?.constructor?.name} ${e?.status}`);
            assert.equal(e.status, status);
            assert.equal(e.error?.type, type);
            assert.equal(e.error?.message, 'abi_request refused the request');
            assert.equal(e.headers.get('x-abi-from-request'), 'a', `${status}: request-phase header on the error`);
            assert.equal(e.headers.get('x-abi-from-response'), String(status), `${status}: on_response ran`);
            assert.ok(e.headers.get('x-request-id'));
            return true;
          },
        );
      }
      assert.equal((await ctx.mock.requests()).length, 0);
    });

    test('ERROR → 500 in OpenAI shape (or the plugin\'s own respond_error), counted in aigw_plugin_errors_total{plugin}', async () => {
      const m0 = metricValue(await metricsText(ctx.gw), 'aigw_plugin_errors_total', { plugin: 'abi_request' });
      let r = await post(ctx.gw, { 'x-abi-fail': '1' });
      assert.equal(r.status, 500);
      assert.equal(openAIError(r.json).type, 'server_error');
      assert.equal(r.headers.get('x-abi-from-request'), 'a');
      r = await post(ctx.gw, { 'x-abi-fail': '503' });
      assert.equal(r.status, 503, 'respond_error before ERROR wins');
      assert.equal(openAIError(r.json).message, 'abi_request failed with its own error');
      r = await post(ctx.gw, { 'x-abi-fail-response': '1' });
      assert.equal(r.status, 500, 'ERROR from on_response');
      openAIError(r.json);
      await assert.rejects(ctx.client.chat.completions.create(userMsg('x'), { headers: { 'x-abi-fail': '1' } }),
        (e) => e instanceof OpenAI.InternalServerError && e.status === 500);
      const m1 = metricValue(await metricsText(ctx.gw), 'aigw_plugin_errors_total', { plugin: 'abi_request' });
      assert.equal(m1 - m0, 4, `plugin error counter went ${m0} → ${m1}`);
      await ctx.gw.waitForStderr(/failing on purpose/);
    });

    test('priorities: higher runs first on the request, reverse on the response; meta flows between instances', async () => {
      let r = await post(ctx.gw, {}, userMsg('order'));
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-abi-order'), 'a>b><b<a');
      assert.equal(r.headers.get('x-abi-b-saw-first'), 'a', 'b read the meta a set');
      assert.equal(r.headers.get('x-abi-a-saw-first'), null);
      // the route overrides b's priority to 30: the order flips
      r = await post(ctx.gw, {}, userMsg('order'), '/flip');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-abi-order'), 'b>a><a<b');
      assert.equal(r.headers.get('x-abi-a-saw-first'), 'b');
    });

    test('log_field and "log." meta appear in the access-log line; plugin metric is exported', async () => {
      const r = await post(ctx.gw, {}, userMsg('log me'));
      const rid = r.headers.get('x-request-id');
      const log = await accessLogFor(ctx.gw, rid);
      assert.deepEqual(log.abi_field, { tag: 'a', nheaders: Number(r.headers.get('x-abi-nheaders')) });
      assert.equal(log.abi_tag, 'a');
      assert.equal(log.abi_order, 'a>b><b<a', 'meta changed in on_response is in the record');
      assert.equal(log.abi_bad_field, undefined, 'invalid JSON refused');
      assert.equal(r.headers.get('x-abi-logfield-bad-rc'), '-1');
      const m = await metricsText(ctx.gw);
      assert.ok(metricValue(m, 'aigw_plugin_abi_request_requests_total', { tag: 'a' }) >= 1, 'aigw_plugin_abi_request_requests_total{tag="a"}');
      assert.ok(metricValue(m, 'aigw_plugin_abi_request_peer_requests_total', { tag: 'b' }) >= 1);
    });

    test('CLIENT_RESPONSE headers set in on_request reach a stream', async () => {
      const { data: stream, response } = await ctx.client.chat.completions.create(
        { ...userMsg('stream me'), stream: true },
      ).withResponse();
      const text = await streamText(stream);
      assert.equal(text, 'You said: stream me');
      assert.equal(response.headers.get('x-abi-from-request'), 'a');
      assert.equal(response.headers.get('x-abi-echo-back'), null);
    });

    test('CLIENT_RESPONSE headers reach an upstream error answer (429), on_response sees its status', async () => {
      await assert.rejects(ctx.client.chat.completions.create(userMsg('x', 'fault-429')), (e) => {
        assert.ok(e instanceof OpenAI.RateLimitError);
        assert.equal(e.headers.get('x-abi-from-request'), 'a');
        assert.equal(e.headers.get('x-abi-from-response'), '429');
        return true;
      });
    });

    test('CLIENT_RESPONSE headers set in on_request reach gateway-generated upstream failures (502 refused, 504 timeout)', async () => {
      let r = await post(ctx.gw, {}, userMsg('x'), '/down');
      assert.equal(r.status, 502, r.text);
      openAIError(r.json);
      assert.equal(r.headers.get('x-abi-from-request'), 'a', '502: header from on_request');
      r = await post(ctx.gw, {}, userMsg('x', 'fault-hang'));
      assert.equal(r.status, 504, r.text);
      assert.equal(r.headers.get('x-abi-from-request'), 'a', '504: header from on_request');
    });

    test('BUG-CANDIDATE: on_response runs for gateway-generated upstream failures (502/504) so plugins can add headers to every answer', async () => {
      let r = await post(ctx.gw, {}, userMsg('x'), '/down');
      assert.equal(r.status, 502);
      assert.equal(r.headers.get('x-abi-from-response'), '502', '502: on_response did not run (x-abi-from-response missing)');
      assert.equal(r.headers.get('x-abi-order'), 'a>b><b<a');
      r = await post(ctx.gw, {}, userMsg('x', 'fault-hang'));
      assert.equal(r.status, 504);
      assert.equal(r.headers.get('x-abi-from-response'), '504', '504: on_response did not run');
    });

    test('BUG: on_done can read the final record (status, meta) as plugin.h documents', async () => {
      const id = newTrace('done');
      const r = await post(ctx.gw, { 'x-abi-trace': id }, userMsg('final'));
      assert.equal(r.status, 200);
      const line = await ctx.gw.waitForStderr(new RegExp(`ABI-REQ-DONE id=${id} tag=a `));
      assert.match(line, /status=200 meta_rc=0 order=a>b><b<a/, `on_done read: ${line}`);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('abi_async: call-outs, timers, resume, cancellation, store', () => {
    const A = (mode, extra = {}) => ({ 'x-abi-async': mode, ...extra });

    test('http_call + PAUSE, resume(CONTINUE) from the callback: results reach the upstream request and the client', async () => {
      await ctx.mock.clearRequests();
      const id = newTrace('call');
      const { data, response } = await ctx.client.chat.completions.create(userMsg('after call'), {
        headers: A('call', { 'x-abi-url': `${callout.url}/echo`, 'x-abi-trace': id }),
      }).withResponse();
      assert.equal(data.choices[0].message.content, 'You said: after call');
      assert.equal(response.headers.get('x-abi-call-status'), '200');
      assert.equal(response.headers.get('x-abi-call-st'), 'OK');
      assert.equal(response.headers.get('x-abi-call-echo'), 'yes', 'call_header');
      const up = await ctx.mock.requests();
      assert.equal(up.length, 1);
      assert.equal(up[0].headers['x-abi-call-status'], '200', 'header set in the callback reached the upstream');
      const t = await traceOf(ctx.gw, id);
      assert.deepEqual(t.seq, ['on_request:call', 'pause', 'done:OK', 'resume:0', 'on_done']);
      assert.equal(t.calls, 1);
      assert.equal(t.dones, 1);
    });

    test('http_call POST with headers and body; respond + resume(STOP) from the callback', async () => {
      await ctx.mock.clearRequests();
      const r = await post(ctx.gw, A('report', {
        'x-abi-url': `${callout.url}/echo?x=1`, 'x-abi-method': 'POST', 'x-abi-body': '{"ping":true}',
      }));
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.st, 'OK');
      assert.equal(r.json.code, 200);
      assert.equal(r.json.hdr, 'yes');
      const echo = JSON.parse(r.json.body);
      assert.equal(echo.method, 'POST');
      assert.equal(echo.query, '?x=1');
      assert.equal(echo.body, '{"ping":true}');
      assert.equal(echo.headers['x-abi-callout'], 'yes');
      assert.equal(echo.headers['content-type'], 'application/json');
      assert.equal((await ctx.mock.requests()).length, 0, 'STOP: upstream not called');
    });

    test('call-out status codes pass through (404 is OK with code 404)', async () => {
      const r = await post(ctx.gw, A('report', { 'x-abi-url': `${callout.url}/status?code=404` }));
      assert.equal(r.json.st, 'OK');
      assert.equal(r.json.code, 404);
    });

    test('a call-out that times out → AIGW_CALL_TIMEOUT', async () => {
      const t0 = Date.now();
      const r = await post(ctx.gw, A('report', { 'x-abi-url': `${callout.url}/hang`, 'x-abi-timeout': '300' }));
      assert.equal(r.json.st, 'TIMEOUT', r.text);
      assert.ok(r.json.error.length > 0, 'call_error has text');
      assert.ok(Date.now() - t0 >= 290, `TIMEOUT before the 300 ms timeout (${Date.now() - t0} ms)`);
    });

    test('an unreachable URL → AIGW_CALL_ERROR; a non-http URL → http_call returns NULL', async () => {
      const port = await closedPort();
      let r = await post(ctx.gw, A('report', { 'x-abi-url': `http://127.0.0.1:${port}/nothing` }));
      assert.equal(r.json.st, 'ERROR', r.text);
      assert.equal(r.json.code, 0);
      assert.ok(r.json.error.length > 0);
      r = await post(ctx.gw, A('report', { 'x-abi-url': 'ftp://127.0.0.1/x' }));
      assert.equal(r.json.st, 'NULL', r.text);
    });

    test('a response larger than max_response_bytes → AIGW_CALL_ERROR', async () => {
      const r = await post(ctx.gw, A('report', { 'x-abi-url': `${callout.url}/big`, 'x-abi-max-bytes': '1000' }));
      assert.equal(r.json.st, 'ERROR', r.text.slice(0, 300));
      const ok = await post(ctx.gw, A('report', { 'x-abi-url': `${callout.url}/big` }));
      assert.equal(ok.json.st, 'OK');
      assert.equal(ok.json.body.length, 4000, 'body (report cuts at 4000)');
    });

    test('timer + PAUSE, resume from the timer callback', async () => {
      const t0 = Date.now();
      const r = await post(ctx.gw, A('timer', { 'x-abi-ms': '250' }), userMsg('timed'));
      const ms = Date.now() - t0;
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-abi-timer'), 'fired:OK');
      assert.equal(r.json.choices[0].message.content, 'You said: timed');
      assert.ok(ms >= 240, `answered after ${ms} ms, before the 250 ms timer`);
    });

    test('several calls in flight at once, counted in rctx; the last callback resumes', async () => {
      const id = newTrace('multi');
      const before = callout.hits.length;
      callout.peak = 0;
      const t0 = Date.now();
      const r = await post(ctx.gw, A('multi', { 'x-abi-url': `${callout.url}/slow?ms=400`, 'x-abi-n': '4', 'x-abi-trace': id }));
      const ms = Date.now() - t0;
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-abi-multi'), '4/4');
      assert.equal(callout.hits.length - before, 4);
      assert.deepEqual(callout.hits.slice(before).map((h) => h.query).sort(), ['?ms=400&i=0', '?ms=400&i=1', '?ms=400&i=2', '?ms=400&i=3']);
      assert.ok(callout.peak >= 4, `calls ran concurrently (peak ${callout.peak})`);
      assert.ok(ms >= 390, `answered after ${ms} ms, before the 400 ms calls ended`);
      const t = await traceOf(ctx.gw, id);
      assert.equal(t.seq.filter((e) => e === 'done:OK').length, 4);
      assert.equal(t.calls, 4);
      assert.equal(t.dones, 4);
      assert.equal(t.seq.at(-1), 'on_done');
    });

    test('client disconnects while paused on a slow call: done runs once with CANCELLED, resume is refused, then on_done', async () => {
      const N = 4;
      const ids = Array.from({ length: N }, () => newTrace('cancel'));
      const hang0 = callout.hangArrived;
      const closed0 = callout.closedHang;
      const socks = ids.map((id) => {
        const body = JSON.stringify(userMsg('bye'));
        const s = net.connect(ctx.gw.port, '127.0.0.1');
        s.on('error', () => {});
        s.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`
          + `x-abi-async: cancel\r\nx-abi-url: ${callout.url}/hang\r\nx-abi-timeout: 8000\r\nx-abi-trace: ${id}\r\n\r\n${body}`);
        return s;
      });
      assert.ok(await until(() => callout.hangArrived - hang0 >= N, 3000), 'every call-out reached the slow server');
      for (const s of socks) s.destroy();
      for (const id of ids) {
        const t = await traceOf(ctx.gw, id, 5000);
        const seq = t.seq.filter((e) => !e.startsWith('readable:')); // asserted in the BUG test below
        assert.deepEqual(seq, ['on_request:cancel', 'pause', 'done:CANCELLED', 'resume_refused:yes', 'on_done'], `${id}: ${t.line}`);
        assert.equal(t.calls, 1);
        assert.equal(t.dones, 1);
      }
      await sleep(300); // a stray second callback would show up here (or as a use-after-free under ASan)
      for (const id of ids) {
        const evs = eventsOf(ctx.gw, id);
        assert.equal(evs.filter((e) => e.startsWith('done:')).length, 1, `${id}: exactly one done callback: ${evs}`);
        assert.equal(evs.at(-1), 'on_done', `${id}: on_done is last: ${evs}`);
      }
      assert.ok(await until(() => callout.closedHang - closed0 >= N, 3000), `the cancelled call-outs' connections are closed (${callout.closedHang - closed0}/${N})`);
    });

    test('a call still pending when the request ends (not paused) is CANCELLED before on_done', async () => {
      const id = newTrace('orphan');
      const r = await post(ctx.gw, A('orphan', { 'x-abi-url': `${callout.url}/slow?ms=3000`, 'x-abi-trace': id }), userMsg('go on'));
      assert.equal(r.status, 200);
      assert.equal(r.json.choices[0].message.content, 'You said: go on');
      const t = await traceOf(ctx.gw, id);
      assert.deepEqual(t.seq.filter((e) => !e.startsWith('readable:')), ['on_request:orphan', 'continue', 'done:CANCELLED', 'on_done']);
      assert.equal(t.dones, 1);
    });

    test('BUG: in a CANCELLED callback the request can still be read (plugin.h: "may be read but not resumed")', async () => {
      const id = newTrace('readable');
      const r = await post(ctx.gw, A('orphan', { 'x-abi-url': `${callout.url}/slow?ms=3000`, 'x-abi-trace': id }), userMsg('read me'));
      assert.equal(r.status, 200);
      const t = await traceOf(ctx.gw, id);
      assert.ok(t.seq.includes('readable:yes'), `h->method(r) failed inside the CANCELLED callback: ${t.line}`);
    });

    test('h->cancel from a timer: the call\'s done runs exactly once with CANCELLED (second cancel is a no-op)', async () => {
      const id = newTrace('xcancel');
      const r = await post(ctx.gw, A('cancel-explicit', { 'x-abi-url': `${callout.url}/hang`, 'x-abi-trace': id }), userMsg('x'));
      assert.equal(r.status, 200, r.text);
      const t = await traceOf(ctx.gw, id);
      assert.deepEqual(t.seq.slice(0, 4), ['on_request:cancel-explicit', 'pause', 'timer:OK', 'cancelled']);
      assert.equal(t.seq.filter((e) => e === 'done:CANCELLED').length, 1, t.line);
      assert.equal(t.seq.at(-1), 'on_done');
      assert.equal(t.calls, 2);
      assert.equal(t.dones, 2);
    });

    test('resume called synchronously inside the hook before returning PAUSE (CONTINUE and STOP)', async () => {
      await ctx.mock.clearRequests();
      let r = await post(ctx.gw, A('sync'), userMsg('sync'));
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-abi-sync'), 'ok');
      assert.equal(r.json.choices[0].message.content, 'You said: sync');
      assert.equal((await ctx.mock.requests()).length, 1);
      r = await post(ctx.gw, A('sync-stop'), userMsg('sync'));
      assert.equal(r.status, 203, r.text);
      assert.deepEqual(r.json, { abi: 'sync-stop' });
      assert.equal((await ctx.mock.requests()).length, 1, 'STOP: upstream not called');
    });

    test('store_incr / store_set / store_get round trip; the counter spans requests', async () => {
      const key = `abi-${process.pid}-${Date.now()}`;
      let r = await post(ctx.gw, A('store', { 'x-abi-key': key }));
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { count: 1, got: 'value-1', missing_st: 'ERROR', missing_code: 404 });
      r = await post(ctx.gw, A('store', { 'x-abi-key': key }));
      assert.deepEqual(r.json, { count: 2, got: 'value-2', missing_st: 'ERROR', missing_code: 404 });
      // concurrent requests (both workers) share the counter
      const rs = await Promise.all(Array.from({ length: 6 }, () => post(ctx.gw, A('store', { 'x-abi-key': key }))));
      assert.deepEqual(rs.map((x) => x.json.count).sort((a, b) => a - b), [3, 4, 5, 6, 7, 8]);
    });
  });

  // -------------------------------------------------------------------------------------------
  describe('abi_stream: event hooks', () => {
    const S = (ops, extra = {}) => ({ headers: { 'x-abi-stream': ops, ...extra } });

    test('event_set_text: upper-cased deltas, the SDK assembles upper-case text; event kinds counted', async () => {
      const prompt = 'make this loud please';
      const expected = replyText({ messages: [{ role: 'user', content: prompt }] });
      const { data: stream, response } = await ctx.client.chat.completions.create(
        { ...userMsg(prompt), stream: true, stream_options: { include_usage: true } }, S('upper'),
      ).withResponse();
      const text = await streamText(stream);
      assert.equal(text, expected.toUpperCase());
      assert.equal(response.headers.get('x-abi-stream-first'), 'yes', 'set_header from the first event, before the head');
      const log = await accessLogFor(ctx.gw, response.headers.get('x-request-id'));
      const n = splitDeltas(expected).length;
      const { late_rc: _late, ...kinds } = log.abi_kinds;
      assert.deepEqual(kinds, { delta: n, tool: 0, usage: 1, stop: 1, done: 1, other: 1, json_ok: n, emit_rc: 1, dropped: 0 });
    });

    test('set_header(CLIENT_RESPONSE) after the stream head was sent → AIGW_E_PHASE, nothing reaches the client', async () => {
      const { data: stream, response } = await ctx.client.chat.completions.create(
        { ...userMsg('slow words here', 'gpt-4o-mini+fault-trickle-60'), stream: true }, S('upper'),
      ).withResponse();
      assert.equal(await streamText(stream), 'YOU SAID: SLOW WORDS HERE');
      assert.equal(response.headers.get('x-abi-stream-first'), 'yes');
      assert.equal(response.headers.get('x-abi-stream-late'), null);
      const log = await accessLogFor(ctx.gw, response.headers.get('x-request-id'));
      assert.equal(log.abi_kinds.late_rc, -2, JSON.stringify(log.abi_kinds));
    });

    test('TOOL_DELTA events are classified', async () => {
      const { data: stream, response } = await ctx.client.chat.completions.create({
        ...userMsg('weather?'), stream: true,
        tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      }, S('upper')).withResponse();
      for await (const _ of stream) { /* drain */ }
      const log = await accessLogFor(ctx.gw, response.headers.get('x-request-id'));
      assert.ok(log.abi_kinds.tool >= 1, JSON.stringify(log.abi_kinds));
      assert.equal(log.abi_kinds.delta, 0);
    });

    test('DROP removes events: the dropped delta never reaches the client', async () => {
      const prompt = 'drop the apple word';
      const expected = splitDeltas(replyText({ messages: [{ role: 'user', content: prompt }] }));
      const stream = await ctx.client.chat.completions.create({ ...userMsg(prompt), stream: true }, S('drop:apple'));
      const text = await streamText(stream);
      assert.equal(text, expected.filter((d) => !d.includes('apple')).join(''));
      assert.ok(!text.includes('apple'));
    });

    test('BUG: emit_event inserts an event AFTER the current one (chunk-shaped: the SDK sees it in order)', async () => {
      const prompt = 'insert something';
      const deltas = splitDeltas(replyText({ messages: [{ role: 'user', content: prompt }] }));
      const stream = await ctx.client.chat.completions.create({ ...userMsg(prompt), stream: true }, S('emit'));
      const text = await streamText(stream);
      assert.equal(text, deltas[0] + '[inserted] ' + deltas.slice(1).join(''));
    });

    test('BUG: emit_event with a name: raw SSE shows "event: abi" right AFTER the first delta, and the stream still ends with [DONE]', async () => {
      const r = await readStream(`${ctx.gw.baseURL}/chat/completions`, { ...userMsg('named event'), stream: true }, { headers: { 'x-abi-stream': 'emit-named' } });
      assert.equal(r.status, 200);
      const i = r.events.findIndex((e) => e.event === 'abi');
      assert.ok(i > 0, `named event present: ${r.text.slice(0, 600)}`);
      assert.equal(r.events[i].data, '{"abi":"named"}');
      const prev = JSON.parse(r.events[i - 1].data);
      assert.ok(prev.choices[0].delta.content, `inserted right after the first content delta, but the event before it is ${r.events[i - 1].data} and the one after is ${r.events[i + 1]?.data}`);
      assert.equal(r.events.at(-1).data, '[DONE]');
    });

    test('end_stream after N deltas: an error event ends the stream, no [DONE], the SDK throws', async () => {
      const prompt = 'one two three four five six';
      const deltas = splitDeltas(replyText({ messages: [{ role: 'user', content: prompt }] }));
      const id = newTrace('end');
      const r = await readStream(`${ctx.gw.baseURL}/chat/completions`, { ...userMsg(prompt), stream: true }, { headers: { 'x-abi-stream': 'end:2', 'x-abi-trace': id } });
      assert.equal(r.status, 200);
      assert.ok(r.ended, 'the gateway ended the response cleanly');
      const datas = r.events.map((e) => e.data);
      assert.ok(!datas.includes('[DONE]'), 'no [DONE] after end_stream');
      const content = r.events.map((e) => { try { return JSON.parse(e.data).choices?.[0]?.delta?.content; } catch { return undefined; } }).filter(Boolean);
      assert.deepEqual(content, deltas.slice(0, 2), 'exactly the first 2 deltas');
      const last = JSON.parse(datas.at(-1));
      assert.equal(last.error?.type, 'policy_error');
      assert.equal(last.error?.message, 'ended by abi_stream');
      await ctx.gw.waitForStderr(new RegExp(`ABI-STREAM id=${id} `));
      // and the SDK
      const stream = await ctx.client.chat.completions.create({ ...userMsg(prompt), stream: true }, S('end:2'));
      let got = '';
      await assert.rejects((async () => { for await (const c of stream) got += c.choices?.[0]?.delta?.content ?? ''; })(), (e) => {
        assert.ok(e instanceof OpenAI.APIError, `got ${e?.constructor?.name}`);
        assert.match(e.message, /ended by abi_stream/);
        return true;
      });
      assert.equal(got, deltas.slice(0, 2).join(''));
    });

    test('event hooks also run on a provider_reply stream (in-process mock provider)', async () => {
      const plain = await post(ctx.gw, {}, userMsg('local stream'), '/local');
      assert.equal(plain.status, 200, plain.text);
      const expected = plain.json.choices[0].message.content;
      const local = new OpenAI({ baseURL: `${ctx.gw.url}/local/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
      const stream = await local.chat.completions.create({ ...userMsg('local stream'), stream: true }, S('upper'));
      assert.equal(await streamText(stream), expected.toUpperCase());
    });
  });
});
