// The limits plugin: request, token and cost limits with "reserve, then settle", through the
// official openai SDK, streamed and not; concurrent requests never overshoot; a budget's soft
// threshold warns; the same on the Redis-backed store (a real redis-server on loopback).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import OpenAI from 'openai';
import { startGateway, startMock, startRedis, skipUnlessGateway, REDIS_SKIP, REPO_ROOT, accessLogFor, metricValue } from './lib/harness.mjs';

const skip = skipUnlessGateway();
const CATALOG = path.join(REPO_ROOT, 'conf', 'models.json');

function limitsConfig(limits, extra) {
  return (cfg) => {
    cfg.model_catalog = CATALOG;
    cfg.routes[0].plugins = [{ name: 'limits', config: { limits } }];
    return extra ? extra(cfg) : cfg;
  };
}

const LIMITS = [
  { name: 'rpm', by: ['header:x-user'], requests: 3, window_s: 60 },
  { name: 'tokens', by: ['header:x-tok'], total_tokens: 100, window_s: 600 },
  { name: 'burst', by: ['header:x-burst'], requests: 10, window_s: 60 },
  { name: 'budget', by: ['header:x-spender'], cost_usd: 0.0001, window_s: 3600, soft: 0.5 },
];

function suite(label, opts) {
  describe(`limits (${label})`, { skip: opts.skip ?? skip }, () => {
    let mock, gw, redis;
    before(async () => {
      if (opts.redis) redis = await opts.redis();
      mock = await startMock();
      gw = await startGateway({ mockPort: mock.port, config: limitsConfig(LIMITS, opts.redis ? (cfg) => {
        cfg.store = { backend: 'redis', redis: { host: '127.0.0.1', port: redis.port, timeout_ms: 300, prefix: `lim${process.pid}:` } };
        return cfg;
      } : null) });
    });
    after(async () => { await gw?.stop(); await mock?.stop(); await redis?.stop(); });

    const client = (headers) => new OpenAI({ baseURL: gw.baseURL, apiKey: 'sk-client', maxRetries: 0, defaultHeaders: headers });
    const ask = (headers, extra = {}) => client(headers).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...extra }).withResponse();

    test('requests: 3 per window; the 4th is a 429 naming the limit, with retry-after; headers count down', async () => {
      const user = { 'x-user': `u${Date.now()}` };
      const left = [];
      for (let i = 0; i < 3; i++) {
        const { response } = await ask(user);
        left.push(response.headers.get('x-ratelimit-remaining-requests'));
        assert.equal(response.headers.get('x-ratelimit-limit-requests'), '3');
      }
      assert.deepEqual(left, ['2', '1', '0']);
      await assert.rejects(ask(user), (e) => {
        assert.ok(e instanceof OpenAI.RateLimitError);
        assert.match(e.message, /limit 'rpm' reached: 3 requests per 60 s/);
        assert.ok(Number(e.headers.get('retry-after')) > 0);
        return true;
      });
      // another user is not affected
      await ask({ 'x-user': `${user['x-user']}-b` });
    });

    test('tokens: reserved before, settled to the real usage after (streamed and not)', async () => {
      const tok = { 'x-tok': `t${Date.now()}` };
      // the reservation is the prompt's raw JSON bytes / 4 + max_tokens; the real usage is smaller
      const est = Math.ceil(JSON.stringify([{ role: 'user', content: 'hi' }]).length / 4) + 5;
      const first = await ask(tok, { max_tokens: 5 });
      const real = first.data.usage.total_tokens;
      assert.ok(real < est, `the test needs real (${real}) < estimate (${est})`);
      let admitted = 1;
      for (let i = 0; i < 60; i++) {
        try {
          if (i % 2) {
            const s = await client(tok).chat.completions.create({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
            for await (const c of s) void c;
          } else {
            await ask(tok, { max_tokens: 5 });
          }
          admitted++;
        } catch (e) {
          assert.ok(e instanceof OpenAI.RateLimitError, String(e));
          break;
        }
      }
      // settled: each request counts its real usage; the last one admitted still had room for its estimate
      assert.equal(admitted, Math.floor((100 - est) / real) + 1, `admitted ${admitted}, real ${real}, estimate ${est}`);
    });

    test('a stream that breaks after it started keeps its reservation (what was sent is never counted as 0)', async () => {
      const tok = { 'x-tok': `broken${Date.now()}` };
      const msgs = [{ role: 'user', content: 'hi' }];
      const est = (max) => Math.ceil(JSON.stringify(msgs).length / 4) + max;
      const s = await client(tok).chat.completions.create({ model: 'gpt-4o-mini+fault-error-after-3', stream: true, max_tokens: 20, messages: msgs });
      let chunks = 0;
      await assert.rejects((async () => { for await (const c of s) { void c; chunks++; } })());
      assert.ok(chunks > 0, 'content reached the client before the break');
      const { response } = await ask(tok, { max_tokens: 5 });
      // the broken stream's reservation (20 + prompt) stays; this request reserved its own estimate
      assert.equal(Number(response.headers.get('x-ratelimit-remaining-tokens')), 100 - est(20) - est(5));
    });

    test('64 concurrent requests against a limit of 10: exactly 10 get through', async () => {
      const h = { 'x-burst': `b${Date.now()}` };
      const before = metricValue(await (await gw.admin('/metrics')).text(), 'aigw_plugin_limits_refused_total', { limit: 'burst' }) ?? 0;
      const res = await Promise.allSettled(Array.from({ length: 64 }, () => ask(h)));
      assert.equal(res.filter((r) => r.status === 'fulfilled').length, 10);
      const after = metricValue(await (await gw.admin('/metrics')).text(), 'aigw_plugin_limits_refused_total', { limit: 'burst' });
      assert.equal(after - before, 54, 'each refusal counted on /metrics under its limit');
      assert.ok(res.filter((r) => r.status === 'rejected').every((r) => r.reason instanceof OpenAI.RateLimitError));
    });

    test('a cost budget (catalog prices): a warning past its soft share, then a 429', async () => {
      const h = { 'x-spender': `s${Date.now()}` };
      let warned = null;
      let refused = false;
      for (let i = 0; i < 60 && !refused; i++) {
        try {
          const { response } = await ask(h, { max_tokens: 5 });
          warned = warned ?? response.headers.get('x-aigw-limit-warning');
          if (warned && !warned.rec) {
            const rec = await accessLogFor(gw, response.headers.get('x-request-id'));
            assert.equal(rec.limit_warning.limit, 'budget');
          }
        } catch (e) {
          assert.ok(e instanceof OpenAI.RateLimitError);
          assert.match(e.message, /limit 'budget' reached: \$0\.00 per 3600 s/);
          refused = true;
        }
      }
      assert.match(warned ?? '', /^budget at \d+% of its limit$/);
      assert.ok(refused);
    });
  });
}

suite('in-process store', {});

suite('redis store', { skip: skip || REDIS_SKIP, redis: startRedis });
