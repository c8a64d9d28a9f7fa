// The host store on Redis ("store": {"backend": "redis"}): a real redis-server started here on
// loopback, two aigw instances sharing one per-user quota (examples/lua/quota.lua) through it,
// and Redis killed mid-run: store calls fail fast and the script's fail-open/closed policy decides,
// never a hang. Requests go through the official openai SDK.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { startGateway, startMock, startRedis, skipUnlessGateway, REDIS_SKIP, REPO_ROOT, until, freePort } from './lib/harness.mjs';

const skip = skipUnlessGateway() || REDIS_SKIP;
const QUOTA = fs.readFileSync(path.join(REPO_ROOT, 'examples', 'lua', 'quota.lua'), 'utf8');

describe('store on redis: shared by gateways, failing fast without it', { skip }, () => {
  let redis, mock, gwA, gwB, redisPort;
  const config = (failOpen) => (cfg) => {
    cfg.store = { backend: 'redis', redis: { host: '127.0.0.1', port: redisPort, timeout_ms: 200, prefix: `t${process.pid}:` } };
    cfg.routes[0].plugins = [
      { name: 'lua', config: { inline: QUOTA, name: 'quota.lua', config: { header: 'x-user-id', limit: 4, fail_open: failOpen } } },
    ];
    return cfg;
  };
  before(async () => {
    redis = await startRedis();
    redisPort = redis.port;
    mock = await startMock();
    gwA = await startGateway({ mockPort: mock.port, config: config(false) });
    gwB = await startGateway({ mockPort: mock.port, config: config(true) });
  });
  after(async () => { await gwA?.stop(); await gwB?.stop(); await mock?.stop(); await redis?.stop(); });

  const client = (gw, user) => new OpenAI({ baseURL: gw.baseURL, apiKey: 'sk-client', maxRetries: 0, defaultHeaders: { 'x-user-id': user } });
  const ask = (gw, user) => client(gw, user).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).withResponse();

  test('two gateways count one quota: the 5th request is refused whichever node gets it', async () => {
    const user = `u-${Date.now()}`;
    const seen = [];
    for (const gw of [gwA, gwB, gwA, gwB]) {
      const { response } = await ask(gw, user);
      seen.push(response.headers.get('x-quota-remaining'));
    }
    assert.deepEqual(seen, ['3', '2', '1', '0'], 'each node saw the other node\'s requests');
    await assert.rejects(ask(gwA, user), (e) => e instanceof OpenAI.RateLimitError);
    await assert.rejects(ask(gwB, user), (e) => e instanceof OpenAI.RateLimitError);
    // another user has its own count
    const { response } = await ask(gwB, `${user}-other`);
    assert.equal(response.headers.get('x-quota-remaining'), '3');
  });

  test('concurrent requests on both nodes never overshoot the count', async () => {
    const user = `c-${Date.now()}`;
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => ask(i % 2 ? gwA : gwB, user)));
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    assert.equal(ok, 4, 'exactly the limit got through');
    assert.ok(results.filter((r) => r.status === 'rejected').every((r) => r.reason instanceof OpenAI.RateLimitError));
  });

  test('redis killed: store calls fail within timeout_ms; fail closed answers 503, fail open lets it through', async () => {
    await redis.stop();
    // a 503 from the script (not a client-side timeout) proves the store call failed fast
    await assert.rejects(ask(gwA, 'after-kill'), (e) => e instanceof OpenAI.APIError && e.status === 503);
    const { response } = await ask(gwB, 'after-kill');
    assert.equal(response.status, 200, 'fail open');
    // redis back on the same port: the gateways reconnect by themselves
    redis = await startRedis({ port: redisPort });
    const user = `back-${Date.now()}`;
    await until(async () => {
      try { const r = await ask(gwA, user); return r.response.headers.get('x-quota-remaining') !== null; } catch { return false; }
    }, 8000, 100);
  });
});

describe('keys made through one node\'s admin API work, and stop, on every node (store on redis)', { skip }, () => {
  let redis, mock, gwA, gwB, redisPort;
  const config = (cfg) => {
    cfg.store = { backend: 'redis', redis: { host: '127.0.0.1', port: redisPort, timeout_ms: 300, prefix: `k${process.pid}:` } };
    cfg.routes[0].plugins = [{ name: 'keyauth', config: { consumers: [{ name: 'bob', keys: [`sha256:${'0'.repeat(64)}`] }] } }];
    return cfg;
  };
  before(async () => {
    redis = await startRedis();
    redisPort = redis.port;
    mock = await startMock();
    gwA = await startGateway({ mockPort: mock.port, config });
    gwB = await startGateway({ mockPort: mock.port, config });
  });
  after(async () => { await gwA?.stop(); await gwB?.stop(); await mock?.stop(); await redis?.stop(); });

  const ask = (gw, key) => new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 })
    .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });

  test('created on A, used on B; revoked on B, refused on A', async () => {
    const r = await gwA.admin('/keys', { method: 'POST', body: JSON.stringify({ consumer: 'bob' }) });
    assert.equal(r.status, 201);
    const { key, id } = await r.json();
    await ask(gwB, key);
    await ask(gwA, key);
    assert.equal((await gwB.admin(`/keys/${id}`, { method: 'DELETE' })).status, 200);
    await assert.rejects(ask(gwA, key), (e) => e instanceof OpenAI.AuthenticationError);
    await assert.rejects(ask(gwB, key), (e) => e instanceof OpenAI.AuthenticationError);
  });

  test('a key with expires_in_s expires on redis too (both nodes)', async () => {
    const { key } = await (await gwA.admin('/keys', { method: 'POST', body: JSON.stringify({ consumer: 'bob', expires_in_s: 1 }) })).json();
    await ask(gwB, key);
    const gone = await until(async () => { try { await ask(gwB, key); return false; } catch (e) { return e instanceof OpenAI.AuthenticationError; } }, 8000, 100);
    assert.ok(gone, 'expired');
    await assert.rejects(ask(gwA, key), (e) => e instanceof OpenAI.AuthenticationError);
  });
});

