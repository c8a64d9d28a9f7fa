// Error handling through aigw: upstream errors as the SDK sees them, and raw-HTTP edge cases.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  useGateway, skipUnlessGateway, startGateway, closedPort, rawRequest, openAIError, accessLogFor, CLIENT_KEY,
} from './lib/harness.mjs';

const skip = skipUnlessGateway();
const msg = (model) => ({ model, messages: [{ role: 'user', content: 'x' }] });

describe('gateway: upstream errors as seen by the openai SDK (maxRetries 0)', { skip }, () => {
  const ctx = useGateway();

  test('429 → RateLimitError, Retry-After kept', async () => {
    await assert.rejects(ctx.client.chat.completions.create(msg('fault-429')), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.status, 429);
      assert.ok(e.headers.get('retry-after'), 'retry-after header reaches the client');
      assert.ok(e.headers.get('x-request-id'), 'x-request-id on errors too');
      return true;
    });
  });

  test('upstream 401 (provider key rejected) → AuthenticationError', async () => {
    await assert.rejects(ctx.client.chat.completions.create(msg('fault-401')), (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.ok(!JSON.stringify(e.error ?? {}).includes('sk-mock'), 'provider key not echoed to the client');
      return true;
    });
  });

  test('400 → BadRequestError with the upstream message', async () => {
    await assert.rejects(ctx.client.chat.completions.create(msg('fault-400')), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.match(e.message, /fault-400/);
      return true;
    });
  });

  test('500 and 503 → InternalServerError', async () => {
    for (const m of ['fault-500', 'fault-503']) {
      await assert.rejects(ctx.client.chat.completions.create(msg(m)), (e) => {
        assert.ok(e instanceof OpenAI.InternalServerError, `${m}: got ${e?.constructor?.name} ${e?.status}`);
        assert.ok(e.status >= 500);
        return true;
      });
    }
  });

  test('stream request failing upstream before the first byte → an HTTP error, not SSE', async () => {
    await assert.rejects(ctx.client.chat.completions.create({ ...msg('fault-429'), stream: true }), (e) => e instanceof OpenAI.RateLimitError);
  });

  test('access log records the upstream error status', async () => {
    const r = await fetch(`${ctx.gw.baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(msg('fault-503')) });
    await r.arrayBuffer();
    const rid = r.headers.get('x-request-id');
    assert.ok(rid);
    const log = await accessLogFor(ctx.gw, rid);
    assert.equal(log.route, 'chat');
    assert.equal(log.status, r.status);
  });

  test('upstream 200 with malformed JSON → 502 with an OpenAI error body', async () => {
    const r = await rawRequest(`${ctx.gw.baseURL}/chat/completions`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(msg('fault-malformed')) });
    assert.equal(r.status, 502, r.body.slice(0, 300));
    openAIError(r.json);
  });

  test('malformed client JSON → 400 OpenAI-style error, upstream not called', async () => {
    await ctx.mock.clearRequests();
    const r = await rawRequest(`${ctx.gw.baseURL}/chat/completions`, { headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` }, body: '{"model": "gpt-4o-mini", "messages": [' });
    assert.equal(r.status, 400);
    const err = openAIError(r.json);
    assert.equal(err.type, 'invalid_request_error');
    assert.ok(r.headers['x-request-id']);
    assert.equal((await ctx.mock.requests()).length, 0);
  });

  test('body over max_body_bytes → 413 (content-length)', async () => {
    const big = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a'.repeat(2 * 1024 * 1024) }] });
    // pause after the head: a gateway can (and should) reject on Content-Length before reading the body
    const r = await rawRequest(`${ctx.gw.baseURL}/chat/completions`, { headers: { 'content-type': 'application/json' }, body: big, headerPauseMs: 200 });
    assert.equal(r.status, 413);
    openAIError(r.json);
  });

  test('body over max_body_bytes → 413 (chunked, no content-length)', async () => {
    const big = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a'.repeat(2 * 1024 * 1024) }] });
    const r = await rawRequest(`${ctx.gw.baseURL}/chat/completions`, { headers: { 'content-type': 'application/json' }, body: big, chunked: true, slowAfterBytes: 1048576 });
    assert.equal(r.status, 413);
  });

  test('unknown path → 404 OpenAI-style error with x-request-id', async () => {
    const r = await rawRequest(`${ctx.gw.url}/v1/nope/such/thing`, { method: 'GET' });
    assert.equal(r.status, 404);
    openAIError(r.json);
    assert.ok(r.headers['x-request-id']);
  });

  test('known path, wrong method → 404 or 405', async () => {
    const r = await rawRequest(`${ctx.gw.baseURL}/chat/completions`, { method: 'GET' });
    assert.ok([404, 405].includes(r.status), `status ${r.status}`);
    openAIError(r.json);
  });

  test('upstream first-byte timeout → 504 soon after first_byte_ms (1500)', async () => {
    const t0 = Date.now();
    const r = await rawRequest(`${ctx.gw.baseURL}/chat/completions`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(msg('fault-slow-first-byte-5000')) });
    const dt = Date.now() - t0;
    assert.equal(r.status, 504);
    openAIError(r.json);
    // 504 (not the mock's 200 at 5000 ms) is the proof the deadline fired; no upper time bound (timing lives in bench/)
    assert.ok(dt >= 1300, `answered after ${dt} ms, before first_byte_ms`);
  });

  test('upstream that never answers → 504, and the upstream request is cancelled', async () => {
    await ctx.mock.resetStats();
    const t0 = Date.now();
    await assert.rejects(ctx.client.chat.completions.create(msg('fault-hang')), (e) => e.status === 504);
    assert.ok(Date.now() - t0 >= 1300, 'not before first_byte_ms');
    let st;
    for (let i = 0; i < 40; i++) {
      st = await ctx.mock.stats();
      if (st.requests_aborted >= 1) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(st.requests_aborted >= 1, 'gateway closed the hung upstream request');
  });

  test('gateway still healthy after all of this', async () => {
    const h = await ctx.gw.admin('/health', { token: false });
    assert.equal(h.status, 200);
    const r = await ctx.client.chat.completions.create(msg('gpt-4o-mini'));
    assert.equal(r.choices[0].message.content, 'You said: x');
  });
});

describe('gateway: upstream connection refused', { skip }, () => {
  let gw;
  before(async () => {
    gw = await startGateway({ mockPort: await closedPort() });
  });
  after(async () => { await gw?.stop(); });

  test('→ 502 with an OpenAI error body (not a 504 connect timeout)', async () => {
    const r = await rawRequest(`${gw.baseURL}/chat/completions`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(msg('gpt-4o-mini')) });
    assert.equal(r.status, 502, r.body.slice(0, 300));
    openAIError(r.json);
  });

  test('SDK sees an InternalServerError (5xx) for stream and non-stream', async () => {
    const client = new OpenAI({ baseURL: gw.baseURL, apiKey: 'k', maxRetries: 0 });
    await assert.rejects(client.chat.completions.create(msg('gpt-4o-mini')), (e) => e instanceof OpenAI.InternalServerError && e.status === 502);
    await assert.rejects(client.chat.completions.create({ ...msg('gpt-4o-mini'), stream: true }), (e) => e instanceof OpenAI.InternalServerError && e.status === 502);
  });
});
