// The example plugins (examples/plugins/, built out of tree against the installed SDK) loaded by a
// real gateway: hello adds its header; async_callout asks an allow-list service this test runs on
// loopback, and fails closed (403) when the service denies, errors, hangs or is down.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';
import { skipUnlessGateway, startMock, defaultConfig, closedPort, rawRequest, readStream, openAIError, sleep, until, CLIENT_KEY, AIGW_PLUGIN_DIR } from './lib/harness.mjs';
import { replyText } from '../mock/openai_mock.mjs';
import { EXAMPLES_DIR, SLACK_MS, skipUnlessExamples, launchGateway, twoPorts, startHttpServer, runAigw, writeConfig, tmpDir, stopAndCheck } from './lib/ops.mjs';

const skip = skipUnlessGateway() || skipUnlessExamples();
if (skip && !skipUnlessGateway()) process.stderr.write(`# gateway.examples: ${skip}\n`);
const chat = (content, model = 'gpt-4o-mini') => ({ model, messages: [{ role: 'user', content }] });
const CALLOUT_TIMEOUT = 600;

describe('example plugins: hello and async_callout', { skip }, () => {
  let mock;
  let policy; // the allow-list service
  let gw;
  let client;
  let policyDownPort;
  const routes = (name, prefix, plugins) => ({
    name, match: { methods: ['POST'], path: `${prefix}/v1/chat/completions` }, api: 'chat', targets: [{ provider: 'up' }], plugins,
  });
  const clientAt = (prefix) => new OpenAI({ baseURL: `${gw.url}${prefix}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000 });

  before(async () => {
    mock = await startMock();
    // allow unless the model says otherwise; /hang never answers; model "policy-500" → 500
    policy = await startHttpServer((req, body, res) => {
      if (req.url === '/hang') return; // never answers
      let model = '';
      try { model = JSON.parse(body).model; } catch { /* */ }
      if (String(model).includes('policy-500')) { res.writeHead(500, { 'content-type': 'application/json' }); return res.end('{"allow": true}'); }
      if (String(model).includes('policy-garbage')) { res.writeHead(200, { 'content-type': 'text/plain' }); return res.end('yes please'); }
      const allow = !String(model).includes('deny');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ reason: 'test', nested: { allow: !allow }, allow }));
    });
    policyDownPort = await closedPort();
    const [port, adminPort] = await twoPorts();
    const cfg = defaultConfig({ port, adminPort, mockPort: mock.port });
    cfg.plugin_paths = [EXAMPLES_DIR, AIGW_PLUGIN_DIR];
    const callout = (url) => ({ name: 'async_callout', config: { url, timeout_ms: CALLOUT_TIMEOUT } });
    const hello = { name: 'hello', config: { greeting: 'there' } };
    cfg.routes[0].plugins = [hello, callout(`${policy.url}/check`)];
    cfg.routes.push(routes('hello_only', '/hello', [{ name: 'hello' }]));
    cfg.routes.push(routes('policy_down', '/down', [hello, callout(`http://127.0.0.1:${policyDownPort}/check`)]));
    cfg.routes.push(routes('policy_hang', '/hang', [callout(`${policy.url}/hang`)]));
    gw = await launchGateway(cfg);
    client = clientAt('');
  });
  after(async () => {
    try { await stopAndCheck(gw); } finally { await policy?.close(); await mock?.stop(); }
  });

  test('--check loads both out-of-tree plugins and prints their order (async_callout 100 before hello 0)', async () => {
    const r = await runAigw(['--check', gw.configPath]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const i = lines.findIndex((l) => l.includes('route chat:'));
    assert.match(lines[i + 1], /1\. async_callout \(priority 100\)/);
    assert.match(lines[i + 2], /2\. hello \(priority 0\)/);
  });

  test('/plugins on the admin API lists them with their paths', async () => {
    const r = await fetch(`${gw.adminURL}/plugins`, { headers: { authorization: `Bearer ${gw.config.admin.token}` } });
    const list = await r.json();
    for (const n of ['hello', 'async_callout']) {
      const p = list.find((x) => x.name === n);
      assert.ok(p, `${n} listed: ${JSON.stringify(list)}`);
      assert.ok(p.path.startsWith(EXAMPLES_DIR), `${n} loaded from AIGW_EXAMPLES_DIR: ${p.path}`);
      assert.equal(p.abi_major, 1);
    }
  });

  test('hello adds x-hello with the configured greeting; default greeting is "world"', async () => {
    const { data, response } = await client.chat.completions.create(chat('hi')).withResponse();
    assert.equal(data.choices[0].message.content, 'You said: hi');
    assert.equal(response.headers.get('x-hello'), 'there');
    const { response: r2 } = await clientAt('/hello').chat.completions.create(chat('hi')).withResponse();
    assert.equal(r2.headers.get('x-hello'), 'world');
  });

  test('hello sets its header on a stream and on an upstream error response too', async () => {
    const s = await readStream(`${gw.baseURL}/chat/completions`, { ...chat('stream'), stream: true });
    assert.equal(s.status, 200);
    assert.equal(s.headers.get('x-hello'), 'there');
    assert.equal(s.events.at(-1)?.data, '[DONE]');
    await assert.rejects(client.chat.completions.create(chat('x', 'fault-500')), (e) => {
      assert.equal(e.status, 500);
      assert.equal(e.headers.get('x-hello'), 'there');
      return true;
    });
  });

  test('async_callout allow → the request proceeds; the service got POST {"model"} as JSON', async () => {
    const before = policy.calls.length;
    await mock.clearRequests();
    const r = await client.chat.completions.create(chat('allowed please'));
    assert.equal(r.choices[0].message.content, 'You said: allowed please');
    const call = policy.calls.at(-1);
    assert.equal(policy.calls.length, before + 1);
    assert.equal(call.method, 'POST');
    assert.equal(call.url, '/check');
    assert.match(call.headers['content-type'], /application\/json/);
    assert.deepEqual(JSON.parse(call.body), { model: 'gpt-4o-mini' });
    assert.equal((await mock.requests()).length, 1);
  });

  test('async_callout allow, streamed: the stream is complete', async () => {
    const body = { ...chat('a stream that was allowed', 'gpt-4o-mini+fault-trickle-5'), stream: true };
    const s = await client.chat.completions.create(body);
    let text = '';
    for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text, replyText(body));
  });

  test('async_callout deny → 403 PermissionDeniedError, OpenAI-shaped; upstream not called', async () => {
    await mock.clearRequests();
    await assert.rejects(client.chat.completions.create(chat('no', 'deny-me')), (e) => {
      assert.ok(e instanceof OpenAI.PermissionDeniedError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.status, 403);
      assert.equal(e.error?.type, 'permission_error');
      assert.match(e.error?.message ?? '', /not allowed by policy/);
      return true;
    });
    const raw = await rawRequest(`${gw.baseURL}/chat/completions`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...chat('no'), model: 'deny-raw', stream: true }) });
    assert.equal(raw.status, 403);
    assert.match(raw.headers['content-type'] || '', /application\/json/, 'a denied stream request gets a JSON error, not SSE');
    openAIError(raw.json);
    assert.equal((await mock.requests()).length, 0, 'nothing reached the upstream');
  });

  test('a model name with quotes and backslashes is sent to the service as valid JSON', async () => {
    const model = 'gpt "quoted" \\ back\nslash';
    const r = await client.chat.completions.create(chat('escaped', model));
    assert.equal(r.choices[0].message.content, 'You said: escaped', 'allowed: the service parsed the body');
    assert.deepEqual(JSON.parse(policy.calls.at(-1).body), { model });
  });

  test('policy service answers 500 or a non-JSON 200 → 403 (fail closed)', async () => {
    for (const m of ['policy-500', 'policy-garbage']) {
      await assert.rejects(client.chat.completions.create(chat('x', m)), (e) => {
        assert.ok(e instanceof OpenAI.PermissionDeniedError, `${m}: got ${e?.constructor?.name} ${e?.status}`);
        return true;
      });
    }
  });

  test('policy service down (connection refused) → 403 PermissionDeniedError quickly (fail closed)', async () => {
    await mock.clearRequests();
    const t0 = Date.now();
    await assert.rejects(clientAt('/down').chat.completions.create(chat('x')), (e) => {
      assert.ok(e instanceof OpenAI.PermissionDeniedError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.error?.type, 'permission_error');
      assert.equal(e.headers.get('x-hello'), null, 'hello (priority 0) never ran: the call-out (100) stopped the request first');
      return true;
    });
    assert.ok(Date.now() - t0 < CALLOUT_TIMEOUT + SLACK_MS);
    assert.equal((await mock.requests()).length, 0);
  });

  test('policy service hangs → 403 after timeout_ms (fail closed)', async () => {
    const t0 = Date.now();
    await assert.rejects(clientAt('/hang').chat.completions.create(chat('x')), (e) => {
      assert.ok(e instanceof OpenAI.PermissionDeniedError, `got ${e?.constructor?.name} ${e?.status}`);
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took >= CALLOUT_TIMEOUT - 100 && took < CALLOUT_TIMEOUT + SLACK_MS, `403 after ~${CALLOUT_TIMEOUT} ms (${took})`);
  });

  test('client gone while the call-out is pending (CANCELLED): gateway stays healthy, nothing leaks', async () => {
    for (let i = 0; i < 10; i++) {
      const ac = new AbortController();
      const p = clientAt('/hang').chat.completions.create(chat(`abort ${i}`), { signal: ac.signal }).catch((e) => e);
      await sleep(50);
      ac.abort();
      await p;
    }
    await sleep(CALLOUT_TIMEOUT + 200); // past the call-outs' own timeout too
    const ready = async () => (await (await fetch(`${gw.adminURL}/ready`, { headers: { authorization: `Bearer ${gw.config.admin.token}` } })).json()).active_requests;
    assert.ok(await until(async () => (await ready()) === 0, 3000), `no request left active (${await ready()})`);
    assert.equal(gw.exited, null);
    const r = await client.chat.completions.create(chat('after aborts'));
    assert.equal(r.choices[0].message.content, 'You said: after aborts');
  });

  test('concurrent allowed and denied requests each get their own verdict', async () => {
    const rs = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => client.chat.completions.create(chat(`c${i}`, i % 3 ? 'gpt-4o-mini' : 'deny-this'))));
    rs.forEach((r, i) => {
      if (i % 3) assert.equal(r.value?.choices[0].message.content, `You said: c${i}`, String(r.reason));
      else assert.ok(r.reason instanceof OpenAI.PermissionDeniedError, `request ${i}: ${r.reason}`);
    });
  });
});

describe('example plugins: config validation', { skip }, () => {
  let dir;
  before(() => { dir = tmpDir('aigw-ex-'); });
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  test('bad hello and async_callout configs are reported with their JSON pointers', async () => {
    const cfg = defaultConfig({ port: 18080, adminPort: 18081, mockPort: 9 });
    cfg.plugin_paths = [EXAMPLES_DIR, AIGW_PLUGIN_DIR];
    cfg.routes[0].plugins = [
      { name: 'hello', config: { greeting: 42 } },
      { name: 'async_callout', config: { url: 'ftp://nope', timeout_ms: 0 } },
    ];
    const r = await runAigw(['--check', writeConfig(cfg, dir)]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /\/routes\/0\/plugins\/0\/config\/greeting: .*string/);
    assert.match(r.stderr, /\/routes\/0\/plugins\/1\/config\/url: /);
    assert.match(r.stderr, /\/routes\/0\/plugins\/1\/config\/timeout_ms: /);
  });
});