describe('redis down when the gateway starts: it starts, the limits\' policy answers, and it connects once redis is up', { skip }, () => {
  let redis, mock, gw, redisPort;
  before(async () => {
    redisPort = await freePort(); // nothing listens here yet
    mock = await startMock();
    gw = await startGateway({ mockPort: mock.port, config: (cfg) => {
      cfg.store = { backend: 'redis', redis: { host: '127.0.0.1', port: redisPort, timeout_ms: 200, prefix: `d${process.pid}:` } };
      cfg.routes[0].plugins = [{ name: 'limits', config: { limits: [
        { name: 'closed', by: ['header:x-c'], requests: 2, window_s: 60, fail_open: false },
        { name: 'open', by: ['header:x-o'], requests: 2, window_s: 60, fail_open: true },
      ] } }];
      return cfg;
    } });
  });
  after(async () => { await gw?.stop(); await mock?.stop(); await redis?.stop(); });

  const ask = (headers) => new OpenAI({ baseURL: gw.baseURL, apiKey: 'sk-client', maxRetries: 0, defaultHeaders: headers })
    .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).withResponse();

  test('fail closed: 503; fail open: 200; then redis starts and the limit counts', async () => {
    await assert.rejects(ask({ 'x-c': 'a' }), (e) => e instanceof OpenAI.APIError && e.status === 503);
    assert.equal((await ask({ 'x-o': 'a' })).response.status, 200, 'fail open');
    redis = await startRedis({ port: redisPort });
    const who = { 'x-c': `c${Date.now()}` };
    await until(async () => { try { await ask(who); return true; } catch { return false; } }, 10000, 100);
    // counted on redis now: the limit of 2 holds (one or two got through while connecting)
    let refused = false;
    for (let i = 0; i < 3 && !refused; i++) {
      try { await ask(who); } catch (e) { assert.ok(e instanceof OpenAI.RateLimitError, String(e)); refused = true; }
    }
    assert.ok(refused, 'the limit counts once redis is up');
  });
});

describe('a redis that stops answering (frozen): commands time out, then the breaker treats it as down; it recovers', { skip }, () => {
  let redis, mock, gw;
  before(async () => {
    redis = await startRedis();
    mock = await startMock();
    gw = await startGateway({ mockPort: mock.port, config: (cfg) => {
      cfg.workers = 1;
      cfg.store = { backend: 'redis', redis: { host: '127.0.0.1', port: redis.port, timeout_ms: 150, prefix: `f${process.pid}:` } };
      cfg.routes[0].plugins = [{ name: 'limits', config: { limits: [
        { name: 'open', by: ['header:x-o'], requests: 100, window_s: 60, fail_open: true },
        { name: 'closed', by: ['header:x-c'], requests: 100, window_s: 60, fail_open: false },
      ] } }];
      return cfg;
    } });
  });
  after(async () => {
    if (redis?.child?.exitCode === null) redis.child.kill('SIGCONT');
    await gw?.stop(); await mock?.stop(); await redis?.stop();
  });

  const ask = (headers) => new OpenAI({ baseURL: gw.baseURL, apiKey: 'sk-client', maxRetries: 0, defaultHeaders: headers })
    .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).withResponse();

  test('frozen: fail open answers, fail closed 503s; after 5 timeouts in a row the node is dropped; thawed, counting resumes', async () => {
    const { response } = await ask({ 'x-o': 'u' });
    assert.equal(response.headers.get('x-ratelimit-remaining-requests'), '99', 'counted on redis');
    redis.child.kill('SIGSTOP');
    for (let i = 0; i < 5; i++) assert.equal((await ask({ 'x-o': 'u' })).response.status, 200, 'fail open');
    await until(() => /did not answer 5 commands in a row within timeout_ms=150; treated as down/.test(gw.stderr), 3000, 50);
    await assert.rejects(ask({ 'x-c': 'u' }), (e) => e instanceof OpenAI.APIError && e.status === 503);
    redis.child.kill('SIGCONT');
    // back: the gateway reconnects after its back-off and counts again
    const ok = await until(async () => {
      try { const r = await ask({ 'x-c': 'v' }); return r.response.headers.get('x-ratelimit-remaining-requests') !== null; } catch { return false; }
    }, 10000, 100);
    assert.ok(ok, 'counting resumed');
  });
});

