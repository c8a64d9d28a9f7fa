// Provider credentials per consumer ("bring your own key"): the keyauth plugin gives a consumer its
// own provider keys ("provider_keys") and lets a client send its own in a configured header
// ("client_provider_key"); the provider adapters use that key for the request instead of the
// gateway's. The upstream mocks accept only the consumers' own keys, so an answer proves which key
// went out; the mocks' request logs show it, and that the client's header is never forwarded.
// Clients: the official openai and @anthropic-ai/sdk SDKs.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startGateway, startMock, skipUnlessGateway } from './lib/harness.mjs';
import { startAnthropicMock } from '../mock/anthropic_mock.mjs';

const skip = skipUnlessGateway();
const hash = (k) => `sha256:${crypto.createHash('sha256').update(k).digest('hex')}`;

const ALICE = 'sk-gw-alice-0123456789';   // gateway keys (virtual keys)
const BOB = 'sk-gw-bob-0123456789';
const CAROL = 'sk-gw-carol-0123456789';
const ALICE_OAI = 'sk-own-openai-alice-secret';  // alice's own provider keys
const ALICE_ANTH = 'sk-own-anth-alice-secret';
const CAROL_OAI = 'sk-own-openai-carol-brought'; // what carol's client sends in x-provider-key
const GW_OAI = 'sk-gateway-openai-key';           // the gateway's own keys: the mocks refuse them
const GW_ANTH = 'sk-gateway-anth-key';

