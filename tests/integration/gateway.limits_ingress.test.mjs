// Issue 6: limits and budgets count every ingress. One gateway with keyauth + limits as global
// plugins (in-process store) in front of five kinds of route: OpenAI chat completions, Anthropic
// messages, OpenAI responses, embeddings, and passthrough (GET and POST routes); chat, messages
// and responses each to two upstreams (chat and messages: OpenAI and Anthropic, one of them
// translated; responses: bridged to Anthropic's messages, and to the in-process mock provider).
// Clients: the official openai SDK (chat, responses, embeddings), @anthropic-ai/sdk (messages),
// fetch (passthrough).
//   (a) one `requests` limit per consumer counts requests on every route: mixing ingresses, the
//       remaining count goes down on each, and the next request on any of them is a 429 naming
//       the limit, in the client's format;
//   (b) a `total_tokens` limit is settled to the usage each ingress reports (chat, messages,
//       responses streamed and not, embeddings, and a passthrough answer that carries usage): a
//       second identical request sees the first one's real usage on the counter, not its estimate.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startGateway, startMock, skipUnlessGateway, parseSSE } from './lib/harness.mjs';
import { startAnthropicMock } from '../mock/anthropic_mock.mjs';

const skip = skipUnlessGateway();
const ANTH_KEY = 'sk-ant-up';
const REQUESTS = 6;          // the `requests` limit: one request on each of the six routes fills it
const TOKENS = 1000000;      // the `total_tokens` limit: never reached, read through the headers
const hash = (k) => `sha256:${crypto.createHash('sha256').update(k).digest('hex')}`;

// consumers: one per case, so every counter starts at zero
const CASES_A = ['chat', 'messages', 'responses', 'embeddings', 'pass_get', 'pass_post'];
// (b): [ingress, streamed, path prefix ('' or '/x': the route's two upstreams, see UPSTREAM)]
const CASES_B = [
  ...['chat', 'messages', 'responses'].flatMap((i) => [[i, false, ''], [i, true, ''], [i, false, '/x'], [i, true, '/x']]),
  ['embeddings', false, ''],
  ['passthrough', false, ''], ['passthrough', true, ''],
];
const UPSTREAM = {
  chat: { '': 'OpenAI', '/x': 'Anthropic, translated' },
  messages: { '': 'Anthropic', '/x': 'OpenAI, translated' },
  responses: { '': 'Anthropic, bridged', '/x': 'mock provider, bridged' },
  embeddings: { '': 'OpenAI' },
  passthrough: { '': 'OpenAI chat completions' },
};
const nameB = ([ingress, stream, prefix]) => `${ingress}${stream ? '_stream' : ''}${prefix ? '_x' : ''}`;
const keyOf = (c) => `sk-lim-${c}-0123456789abcdef`;
const consumers = [...CASES_A.map((c) => `a_${c}`), ...CASES_B.map((c) => `b_${nameB(c)}`), 'b_pass_nousage'];
const CLAUDE = 'claude-sonnet-4-6';

