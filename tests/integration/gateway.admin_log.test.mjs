// Admin API (health, metrics, auth) and the access log through aigw.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useGateway, skipUnlessGateway, accessLogFor, ADMIN_TOKEN } from './lib/harness.mjs';

const LOG_KEYS = ['request_id', 'route', 'provider', 'model', 'status', 'latency_ms', 'upstream_latency_ms', 'ttft_ms', 'tokens_in', 'tokens_out', 'error'];

describe('gateway: admin API and access log', { skip: skipUnlessGateway() }, () => {
  const ctx = useGateway();

  test('/health answers without a token', async () => {
    const r = await ctx.gw.admin('/health', { token: false });
    assert.equal(r.status, 200);
  });

  test('/metrics requires the bearer token', async () => {
    let r = await ctx.gw.admin('/metrics', { token: false });
    assert.equal(r.status, 401);
    await r.arrayBuffer();
    r = await ctx.gw.admin('/metrics', { token: 'wrong-token' });
    assert.ok([401, 403].includes(r.status), `wrong token → ${r.status}`);
    await r.arrayBuffer();
  });

  test('/metrics exposes aigw_requests_total, counting requests', async () => {
    await ctx.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'metrics' }] });
    // counted as the request ends, just after its last byte went out: read until it is in (bounded)
    let r, text;
    for (let i = 0; i < 40; i++) {
      r = await ctx.gw.admin('/metrics', { token: ADMIN_TOKEN });
      text = await r.text();
      if (/^aigw_requests_total\{[^}]*\} [1-9]/m.test(text)) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') || '', /^text\/plain/);
    assert.match(text, /# TYPE aigw_requests_total counter/);
    const lines = text.split('\n').filter((l) => l.startsWith('aigw_requests_total'));
    assert.ok(lines.length >= 1, 'aigw_requests_total samples');
    const sum = lines.reduce((a, l) => a + Number(l.trim().split(/\s+/).pop()), 0);
    assert.ok(sum >= 1, `aigw_requests_total counts requests: ${lines.join(' | ')}`);
    assert.ok(!text.includes('sk-mock'), 'no provider key in metrics');
  });

  test('/ready, /routes, /plugins need the token', async () => {
    for (const p of ['/ready', '/routes', '/plugins']) {
      const no = await ctx.gw.admin(p, { token: false });
      assert.equal(no.status, 401, `${p} without token`);
      await no.arrayBuffer();
      const yes = await ctx.gw.admin(p);
      assert.equal(yes.status, 200, `${p} with token`);
      await yes.arrayBuffer();
    }
  });

  test('/routes lists the configured routes', async () => {
    const r = await ctx.gw.admin('/routes');
    const text = await r.text();
    for (const name of ['chat', 'embeddings', 'models']) assert.ok(text.includes(name), `route ${name} listed`);
  });

  test('access log: one JSON line per request with all the fields', async () => {
    const { response } = await ctx.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'log me' }] }).withResponse();
    const rid = response.headers.get('x-request-id');
    const log = await accessLogFor(ctx.gw, rid);
    for (const k of LOG_KEYS) assert.ok(k in log, `access log has ${k}: ${JSON.stringify(log)}`);
    assert.equal(log.route, 'chat');
    assert.equal(log.status, 200);
    assert.ok(log.tokens_in > 0 && log.tokens_out > 0);
    assert.ok(log.latency_ms >= 0);
    assert.equal(ctx.gw.accessLogs().filter((l) => l.request_id === rid).length, 1, 'exactly one record');
    assert.ok(!ctx.gw.stdout.includes('sk-mock'), 'provider key never logged');
  });

  test('access log for a stream has ttft_ms and tokens', async () => {
    const { data: stream, response } = await ctx.client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'stream log' }] }).withResponse();
    for await (const c of stream) void c;
    const log = await accessLogFor(ctx.gw, response.headers.get('x-request-id'));
    assert.equal(log.status, 200);
    assert.equal(typeof log.ttft_ms, 'number');
    assert.ok(log.tokens_in > 0 && log.tokens_out > 0);
  });

  test('access log for a 404 names no route and has the status', async () => {
    const r = await fetch(`${ctx.gw.url}/v1/unknown`, { method: 'POST', body: '{}' });
    await r.arrayBuffer();
    const log = await accessLogFor(ctx.gw, r.headers.get('x-request-id'));
    assert.equal(log.status, 404);
  });
});
