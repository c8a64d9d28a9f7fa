// The jwt plugin: JWS bearer tokens (RS256, ES256, EdDSA from a JWKS URL served here; HS256 from a
// static secret given as ${ENV}) with the official openai and @anthropic-ai/sdk clients. Claims
// checks (exp, nbf, iss, aud), alg none and RS/HS confusion refused, tampering refused; claims
// mapped onto the consumer (access log, routing rules, the limits plugin by team); key rotation
// through an unknown kid (one fetch for many concurrent requests), removal through the periodic
// refresh; a JWKS server that is down at start (503, then accepted once it is up); config errors
// at their JSON pointers; no token or part of one in the gateway's output.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import {
  startGateway, startMock, skipUnlessGateway, accessLogFor, postJSON, freePort, sleep, until, MOCK_KEY, AIGW_BIN, AIGW_PLUGIN_DIR,
} from './lib/harness.mjs';

const skip = skipUnlessGateway();
const ISS = 'https://issuer.test';
const AUD = 'aigw';
const HS_SECRET = 'hs256-test-secret-0123456789abcdef-zz';
const MIN_REFRESH_S = 1;
const REFRESH_S = 4;

const b64u = (b) => Buffer.from(b).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** Every token this file makes: none of it may appear in the gateway's output. */
const issued = [];

/** A JWS compact token. key: a KeyObject (private), or a secret for HS256. */
function sign(alg, key, payload, header = {}) {
  const input = `${b64u(JSON.stringify({ alg, typ: 'JWT', ...header }))}.${b64u(JSON.stringify(payload))}`;
  let sig;
  if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), key);
  else if (alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'EdDSA') sig = crypto.sign(null, Buffer.from(input), key);
  else if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(input).digest();
  else sig = Buffer.alloc(0);
  const t = `${input}.${b64u(sig)}`;
  issued.push(t);
  return t;
}

function keypair(type, kid) {
  const { publicKey, privateKey } =
    type === 'rsa' ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
      : type === 'ec' ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : crypto.generateKeyPairSync('ed25519');
  const alg = { rsa: 'RS256', ec: 'ES256', ed: 'EdDSA' }[type];
  return { kid, alg, privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } };
}

const claims = (extra = {}) => ({
  iss: ISS, aud: AUD, sub: 'alice', iat: now(), exp: now() + 600, team: 'research', tier: 'gold', org_id: 'o-42', scope: 'llm read', ...extra,
});
const tokenFor = (k, extra = {}, header = {}) => sign(k.alg, k.privateKey, claims(extra), { kid: k.kid, ...header });

/** A JWKS endpoint on 127.0.0.1 (port 0: any free one). set(keys) changes what it serves. */
async function startJwks(port = 0) {
  const state = { keys: [], fetches: 0, delayMs: 0, discoveries: 0 };
  const server = http.createServer((req, res) => {
    // OIDC discovery documents: /oidc/... names the issuer it claims and points at the JWKS
    const m = /^\/oidc\/(good|evil)\/\.well-known\/openid-configuration$/.exec(req.url);
    if (m) {
      state.discoveries++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: m[1] === 'good' ? ISS : 'https://evil.test', jwks_uri: `http://127.0.0.1:${server.address().port}/.well-known/jwks.json`,
        authorization_endpoint: 'https://issuer.test/authorize' }));
      return;
    }
    state.fetches++;
    const body = JSON.stringify({ keys: state.keys.map((k) => k.jwk) });
    res.on('error', () => {});
    setTimeout(() => {
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
      res.end(body);
    }, state.delayMs);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    port: server.address().port,
    get fetches() { return state.fetches; },
    get discoveries() { return state.discoveries; },
    set(keys) { state.keys = keys; },
    /** answer each fetch this much later */
    delay(ms) { state.delayMs = ms; },
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}

const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'who am i' }] };

