// The lua plugin (plugins/lua) end to end with the official openai SDK: the six example policies of
// examples/lua/ (deny, route by header, daily quota in the store, redaction in prompts and streamed
// answers, billing tags, allow-list call-out to a loopback service this test runs), scripts that
// loop / fail / exhaust memory (500 with the script's line, and the next request still works),
// waits where ABI 1.0 cannot pause, config errors with their JSON pointer, and reload.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import {
  skipUnlessGateway, startMock, startGateway, CLIENT_KEY, AIGW_PLUGIN_DIR, metricValue, sleep, until,
} from './lib/harness.mjs';
import { startHttpServer, runAigw, tmpDir, writeConfig, SLACK_MS } from './lib/ops.mjs';

const skip = skipUnlessGateway() || (fs.existsSync(path.join(AIGW_PLUGIN_DIR, 'lua.so')) ? false : `lua.so not found in ${AIGW_PLUGIN_DIR}`);
const chat = (content, model = 'gpt-4o-mini', extra = {}) => ({ model, messages: [{ role: 'user', content }], ...extra });

const route = (name, plugins, extra = {}) => ({
  name,
  match: { methods: ['POST'], path: `/${name}/v1/chat/completions` },
  api: 'chat',
  targets: [{ provider: 'up' }],
  plugins,
  ...extra,
});
const lua = (config) => ({ name: 'lua', config });

// Inline scripts that fail in every way a script can, one per request model.
const BAD = `
function on_request(ctx)
  local m = aigw.model()
  if m == "loop" then
    while true do end
  elseif m == "error" then
    local t = nil
    return t.field
  elseif m == "oom" then
    local s = "x"
    while true do s = s .. s end
  elseif m == "pcall-loop" then
    while true do pcall(function() while true do end end) end
  elseif m == "hoard" then
    hoard = hoard or {}
    for i = 1, 1e7 do hoard[#hoard + 1] = ("y"):rep(65536) end
  end
end
`;

const STREAM_BAD = `
function on_event(ctx)
  if aigw.event.kind() ~= "delta" then return end
  local m = aigw.model()
  if m == "event-error" then error("bad event") end
  if m == "event-wait" then aigw.sleep(1) end
end
`;