describe('bring your own key: per-consumer provider credentials', { skip }, () => {
  let oaiMock, carolMock, anth, gw;
  before(async () => {
    oaiMock = await startMock({ key: ALICE_OAI });
    carolMock = await startMock({ key: CAROL_OAI });
    anth = await startAnthropicMock({ key: ALICE_ANTH });
    gw = await startGateway({
      mockPort: oaiMock.port,
      config: (cfg) => {
        cfg.providers.up.config.api_key = GW_OAI;
        cfg.providers.anth = { plugin: 'anthropic', config: { base_url: `http://127.0.0.1:${anth.port}`, api_key: GW_ANTH } };
        cfg.providers.carol_up = { plugin: 'openai', config: { base_url: `http://127.0.0.1:${carolMock.port}/v1`, api_key: GW_OAI } };
        cfg.routes.push(
          { name: 'msg', match: { methods: ['POST'], path: '/v1/messages' }, api: 'messages', targets: [{ provider: 'anth' }] },
          { name: 'carol', match: { methods: ['POST'], path: '/carol/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'carol_up' }] },
          { name: 'lua', match: { methods: ['POST'], path: '/lua/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'up' }],
            plugins: [{ name: 'lua', config: { name: 'byok.lua', config: { keys: { research: ALICE_OAI } }, inline: `
              function on_request(ctx)
                local team = aigw.req.header('x-team')
                local key = team and aigw.config.keys[team]
                if not key then return aigw.deny(403, 'no provider key for this team') end
                aigw.set_credential('up', key)
              end` } }] },
        );
        cfg.plugins = [{ name: 'keyauth', config: {
          client_provider_key: { header: 'X-Provider-Key', providers: ['up', 'carol_up'] },
          consumers: [
            { name: 'alice', keys: [hash(ALICE)], provider_keys: { up: ALICE_OAI, anth: ALICE_ANTH } },
            { name: 'bob', keys: [hash(BOB)] },
            { name: 'carol', keys: [hash(CAROL)] },
          ],
        } }];
        return cfg;
      },
    });
  });
  after(async () => { await gw?.stop(); await oaiMock?.stop(); await carolMock?.stop(); await anth?.stop(); });

  const oai = (key, headers = {}, base = gw.baseURL) => new OpenAI({ baseURL: base, apiKey: key, maxRetries: 0, defaultHeaders: headers });
  const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };
  const root = () => gw.baseURL.replace(/\/v1$/, '');
  const lastUp = async (m) => (await m.requests()).at(-1);

  test('a consumer\'s own provider key goes upstream instead of the gateway\'s (chat, streamed and not)', async () => {
    const r = await oai(ALICE).chat.completions.create(chat);
    assert.ok(r.choices[0].message.content.length > 0);
    assert.equal((await lastUp(oaiMock)).headers.authorization, `Bearer ${ALICE_OAI}`);
    const stream = await oai(ALICE).chat.completions.create({ ...chat, stream: true });
    let text = '';
    for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? '';
    assert.ok(text.length > 0);
    assert.equal((await lastUp(oaiMock)).headers.authorization, `Bearer ${ALICE_OAI}`);
  });

  test('a consumer without its own key uses the gateway\'s (which this upstream refuses)', async () => {
    await assert.rejects(oai(BOB).chat.completions.create(chat), (e) => e instanceof OpenAI.APIError && e.status >= 400);
    assert.equal((await lastUp(oaiMock)).headers.authorization, `Bearer ${GW_OAI}`);
  });

  test('the Anthropic adapter sends the consumer\'s own key as x-api-key (Anthropic SDK)', async () => {
    const client = new Anthropic({ baseURL: root(), apiKey: ALICE, maxRetries: 0 });
    const m = await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(m.type, 'message');
    const up = await lastUp(anth);
    assert.equal(up.headers['x-api-key'], ALICE_ANTH);
    const bob = new Anthropic({ baseURL: root(), apiKey: BOB, maxRetries: 0 });
    await assert.rejects(bob.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal((await lastUp(anth)).headers['x-api-key'], GW_ANTH);
  });

  test('a client brings its own provider key in the configured header; the header is not forwarded', async () => {
    const r = await oai(CAROL, { 'x-provider-key': CAROL_OAI }, `${root()}/carol/v1`).chat.completions.create(chat);
    assert.ok(r.choices[0].message.content.length > 0);
    const up = await lastUp(carolMock);
    assert.equal(up.headers.authorization, `Bearer ${CAROL_OAI}`);
    assert.ok(!JSON.stringify(up.headers).includes('x-provider-key'), 'the header went upstream');
    assert.ok(!JSON.stringify(up.headers).includes(CAROL), 'the gateway key went upstream');
  });

  test('the client\'s key wins over the consumer\'s own for the providers it is for', async () => {
    await assert.rejects(oai(ALICE, { 'x-provider-key': 'sk-not-valid-upstream' }).chat.completions.create(chat),
      (e) => e instanceof OpenAI.APIError && e.status >= 400);
    assert.equal((await lastUp(oaiMock)).headers.authorization, 'Bearer sk-not-valid-upstream');
    // but not for a provider it is not listed for: alice's anthropic key still goes to anthropic
    const client = new Anthropic({ baseURL: root(), apiKey: ALICE, maxRetries: 0, defaultHeaders: { 'x-provider-key': 'sk-not-for-anthropic' } });
    await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    const up = await lastUp(anth);
    assert.equal(up.headers['x-api-key'], ALICE_ANTH);
    assert.ok(!JSON.stringify(up.headers).includes('sk-not-for-anthropic'));
  });

  test('a provider key header with a control character is refused with 400, nothing goes upstream', async () => {
    const before = (await oaiMock.requests()).length;
    const res = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ALICE}`, 'content-type': 'application/json', 'x-provider-key': 'sk-bad\tvalue' },
      body: JSON.stringify(chat),
    });
    assert.equal(res.status, 400);
    assert.match((await res.json()).error.message, /provider key header/);
    assert.equal((await oaiMock.requests()).length, before);
  });

  test('a Lua policy picks the provider key for the request (aigw.set_credential)', async () => {
    const r = await oai(BOB, { 'x-team': 'research' }, `${root()}/lua/v1`).chat.completions.create(chat);
    assert.ok(r.choices[0].message.content.length > 0);
    assert.equal((await lastUp(oaiMock)).headers.authorization, `Bearer ${ALICE_OAI}`);
    await assert.rejects(oai(BOB, { 'x-team': 'other' }, `${root()}/lua/v1`).chat.completions.create(chat),
      (e) => e instanceof OpenAI.PermissionDeniedError);
  });

  test('no provider key, gateway key or client-brought key appears in the gateway\'s output', async () => {
    const out = gw.stdout + gw.stderr;
    for (const k of [ALICE_OAI, ALICE_ANTH, CAROL_OAI, GW_OAI, GW_ANTH, ALICE, BOB, CAROL, 'sk-not-valid-upstream'])
      assert.ok(!out.includes(k), `${k.slice(0, 10)}… in the output`);
  });
});