function jwtPlugin(jwksPort, extra = {}) {
  return {
    name: 'jwt',
    config: {
      issuer: [ISS, 'https://other-issuer.test'],
      audience: AUD,
      jwks_url: `http://127.0.0.1:${jwksPort}/.well-known/jwks.json`,
      jwks_min_refresh_s: MIN_REFRESH_S,
      jwks_refresh_s: REFRESH_S,
      keys: [{ kid: 'hs-1', secret: '${JWT_TEST_SECRET}' }],
      team_claim: 'team',
      tier_claim: 'tier',
      metadata_claims: { org: 'org_id' },
      ...extra,
    },
  };
}

describe('jwt: bearer tokens verified against a JWKS URL and static keys', { skip }, () => {
  let mock, gw, jwks;
  const rsa1 = keypair('rsa', 'rsa-1');
  const ec1 = keypair('ec', 'ec-1');
  const ed1 = keypair('ed', 'ed-1');
  const rsa2 = keypair('rsa', 'rsa-2');

  before(async () => {
    jwks = await startJwks();
    jwks.set([rsa1, ec1, ed1]);
    mock = await startMock();
    gw = await startGateway({
      mockPort: mock.port,
      env: { JWT_TEST_SECRET: HS_SECRET },
      config: (cfg) => {
        const up = cfg.providers.up;
        cfg.providers = { up, other: JSON.parse(JSON.stringify(up)) };
        cfg.routes = [
          {
            name: 'chat', match: { methods: ['POST'], path: '/v1/chat/completions' }, api: 'chat',
            targets: [{ name: 'main', provider: 'up' }, { name: 'research', provider: 'other', model: 'gpt-4o' }],
            rules: [{ when: { consumer: 'alice' }, targets: ['research'] }],
            plugins: [jwtPlugin(jwks.port)],
          },
          { name: 'messages', match: { methods: ['POST'], path: '/v1/messages' }, api: 'messages', targets: [{ provider: 'up' }], plugins: [jwtPlugin(jwks.port)] },
          { name: 'custom', match: { methods: ['POST'], path: '/custom/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'up' }],
            plugins: [jwtPlugin(jwks.port, { headers: ['x-id-token'], consumer_claim: 'azp', required_scopes: ['llm'] })] },
          { name: 'limited', match: { methods: ['POST'], path: '/limited/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'up' }],
            plugins: [jwtPlugin(jwks.port), { name: 'limits', config: { limits: [{ name: 'team-rpm', by: ['team'], requests: 2, window_s: 600 }] } }] },
          { name: 'oidc', match: { methods: ['POST'], path: '/oidc/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'up' }],
            plugins: [jwtPlugin(jwks.port, { jwks_url: undefined, discovery_url: `http://127.0.0.1:${jwks.port}/oidc/good/.well-known/openid-configuration` })] },
          { name: 'oidc-evil', match: { methods: ['POST'], path: '/oidc-evil/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'up' }],
            plugins: [jwtPlugin(jwks.port, { jwks_url: undefined, discovery_url: `http://127.0.0.1:${jwks.port}/oidc/evil/.well-known/openid-configuration` })] },
          { name: 'nested', match: { methods: ['POST'], path: '/nested/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'up' }],
            plugins: [jwtPlugin(jwks.port, { consumer_claim: 'https://aigw.test/user', team_claim: 'org.team', tier_claim: 'realm_access.roles' }),
              { name: 'limits', config: { limits: [{ name: 'per-team', by: ['team', 'tier'], requests: 1, window_s: 600 }] } }] },
          { name: 'own-limit', match: { methods: ['POST'], path: '/own/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'up' }],
            plugins: [jwtPlugin(jwks.port, { limit_claims: { rpm: 'rpm_limit' } }),
              { name: 'limits', config: { limits: [{ name: 'rpm', by: ['consumer'], requests: 5, window_s: 600 }] } }] },
          { name: 'scoped', match: { methods: ['POST'], path: '/scoped/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'up' }],
            plugins: [jwtPlugin(jwks.port, { scope_models: { premium: ['gpt-4o*'], basic: ['gpt-4o-mini'] } })] },
        ];
        return cfg;
      },
    });
  });
  after(async () => { await gw?.stop(); await mock?.stop(); await jwks?.close(); });

  const oai = (token, base = gw.baseURL) => new OpenAI({ baseURL: base, apiKey: token, maxRetries: 0 });
  const raw = (token, p = '/v1/chat/completions', body = chat, headers = {}) =>
    postJSON(`${gw.url}${p}`, body, { headers: { authorization: token === null ? '' : `Bearer ${token}`, ...headers } });

  test('RS256 and ES256 tokens from the JWKS URL: the answer, the consumer in the log and in routing; the token never goes upstream', async () => {
    await mock.clearRequests();
    const t = tokenFor(rsa1);
    const { data, response } = await oai(t).chat.completions.create(chat).withResponse();
    assert.equal(data.choices[0].message.content, 'You said: who am i');
    assert.equal(response.headers.get('x-aigw-target'), 'research', 'the consumer rule routed alice');
    const rec = await accessLogFor(gw, response.headers.get('x-request-id'));
    assert.equal(rec.consumer, 'alice');
    const up = (await mock.requests()).at(-1);
    assert.equal(up.headers.authorization, `Bearer ${MOCK_KEY}`, 'the provider key, not the token');
    assert.ok(!JSON.stringify(up).includes(t.split('.')[2]));

    const bob = await oai(tokenFor(ec1, { sub: 'bob' })).chat.completions.create(chat).withResponse();
    assert.equal(bob.response.headers.get('x-aigw-target'), 'main');
    assert.equal((await accessLogFor(gw, bob.response.headers.get('x-request-id'))).consumer, 'bob');
  });

  test('EdDSA from the JWKS, and HS256 from a static secret given as ${ENV}', async () => {
    const ed = await oai(tokenFor(ed1)).chat.completions.create(chat);
    assert.equal(ed.choices[0].message.content, 'You said: who am i');
    const hs = await oai(sign('HS256', HS_SECRET, claims({ sub: 'hs-user' }), { kid: 'hs-1' })).chat.completions.create(chat).withResponse();
    assert.equal((await accessLogFor(gw, hs.response.headers.get('x-request-id'))).consumer, 'hs-user');
    // the same claims under another secret
    const bad = await raw(sign('HS256', `${HS_SECRET}-not`, claims(), { kid: 'hs-1' }));
    assert.equal(bad.status, 401);
    assert.match(bad.json.error.message, /signature does not verify/);
  });

  test('Anthropic SDK with authToken (Bearer): accepted; a bad token is an AuthenticationError in Anthropic\'s shape', async () => {
    const a = new Anthropic({ baseURL: gw.url, apiKey: null, authToken: tokenFor(ec1), maxRetries: 0 });
    const m = await a.messages.create({ model: 'claude-x', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(m.content[0].text, 'You said: hi');
    const bad = new Anthropic({ baseURL: gw.url, apiKey: null, authToken: tokenFor(ec1, { exp: now() - 3600 }), maxRetries: 0 });
    await assert.rejects(bad.messages.create({ model: 'claude-x', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e instanceof Anthropic.AuthenticationError && e.error?.error?.type === 'authentication_error' && /expired/.test(e.message));
  });

  test('refused with 401 naming the reason: expired, not yet valid, wrong audience, wrong issuer, no sub', async () => {
    const cases = [
      [tokenFor(rsa1, { exp: now() - 3600 }), /the token has expired/],
      [tokenFor(rsa1, { nbf: now() + 3600 }), /not valid yet/],
      [tokenFor(rsa1, { aud: 'someone-else' }), /audience is not accepted/],
      [tokenFor(rsa1, { aud: ['x', 'y'] }), /audience is not accepted/],
      [tokenFor(rsa1, { iss: 'https://evil.test' }), /issuer is not accepted/],
      [tokenFor(rsa1, { exp: undefined }), /no exp claim/],
      [tokenFor(rsa1, { sub: undefined }), /no usable 'sub' claim/],
    ];
    for (const [t, re] of cases) {
      await assert.rejects(oai(t).chat.completions.create(chat), (e) => {
        assert.ok(e instanceof OpenAI.AuthenticationError, `${e}`);
        assert.match(e.message, re);
        assert.ok(!e.message.includes(t.split('.')[1]), 'no token part in the message');
        return true;
      });
    }
    const ok = await oai(tokenFor(rsa1, { aud: ['x', AUD], iss: 'https://other-issuer.test' })).chat.completions.create(chat);
    assert.ok(ok.choices[0].message.content);
  });

  test('tampered signature, tampered payload, alg none, RS/HS confusion, garbage, no token: 401', async () => {
    const good = tokenFor(rsa1);
    const [h, p, s] = good.split('.');
    const flipped = s.slice(0, 10) + (s[10] === 'A' ? 'B' : 'A') + s.slice(11);
    const evil = b64u(JSON.stringify({ ...claims(), sub: 'admin' }));
    const none = sign('none', null, claims(), { kid: 'rsa-1' });
    const noneBare = `${b64u(JSON.stringify({ alg: 'none' }))}.${b64u(JSON.stringify(claims()))}.`;
    issued.push(noneBare);
    // HS256 keyed with the RSA key's public key (PEM, then the JWK's n), labelled with its kid
    const pem = rsa1.publicKey.export({ type: 'spki', format: 'pem' });
    const conf1 = sign('HS256', pem, claims(), { kid: 'rsa-1' });
    const conf2 = sign('HS256', Buffer.from(rsa1.jwk.n, 'base64url'), claims(), { kid: 'rsa-1' });
    const cases = [
      [`${h}.${p}.${flipped}`, /signature does not verify/],
      [`${h}.${evil}.${s}`, /signature does not verify/],
      [`${h}.${p}.${s}==`, /not base64url/],
      [none, /alg none is not accepted/],
      [noneBare, /alg none is not accepted|not a JWS/],
      [conf1, /no known key fits its kid and alg/],
      [conf2, /no known key fits its kid and alg/],
      ['sk-not-a-jwt-0123456789', /not a JWS compact token/],
      ['a'.repeat(9000) + '.b.c', /too large/],
    ];
    issued.push(`${h}.${p}.${flipped}`, `${h}.${evil}.${s}`);
    for (const [t, re] of cases) {
      const r = await raw(t);
      assert.equal(r.status, 401, `${re}: ${r.text}`);
      assert.equal(r.json.error.type, 'authentication_error');
      assert.match(r.json.error.message, re);
      assert.match(r.headers.get('www-authenticate') || '', /^Bearer error="invalid_token"/);
      assert.ok(!r.text.includes(p) && !r.text.includes(s), 'no token part in the answer');
    }
    const noTok = await raw(null);
    assert.equal(noTok.status, 401);
    assert.match(noTok.json.error.message, /bearer token is required/);
    const basic = await raw(null, undefined, chat, { authorization: 'Basic ' + Buffer.from(`u:${good}`).toString('base64') });
    assert.equal(basic.status, 401);
  });

  test('a configured token header (consumer from azp, scope required): read there, removed before the upstream', async () => {
    await mock.clearRequests();
    const t = tokenFor(ec1, { azp: 'svc-reporting' });
    const r = await raw(null, '/custom/v1/chat/completions', chat, { 'x-id-token': t });
    assert.equal(r.status, 200, r.text);
    assert.equal((await accessLogFor(gw, r.headers.get('x-request-id'))).consumer, 'svc-reporting');
    const up = (await mock.requests()).at(-1);
    assert.equal(up.headers['x-id-token'], undefined, 'the token header is not forwarded');
    const noScope = await raw(null, '/custom/v1/chat/completions', chat, { 'x-id-token': tokenFor(ec1, { azp: 'svc', scope: 'read' }) });
    assert.equal(noScope.status, 403);
    assert.equal(noScope.json.error.type, 'permission_error');
    assert.match(noScope.json.error.message, /required scope 'llm'/);
    const scp = await raw(null, '/custom/v1/chat/completions', chat, { 'x-id-token': tokenFor(ec1, { azp: 'svc', scope: undefined, scp: ['llm'] }) });
    assert.equal(scp.status, 200, scp.text);
  });

  test('the team claim feeds the limits plugin unchanged (limit by team)', async () => {
    const p = '/limited/v1/chat/completions';
    const a = await raw(tokenFor(rsa1, { sub: 'u1', team: 'lim-team' }), p);
    const b = await raw(tokenFor(ec1, { sub: 'u2', team: 'lim-team' }), p);
    const c = await raw(tokenFor(ed1, { sub: 'u3', team: 'lim-team' }), p);
    const d = await raw(tokenFor(ed1, { sub: 'u4', team: 'another-team' }), p);
    assert.deepEqual([a.status, b.status, c.status, d.status], [200, 200, 429, 200]);
    assert.match(c.json.error.message, /team-rpm/);
  });

  test('a token\'s own limit value (limit_claims) replaces the configured one for its requests', async () => {
    const p = '/own/v1/chat/completions';
    const one = tokenFor(rsa1, { sub: `lim-${Date.now()}`, rpm_limit: 1 });
    const a = await raw(one, p);
    assert.equal(a.status, 200, a.text);
    const b = await raw(one, p);
    assert.equal(b.status, 429);
    assert.match(b.json.error.message, /limit 'rpm' reached: 1 requests/);
    // without the claim: the configured 5
    const plain = tokenFor(rsa1, { sub: `plain-${Date.now()}` });
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await raw(plain, p)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
  });

  test('claims by dotted path and from arrays (Keycloak-style roles), and URL-named claims', async () => {
    const p = '/nested/v1/chat/completions';
    const t = (team, roles, user = 'u-nested') => tokenFor(rsa1, { 'https://aigw.test/user': user, org: { team }, realm_access: { roles } });
    const a = await raw(t('blue', ['', 'gold', 'x']), p);
    assert.equal(a.status, 200, a.text);
    assert.equal((await accessLogFor(gw, a.headers.get('x-request-id'))).consumer, 'u-nested');
    const b = await raw(t('blue', ['gold']), p);
    assert.equal(b.status, 429, 'team blue + tier gold (first non-empty role) counted once already');
    assert.match(b.json.error.message, /per-team/);
    assert.equal((await raw(t('blue', ['silver']), p)).status, 200, 'another tier');
    assert.equal((await raw(t('green', ['gold']), p)).status, 200, 'another team');
    const none = await raw(tokenFor(rsa1, { sub: 'x', org: { team: 'blue' } }), p);
    assert.equal(none.status, 401, 'no consumer claim at that name');
  });

  test('OIDC discovery: the issuer\'s jwks_uri is found and used; a document naming another issuer is refused', async () => {
    const d0 = jwks.discoveries;
    const a = await raw(tokenFor(rsa1, { sub: 'oidc-user' }), '/oidc/v1/chat/completions');
    assert.equal(a.status, 200, a.text);
    assert.ok(jwks.discoveries > d0, 'the discovery document was fetched');
    const b = await raw(tokenFor(ec1, { sub: 'oidc-user' }), '/oidc/v1/chat/completions');
    assert.equal(b.status, 200, b.text);
    const e = await raw(tokenFor(rsa1, { sub: 'x' }), '/oidc-evil/v1/chat/completions');
    assert.equal(e.status, 503);
    assert.match(e.json.error.message, /discovery document's issuer is not one this config accepts/);
  });

  test('models per scope: premium may use gpt-4o, basic only gpt-4o-mini', async () => {
    const p = '/scoped/v1/chat/completions';
    assert.equal((await raw(tokenFor(rsa1, { scope: 'premium' }), p, { ...chat, model: 'gpt-4o' })).status, 200);
    assert.equal((await raw(tokenFor(rsa1, { scope: 'basic' }), p, { ...chat, model: 'gpt-4o-mini' })).status, 200);
    const r = await raw(tokenFor(rsa1, { scope: 'basic' }), p, { ...chat, model: 'gpt-4o' });
    assert.equal(r.status, 403);
    assert.match(r.json.error.message, /scopes do not allow model 'gpt-4o'/);
    assert.equal((await raw(tokenFor(rsa1, { scope: 'other' }), p)).status, 403);
  });

  test('key rotation: a new kid makes the gateway fetch the JWKS once (concurrent requests wait for it); the removed key is refused', async () => {
    jwks.set([rsa2, ec1, ed1]); // rsa-1 retired, rsa-2 new
    await sleep(MIN_REFRESH_S * 1000 + 200); // a kid-driven fetch is allowed once per jwks_min_refresh_s
    const before = jwks.fetches;
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => raw(tokenFor(rsa2, { sub: `r${i}` }))));
    assert.deepEqual(results.map((r) => r.status), Array(16).fill(200), results.find((r) => r.status !== 200)?.text);
    assert.equal(jwks.fetches, before + 1, 'one fetch for all of them');
    const old = await raw(tokenFor(rsa1));
    assert.equal(old.status, 401);
    assert.match(old.json.error.message, /no known key fits/);
    const sdk = await oai(tokenFor(rsa2)).chat.completions.create(chat);
    assert.ok(sdk.choices[0].message.content);
  });

  test('the fetching request\'s client goes away: its fetch is cancelled and a waiting request fetches instead', async () => {
    const rsa3 = keypair('rsa', 'rsa-3');
    jwks.set([rsa2, rsa3, ec1, ed1]);
    jwks.delay(600);
    await sleep(MIN_REFRESH_S * 1000 + 200);
    const before = jwks.fetches;
    const ac = new AbortController();
    const first = fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST', signal: ac.signal,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokenFor(rsa3, { sub: 'leaver' })}` },
      body: JSON.stringify(chat),
    }).catch((e) => e);
    await until(() => jwks.fetches > before, 5000, 10); // its fetch reached the JWKS server
    const second = raw(tokenFor(rsa3, { sub: 'stayer' })); // waits for that fetch
    await sleep(150);
    ac.abort(); // the fetcher's client leaves: its fetch is cancelled
    const r = await second;
    jwks.delay(0);
    assert.equal((await first).name, 'AbortError');
    assert.equal(r.status, 200, r.text);
    assert.equal(jwks.fetches, before + 2, 'the waiting request fetched again after the cancelled fetch');
  });

  test('periodic refresh (jwks_refresh_s): a key removed from the JWKS stops working without an unknown kid', async () => {
    assert.equal((await raw(tokenFor(ed1))).status, 200);
    jwks.set([rsa2, ec1]); // ed-1 removed
    const before = jwks.fetches;
    await sleep(REFRESH_S * 1000 + 300);
    const r = await raw(tokenFor(ed1));
    assert.equal(r.status, 401, r.text);
    assert.ok(jwks.fetches > before, 'the stale set was fetched again');
    assert.equal((await raw(tokenFor(ec1))).status, 200);
  });

  test('the fetch metric is on /metrics', async () => {
    const text = await (await gw.admin('/metrics')).text();
    assert.match(text, /aigw_plugin_jwt_jwks_fetches_total\{[^}]*result="ok"[^}]*\} [1-9]/);
  });

  test('no token or part of one in the gateway\'s output', () => {
    const out = gw.stdout + gw.stderr;
    assert.ok(issued.length > 30);
    for (const t of issued) {
      const [, p, s] = t.split('.');
      assert.ok(!out.includes(t), 'a token in the output');
      if (p && p.length > 16) assert.ok(!out.includes(p), 'a token payload in the output');
      if (s && s.length > 16) assert.ok(!out.includes(s), 'a token signature in the output');
    }
    for (const kid of ['rsa-1', 'rsa-2', 'ec-1', 'ed-1', 'hs-1']) assert.ok(!out.includes(kid), 'a kid in the output');
    assert.ok(!out.includes(HS_SECRET), 'the secret in the output');
  });
});

describe('jwt: the JWKS server is down at start', { skip }, () => {
  let mock, gw, jwks, port;
  const ec = keypair('ec', 'late-1');
  before(async () => {
    port = await freePort(); // nothing listens there yet
    mock = await startMock();
    gw = await startGateway({
      mockPort: mock.port,
      env: { JWT_TEST_SECRET: HS_SECRET },
      config: (cfg) => {
        cfg.routes[0].plugins = [jwtPlugin(port, { jwks_timeout_ms: 2000 })];
        return cfg;
      },
    });
  });
  after(async () => { await gw?.stop(); await mock?.stop(); await jwks?.close(); });

  test('tokens are refused with 503 naming the JWKS while it is down, accepted once it is up; no crash', async () => {
    const first = await postJSON(`${gw.baseURL}/chat/completions`, chat, { headers: { authorization: `Bearer ${tokenFor(ec)}` } });
    assert.equal(first.status, 503, first.text);
    assert.equal(first.json.error.type, 'server_error');
    assert.match(first.json.error.message, /signing keys are unavailable: the JWKS could not be fetched/);
    // a static key still works meanwhile
    const hs = await postJSON(`${gw.baseURL}/chat/completions`, chat,
      { headers: { authorization: `Bearer ${sign('HS256', HS_SECRET, claims(), { kid: 'hs-1' })}` } });
    assert.equal(hs.status, 200, hs.text);

    jwks = await startJwks(port);
    jwks.set([ec]);
    await sleep(MIN_REFRESH_S * 1000 + 200); // the next attempt after a failure waits jwks_min_refresh_s
    let r;
    for (let i = 0; i < 20; i++) {
      r = await postJSON(`${gw.baseURL}/chat/completions`, chat, { headers: { authorization: `Bearer ${tokenFor(ec)}` } });
      if (r.status === 200) break;
      await sleep(300);
    }
    assert.equal(r.status, 200, r.text);
    assert.ok(jwks.fetches >= 1);
    const sdk = await new OpenAI({ baseURL: gw.baseURL, apiKey: tokenFor(ec), maxRetries: 0 }).chat.completions.create(chat);
    assert.ok(sdk.choices[0].message.content);
    assert.equal(gw.exited, null, 'the gateway is still running');
    await gw.waitForStderr(/jwt: JWKS from http:\/\/127\.0\.0\.1:\d+\/\.well-known\/jwks\.json could not be used/);
  });
});

describe('jwt: configuration errors at their JSON pointers', { skip }, () => {
  test('aigw --check names each problem', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigw-jwt-'));
    const f = path.join(dir, 'aigw.json');
    const bad = {
      audience: 'aigw',
      algorithms: ['RS256', 'none', 'HS512'],
      keys: [
        { kid: 'p', pem: '-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n' },
        { kid: 's', secret: 'too-short' },
        { kty: 'RSA', alg: 'HS256', n: 'AQAB', e: 'AQAB' },
        { kid: 'x' },
      ],
      jwks_url: 'ftp://keys.test/jwks',
      clock_skew_s: -1,
      colour: 'blue',
    };
    fs.writeFileSync(f, JSON.stringify({
      listen: [{ address: '127.0.0.1', port: 1 }], plugin_paths: [AIGW_PLUGIN_DIR],
      providers: { m: { plugin: 'mock', config: {} } },
      routes: [{ name: 'chat', match: { path: '/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'm' }], plugins: [{ name: 'jwt', config: bad }] }],
    }));
    const r = spawnSync(AIGW_BIN, ['--check', f], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    assert.notEqual(r.status, 0);
    const at = (ptr) => new RegExp(`/routes/0/plugins/0/config${ptr}: `);
    for (const [ptr, re] of [
      ['/issuer', /required/],
      ['/algorithms/1', /alg none is never accepted/],
      ['/algorithms/2', /unknown alg/],
      ['/keys/0/pem', /not a PEM public key/],
      ['/keys/1/secret', /at least 32 bytes/],
      ['/keys/2', /does not fit kty RSA/],
      ['/keys/3', /a key is a JWK/],
      ['/jwks_url', /http:\/\/ or https:\/\//],
      ['/clock_skew_s', /number from 0/],
      ['/colour', /unknown option/],
    ]) {
      const line = r.stderr.split('\n').find((l) => at(ptr).test(l));
      assert.ok(line, `no error at ${ptr}:\n${r.stderr}`);
      assert.match(line, re);
    }
  });
});
