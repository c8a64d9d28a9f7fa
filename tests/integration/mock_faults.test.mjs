// Self-test of the openai mock's faults the routing suites rely on (no gateway): counted failures
// (fault-<status>-first-<n>), Retry-After values, context-window and content-filter errors, streams
// that fail before their first chunk, and the per-request timestamps in /__requests.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startMock, readStream, postJSON, MOCK_KEY, sleep } from './lib/harness.mjs';
import { parseFaults, replyText } from '../mock/openai_mock.mjs';

const msg = (model, extra = {}) => ({ model, messages: [{ role: 'user', content: 'hi there' }], ...extra });
const auth = { authorization: `Bearer ${MOCK_KEY}` };

describe('openai mock: routing faults', () => {
  let mock;
  let client;
  before(async () => {
    mock = await startMock();
    client = new OpenAI({ baseURL: mock.baseURL, apiKey: MOCK_KEY, maxRetries: 0, timeout: 10000 });
  });
  after(async () => { await mock?.stop(); });

  test('parseFaults knows the new tokens and keeps the old ones', () => {
    assert.deepEqual(parseFaults('gpt-4o+fault-503-first-2'), { firstStatus: 503, firstN: 2 });
    assert.deepEqual(parseFaults('fault-429+fault-retry-after-ms-300'), { status: 429, retryAfterMs: 300 });
    assert.deepEqual(parseFaults('fault-429+fault-retry-after-7'), { status: 429, retryAfter: 7 });
    assert.deepEqual(parseFaults('fault-context'), { context: true });
    assert.deepEqual(parseFaults('fault-content-filter'), { contentFilter: true });
    assert.deepEqual(parseFaults('fault-stream-error-first'), { streamErrorFirst: true });
    assert.deepEqual(parseFaults('fault-stream-empty'), { streamEmpty: true });
    assert.deepEqual(parseFaults('fault-503'), { status: 503 });
    assert.deepEqual(parseFaults('x+fault-slow-first-byte-20'), { firstByteMs: 20 });
  });

  test('fault-503-first-2: two failures, then answers; counters per model string; DELETE /__faults resets', async () => {
    await mock.resetFaults();
    const m = 'gpt-4o-mini+fault-503-first-2';
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await postJSON(`${mock.baseURL}/chat/completions`, msg(m), { headers: auth })).status);
    assert.deepEqual(statuses, [503, 503, 200, 200]);
    // another model string has its own counter
    const other = await postJSON(`${mock.baseURL}/chat/completions`, msg(`${m}+x`), { headers: auth });
    assert.equal(other.status, 503);
    assert.deepEqual((await mock.faults()).first, { [m]: 4, [`${m}+x`]: 1 });
    await mock.resetFaults();
    assert.equal((await postJSON(`${mock.baseURL}/chat/completions`, msg(m), { headers: auth })).status, 503);
    await mock.resetStats(); // resets them too
    assert.deepEqual((await mock.faults()).first, {});
    assert.equal((await postJSON(`${mock.baseURL}/chat/completions`, msg(m), { headers: auth })).status, 503);
  });

  test('fault-429-first-1 then success; the answer after the failures is a normal completion', async () => {
    await mock.resetFaults();
    const m = 'gpt-4o-mini+fault-429-first-1';
    await assert.rejects(client.chat.completions.create(msg(m)), (e) => e instanceof OpenAI.RateLimitError);
    const r = await client.chat.completions.create(msg(m));
    assert.equal(r.choices[0].message.content, replyText(msg(m)));
    assert.equal(r.model, m);
  });

  test('fault-<status>-first-<n> works for streams too', async () => {
    await mock.resetFaults();
    const m = 'gpt-4o-mini+fault-500-first-1';
    const a = await readStream(`${mock.baseURL}/chat/completions`, msg(m, { stream: true }), { headers: auth });
    assert.equal(a.status, 500);
    const b = await readStream(`${mock.baseURL}/chat/completions`, msg(m, { stream: true }), { headers: auth });
    assert.equal(b.status, 200);
    assert.equal(b.events.at(-1).data, '[DONE]');
  });

  test('Retry-After: default 1 on 429, fault-retry-after-<s>, fault-retry-after-ms-<ms> (no retry-after then)', async () => {
    const d = await postJSON(`${mock.baseURL}/chat/completions`, msg('fault-429'), { headers: auth });
    assert.equal(d.status, 429);
    assert.equal(d.headers.get('retry-after'), '1');
    assert.equal(d.headers.get('retry-after-ms'), null);
    const s = await postJSON(`${mock.baseURL}/chat/completions`, msg('fault-429+fault-retry-after-60'), { headers: auth });
    assert.equal(s.status, 429);
    assert.equal(s.headers.get('retry-after'), '60');
    const ms = await postJSON(`${mock.baseURL}/chat/completions`, msg('fault-429+fault-retry-after-ms-300'), { headers: auth });
    assert.equal(ms.status, 429);
    assert.equal(ms.headers.get('retry-after-ms'), '300');
    assert.equal(ms.headers.get('retry-after'), null);
    const u = await postJSON(`${mock.baseURL}/chat/completions`, msg('fault-503+fault-retry-after-2'), { headers: auth });
    assert.equal(u.status, 503);
    assert.equal(u.headers.get('retry-after'), '2');
    const first = await postJSON(`${mock.baseURL}/chat/completions`, msg('fault-429-first-1+fault-retry-after-ms-50+a'), { headers: auth });
    assert.equal(first.status, 429);
    assert.equal(first.headers.get('retry-after-ms'), '50');
  });

  test('fault-context → 400 context_length_exceeded as OpenAI sends it (SDK: BadRequestError)', async () => {
    await assert.rejects(client.chat.completions.create(msg('fault-context')), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name}`);
      assert.equal(e.status, 400);
      assert.equal(e.code, 'context_length_exceeded');
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, 'messages');
      assert.match(e.message, /This model's maximum context length is \d+ tokens/);
      return true;
    });
  });

  test('fault-content-filter → 400 content_filter as Azure OpenAI sends it', async () => {
    const r = await postJSON(`${mock.baseURL}/chat/completions`, msg('fault-content-filter'), { headers: auth });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'content_filter');
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.match(r.json.error.message, /content management policy/);
    assert.equal(r.json.error.innererror.code, 'ResponsibleAIPolicyViolation');
  });

  test('fault-stream-error-first: 200 SSE whose first event is an error, no chunk, no [DONE]', async () => {
    const r = await readStream(`${mock.baseURL}/chat/completions`, msg('gpt-4o-mini+fault-stream-error-first', { stream: true }), { headers: auth });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/event-stream/);
    assert.ok(r.ended);
    assert.equal(r.events.length, 1, r.text);
    const e = JSON.parse(r.events[0].data);
    assert.equal(e.error.type, 'server_error');
    assert.ok(!r.text.includes('[DONE]'));
    assert.ok(!r.text.includes('chat.completion.chunk'));
  });

  test('fault-stream-empty: 200 SSE headers and the end, nothing else', async () => {
    const r = await readStream(`${mock.baseURL}/chat/completions`, msg('gpt-4o-mini+fault-stream-empty', { stream: true }), { headers: auth });
    assert.equal(r.status, 200);
    assert.ok(r.ended);
    assert.equal(r.text, '');
  });

  test('/__requests entries carry `t` (monotonic ms) and `time`, in arrival order', async () => {
    await mock.clearRequests();
    await postJSON(`${mock.baseURL}/chat/completions`, msg('gpt-4o-mini'), { headers: auth });
    await sleep(120);
    await postJSON(`${mock.baseURL}/chat/completions`, msg('gpt-4o'), { headers: auth });
    const reqs = await mock.requests();
    assert.equal(reqs.length, 2);
    assert.deepEqual(reqs.map((r) => r.body.model), ['gpt-4o-mini', 'gpt-4o']);
    for (const r of reqs) {
      assert.equal(typeof r.t, 'number');
      assert.equal(typeof r.time, 'number');
    }
    assert.ok(reqs[1].t - reqs[0].t >= 115, `gap ${reqs[1].t - reqs[0].t}`);
  });

  test('`t` is one clock across mock processes: back-to-back requests to two mocks keep their order', async () => {
    const other = await startMock();
    try {
      await mock.clearRequests();
      for (let i = 0; i < 20; i++) {
        const target = i % 2 ? other : mock;
        await postJSON(`${target.baseURL}/chat/completions`, msg(`m${i}`), { headers: auth });
      }
      const merged = [...await mock.requests(), ...await other.requests()].sort((a, b) => a.t - b.t);
      assert.deepEqual(merged.map((r) => r.body.model), Array.from({ length: 20 }, (_, i) => `m${i}`));
    } finally {
      await other.stop();
    }
  });
});
