// API keys managed through the admin API (POST /keys, POST /keys/<id>/rotate, DELETE /keys/<id>;
// role admin), used by the keyauth plugin through the shared store: a created key works on every
// worker, a revoked or rotated one is refused on the very next request everywhere, and only the
// consumers keyauth's config defines can hold keys. The official openai SDK as the client.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import OpenAI from 'openai';
import { startGateway, startMock, skipUnlessGateway, ADMIN_TOKEN, until } from './lib/harness.mjs';

const skip = skipUnlessGateway();
const hash = (k) => `sha256:${crypto.createHash('sha256').update(k).digest('hex')}`;
const VIEWER = 'viewer-token-0123456789';

describe('keyauth: keys created, rotated and revoked through the admin API', { skip }, () => {
  let mock, gw;
  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      mockPort: mock.port,
      config: (cfg) => {
        cfg.workers = 2;
        cfg.admin.tokens = [{ token: VIEWER, role: 'viewer' }];
        cfg.routes[0].plugins = [{ name: 'keyauth', config: { consumers: [
          { name: 'alice', keys: [hash('sk-config-key-for-alice-000')] },
          { name: 'bob', team: 'support', keys: [hash('sk-config-key-for-bob-0000')] },
        ] } }];
        return cfg;
      },
    });
  });
  after(async () => { await gw?.stop(); await mock?.stop(); });

  const admin = (method, p, body, token = ADMIN_TOKEN) => gw.admin(p, { method, token, body: body === undefined ? undefined : JSON.stringify(body) });
  // fresh connections each time, so requests land on both workers
  const ask = (key) => new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0, httpAgent: new http.Agent({ keepAlive: false }) })
    .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  const refused = (p) => assert.rejects(p, (e) => e instanceof OpenAI.AuthenticationError);

  test('create: the key is shown once and works on every worker; the consumer is the one named', async () => {
    const r = await admin('POST', '/keys', { consumer: 'bob' });
    assert.equal(r.status, 201);
    const j = await r.json();
    assert.match(j.key, /^sk-aigw-[0-9a-f]{48}$/);
    assert.match(j.id, /^[0-9a-f]{12}$/);
    const answers = await Promise.all(Array.from({ length: 8 }, () => ask(j.key)));
    assert.ok(answers.every((a) => a.choices[0].message.content === 'You said: hi'));
    assert.ok(!(gw.stdout + gw.stderr).includes(j.key), 'the key is never logged');
  });

  test('revoke: the next request is refused on every worker', async () => {
    const { key, id } = await (await admin('POST', '/keys', { consumer: 'alice' })).json();
    await ask(key);
    const d = await admin('DELETE', `/keys/${id}`);
    assert.equal(d.status, 200);
    await Promise.all(Array.from({ length: 8 }, () => refused(ask(key))));
    assert.equal((await admin('DELETE', `/keys/${id}`)).status, 404, 'gone');
  });

  test('rotate: the old key stops at once, the new one works for the same consumer', async () => {
    const first = await (await admin('POST', '/keys', { consumer: 'bob' })).json();
    const r = await admin('POST', `/keys/${first.id}/rotate`);
    assert.equal(r.status, 201);
    const second = await r.json();
    assert.equal(second.consumer, 'bob');
    assert.equal(second.replaced, first.id);
    assert.notEqual(second.key, first.key);
    await refused(ask(first.key));
    await ask(second.key);
  });

  test('a key made with expires_in_s stops by itself; a bad expiry is a 400', async () => {
    const r = await admin('POST', '/keys', { consumer: 'bob', expires_in_s: 1 });
    assert.equal(r.status, 201);
    const { key, expires_at } = await r.json();
    assert.ok(Math.abs(expires_at - (Date.now() / 1000 + 1)) < 30, `expires_at ${expires_at}`);
    await ask(key);
    const gone = await until(async () => { try { await ask(key); return false; } catch (e) { return e instanceof OpenAI.AuthenticationError; } }, 8000, 100);
    assert.ok(gone, 'the key expired');
    for (const bad of [0, -5, 1.5, 'soon', 400000000]) {
      const b = await admin('POST', '/keys', { consumer: 'bob', expires_in_s: bad });
      assert.equal(b.status, 400, `expires_in_s ${bad}`);
      assert.match((await b.json()).error.message, /expires_in_s/);
    }
  });

  test('only admins manage keys; a key for an unknown consumer is refused when used', async () => {
    assert.equal((await admin('POST', '/keys', { consumer: 'bob' }, VIEWER)).status, 403);
    assert.equal((await admin('POST', '/keys', { nope: 1 })).status, 400);
    const { key } = await (await admin('POST', '/keys', { consumer: 'mallory' })).json();
    await refused(ask(key));
    // config keys are untouched by all this
    await ask('sk-config-key-for-alice-000');
  });
});

