// Routing, the plan's order (docs/routing.md is the contract): strategies (weighted, round_robin,
// least_inflight, latency, cost, hash), rules and aliases, group targets, per-target params and
// timeouts, and the config errors `aigw --check` reports with their JSON paths. Fallbacks,
// retries, breakers and the deadline are in gateway.routing.test.mjs (see its header for the
// fixture and the assumptions Q1-Q10; numbering here continues at Q11).
//
// Further assumptions where docs/routing.md leaves room:
//  Q11 Under the `priority` strategy an alias's targets are ordered like the route's (priority,
//      then config order); the tests keep the alias lists in config order with equal priorities, so
//      "alias order" and "config order" agree. (Does an alias keep its own order of preference, as
//      a rule does? docs/routing.md says so only for rules.)
//  Q12 Config errors name the JSON pointer of the offending value: an unknown target name in
//      rules at /routes/N/rules/R/targets/I, in aliases at /routes/N/aliases/<alias>/I, in
//      fallback at /routes/N/fallback/context_window; a duplicate name at the second target's
//      /routes/N/targets/I/name; a bad strategy at /routes/N/strategy (or the group's
//      /routes/N/targets/I/strategy); an unknown retry.on entry at /routes/N/retry/on/I; a bad
//      hash_key at /routes/N/hash_key. Messages quote the offending name or value.
//  Q13 The pre-flight estimate counts message text only (bytes / 4, rounded up), as documented.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  useRouting, skipUnlessGateway, postJSON, accessLogFor, until, defaultConfig, AIGW_PLUGIN_DIR, REPO_ROOT,
} from './lib/harness.mjs';
import { runAigw, writeConfig } from './lib/ops.mjs';

const skip = skipUnlessGateway();
const CATALOG_PATH = path.join(REPO_ROOT, 'conf', 'models.json');

const ROUTE_TIMEOUTS = { connect_ms: 2000, first_byte_ms: 5000, idle_ms: 5000, total_ms: 0 };
const R = (name, targets, extra = {}) => ({
  name, match: { methods: ['POST'], path: `/${name}/v1/chat/completions` }, api: 'chat', targets, timeouts: ROUTE_TIMEOUTS, ...extra,
});
const T = (name, mock, model, extra = {}) => ({ name, provider: `up_${mock}`, model, ...extra });
const body = (extra = {}) => ({ model: 'client-model', messages: [{ role: 'user', content: 'pick a target' }], ...extra });
const urlOf = (ctx, route) => `${ctx.gw.url}/${route}/v1/chat/completions`;
const call = (ctx, route, extra, opts) => postJSON(urlOf(ctx, route), body(extra), opts);
const mocksOf = (seq) => seq.map((s) => s.mock);
const count = (xs) => xs.reduce((m, x) => ({ ...m, [x]: (m[x] || 0) + 1 }), {});

