// The keyauth plugin: consumers and their API keys (stored hashed), with the official openai and
// @anthropic-ai/sdk clients. Keys from Authorization: Bearer, x-api-key or a configured header;
// route and model allow-lists; the consumer steers routing (a "consumer" rule) and is in the
// access log; no key or hash ever reaches the upstream, a log line or an error body.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startGateway, startMock, skipUnlessGateway, MOCK_KEY, AIGW_BIN, accessLogFor, postJSON, metricValue } from './lib/harness.mjs';

const skip = skipUnlessGateway();
const hash = (k) => `sha256:${crypto.createHash('sha256').update(k).digest('hex')}`;
const ALICE = 'sk-alice-0123456789abcdef';
const BOB = 'sk-bob-fedcba9876543210';
const CAROL = 'sk-carol-custom-header-key';

describe('keyauth: consumers and virtual keys', { skip }, () => {
  let mock, gw;
  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      mockPort: mock.port,
      config: (cfg) => {
        const auth = (extra = {}) => ({
          name: 'keyauth',
          config: {
            consumers: [
              { name: 'alice', team: 'research', tier: 'gold', keys: [hash(ALICE)], metadata: { cost_center: '42' } },
              { name: 'bob', team: 'support', keys: [hash(BOB)], routes: ['chat'], models: ['gpt-4o-mini*'] },
              { name: 'carol', keys: [hash(CAROL)] },
            ],
            ...extra,
          },
        });
        const up = cfg.providers[Object.keys(cfg.providers)[0]];
        cfg.providers = { up, other: JSON.parse(JSON.stringify(up)) };
        cfg.routes = [
          {
            name: 'chat', match: { methods: ['POST'], path: '/v1/chat/completions' }, api: 'chat',
            targets: [{ name: 'main', provider: 'up' }, { name: 'research', provider: 'other', model: 'gpt-4o' }],
            rules: [{ when: { consumer: 'alice' }, targets: ['research'] }],
            plugins: [auth()],
          },
          { name: 'embeddings', match: { methods: ['POST'], path: '/v1/embeddings' }, api: 'embeddings', targets: [{ provider: 'up' }], plugins: [auth()] },
          { name: 'messages', match: { methods: ['POST'], path: '/v1/messages' }, api: 'messages', targets: [{ provider: 'up' }], plugins: [auth()] },
          { name: 'custom', match: { methods: ['POST'], path: '/custom/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'up' }],
            plugins: [auth({ headers: ['x-team-key'] })] },
        ];
        return cfg;
      },
    });
  });
  after(async () => { await gw?.stop(); await mock?.stop(); });

  const oai = (key, base = gw.baseURL) => new OpenAI({ baseURL: base, apiKey: key, maxRetries: 0 });
  const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'who am i' }] };

  test('a valid key: the answer, the consumer in the log and in routing; the key never goes upstream', async () => {
    await mock.clearRequests();
    const { data, response } = await oai(ALICE).chat.completions.create(chat).withResponse();
    assert.equal(data.choices[0].message.content, 'You said: who am i');
    assert.equal(response.headers.get('x-aigw-target'), 'research', 'the consumer rule routed alice');
    const rec = await accessLogFor(gw, response.headers.get('x-request-id'));
    assert.equal(rec.consumer, 'alice');
    const up = (await mock.requests()).at(-1);
    assert.equal(up.headers.authorization, `Bearer ${MOCK_KEY}`, 'the provider key, not the client key');
    assert.ok(!JSON.stringify(up).includes(ALICE));
    const bob = await oai(BOB).chat.completions.create(chat).withResponse();
    assert.equal(bob.response.headers.get('x-aigw-target'), 'main');
  });

  test('no key, a wrong key, another auth scheme: 401 AuthenticationError', async () => {
    await assert.rejects(oai('sk-wrong-key').chat.completions.create(chat), (e) => e instanceof OpenAI.AuthenticationError && /invalid API key/.test(e.message));
    const none = await fetch(`${gw.baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat) });
    assert.equal(none.status, 401);
    assert.match((await none.json()).error.message, /API key is required/);
    const basic = await postJSON(`${gw.baseURL}/chat/completions`, chat, { headers: { authorization: 'Basic ' + Buffer.from(`x:${ALICE}`).toString('base64') } });
    assert.equal(basic.status, 401);
  });

  test('route and model allow-lists: 403 PermissionDeniedError', async () => {
    await assert.rejects(oai(BOB).embeddings.create({ model: 'text-embedding-3-small', input: 'x' }), (e) => e instanceof OpenAI.PermissionDeniedError);
    await assert.rejects(oai(BOB).chat.completions.create({ ...chat, model: 'gpt-4o' }), (e) => e instanceof OpenAI.PermissionDeniedError && /gpt-4o/.test(e.message));
    const ok = await oai(BOB).chat.completions.create({ ...chat, model: 'gpt-4o-mini-2024-07-18' });
    assert.ok(ok.choices[0].message.content);
  });

  test('Anthropic clients: x-api-key works, and errors come in Anthropic\'s shape', async () => {
    const a = new Anthropic({ baseURL: gw.url, apiKey: ALICE, maxRetries: 0 });
    const m = await a.messages.create({ model: 'claude-x', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(m.content[0].text, 'You said: hi');
    const bad = new Anthropic({ baseURL: gw.url, apiKey: 'sk-nope', maxRetries: 0 });
    await assert.rejects(bad.messages.create({ model: 'claude-x', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e instanceof Anthropic.AuthenticationError && e.error?.type === 'error' && e.error?.error?.type === 'authentication_error');
  });

  test('a configured key header: accepted there, removed before the upstream; Bearer is not read on that route', async () => {
    await mock.clearRequests();
    const r = await postJSON(`${gw.url}/custom/v1/chat/completions`, chat, { headers: { 'x-team-key': CAROL, authorization: '' } });
    assert.equal(r.status, 200, r.text);
    const up = (await mock.requests()).at(-1);
    assert.equal(up.headers['x-team-key'], undefined, 'the key header is not forwarded');
    const bearer = await postJSON(`${gw.url}/custom/v1/chat/completions`, chat, { headers: { authorization: `Bearer ${CAROL}` } });
    assert.equal(bearer.status, 401);
  });

  test('refusals are counted by reason on /metrics (no key material in the labels)', async () => {
    const text = await (await gw.admin('/metrics')).text();
    for (const reason of ['missing_key', 'invalid_key', 'route', 'model'])
      assert.ok(metricValue(text, 'aigw_plugin_keyauth_refused_total', { reason }) >= 1, `${reason} counted`);
    for (const k of [ALICE, BOB]) assert.ok(!text.includes(k.slice(0, 12)), 'a key in the metrics');
  });

  test('no key, hash or part of one in the gateway\'s output', async () => {
    await oai('sk-leak-check-000000').chat.completions.create(chat).catch(() => {});
    const out = gw.stdout + gw.stderr;
    for (const k of [ALICE, BOB, CAROL, 'sk-leak-check-000000']) {
      assert.ok(!out.includes(k), 'a key in the output');
      assert.ok(!out.includes(hash(k).slice(7, 23)), 'a hash in the output');
    }
  });

  test('aigw --hash-key prints the hash the config takes (key on stdin)', () => {
    const out = execFileSync(AIGW_BIN, ['--hash-key'], { input: `${ALICE}\n`, encoding: 'utf8' }).trim();
    assert.equal(out, hash(ALICE));
  });
});