describe('consumers managed through the admin API (PUT/GET/DELETE /consumers/<name>), with their own limits', { skip }, () => {
  let mock, gw;
  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      mockPort: mock.port,
      config: (cfg) => {
        cfg.admin.tokens = [{ token: VIEWER, role: 'viewer' }];
        cfg.routes[0].plugins = [
          { name: 'keyauth', config: { consumers: [
            { name: 'alice', keys: [hash('sk-config-key-for-alice-000')], limits: { rpm: 1 } },
          ] } },
          { name: 'limits', config: { limits: [{ name: 'rpm', by: ['consumer'], requests: 5, window_s: 600 }] } },
        ];
        return cfg;
      },
    });
  });
  after(async () => { await gw?.stop(); await mock?.stop(); });

  const admin = (method, p, body, token = ADMIN_TOKEN) => gw.admin(p, { method, token, body: body === undefined ? undefined : JSON.stringify(body) });
  const ask = (key, model = 'gpt-4o-mini') => new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0, httpAgent: new http.Agent({ keepAlive: false }) })
    .chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }).withResponse();

  test('a consumer made through the admin API: its keys work, its models and its own limit apply; deleted, its keys stop', async () => {
    const rec = { team: 'ops', tier: 'gold', models: ['gpt-4o*'], limits: { rpm: 2 }, metadata: { cost_center: '7' } };
    assert.equal((await admin('PUT', '/consumers/dave', rec, VIEWER)).status, 403, 'viewers read, admins write');
    const put = await admin('PUT', '/consumers/dave', rec);
    assert.equal(put.status, 201, await put.clone().text());
    assert.equal((await admin('PUT', '/consumers/dave', rec)).status, 200, 'replaced');
    const got = await admin('GET', '/consumers/dave', undefined, VIEWER);
    assert.equal(got.status, 200);
    assert.deepEqual((await got.json()).consumer, rec);
    const { key } = await (await admin('POST', '/keys', { consumer: 'dave' })).json();
    // its own limit (2), not the route's (5); the counter is per consumer as configured
    const { response } = await ask(key);
    assert.equal(response.headers.get('x-ratelimit-limit-requests'), '2');
    await ask(key);
    await assert.rejects(ask(key), (e) => e instanceof OpenAI.RateLimitError && /limit 'rpm' reached: 2 requests/.test(e.message));
    // its model allow-list
    await assert.rejects(ask(key, 'o1-mini'), (e) => e instanceof OpenAI.PermissionDeniedError);
    // deleted: its keys are refused at once
    assert.equal((await admin('DELETE', '/consumers/dave')).status, 200);
    assert.equal((await admin('GET', '/consumers/dave')).status, 404);
    await assert.rejects(ask(key), (e) => e instanceof OpenAI.AuthenticationError);
  });

  test('a config consumer\'s own limit replaces the route\'s', async () => {
    await ask('sk-config-key-for-alice-000');
    await assert.rejects(ask('sk-config-key-for-alice-000'), (e) => e instanceof OpenAI.RateLimitError && /1 requests/.test(e.message));
  });

  test('bad consumer records and names are refused with a reason', async () => {
    const bad = async (p, body, re, status = 400) => {
      const r = await admin('PUT', p, body);
      assert.equal(r.status, status);
      assert.match((await r.json()).error.message, re);
    };
    await bad('/consumers/eve', { teem: 'x' }, /unknown member 'teem'/);
    await bad('/consumers/eve', { limits: { rpm: -1 } }, /limits' must be an object of numbers >= 0/);
    await bad('/consumers/eve', { models: 'gpt-4o' }, /models' must be an array of names/);
    await bad('/consumers/e%20ve', {}, /letters, digits/, 404);
  });
});