/** Run `n` requests with at most `conc` in flight; resolves the responses in order. */
async function pool(n, conc, fn) {
  const out = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

// ---------------------------------------------------------------------------------------------
// strategies
// ---------------------------------------------------------------------------------------------
describe('routing: strategies', { skip }, () => {
  const ctx = useRouting({
    mocks: ['A', 'B', 'C'],
    closed: ['X', 'Y'],
    routes: () => [
      R('weighted', [T('A', 'A', 'gpt-4o-mini', { weight: 3 }), T('B', 'B', 'gpt-4o-mini', { weight: 1 })], { strategy: 'weighted' }),
      R('weighted0', [T('A', 'A', 'fault-503', { weight: 0 }), T('B', 'B', 'gpt-4o-mini', { weight: 1 })], { strategy: 'weighted' }),
      R('rr', [T('A', 'A', 'gpt-4o-mini'), T('B', 'B', 'gpt-4o-mini')], { strategy: 'round_robin' }),
      R('li', [T('A', 'A', 'gpt-4o-mini+fault-slow-first-byte-3000'), T('B', 'B', 'gpt-4o-mini')], { strategy: 'least_inflight' }),
      R('lat', [T('A', 'A', 'gpt-4o-mini+fault-slow-first-byte-150'), T('B', 'B', 'gpt-4o-mini')], { strategy: 'latency' }),
      // config order: the unknown price first, the dearest next, the cheapest last
      R('cost', [T('unknown', 'C', 'mystery-model-x'), T('dear', 'A', 'gpt-4o'), T('cheap', 'B', 'gpt-4o-mini')], { strategy: 'cost' }),
      R('cost_fb', [T('unknown', 'C', 'mystery-model-x'), T('dear', 'Y', 'gpt-4o'), T('cheap', 'X', 'gpt-4o-mini')], { strategy: 'cost' }),
      R('hash', [T('A', 'A', 'gpt-4o-mini'), T('B', 'B', 'gpt-4o')], { strategy: 'hash', hash_key: 'header:x-user' }),
      R('hash_body', [T('A', 'A', 'gpt-4o-mini'), T('B', 'B', 'gpt-4o')], { strategy: 'hash', hash_key: 'body:user' }),
    ],
    edit: (cfg) => { cfg.model_catalog = CATALOG_PATH; return cfg; },
  });

  test('11. weighted 3:1 over 400 requests: A’s share within 0.65–0.85', async () => {
    await ctx.clear();
    const rs = await pool(400, 8, () => call(ctx, 'weighted'));
    assert.ok(rs.every((r) => r.status === 200), `statuses ${JSON.stringify(count(rs.map((r) => r.status)))}`);
    const c = count(mocksOf(await ctx.seq()));
    assert.equal((c.A || 0) + (c.B || 0), 400, JSON.stringify(c));
    const share = (c.A || 0) / 400;
    assert.ok(share >= 0.65 && share <= 0.85, `A got ${c.A}/400 = ${share}`);
    // the header agrees with what the upstreams saw
    const h = count(rs.map((r) => r.headers.get('x-aigw-target')));
    assert.deepEqual(h, c);
  });

  test('11. weight 0: only as fallback (B first every time; A only after B fails — never here)', async () => {
    await ctx.clear();
    for (let i = 0; i < 20; i++) {
      const r = await call(ctx, 'weighted0');
      assert.equal(r.status, 200, r.text);
    }
    assert.deepEqual(count(mocksOf(await ctx.seq())), { B: 20 });
  });

  test('11. round_robin alternates exactly (sequential requests, two workers)', async () => {
    await ctx.clear();
    const seen = [];
    for (let i = 0; i < 12; i++) {
      const r = await call(ctx, 'rr');
      assert.equal(r.status, 200, r.text);
      seen.push(r.headers.get('x-aigw-target'));
    }
    for (let i = 1; i < seen.length; i++) assert.notEqual(seen[i], seen[i - 1], `alternates: ${seen.join(' ')}`);
    assert.deepEqual(count(seen), { A: 6, B: 6 });
    assert.deepEqual(mocksOf(await ctx.seq()), seen);
  });

  test('11. least_inflight: while A holds a slow request, the next requests go to B', async () => {
    await ctx.clear();
    // both idle: the tie goes to A (config order); A answers after 3 s
    const slow = call(ctx, 'li');
    const inA = await until(async () => (await ctx.mocks.A.requests()).length === 1, 3000);
    assert.ok(inA, 'the first request reached A');
    const t0 = Date.now();
    const targets = [];
    for (let i = 0; i < 10; i++) {
      const r = await call(ctx, 'li');
      assert.equal(r.status, 200, r.text);
      targets.push(r.headers.get('x-aigw-target'));
    }
    const elapsed = Date.now() - t0;
    const first = await slow;
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-aigw-target'), 'A');
    if (elapsed < 2500) {
      // (B's own in-flight count may not have dropped yet when the next request arrives: allow 2 ties)
      assert.ok(count(targets).B >= 8, `B got ${count(targets).B}/10: ${targets.join(' ')}`);
    }
    assert.ok((await ctx.mocks.A.requests()).length <= 3, 'A got the slow request and at most two ties');
  });

  test('11. latency: targets without samples first, then the fast one gets (nearly) everything', async () => {
    await ctx.clear();
    // warm-up: both targets get measured (unsampled targets first)
    const warm = [];
    for (let i = 0; i < 4; i++) warm.push((await call(ctx, 'lat')).headers.get('x-aigw-target'));
    // (per gateway or per worker: some worker's first two requests measure both)
    assert.ok(warm.includes('A') && warm.includes('B'), `the warm-up measures both: ${warm.join(' ')}`);
    const seen = [];
    for (let i = 0; i < 20; i++) {
      const r = await call(ctx, 'lat');
      assert.equal(r.status, 200, r.text);
      seen.push(r.headers.get('x-aigw-target'));
    }
    assert.ok((count(seen).B || 0) >= 18, `B (fast) got ${count(seen).B}/20: ${seen.join(' ')}`);
  });

  test('11. cost: cheapest catalog price first (gpt-4o-mini before gpt-4o), unknown price last', async () => {
    await ctx.clear();
    for (let i = 0; i < 5; i++) {
      const r = await call(ctx, 'cost');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-aigw-target'), 'cheap');
      assert.equal(r.json.model, 'gpt-4o-mini');
    }
    assert.deepEqual(count(mocksOf(await ctx.seq())), { B: 5 });
  });

  test('11. cost: the fallback order is by price too (cheap → dear → unknown)', async () => {
    await ctx.clear();
    const r = await call(ctx, 'cost_fb'); // cheap and dear refuse connections
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-aigw-target'), 'unknown');
    assert.equal(r.headers.get('x-aigw-attempts'), '3');
    const rec = await accessLogFor(ctx.gw, r.headers.get('x-request-id'));
    assert.deepEqual(rec.attempts.map((a) => [a.target, a.outcome]), [['cheap', 'connect'], ['dear', 'connect'], ['unknown', 'ok']]);
  });

  test('11. hash on header:x-user: the same user always on the same target, users spread over both', async () => {
    await ctx.clear();
    const byUser = {};
    for (let u = 0; u < 16; u++) {
      for (let k = 0; k < 3; k++) {
        const r = await call(ctx, 'hash', {}, { headers: { 'x-user': `user-${u}` } });
        assert.equal(r.status, 200, r.text);
        (byUser[u] ||= new Set()).add(r.headers.get('x-aigw-target'));
        // the answer's model tells which target really answered (A: gpt-4o-mini, B: gpt-4o)
        assert.equal(r.json.model, r.headers.get('x-aigw-target') === 'A' ? 'gpt-4o-mini' : 'gpt-4o');
      }
    }
    for (const [u, s] of Object.entries(byUser)) assert.equal(s.size, 1, `user-${u} hit ${[...s].join(', ')}`);
    const used = new Set(Object.values(byUser).map((s) => [...s][0]));
    assert.deepEqual([...used].sort(), ['A', 'B'], 'different users spread over both targets');
  });

  test('11. hash: without the key, priority order (config order: A)', async () => {
    await ctx.clear();
    for (let i = 0; i < 4; i++) assert.equal((await call(ctx, 'hash')).headers.get('x-aigw-target'), 'A');
  });

  test('11. hash on body:user: stable per user', async () => {
    await ctx.clear();
    const byUser = {};
    for (let u = 0; u < 12; u++) {
      for (let k = 0; k < 2; k++) {
        const r = await call(ctx, 'hash_body', { user: `u${u}` });
        (byUser[u] ||= new Set()).add(r.headers.get('x-aigw-target'));
      }
    }
    for (const s of Object.values(byUser)) assert.equal(s.size, 1);
    assert.equal(new Set(Object.values(byUser).map((s) => [...s][0])).size, 2);
  });
});

// ---------------------------------------------------------------------------------------------
// rules and aliases
// ---------------------------------------------------------------------------------------------
describe('routing: rules and aliases', { skip }, () => {
  const ctx = useRouting({
    mocks: ['A', 'B', 'C'],
    routes: () => [
      R('rules', [
        T('A', 'A', 'gpt-4o-mini'), T('B', 'B', 'gpt-4o'), T('C', 'C', 'gpt-4.1'),
        // listed last, equal priorities: never reached by a request that A answers
        T('Bdown', 'B', 'fault-503'), T('tiny', 'C', 'gpt-4.1-nano', { context_window: 10 }),
      ], {
        aliases: { fast: ['B', 'C'], fast2: ['Bdown', 'C'] },
        rules: [
          { when: { header: { 'x-team': 'research' } }, targets: ['C'] },
          { when: { header: { 'x-pref': '*' } }, targets: ['C', 'B'] },
          { when: { header: { 'x-small': '*' } }, targets: ['tiny'] },
          { when: { min_prompt_tokens: 1000 }, targets: ['C'] },
          { when: { model: 'claude-*' }, targets: ['B'] },
          { when: { param: { temperature: 0 } }, targets: ['B'] },
        ],
      }),
    ],
  });
  const upstreamModels = async () => (await ctx.seq()).map((s) => [s.mock, s.model]);

  test('12. no rule matches: the plan’s first target (A) with its own model', async () => {
    await ctx.clear();
    const r = await call(ctx, 'rules');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-aigw-target'), 'A');
    assert.deepEqual(await upstreamModels(), [['A', 'gpt-4o-mini']]);
  });

  test('12. header rule: x-team: research → C; another value does not match', async () => {
    await ctx.clear();
    const r = await call(ctx, 'rules', {}, { headers: { 'x-team': 'research' } });
    assert.equal(r.headers.get('x-aigw-target'), 'C');
    const o = await call(ctx, 'rules', {}, { headers: { 'x-team': 'sales' } });
    assert.equal(o.headers.get('x-aigw-target'), 'A');
    assert.deepEqual(await upstreamModels(), [['C', 'gpt-4.1'], ['A', 'gpt-4o-mini']]);
  });

  test('12. a rule’s targets keep the rule’s order of preference (priority strategy): [C, B] → C', async () => {
    await ctx.clear();
    const r = await call(ctx, 'rules', {}, { headers: { 'x-pref': 'yes' } });
    assert.equal(r.headers.get('x-aigw-target'), 'C');
  });

  test('12. the first matching rule wins (header rule before the param rule)', async () => {
    await ctx.clear();
    const r = await call(ctx, 'rules', { temperature: 0 }, { headers: { 'x-team': 'research' } });
    assert.equal(r.headers.get('x-aigw-target'), 'C');
  });

  test('12. alias "fast": only its targets, each sends its own model', async () => {
    await ctx.clear();
    for (let i = 0; i < 3; i++) {
      const r = await call(ctx, 'rules', { model: 'fast' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-aigw-target'), 'B');
      assert.equal(r.json.model, 'gpt-4o');
    }
    assert.deepEqual(await upstreamModels(), [['B', 'gpt-4o'], ['B', 'gpt-4o'], ['B', 'gpt-4o']]);
  });

  test('12. alias "fast2": its first target fails → its second, with that target’s model; A never', async () => {
    await ctx.clear();
    const r = await call(ctx, 'rules', { model: 'fast2' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-aigw-target'), 'C');
    assert.deepEqual(await upstreamModels(), [['B', 'fault-503'], ['C', 'gpt-4.1']]);
  });

  test('12. min_prompt_tokens 1000: a long prompt (≈1250 tokens) → C; a short one → A', async () => {
    await ctx.clear();
    const long = await postJSON(urlOf(ctx, 'rules'), { model: 'x', messages: [{ role: 'user', content: 'word '.repeat(1000) }] });
    assert.equal(long.status, 200, long.text);
    assert.equal(long.headers.get('x-aigw-target'), 'C');
    // just under: 3996 chars → 999 tokens
    const under = await postJSON(urlOf(ctx, 'rules'), { model: 'x', messages: [{ role: 'user', content: 'z'.repeat(3996) }] });
    assert.equal(under.headers.get('x-aigw-target'), 'A');
    assert.deepEqual(mocksOf(await ctx.seq()), ['C', 'A']);
  });

  test('12. model glob rule: claude-* → B (B’s model sent)', async () => {
    await ctx.clear();
    const r = await call(ctx, 'rules', { model: 'claude-sonnet-4-5' });
    assert.equal(r.headers.get('x-aigw-target'), 'B');
    assert.deepEqual(await upstreamModels(), [['B', 'gpt-4o']]);
  });

  test('12. param rule: temperature 0 → B; temperature 0.5 does not match', async () => {
    await ctx.clear();
    assert.equal((await call(ctx, 'rules', { temperature: 0 })).headers.get('x-aigw-target'), 'B');
    assert.equal((await call(ctx, 'rules', { temperature: 0.5 })).headers.get('x-aigw-target'), 'A');
  });


  test('12. a rule that leaves no usable target falls back to the whole list', async () => {
    await ctx.clear();
    // 200 chars ≈ 50 tokens: over tiny's context_window (10), so the rule leaves nothing usable
    const r = await postJSON(urlOf(ctx, 'rules'), { model: 'x', messages: [{ role: 'user', content: 'q'.repeat(200) }] }, { headers: { 'x-small': '1' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-aigw-target'), 'A');
    assert.deepEqual(mocksOf(await ctx.seq()), ['A']);
  });
});

// ---------------------------------------------------------------------------------------------
// groups, per-target params and timeouts
// ---------------------------------------------------------------------------------------------
describe('routing: group targets, per-target params and timeouts', { skip }, () => {
  const ctx = useRouting({
    mocks: ['A', 'B', 'C'],
    routes: () => [
      R('group', [
        T('A', 'A', 'fault-503', { priority: 0 }),
        { name: 'pool', strategy: 'least_inflight', priority: 1, targets: [
          T('P1', 'B', 'gpt-4o-mini+fault-slow-first-byte-2500'), T('P2', 'C', 'gpt-4o'),
        ] },
      ]),
      R('params', [T('A', 'A', 'gpt-4o-mini', { params: { max_tokens: 77, temperature: null, seed: 7 } })]),
      R('params_fb', [T('A', 'A', 'fault-503', { params: { max_tokens: 77 } }), T('B', 'B', 'gpt-4o-mini')]),
      // A would answer after 1500 ms (within the route's 5000) but its own first_byte_ms is 300
      R('t_short', [T('A', 'A', 'gpt-4o-mini+fault-slow-first-byte-1500', { timeouts: { first_byte_ms: 300 } }), T('B', 'B', 'gpt-4o-mini')]),
      // the route allows 300 ms, the target 4000: its answer at 800 ms arrives
      R('t_long', [T('A', 'A', 'gpt-4o-mini+fault-slow-first-byte-800', { timeouts: { first_byte_ms: 4000 } }), T('B', 'B', 'gpt-4o-mini')],
        { timeouts: { ...ROUTE_TIMEOUTS, first_byte_ms: 300 } }),
    ],
  });

  test('13. group (least_inflight) inside a priority route: A fails → the pool; a busy member is passed over', async () => {
    await ctx.clear();
    // first request: A (503) → pool; both members idle → P1 (config order), which answers after 2.5 s
    const first = call(ctx, 'group');
    const inP1 = await until(async () => (await ctx.mocks.B.requests()).length === 1, 3000);
    assert.ok(inP1, 'the first request reached P1');
    // second request while P1 is busy: A (503) → pool → P2
    const second = await call(ctx, 'group');
    assert.equal(second.status, 200, second.text);
    assert.equal(second.headers.get('x-aigw-target'), 'P2', 'Q1: the member’s own name');
    assert.equal(second.headers.get('x-aigw-attempts'), '2');
    assert.equal(second.json.model, 'gpt-4o');
    const f = await first;
    assert.equal(f.status, 200, f.text);
    assert.equal(f.headers.get('x-aigw-target'), 'P1');
    assert.equal(f.headers.get('x-aigw-attempts'), '2');
    const c = count(mocksOf(await ctx.seq()));
    assert.deepEqual(c, { A: 2, B: 1, C: 1 });
    const rec = await accessLogFor(ctx.gw, second.headers.get('x-request-id'));
    assert.deepEqual(rec.attempts.map((a) => [a.target, a.outcome]), [['A', 'status'], ['P2', 'ok']]);
  });

  test('13. per-target params: set, replaced and removed (null) on the upstream request', async () => {
    await ctx.clear();
    const r = await call(ctx, 'params', { max_tokens: 5, temperature: 0.3 });
    assert.equal(r.status, 200, r.text);
    const [up] = await ctx.seq();
    assert.equal(up.body.max_tokens, 77, 'replaced');
    assert.equal(up.body.seed, 7, 'set');
    assert.equal('temperature' in up.body, false, 'removed by null');
    assert.equal(up.body.model, 'gpt-4o-mini');
    assert.deepEqual(up.body.messages, body().messages);
  });

  test('13. params belong to their target: the fallback target gets the client’s own values', async () => {
    await ctx.clear();
    const r = await call(ctx, 'params_fb', { max_tokens: 5 });
    assert.equal(r.status, 200, r.text);
    const seq = await ctx.seq();
    assert.deepEqual(mocksOf(seq), ['A', 'B']);
    assert.equal(seq[0].body.max_tokens, 77);
    assert.equal(seq[1].body.max_tokens, 5);
  });

  test('13. a target’s own first_byte_ms shorter than the route’s: it times out and falls back', async () => {
    await ctx.clear();
    const t0 = Date.now();
    const r = await call(ctx, 't_short');
    const dt = Date.now() - t0;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-aigw-target'), 'B');
    assert.ok(dt >= 250, `after ${dt} ms`);
    assert.deepEqual(mocksOf(await ctx.seq()), ['A', 'B']);
    const rec = await accessLogFor(ctx.gw, r.headers.get('x-request-id'));
    assert.deepEqual(rec.attempts.map((a) => [a.target, a.outcome]), [['A', 'timeout'], ['B', 'ok']]);
  });

  test('13. a target’s own first_byte_ms longer than the route’s: its slow answer is taken', async () => {
    await ctx.clear();
    const r = await call(ctx, 't_long');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-aigw-target'), 'A');
    assert.deepEqual(mocksOf(await ctx.seq()), ['A']);
  });
});

// ---------------------------------------------------------------------------------------------
// config errors
// ---------------------------------------------------------------------------------------------
describe('routing: aigw --check names the JSON path of routing config errors', { skip }, () => {
  const base = () => {
    const c = defaultConfig({ port: 18080, adminPort: 0, mockPort: 9 });
    c.plugin_paths = [AIGW_PLUGIN_DIR];
    c.admin = { address: '127.0.0.1', port: 0 };
    c.providers = {
      p1: { plugin: 'openai', config: { base_url: 'http://127.0.0.1:9/v1', api_key: 'k' } },
      p2: { plugin: 'openai', config: { base_url: 'http://127.0.0.1:9/v1', api_key: 'k' } },
    };
    c.routes = [];
    return c;
  };
  const route = (extra = {}, targets = [{ name: 'a', provider: 'p1', model: 'm1' }, { name: 'b', provider: 'p2', model: 'm2' }]) => ({
    name: 'chat', match: { methods: ['POST'], path: '/v1/chat/completions' }, api: 'chat', targets, ...extra,
  });
  // an ok route first, so the pointers of the bad one are /routes/1/...
  const okRoute = () => ({ ...route(), name: 'ok', match: { methods: ['POST'], path: '/ok' } });

  async function check(bad) {
    const c = base();
    c.routes = [okRoute(), bad];
    return runAigw(['--check', writeConfig(c)]);
  }
  function assertError(r, pointer, re) {
    assert.notEqual(r.code, 0, `--check must fail:\n${r.stdout}${r.stderr}`);
    const line = r.stderr.split('\n').find((l) => l.includes(`${pointer}:`) || l.includes(`${pointer} `));
    assert.ok(line, `stderr names ${pointer}:\n${r.stderr}`);
    if (re) assert.match(line, re);
  }

  test('the documented example (docs/routing.md) is a valid config', async () => {
    const c = base();
    for (const p of ['openai', 'azure_eu', 'anthropic', 'gemini', 'vllm_a', 'vllm_b']) {
      c.providers[p] = { plugin: 'openai', config: { base_url: 'http://127.0.0.1:9/v1', api_key: 'k' } };
    }
    c.routes = [{
      name: 'chat', match: { path: '/v1/chat/completions' }, api: 'chat', strategy: 'priority',
      targets: [
        { name: 'primary', provider: 'openai', model: 'gpt-4o', priority: 0 },
        { name: 'azure', provider: 'azure_eu', priority: 0, weight: 3 },
        { name: 'backup', provider: 'anthropic', model: 'claude-sonnet-4-5', priority: 1, params: { max_tokens: 4096 }, timeouts: { first_byte_ms: 30000 } },
        { name: 'long', provider: 'gemini', model: 'gemini-2.5-pro', priority: 9 },
        { name: 'pool', strategy: 'least_inflight', priority: 2, targets: [{ name: 'vllm-a', provider: 'vllm_a' }, { name: 'vllm-b', provider: 'vllm_b' }] },
      ],
      aliases: { fast: ['vllm-a', 'vllm-b'], smart: ['primary', 'backup'] },
      rules: [
        { when: { header: { 'x-team': 'research' } }, targets: ['long'] },
        { when: { min_prompt_tokens: 100000 }, targets: ['long'] },
      ],
      retry: { attempts: 4, per_target: 2, backoff_ms: 200, max_backoff_ms: 5000, on: ['429', '5xx', 'timeout', 'connect', 'malformed'], max_retry_after_ms: 10000, deadline_ms: 120000 },
      fallback: { context_window: 'long', content_policy: false },
      breaker: { failure_rate: 0.5, min_requests: 10, window_ms: 30000, cooldown_ms: 15000, probes: 1 },
    }];
    const r = await runAigw(['--check', writeConfig(c)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  test('default names: two unnamed targets on the same provider/model are valid (suffix #2)', async () => {
    const r = await check(route({}, [{ provider: 'p1', model: 'm' }, { provider: 'p1', model: 'm' }]));
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  test('14. unknown target name in a rule', async () => {
    assertError(await check(route({ rules: [{ when: { header: { 'x-t': '1' } }, targets: ['a', 'nope'] }] })), '/routes/1/rules/0/targets/1', /nope/);
  });

  test('14. unknown target name in an alias', async () => {
    assertError(await check(route({ aliases: { fast: ['nope'] } })), '/routes/1/aliases/fast/0', /nope/);
  });

  test('14. unknown target name in fallback.context_window', async () => {
    assertError(await check(route({ fallback: { context_window: 'nope' } })), '/routes/1/fallback/context_window', /nope/);
  });

  test('14. duplicate target names', async () => {
    assertError(await check(route({}, [{ name: 'a', provider: 'p1', model: 'm1' }, { name: 'a', provider: 'p2', model: 'm2' }])), '/routes/1/targets/1/name', /\ba\b/);
  });

  test('14. duplicate names across a group and the route', async () => {
    const targets = [{ name: 'a', provider: 'p1' }, { name: 'g', strategy: 'round_robin', targets: [{ name: 'a', provider: 'p2' }, { name: 'c', provider: 'p2' }] }];
    assertError(await check(route({}, targets)), '/routes/1/targets/1/targets/0/name', /\ba\b/);
  });

  test('14. unknown strategy on the route', async () => {
    assertError(await check(route({ strategy: 'fastest' })), '/routes/1/strategy', /fastest/);
  });

  test('14. unknown strategy on a group', async () => {
    const targets = [{ name: 'a', provider: 'p1' }, { name: 'g', strategy: 'random', targets: [{ name: 'b', provider: 'p2' }] }];
    assertError(await check(route({}, targets)), '/routes/1/targets/1/strategy', /random/);
  });

  test('14. unknown retry.on entry', async () => {
    assertError(await check(route({ retry: { on: ['6xx'] } })), '/routes/1/retry/on/0', /6xx/);
  });

  test('14. bad hash_key', async () => {
    assertError(await check(route({ strategy: 'hash', hash_key: 'cookie:sid' })), '/routes/1/hash_key', /cookie/);
  });

  test('14. several errors are all listed', async () => {
    const c = base();
    c.routes = [okRoute(),
      route({ strategy: 'fastest', aliases: { fast: ['nope1'] }, fallback: { context_window: 'nope2' } })];
    const r = await runAigw(['--check', writeConfig(c)]);
    assertError(r, '/routes/1/strategy', /fastest/);
    assertError(r, '/routes/1/aliases/fast/0', /nope1/);
    assertError(r, '/routes/1/fallback/context_window', /nope2/);
  });
});

// ---------------------------------------------------------------------------------------------
// a request plugin pins the target (metadata route.target / route.target_only, set from Lua)
// ---------------------------------------------------------------------------------------------
describe('routing: a request plugin pins the target', { skip }, () => {
  const PIN = `
function on_request(ctx)
  local h = aigw.req.header("x-pin")
  if h then aigw.set_target(h, aigw.req.header("x-only") == "1") end
end
`;
  const LIMIT = `
function on_request(ctx)
  if aigw.req.header("x-over") then return aigw.deny(429, "team quota spent") end
end
`;
  const ctx = useRouting({
    mocks: ['A', 'B', 'C'],
    routes: () => [
      R('pin', [T('A', 'A', 'gpt-4o-mini'), T('B', 'B', 'fault-503'), T('C', 'C', 'gpt-4o')],
        { plugins: [{ name: 'lua', config: { inline: PIN, name: 'pin.lua' } }] }),
      R('over', [T('A', 'A', 'gpt-4o-mini'), T('payg', 'C', 'gpt-4o')],
        { fallback: { overflow: 'payg' }, plugins: [{ name: 'lua', config: { inline: LIMIT, name: 'limit.lua' } }] }),
      R('noover', [T('A', 'A', 'gpt-4o-mini'), T('payg', 'C', 'gpt-4o')],
        { plugins: [{ name: 'lua', config: { inline: LIMIT, name: 'limit.lua' } }] }),
    ],
  });

  test('a 429 from a request plugin (own limits) goes to the overflow target; without one the client gets it', async () => {
    await ctx.clear();
    const r = await call(ctx, 'over', {}, { headers: { 'x-over': '1' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-aigw-target'), 'payg');
    assert.equal(r.headers.get('retry-after'), null);
    const plain = await call(ctx, 'over');
    assert.equal(plain.headers.get('x-aigw-target'), 'A');
    assert.deepEqual(mocksOf(await ctx.seq()), ['C', 'A']);
    const no = await call(ctx, 'noover', {}, { headers: { 'x-over': '1' } });
    assert.equal(no.status, 429);
    assert.match(no.text, /team quota spent/);
  });

  test('12. route.target pins the first target; the others stay fallbacks', async () => {
    await ctx.clear();
    const r = await call(ctx, 'pin', {}, { headers: { 'x-pin': 'B' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-aigw-target'), 'A');
    assert.deepEqual(mocksOf(await ctx.seq()), ['B', 'A']);
  });

  test('12. route.target_only: no fallback, the pinned target\'s answer is the client\'s', async () => {
    await ctx.clear();
    const r = await call(ctx, 'pin', {}, { headers: { 'x-pin': 'B', 'x-only': '1' } });
    assert.equal(r.status, 503, r.text);
    assert.deepEqual(mocksOf(await ctx.seq()), ['B']);
    const ok = await call(ctx, 'pin', {}, { headers: { 'x-pin': 'C', 'x-only': '1' } });
    assert.equal(ok.headers.get('x-aigw-target'), 'C');
  });

  test('12. an unknown pinned name is ignored (warning in the log): the plan as usual', async () => {
    await ctx.clear();
    const r = await call(ctx, 'pin', {}, { headers: { 'x-pin': 'nope' } });
    assert.equal(r.headers.get('x-aigw-target'), 'A');
  });
});