describe('two gateways share token limits and cost budgets through redis (the limits plugin)', { skip }, () => {
  let redis, mock, gwA, gwB;
  const config = (cfg) => {
    cfg.model_catalog = path.join(REPO_ROOT, 'conf', 'models.json');
    cfg.store = { backend: 'redis', redis: { host: '127.0.0.1', port: redis.port, timeout_ms: 300, prefix: `b${process.pid}:` } };
    cfg.routes[0].plugins = [{ name: 'limits', config: { limits: [
      { name: 'budget', by: ['header:x-spender'], cost_usd: 0.0001, window_s: 3600 },
      { name: 'tokens', by: ['header:x-tok'], total_tokens: 120, window_s: 600 },
    ] } }];
    return cfg;
  };
  before(async () => {
    redis = await startRedis();
    mock = await startMock();
    gwA = await startGateway({ mockPort: mock.port, config });
    gwB = await startGateway({ mockPort: mock.port, config });
  });
  after(async () => { await gwA?.stop(); await gwB?.stop(); await mock?.stop(); await redis?.stop(); });

  const ask = (gw, headers, stream = false) => {
    const c = new OpenAI({ baseURL: gw.baseURL, apiKey: 'sk-client', maxRetries: 0, defaultHeaders: headers });
    const body = { model: 'gpt-4o-mini', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] };
    if (!stream) return c.chat.completions.create(body);
    return (async () => {
      const s = await c.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
      for await (const ch of s) void ch;
    })();
  };
  // requests admitted, alternating over the gateways given, until the first 429
  const admitted = async (gws, headers, stream) => {
    for (let n = 0; n < 200; n++) {
      try { await ask(gws[n % gws.length], headers, stream && n % 2 === 1); } catch (e) {
        assert.ok(e instanceof OpenAI.RateLimitError, String(e));
        return n;
      }
    }
    assert.fail('never limited');
  };

  test('a cost budget: alternating over two gateways admits exactly what one gateway admits, then both refuse', async () => {
    const t = Date.now();
    const one = await admitted([gwA], { 'x-spender': `one-${t}` });
    const two = await admitted([gwA, gwB], { 'x-spender': `two-${t}` });
    assert.ok(one >= 2, `the budget admits several requests (${one})`);
    assert.equal(two, one, 'the two gateways spend from one budget');
    await assert.rejects(ask(gwA, { 'x-spender': `two-${t}` }), (e) => e instanceof OpenAI.RateLimitError);
    await assert.rejects(ask(gwB, { 'x-spender': `two-${t}` }), (e) => e instanceof OpenAI.RateLimitError);
  });

  test('a token limit settled from real usage, streamed and not, across two gateways: the same count as one gateway', async () => {
    const t = Date.now();
    const one = await admitted([gwB], { 'x-tok': `one-${t}` }, true);
    const two = await admitted([gwA, gwB], { 'x-tok': `two-${t}` }, true);
    assert.ok(one >= 3, `several requests fit (${one})`);
    assert.equal(two, one);
  });
});

describe('a reload that moves the store to another redis: counting goes on there', { skip }, () => {
  let redisA, redisB, mock, gw;
  before(async () => {
    redisA = await startRedis();
    redisB = await startRedis();
    mock = await startMock();
    gw = await startGateway({ mockPort: mock.port, config: (cfg) => {
      cfg.store = { backend: 'redis', redis: { host: '127.0.0.1', port: redisA.port, timeout_ms: 300, prefix: `m${process.pid}:` } };
      cfg.routes[0].plugins = [{ name: 'limits', config: { limits: [{ name: 'rpm', by: ['header:x-u'], requests: 10, window_s: 600, fail_open: false }] } }];
      return cfg;
    } });
  });
  after(async () => { await gw?.stop(); await mock?.stop(); await redisA?.stop(); await redisB?.stop(); });

  const left = async () => {
    const { response } = await new OpenAI({ baseURL: gw.baseURL, apiKey: 'sk-client', maxRetries: 0, defaultHeaders: { 'x-u': 'same' } })
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    return Number(response.headers.get('x-ratelimit-remaining-requests'));
  };

  test('3 counted on A; after the reload every worker counts on B from zero, and A is not used any more', async () => {
    for (const want of [9, 8, 7]) assert.equal(await left(), want);
    const cfg = JSON.parse(fs.readFileSync(gw.configPath, 'utf8'));
    cfg.store.redis.port = redisB.port;
    fs.writeFileSync(gw.configPath, JSON.stringify(cfg));
    const r = await gw.admin('/reload', { method: 'POST' });
    assert.equal(r.status, 200, await r.text());
    // both workers now count on B (fresh), none on A
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push(await left());
    assert.deepEqual(seen, [9, 8, 7, 6]);
    await redisA.stop();
    assert.equal(await left(), 5, 'A is not used any more');
  });
});