describe('lua plugin: example policies and failures', { skip }, () => {
  let mock;
  let allow; // the allow-list service
  let gw;
  let dir;
  let reloadScript;
  const clientAt = (name, opts = {}) => new OpenAI({ baseURL: `${gw.url}/${name}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000, ...opts });

  before(async () => {
    mock = await startMock();
    allow = await startHttpServer((req, body, res) => {
      if (req.url === '/hang') return; // never answers
      let q = {};
      try { q = JSON.parse(body); } catch { /* */ }
      const ok = ['alice', 'bob'].includes(q.user) && !String(q.model).startsWith('forbidden');
      res.writeHead(200, { 'content-type': 'application/json', 'x-allow-reason': ok ? `listed:${q.user}` : 'no' });
      res.end(JSON.stringify({ allow: ok }));
    });
    dir = tmpDir('aigw-lua-');
    reloadScript = path.join(dir, 'reload.lua');
    fs.writeFileSync(reloadScript, 'function on_request() aigw.resp.set_header("x-version", "1") end\n');
    gw = await startGateway({
      mockPort: mock.port,
      config: (cfg) => {
        cfg.routes[0].targets = [{ name: 'small', provider: 'up' }, { name: 'big', provider: 'up', model: 'big-model' }];
        cfg.routes.push(
          route('deny', [lua({ script: 'examples/lua/deny.lua', config: { keywords: ['Project Orion'], models: ['gpt-4', 'o1-*'] } })]),
          route('tier', [lua({ script: 'examples/lua/route_by_header.lua', config: { header: 'x-tier', targets: { premium: 'big' }, models: { free: 'free-model' } } })],
            { targets: [{ name: 'small', provider: 'up' }, { name: 'big', provider: 'up', model: 'big-model' }] }),
          route('quota', [lua({ script: 'examples/lua/quota.lua', config: { limit: 3 } })]),
          route('redact', [lua({ script: 'examples/lua/redact.lua', config: { patterns: ['EMP%-%d+', 'You said'], max_match: 24 } })]),
          route('billing', [lua({
            script: 'examples/lua/billing_tags.lua',
            config: { cost_centers: { search: 'CC-100' } },
            metrics: { requests_by_team: { type: 'counter', help: 'requests per team', labels: ['team', 'model'] } },
          })]),
          route('allow', [lua({ script: 'examples/lua/allowlist.lua', config: { url: `${allow.url}/check`, timeout_ms: 400 } })]),
          route('allowhang', [lua({ script: 'examples/lua/allowlist.lua', config: { url: `${allow.url}/hang`, timeout_ms: 300 } })]),
          route('bad', [lua({ inline: BAD, name: 'bad.lua', max_instructions: 100000, max_memory_mb: 4 })]),
          route('streambad', [lua({ inline: STREAM_BAD, name: 'streambad.lua' })]),
          route('reload', [lua({ script: reloadScript })]),
        );
        return cfg;
      },
    });
  });
  after(async () => {
    try { await gw?.stop(); } finally {
      await allow?.close();
      await mock?.stop();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const upstreamModels = async () => (await mock.requests()).map((r) => r.body?.model);

  // ---- deny -----------------------------------------------------------------------------------
  test('deny.lua: a blocked model and a blocked keyword get 403 in OpenAI shape; nothing reaches the upstream', async () => {
    const c = clientAt('deny');
    await mock.clearRequests();
    for (const [body, msg] of [
      [chat('hi', 'gpt-4'), /model 'gpt-4' is not allowed/],
      [chat('hi', 'o1-mini'), /model 'o1-mini' is not allowed/],
      [chat('tell me about PROJECT ORION please'), /blocked term/],
    ]) {
      await assert.rejects(c.chat.completions.create(body), (e) => {
        assert.ok(e instanceof OpenAI.PermissionDeniedError, String(e));
        assert.equal(e.status, 403);
        assert.match(e.error.message, msg);
        return true;
      });
    }
    assert.deepEqual(await upstreamModels(), []);
    const ok = await c.chat.completions.create(chat('an ordinary question', 'gpt-4o-mini'));
    assert.equal(ok.choices[0].message.content, 'You said: an ordinary question');
    const denied = await gw.waitForLog((l) => l.route === 'deny' && l.lua_denied === 'keyword');
    assert.equal(denied.status, 403);
  });

  // ---- route by header ------------------------------------------------------------------------
  test('route_by_header.lua: x-tier premium pins target "big", x-tier free rewrites the model, no header leaves the route alone', async () => {
    const c = clientAt('tier');
    await mock.clearRequests();
    const { data, response } = await c.chat.completions.create(chat('one'), { headers: { 'x-tier': 'Premium' } }).withResponse();
    assert.equal(response.headers.get('x-routed-by'), 'x-tier=premium');
    assert.equal(data.choices[0].message.content, 'You said: one');
    const rid = response.headers.get('x-request-id');
    const rec = await gw.waitForLog((l) => l.route === 'tier' && (rid ? l.request_id === rid : true) && l.target === 'big');
    assert.equal(rec.target, 'big');

    await c.chat.completions.create(chat('two'), { headers: { 'x-tier': 'free' } });
    await c.chat.completions.create(chat('three'));
    const models = await upstreamModels();
    assert.deepEqual(models, ['big-model', 'free-model', 'gpt-4o-mini']);
  });

  // ---- quota ----------------------------------------------------------------------------------
  test('quota.lua: 3 requests per user per day through the shared store, then RateLimitError with retry-after; users are separate', async () => {
    const c = clientAt('quota');
    for (let i = 1; i <= 3; i++) {
      const { response } = await c.chat.completions.create(chat(`q${i}`), { headers: { 'x-user-id': 'alice' } }).withResponse();
      assert.equal(response.headers.get('x-quota-limit'), '3');
      assert.equal(response.headers.get('x-quota-remaining'), String(3 - i));
    }
    await assert.rejects(c.chat.completions.create(chat('q4'), { headers: { 'x-user-id': 'alice' } }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, String(e));
      assert.match(e.error.message, /daily request quota of 3 exceeded for user alice/);
      const ra = Number(e.headers.get('retry-after'));
      assert.ok(ra > 0 && ra <= 86400, `retry-after ${ra}`);
      return true;
    });
    // another user has a quota of their own
    const { response } = await c.chat.completions.create(chat('b1'), { headers: { 'x-user-id': 'bob' } }).withResponse();
    assert.equal(response.headers.get('x-quota-remaining'), '2');
    await assert.rejects(c.chat.completions.create(chat('anon')), (e) => e instanceof OpenAI.AuthenticationError);
  });

  test('quota.lua: concurrent requests of one user are counted exactly (both workers, one store)', async () => {
    const c = clientAt('quota');
    const res = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => c.chat.completions.create(chat(`c${i}`), { headers: { 'x-user-id': 'carol' } })));
    assert.equal(res.filter((r) => r.status === 'fulfilled').length, 3);
    assert.ok(res.filter((r) => r.status === 'rejected').every((r) => r.reason instanceof OpenAI.RateLimitError));
  });

  // ---- redact ---------------------------------------------------------------------------------
  test('redact.lua: the prompt is redacted before it leaves; the answer is redacted too', async () => {
    const c = clientAt('redact');
    await mock.clearRequests();
    const out = await c.chat.completions.create(chat('my id is EMP-12345 and EMP-9'));
    const sent = (await mock.requests())[0].body.messages[0].content;
    assert.equal(sent, 'my id is [REDACTED] and [REDACTED]');
    // the mock answers "You said: <prompt>"; "You said" is a pattern too
    assert.equal(out.choices[0].message.content, '[REDACTED]: my id is [REDACTED] and [REDACTED]');
    const rec = await gw.waitForLog((l) => l.route === 'redact' && l.redacted_prompt === 2);
    assert.equal(rec.redacted_answer, 1);
  });

  test('redact.lua: a streamed answer is redacted across delta boundaries, nothing is lost or duplicated', async () => {
    const c = clientAt('redact');
    // The mock streams one word per delta: "You " + "said: " is a match cut across two deltas.
    const prompt = 'please repeat: You said it, and then you said it again, EMP-42 and EMP-777 were there, the end';
    const stream = await c.chat.completions.create(chat(prompt, 'gpt-4o-mini', { stream: true }));
    let text = '';
    let deltas = 0;
    let finish = null;
    for await (const chunk of stream) {
      const ch = chunk.choices[0];
      if (ch?.delta?.content) { text += ch.delta.content; deltas++; }
      if (ch?.finish_reason) finish = ch.finish_reason;
    }
    const want = `You said: ${prompt}`.replace(/EMP-\d+/g, '[REDACTED]').replace(/You said/g, '[REDACTED]');
    assert.equal(text, want);
    assert.ok(!/EMP-\d/.test(text) && !text.includes('You said'));
    assert.equal(finish, 'stop');
    assert.ok(deltas > 2, `the answer was still streamed (${deltas} deltas)`);
  });

  // ---- billing ----------------------------------------------------------------------------------
  test('billing_tags.lua: team header -> response header, access-log "billing" field, per-team counter', async () => {
    const c = clientAt('billing');
    const { response } = await c.chat.completions.create(chat('bill me'), { headers: { 'x-team': 'Search' } }).withResponse();
    assert.equal(response.headers.get('x-billing-team'), 'search');
    await c.chat.completions.create(chat('bill nobody'));
    const rec = await gw.waitForLog((l) => l.route === 'billing' && l.billing?.team === 'search');
    assert.deepEqual(rec.billing, { team: 'search', cost_center: 'CC-100', model: 'gpt-4o-mini', status: 200 });
    const un = await gw.waitForLog((l) => l.route === 'billing' && l.billing?.team === 'unassigned');
    assert.equal(un.billing.cost_center, 'unassigned');
    await until(async () => {
      const m = await (await gw.admin('/metrics')).text();
      return metricValue(m, 'aigw_plugin_lua_requests_by_team', { team: 'search', model: 'gpt-4o-mini' }) === 1;
    }, 3000);
  });

  // ---- allow-list call-out ----------------------------------------------------------------------
  test('allowlist.lua: the service is asked (POST {user, model}); listed users pass, others get 403', async () => {
    const c = clientAt('allow');
    allow.calls.length = 0;
    const ok = await c.chat.completions.create(chat('let me in'), { headers: { 'x-user-id': 'alice' } });
    assert.equal(ok.choices[0].message.content, 'You said: let me in');
    assert.equal(allow.calls.length, 1);
    assert.equal(allow.calls[0].method, 'POST');
    assert.equal(allow.calls[0].headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(allow.calls[0].body), { user: 'alice', model: 'gpt-4o-mini' });
    const rec = await gw.waitForLog((l) => l.route === 'allow' && l.allowlist === 'listed:alice');
    assert.equal(rec.status, 200);
    for (const [user, model] of [['mallory', 'gpt-4o-mini'], ['bob', 'forbidden-model'], ['', 'gpt-4o-mini']]) {
      await assert.rejects(c.chat.completions.create(chat('x', model), { headers: user ? { 'x-user-id': user } : {} }), (e) => {
        assert.ok(e instanceof OpenAI.PermissionDeniedError, String(e));
        return true;
      });
    }
  });

  test('allowlist.lua: many call-outs in flight at once do not block the workers', async () => {
    const c = clientAt('allow');
    const res = await Promise.all(Array.from({ length: 20 }, (_, i) => c.chat.completions.create(chat(`p${i}`), { headers: { 'x-user-id': i % 2 ? 'alice' : 'bob' } })));
    res.forEach((r, i) => assert.equal(r.choices[0].message.content, `You said: p${i}`));
  });

  test('allowlist.lua: a service that hangs times out into 503, and the worker keeps serving', async () => {
    const c = clientAt('allowhang');
    const t0 = Date.now();
    await assert.rejects(c.chat.completions.create(chat('x'), { headers: { 'x-user-id': 'alice' } }), (e) => {
      assert.equal(e.status, 503);
      assert.match(e.error.message, /allow-list service is unavailable/);
      return true;
    });
    assert.ok(Date.now() - t0 < 300 + SLACK_MS, 'answered after the call-out timeout');
    const ok = await clientAt('allow').chat.completions.create(chat('still here'), { headers: { 'x-user-id': 'bob' } });
    assert.equal(ok.choices[0].message.content, 'You said: still here');
  });

  test('allowlist.lua: a client that leaves while its call-out is pending: the coroutine is dropped, the gateway lives on', async () => {
    const ac = new AbortController();
    const p = clientAt('allowhang').chat.completions.create(chat('bye'), { headers: { 'x-user-id': 'alice' }, signal: ac.signal });
    await sleep(80);
    ac.abort();
    await assert.rejects(p);
    await sleep(400);
    const ok = await clientAt('allow').chat.completions.create(chat('after abort'), { headers: { 'x-user-id': 'alice' } });
    assert.equal(ok.choices[0].message.content, 'You said: after abort');
  });

  // ---- failing scripts ------------------------------------------------------------------------
  for (const [model, kind, line] of [
    ['loop', 'instruction budget exceeded', 5],
    ['pcall-loop', 'instruction budget exceeded', 13],
    ['error', 'runtime error', 8],
    ['oom', 'memory budget exceeded', 11],
    ['hoard', 'memory budget exceeded', 16],
  ]) {
    test(`a script that fails (${model}): 500 naming script and line, a log line, and the next request succeeds`, async () => {
      const c = clientAt('bad');
      await assert.rejects(c.chat.completions.create(chat('x', model)), (e) => {
        assert.ok(e instanceof OpenAI.InternalServerError, String(e));
        assert.equal(e.status, 500);
        assert.match(e.error.message, new RegExp(`lua script failed: bad\\.lua:${line}: ${kind}`));
        return true;
      });
      await gw.waitForStderr(new RegExp(`lua: bad\\.lua:${line}: `));
      for (let i = 0; i < 4; i++) { // both workers
        const ok = await c.chat.completions.create(chat(`fine ${i}`, 'fine'));
        assert.equal(ok.choices[0].message.content, `You said: fine ${i}`);
      }
    });
  }

  test('an error in an event hook ends the stream with an error event; a wait in an event hook is refused with a clear message', async () => {
    const c = clientAt('streambad');
    for (const model of ['event-error', 'event-wait']) {
      const stream = await c.chat.completions.create(chat('hello there', model, { stream: true }));
      await assert.rejects(async () => { for await (const _ of stream) { /* drain */ } }, (e) => {
        assert.match(String(e.message), /lua script failed: streambad\.lua:\d+/);
        return true;
      });
    }
    await gw.waitForStderr(/lua: streambad\.lua:5: bad event/);
    await gw.waitForStderr(/aigw\.sleep cannot wait in on_event: in ABI 1\.0 only on_request can pause/);
    const ok = await c.chat.completions.create(chat('fine', 'fine', { stream: true }));
    let text = '';
    for await (const ch of ok) text += ch.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'You said: fine');
  });

  // ---- reload ---------------------------------------------------------------------------------
  test('scripts reload with the config: a new generation runs the new script', async () => {
    const c = clientAt('reload');
    let { response } = await c.chat.completions.create(chat('v1')).withResponse();
    assert.equal(response.headers.get('x-version'), '1');
    fs.writeFileSync(reloadScript, 'function on_request() aigw.resp.set_header("x-version", "2") end\n');
    const r = await gw.admin('/reload', { method: 'POST' });
    assert.equal(r.status, 200, await r.text());
    await until(async () => {
      ({ response } = await c.chat.completions.create(chat('v2')).withResponse());
      return response.headers.get('x-version') === '2';
    }, 5000, 100);
    // a script that no longer compiles: the reload is refused and the running one stays
    fs.writeFileSync(reloadScript, 'function on_request(\n');
    const bad = await gw.admin('/reload', { method: 'POST' });
    assert.notEqual(bad.status, 200);
    const body = await bad.text();
    assert.match(body, /reload\.lua:2:/);
    ({ response } = await c.chat.completions.create(chat('v2 still')).withResponse());
    assert.equal(response.headers.get('x-version'), '2');
  });
});

describe('lua plugin: config errors', { skip }, () => {
  test('aigw --check reports syntax errors, bad options and scripts without hooks at their JSON pointer', async () => {
    const d = tmpDir('aigw-lua-check-');
    try {
      const bad = path.join(d, 'x.lua');
      fs.writeFileSync(bad, 'function on_request(ctx)\n  local a = 1\n  a = = 2\nend\n');
      const entries = [
        lua({ inline: 'function on_request() end' }),
        lua({ script: bad }),
        lua({ inline: 'local x = 1' }),
        lua({ inline: 'error("top level says no")', name: 'top.lua' }),
        lua({ script: path.join(d, 'missing.lua') }),
        lua({ inline: 'function on_request() end', max_memory_mb: 0, max_instructions: 5, bogus: 1 }),
        lua({ inline: 'function on_request() end', script: bad }),
      ];
      // one route per entry: a plugin is listed at most once per route
      const cfg = {
        listen: [{ address: '127.0.0.1', port: 18999 }],
        workers: 1,
        admin: { address: '127.0.0.1', port: 0 },
        plugin_paths: [AIGW_PLUGIN_DIR],
        providers: { local: { plugin: 'mock', config: {} } },
        routes: entries.map((e, i) => ({
          name: `r${i}`, match: { path: `/${i}/v1/chat/completions` }, api: 'chat', targets: [{ provider: 'local' }], plugins: [e],
        })),
      };
      const p = writeConfig(cfg, d);
      const r = await runAigw(['--check', p]);
      assert.notEqual(r.code, 0);
      const out = r.stdout + r.stderr;
      assert.match(out, new RegExp(`/routes/1/plugins/0/config/script: (?:lua: )?${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:3: unexpected symbol near '='`));
      assert.match(out, /\/routes\/2\/plugins\/0\/config\/inline: (?:lua: )?inline defines none of the hook functions/);
      assert.match(out, /\/routes\/3\/plugins\/0\/config\/inline: (?:lua: )?top\.lua:1: top level says no/);
      assert.match(out, /\/routes\/4\/plugins\/0\/config\/script: (?:lua: )?cannot read '.*missing\.lua'/);
      assert.match(out, /\/routes\/5\/plugins\/0\/config\/max_memory_mb: (?:lua: )?must be a number/);
      assert.match(out, /\/routes\/5\/plugins\/0\/config\/max_instructions: (?:lua: )?must be an integer/);
      assert.match(out, /\/routes\/5\/plugins\/0\/config: (?:lua: )?unknown key "bogus"/);
      assert.match(out, /\/routes\/6\/plugins\/0\/config: (?:lua: )?needs exactly one of "script"/);
      assert.doesNotMatch(out, /\/routes\/0\/plugins\/0\//);
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});
