// Hedged requests and stream continuation (docs/routing.md): the two behaviours where aigw runs a
// second upstream exchange for one client request. Mock providers on loopback (one per target),
// the official openai and @anthropic-ai/sdk clients with their own retries off.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { useRouting, skipUnlessGateway, readStream, accessLogFor, CLIENT_KEY, closedPort, startMock, until, metricValue } from './lib/harness.mjs';
import { replyText } from '../mock/openai_mock.mjs';

const skip = skipUnlessGateway();
const TMO = { connect_ms: 2000, first_byte_ms: 5000, idle_ms: 3000, total_ms: 0 };
const R = (name, targets, extra = {}, api = 'chat', path = `/${name}/v1/chat/completions`) => ({
  name, match: { methods: ['POST'], path }, api, targets, timeouts: TMO, ...extra,
});
const T = (name, mock, model, extra = {}) => ({ name, provider: `up_${mock}`, model, ...extra });
const PROMPT = 'alpha beta gamma delta epsilon zeta eta theta';
const body = (extra = {}) => ({ model: 'client-model', messages: [{ role: 'user', content: PROMPT }], ...extra });
const FULL = replyText(body());

function client(ctx, route) {
  return new OpenAI({ baseURL: `${ctx.gw.url}/${route}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 20000 });
}
async function logOf(ctx, rid) {
  const rec = await accessLogFor(ctx.gw, rid);
  assert.ok(Array.isArray(rec.attempts), JSON.stringify(rec));
  return rec;
}
const outcomes = (rec) => rec.attempts.map((a) => [a.target, a.outcome]);

describe('routing: hedged requests', { skip }, () => {
  const ctx = useRouting({
    mocks: ['A', 'B'],
    routes: () => [
      // A answers after 1500 ms; the hedge on B (after 150 ms) wins
      R('h_slow', [T('A', 'A', 'gpt-4o-mini+fault-slow-first-byte-1500'), T('B', 'B', 'gpt-4o-mini')], { hedge: { delay_ms: 150 } }),
      // A is fast: no hedge is ever sent
      R('h_fast', [T('A', 'A', 'gpt-4o-mini'), T('B', 'B', 'gpt-4o-mini')], { hedge: { delay_ms: 1000 } }),
      // A fails with 503 after 300 ms while B (hedged at 100 ms) answers at 600 ms: the parent waits
      // for the racing hedge instead of starting a third exchange
      R('h_wait', [T('A', 'A', 'gpt-4o-mini+fault-slow-first-byte-300+fault-503'), T('B', 'B', 'gpt-4o-mini+fault-slow-first-byte-600')],
        { hedge: { delay_ms: 100 } }),
      // the hedge fails (503) and the slow primary still answers
      R('h_lose', [T('A', 'A', 'gpt-4o-mini+fault-slow-first-byte-700'), T('B', 'B', 'fault-503')], { hedge: { delay_ms: 100 } }),
      // both fail: the client gets the error, two attempts
      R('h_both', [T('A', 'A', 'fault-slow-first-byte-400+fault-503'), T('B', 'B', 'fault-503')], { hedge: { delay_ms: 100 } }),
    ],
  });

  test('a slow primary: the hedge on the next target answers; primary cancelled (outcome hedged)', async () => {
    await ctx.clear();
    for (const stream of [false, true]) {
      const c = client(ctx, 'h_slow');
      let text = '';
      let rid;
      if (stream) {
        const { data, response } = await c.chat.completions.create(body({ stream: true })).withResponse();
        rid = response.headers.get('x-request-id');
        assert.equal(response.headers.get('x-aigw-target'), 'B');
        assert.equal(response.headers.get('x-aigw-attempts'), '2');
        for await (const ch of data) text += ch.choices[0]?.delta?.content ?? '';
      } else {
        const { data, response } = await c.chat.completions.create(body()).withResponse();
        rid = response.headers.get('x-request-id');
        assert.equal(response.headers.get('x-aigw-target'), 'B');
        text = data.choices[0].message.content;
      }
      assert.equal(text, FULL);
      // answered by the hedge: the attempts below show the primary cancelled, not waited for
      const rec = await logOf(ctx, rid);
      assert.deepEqual(outcomes(rec), [['A', 'hedged'], ['B', 'ok']]);
    }
  });

  test('a fast primary: no hedge is sent at all', async () => {
    await ctx.clear();
    const { response } = await client(ctx, 'h_fast').chat.completions.create(body()).withResponse();
    assert.equal(response.headers.get('x-aigw-attempts'), '1');
    assert.deepEqual((await ctx.seq()).map((s) => s.mock), ['A']);
  });

  test('the primary fails while the hedge races: the hedge answers, no third exchange', async () => {
    await ctx.clear();
    const { data, response } = await client(ctx, 'h_wait').chat.completions.create(body()).withResponse();
    assert.equal(data.choices[0].message.content, FULL);
    assert.equal(response.headers.get('x-aigw-target'), 'B');
    const rec = await logOf(ctx, response.headers.get('x-request-id'));
    assert.deepEqual(outcomes(rec), [['A', 'status'], ['B', 'ok']]);
    assert.deepEqual((await ctx.seq()).map((s) => s.mock).sort(), ['A', 'B']);
  });

  test('the hedge fails: the primary still answers', async () => {
    await ctx.clear();
    const { data, response } = await client(ctx, 'h_lose').chat.completions.create(body()).withResponse();
    assert.equal(data.choices[0].message.content, FULL);
    assert.equal(response.headers.get('x-aigw-target'), 'A');
    const rec = await logOf(ctx, response.headers.get('x-request-id'));
    assert.deepEqual(outcomes(rec), [['A', 'ok'], ['B', 'status']]);
  });

  test('both fail: the client gets the upstream error after two attempts', async () => {
    await ctx.clear();
    await assert.rejects(client(ctx, 'h_both').chat.completions.create(body()), (e) => e instanceof OpenAI.APIError && e.status === 503);
    const seq = await ctx.seq();
    assert.equal(seq.length, 2, JSON.stringify(seq.map((s) => s.mock)));
  });
});

describe('routing: stream continuation (fallback.stream_continue)', { skip }, () => {
  const ctx = useRouting({
    mocks: ['A', 'B'],
    routes: () => [
      R('c_reset', [T('A', 'A', 'gpt-4o-mini+fault-trickle-20+fault-reset-after-3'), T('B', 'B', 'gpt-4o-mini')],
        { fallback: { stream_continue: true } }),
      R('c_err', [T('A', 'A', 'gpt-4o-mini+fault-trickle-20+fault-error-after-4'), T('B', 'B', 'gpt-4o-mini')],
        { fallback: { stream_continue: true } }),
      R('c_off', [T('A', 'A', 'gpt-4o-mini+fault-trickle-20+fault-reset-after-3'), T('B', 'B', 'gpt-4o-mini')]),
      R('c_msg', [T('A', 'A', 'gpt-4o-mini+fault-trickle-20+fault-reset-after-3'), T('B', 'B', 'gpt-4o-mini')],
        { fallback: { stream_continue: true } }, 'messages', '/c_msg/v1/messages'),
    ],
  });

  for (const route of ['c_reset', 'c_err']) {
    test(`${route}: the answer goes on on B; the client sees one whole answer, once`, async () => {
      await ctx.clear();
      const { data, response } = await client(ctx, route).chat.completions.create(body({ stream: true })).withResponse();
      const ids = new Set();
      let text = '';
      let finish = null;
      let roles = 0;
      for await (const ch of data) {
        ids.add(ch.id);
        if (ch.choices[0]?.delta?.role) roles++;
        text += ch.choices[0]?.delta?.content ?? '';
        finish = ch.choices[0]?.finish_reason ?? finish;
      }
      assert.equal(text, FULL, 'the prefix from A and the continuation from B join exactly');
      assert.equal(finish, 'stop');
      assert.equal(ids.size, 1, 'one chunk id for the whole stream');
      assert.equal(roles, 1, 'the continuation\'s role chunk was dropped');
      assert.equal(response.headers.get('x-aigw-target'), 'A', 'headers went out with the first target');
      const seq = await ctx.seq();
      assert.deepEqual(seq.map((s) => s.mock), ['A', 'B']);
      // B was asked to continue: the partial answer is its assistant prefill (trailing space trimmed)
      const msgs = seq[1].body.messages;
      assert.equal(msgs.at(-1).role, 'assistant');
      assert.ok(FULL.startsWith(msgs.at(-1).content) && msgs.at(-1).content.length > 0, JSON.stringify(msgs.at(-1)));
      assert.equal(msgs.at(-1).content, msgs.at(-1).content.trimEnd());
      const rec = await logOf(ctx, response.headers.get('x-request-id'));
      assert.deepEqual(outcomes(rec), [['A', 'stream'], ['B', 'ok']]);
      assert.equal(rec.continued, '1');
      assert.ok(rec.tokens_out > 0 && rec.tokens_in > 0, 'both attempts accounted');
    });
  }

  test('without stream_continue the broken stream ends with an error event, no second target', async () => {
    await ctx.clear();
    const r = await readStream(`${ctx.gw.url}/c_off/v1/chat/completions`, body({ stream: true }));
    assert.equal(r.status, 200);
    assert.ok(!r.text.includes('[DONE]'));
    assert.match(r.text, /"error"/);
    assert.deepEqual((await ctx.seq()).map((s) => s.mock), ['A']);
  });

  test('messages (Anthropic SDK): one message, one text block, the whole answer', async () => {
    await ctx.clear();
    const a = new Anthropic({ baseURL: `${ctx.gw.url}/c_msg`, apiKey: CLIENT_KEY, maxRetries: 0 });
    const events = [];
    const stream = a.messages.stream({ model: 'client-model', max_tokens: 200, messages: [{ role: 'user', content: PROMPT }] });
    stream.on('streamEvent', (e) => events.push(e.type));
    const msg = await stream.finalMessage();
    assert.equal(msg.content.length, 1);
    assert.equal(msg.content[0].type, 'text');
    assert.equal(msg.content[0].text, FULL);
    assert.equal(events.filter((t) => t === 'message_start').length, 1);
    assert.equal(events.filter((t) => t === 'content_block_start').length, 1);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.deepEqual((await ctx.seq()).map((s) => s.mock), ['A', 'B']);
  });
});

describe('routing: active health checks', { skip }, () => {
  let later = null; // the mock started on the "down" port mid-test
  let downPort = 0;
  before(async () => { downPort = await closedPort(); }); // registered first: runs before the gateway starts
  const ctx = useRouting({
    mocks: ['A'],
    routes: () => [
      R('hc', [T('down', 'D', 'gpt-4o-mini'), T('A', 'A', 'gpt-4o-mini')],
        { health_check: { interval_ms: 150, timeout_ms: 500, unhealthy_after: 2 } }),
    ],
    edit: (cfg) => {
      cfg.providers.up_D = { plugin: 'openai', config: { base_url: `http://127.0.0.1:${downPort}/v1`, api_key: 'sk-mock' } };
      return cfg;
    },
  });

  test('a dead target is found by the checks before any request, skipped, and taken back once it answers', async () => {
    // the gateway started with "down" on a port nobody listens on (set in before() below)
    const state = async () => {
      const r = await ctx.gw.admin('/targets');
      const j = await r.json();
      return j.find((x) => x.route === 'hc').targets.find((t) => t.name === 'down').state;
    };
    await until(async () => (await state()) === 'open', 5000, 50);
    // requests go straight to A: no refused connect first
    await ctx.clear();
    const { response } = await client(ctx, 'hc').chat.completions.create(body()).withResponse();
    assert.equal(response.headers.get('x-aigw-target'), 'A');
    assert.equal(response.headers.get('x-aigw-attempts'), '1');
    const mt = await (await ctx.gw.admin('/metrics')).text();
    assert.ok(metricValue(mt, 'aigw_health_checks_total', { route: 'hc', target: 'down', result: 'fail' }) >= 2);
    // the target comes up: the next check closes its breaker, requests go to it again
    later = await startMock({ args: ['--port', String(downPort)] });
    await until(async () => (await state()) === 'closed', 5000, 50);
    const again = await client(ctx, 'hc').chat.completions.create(body()).withResponse();
    assert.equal(again.response.headers.get('x-aigw-target'), 'down');
    // the checks are the adapter's own model-list request, with the provider's credentials
    const probes = (await later.requests()).filter((q) => q.path === '/v1/models' || q.path === '/models');
    assert.ok(probes.length >= 1);
    assert.equal(probes[0].headers.authorization, 'Bearer sk-mock');
  });

  after(async () => { await later?.stop(); });
});