describe('limits count every ingress (keyauth + limits, in-process store)', { skip }, () => {
  let mock, anth, gw;
  before(async () => {
    mock = await startMock();
    anth = await startAnthropicMock({ key: ANTH_KEY });
    gw = await startGateway({
      mockPort: mock.port,
      config: (cfg) => {
        cfg.providers.anth = { plugin: 'anthropic', config: { base_url: `http://127.0.0.1:${anth.port}`, api_key: ANTH_KEY } };
        cfg.routes = [
          { name: 'chat', match: { methods: ['POST'], path: '/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'up' }] },
          { name: 'messages', match: { methods: ['POST'], path: '/v1/messages' }, api: 'messages', targets: [{ provider: 'anth' }] },
          { name: 'responses', match: { methods: ['POST'], path: '/v1/responses' }, api: 'responses', targets: [{ provider: 'anth', model: CLAUDE }] },
          { name: 'x_chat', match: { methods: ['POST'], path: '/x/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'anth', model: CLAUDE }] },
          { name: 'x_messages', match: { methods: ['POST'], path: '/x/v1/messages' }, api: 'messages', targets: [{ provider: 'up', model: 'gpt-4o-mini' }] },
          { name: 'x_responses', match: { methods: ['POST'], path: '/x/v1/responses' }, api: 'responses', targets: [{ provider: 'local' }] },
          { name: 'embeddings', match: { methods: ['POST'], path: '/v1/embeddings' }, api: 'embeddings', targets: [{ provider: 'up' }] },
          { name: 'pass_get', match: { methods: ['GET'], path_prefix: '/v1/models/' }, api: 'passthrough', targets: [{ provider: 'up' }] },
          { name: 'pass_post', match: { methods: ['POST'], path: '/v1/responses/input_tokens' }, api: 'passthrough', targets: [{ provider: 'up' }] },
          // passthrough of a chat body (the mock answers with or without /v1): usage in the answer
          { name: 'pass_chat', match: { methods: ['POST'], path: '/chat/completions' }, api: 'passthrough', targets: [{ provider: 'up' }] },
        ];
        cfg.plugins = [
          { name: 'keyauth', config: { consumers: consumers.map((c) => ({ name: c, keys: [hash(keyOf(c))] })) } },
          { name: 'limits', config: { limits: [
            { name: 'rpm', by: ['consumer'], requests: REQUESTS, window_s: 600 },
            { name: 'tpm', by: ['consumer'], total_tokens: TOKENS, window_s: 600 },
          ] } },
        ];
        return cfg;
      },
    });
  });
  after(async () => { await gw?.stop(); await anth?.stop(); await mock?.stop(); });

  const oai = (c, prefix = '') => new OpenAI({ baseURL: `${gw.url}${prefix}/v1`, apiKey: keyOf(c), maxRetries: 0 });
  const ant = (c, prefix = '') => new Anthropic({ baseURL: `${gw.url}${prefix}`, apiKey: keyOf(c), maxRetries: 0 });
  const remaining = (headers, kind) => {
    const v = headers.get(`x-ratelimit-remaining-${kind}`);
    assert.ok(v !== null, `x-ratelimit-remaining-${kind} on the answer`);
    return Number(v);
  };

  // One request on an ingress, through its client. Resolves to the HTTP response; an answer that
  // is not 2xx rejects with the client's error (for fetch: { status, headers, body }).
  const send = {
    chat: async (c) => (await oai(c).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).withResponse()).response,
    messages: async (c) => (await ant(c).messages.create({ model: CLAUDE, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }).withResponse()).response,
    responses: async (c) => (await oai(c).responses.create({ model: CLAUDE, input: 'hi', max_output_tokens: 64 }).withResponse()).response,
    embeddings: async (c) => (await oai(c).embeddings.create({ model: 'text-embedding-3-small', input: 'hi' }).withResponse()).response,
    pass_get: async (c) => {
      const r = await fetch(`${gw.baseURL}/models/gpt-4o-mini`, { headers: { authorization: `Bearer ${keyOf(c)}` } });
      const body = await r.text();
      if (!r.ok) throw { status: r.status, headers: r.headers, body };
      assert.equal(JSON.parse(body).id, 'gpt-4o-mini');
      return r;
    },
    pass_post: async (c) => {
      const r = await fetch(`${gw.baseURL}/responses/input_tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${keyOf(c)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', input: 'hi' }),
      });
      const body = await r.text();
      if (!r.ok) throw { status: r.status, headers: r.headers, body };
      assert.equal(JSON.parse(body).object, 'response.input_tokens');
      return r;
    },
  };

  // (a) the refusal, in the client's format, names the limit
  const refusedByRpm = (ingress) => (e) => {
    const msg = new RegExp(`limit 'rpm' reached: ${REQUESTS} requests per 600 s`);
    if (ingress === 'messages') {
      assert.ok(e instanceof Anthropic.RateLimitError, `messages: ${e}`);
      assert.equal(e.error?.error?.type, 'rate_limit_error', 'in Anthropic\'s error shape');
    } else if (ingress.startsWith('pass_')) {
      assert.equal(e.status, 429, `${ingress}: ${e.body ?? e}`);
      assert.equal(JSON.parse(e.body).error?.type, 'rate_limit_error', 'in OpenAI\'s error shape');
    } else {
      assert.ok(e instanceof OpenAI.RateLimitError, `${ingress}: ${e}`);
      assert.equal(e.type, 'rate_limit_error', 'in OpenAI\'s error shape');
    }
    assert.match(e.body ?? e.message, msg);
    assert.ok(Number(e.headers.get('retry-after')) > 0, 'retry-after');
    return true;
  };

  for (const last of CASES_A) {
    test(`requests: ${REQUESTS} per consumer across all routes; the next one on ${last} is a 429 naming the limit`, async () => {
      const c = `a_${last}`;
      // every ingress once, the one refused at the end last, so each one's count shows
      const order = [...CASES_A.filter((x) => x !== last), last];
      const left = [];
      for (const ingress of order) left.push([ingress, remaining((await send[ingress](c)).headers, 'requests')]);
      assert.deepEqual(left, order.map((ingress, i) => [ingress, REQUESTS - 1 - i]), 'each ingress took one request off the same counter');
      await assert.rejects(send[last](c), refusedByRpm(last));
      // the refusal holds on every other ingress too
      for (const other of CASES_A.filter((x) => x !== last)) await assert.rejects(send[other](c), refusedByRpm(other));
    });
  }

  // (b) two identical requests: the first answer's `remaining` is the limit less the estimate, the
  // second's is the limit less (the first's real usage + the same estimate). So the difference is
  // the usage the first request was settled to; it must be what the client was told.
  const usageOf = {
    chat: async (c, stream, prefix) => {
      const req = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }] };
      if (!stream) {
        const { data, response } = await oai(c, prefix).chat.completions.create(req).withResponse();
        return { used: data.usage.total_tokens, headers: response.headers };
      }
      const { data, response } = await oai(c, prefix).chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } }).withResponse();
      let used = null;
      for await (const ch of data) if (ch.usage) used = ch.usage.total_tokens;
      return { used, headers: response.headers };
    },
    messages: async (c, stream, prefix) => {
      const req = { model: CLAUDE, max_tokens: 300, messages: [{ role: 'user', content: 'hello there' }] };
      if (!stream) {
        const { data, response } = await ant(c, prefix).messages.create(req).withResponse();
        return { used: data.usage.input_tokens + data.usage.output_tokens, headers: response.headers };
      }
      const { data, response } = await ant(c, prefix).messages.create({ ...req, stream: true }).withResponse();
      let input = null, output = null;
      for await (const ev of data) {
        if (ev.type === 'message_start') input = ev.message.usage.input_tokens;
        if (ev.type === 'message_delta') output = ev.usage.output_tokens;
      }
      return { used: input + output, headers: response.headers };
    },
    responses: async (c, stream, prefix) => {
      const req = { model: CLAUDE, input: 'hello there', max_output_tokens: 300 };
      if (!stream) {
        const { data, response } = await oai(c, prefix).responses.create(req).withResponse();
        return { used: data.usage.total_tokens, headers: response.headers };
      }
      const { data, response } = await oai(c, prefix).responses.create({ ...req, stream: true }).withResponse();
      let used = null;
      for await (const ev of data) if (ev.type === 'response.completed') used = ev.response.usage.total_tokens;
      return { used, headers: response.headers };
    },
    embeddings: async (c) => {
      const { data, response } = await oai(c).embeddings.create({ model: 'text-embedding-3-small', input: ['hello there', 'and more text'] }).withResponse();
      return { used: data.usage.total_tokens, headers: response.headers };
    },
    passthrough: async (c, stream) => {
      const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }] };
      if (stream) Object.assign(body, { stream: true, stream_options: { include_usage: true } });
      const r = await fetch(`${gw.url}/chat/completions`, {
        method: 'POST', headers: { authorization: `Bearer ${keyOf(c)}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
      });
      const text = await r.text();
      assert.equal(r.status, 200, text);
      const usage = stream
        ? parseSSE(text).map((e) => e.data).filter((d) => d && d !== '[DONE]').map((d) => JSON.parse(d)).find((j) => j.usage)?.usage
        : JSON.parse(text).usage;
      return { used: usage?.total_tokens, headers: r.headers };
    },
  };

  for (const cs of CASES_B) {
    const [ingress, stream, prefix] = cs;
    test(`tokens: ${ingress}${stream ? ' streamed' : ''} (${UPSTREAM[ingress][prefix]}) is settled to the usage it reports`, async () => {
      const c = `b_${nameB(cs)}`;
      const first = await usageOf[ingress](c, stream, prefix);
      assert.ok(Number.isInteger(first.used) && first.used > 0, `${ingress} reports usage (${first.used})`);
      const estimate = TOKENS - remaining(first.headers, 'tokens');
      assert.notEqual(estimate, first.used, 'the estimate differs from the real usage (else this proves nothing)');
      const second = await usageOf[ingress](c, stream, prefix);
      assert.equal(second.used, first.used, 'identical requests, identical usage');
      assert.equal(TOKENS - remaining(second.headers, 'tokens') - estimate, first.used,
        `the counter holds the first request's real usage (${first.used}), not its estimate (${estimate})`);
    });
  }

  test('tokens: a passthrough answer without usage gives its reservation back (the request still counts)', async () => {
    const c = 'b_pass_nousage';
    const first = await send.pass_post(c);
    const second = await send.pass_post(c);
    assert.ok(TOKENS - remaining(first.headers, 'tokens') > 0, 'a reservation was made');
    assert.equal(remaining(second.headers, 'tokens'), remaining(first.headers, 'tokens'), 'nothing of the first one is left on the counter');
    assert.equal(remaining(second.headers, 'requests'), remaining(first.headers, 'requests') - 1);
  });
});
