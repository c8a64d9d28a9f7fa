// Per-request cost through aigw: the access log's cost_usd (or cost_unknown), the cost metrics, a
// config override of a catalog price applied by a reload, streams and embeddings.
//
// Expected values are computed here from conf/models.json and the mock's deterministic usage
// (tests/mock/openai_mock.mjs: prompt tokens = ceil(chars / 4), completion tokens = number of
// deltas of the reply; it reports cached_tokens 0 and no cache writes, so cached and cache-write
// pricing is covered by tests/unit/test_catalog.c).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { useGateway, skipUnlessGateway, accessLogFor, readStream, REPO_ROOT } from './lib/harness.mjs';
import { promptTokens, replyText, splitDeltas } from '../mock/openai_mock.mjs';

const CATALOG_PATH = path.join(REPO_ROOT, 'conf', 'models.json');
const CATALOG = JSON.parse(fs.readFileSync(CATALOG_PATH, 'utf8')).models;

/** USD of a usage on a price entry, the way the gateway documents it (catalog.h). */
function expectedCost(p, { input, output, cached = 0, cacheWrite = 0 }) {
  const plain = input - cached - cacheWrite;
  return (plain * p.input + cached * (p.cached_input ?? p.input) + cacheWrite * (p.cache_write ?? p.input) +
          output * p.output) / 1e6;
}

function assertUsd(actual, expected, what) {
  assert.equal(typeof actual, 'number', `${what}: cost_usd is a number (${actual})`);
  assert.ok(Math.abs(actual - expected) < 1e-11, `${what}: cost_usd ${actual}, expected ${expected}`);
}

/** Samples of a metric family: [{labels: {..}, value}] */
async function metric(gw, name) {
  const r = await gw.admin('/metrics');
  assert.equal(r.status, 200);
  const text = await r.text();
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const kv of (m[1] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    out.push({ labels, value: Number(m[2]) });
  }
  return out;
}
const sample = (samples, want) =>
  samples.find((s) => Object.entries(want).every(([k, v]) => s.labels[k] === v))?.value ?? 0;

const chatBody = (model, content) => ({ model, messages: [{ role: 'user', content }] });
const mockUsage = (body) => ({ input: promptTokens(body), output: splitDeltas(replyText(body)).length });

describe('gateway: per-request cost', { skip: skipUnlessGateway() }, () => {
  const ctx = useGateway({
    config: (cfg) => {
      cfg.model_catalog = CATALOG_PATH; // absolute: the test config lives in a temporary folder
      cfg.models = { 'house-model': { provider: 'openai', pricing: { input: 3, output: 7 } } };
      return cfg;
    },
  });

  async function chat(body) {
    const { data, response } = await ctx.client.chat.completions.create(body).withResponse();
    const log = await accessLogFor(ctx.gw, response.headers.get('x-request-id'));
    return { data, log };
  }

  test('non-stream chat: cost_usd from the catalog price and the mock usage', async () => {
    const body = chatBody('gpt-4o-mini', 'what does this cost, roughly, in dollars?');
    const { data, log } = await chat(body);
    const u = mockUsage(body);
    assert.equal(data.usage.prompt_tokens, u.input, 'the mock usage is what the test expects');
    assert.equal(data.usage.completion_tokens, u.output);
    assert.equal(log.tokens_in, u.input);
    assert.equal(log.tokens_out, u.output);
    assertUsd(log.cost_usd, expectedCost(CATALOG['gpt-4o-mini'].pricing, u), 'gpt-4o-mini');
    assert.ok(log.cost_usd > 0);
    assert.ok(!('cost_unknown' in log), JSON.stringify(log));
    assert.ok(!('cost_model' in log), 'priced as the model it names');
  });

  test('a dated snapshot is priced by its catalog entry and names it in cost_model', async () => {
    const body = chatBody('gpt-4o-mini-2024-07-18', 'snapshot pricing');
    const { log } = await chat(body);
    assertUsd(log.cost_usd, expectedCost(CATALOG['gpt-4o-mini'].pricing, mockUsage(body)), 'snapshot');
    assert.equal(log.cost_model, 'gpt-4o-mini');
    assert.equal(log.model, 'gpt-4o-mini-2024-07-18');
  });

  test('a model from the config\'s own "models" is priced', async () => {
    const body = chatBody('house-model', 'our own model');
    const { log } = await chat(body);
    assertUsd(log.cost_usd, expectedCost({ input: 3, output: 7 }, mockUsage(body)), 'house-model');
  });

  test('stream: cost_usd too (the adapter asks the upstream for usage)', async () => {
    const body = { ...chatBody('gpt-4.1', 'stream me a price, please'), stream: true };
    const s = await readStream(`${ctx.gw.baseURL}/chat/completions`, body);
    assert.equal(s.status, 200);
    assert.ok(s.ended);
    const log = await accessLogFor(ctx.gw, s.headers.get('x-request-id'));
    assert.equal(log.stream, true);
    const u = mockUsage(body);
    assert.equal(log.tokens_in, u.input);
    assert.equal(log.tokens_out, u.output);
    assertUsd(log.cost_usd, expectedCost(CATALOG['gpt-4.1'].pricing, u), 'stream');
  });

  test('embeddings: input tokens at the input price', async () => {
    const { response } = await ctx.client.embeddings.create({ model: 'text-embedding-3-small', input: 'price these twelve words please' }).withResponse();
    const log = await accessLogFor(ctx.gw, response.headers.get('x-request-id'));
    assert.ok(log.tokens_in > 0);
    assertUsd(log.cost_usd, expectedCost(CATALOG['text-embedding-3-small'].pricing, { input: log.tokens_in, output: 0 }), 'embeddings');
  });

  test('unknown model: cost_unknown true, no cost_usd, aigw_cost_unknown_total counts it', async () => {
    const before = sample(await metric(ctx.gw, 'aigw_cost_unknown_total'), { route: 'chat', provider: 'up' });
    const { log } = await chat(chatBody('made-up-model-xyz', 'who prices me?'));
    assert.equal(log.cost_unknown, true, JSON.stringify(log));
    assert.ok(!('cost_usd' in log), 'never a silent 0');
    assert.ok(log.tokens_in > 0, 'usage was known: the model is what is missing');
    const after = sample(await metric(ctx.gw, 'aigw_cost_unknown_total'), { route: 'chat', provider: 'up' });
    assert.equal(after, before + 1);
    const cost = await metric(ctx.gw, 'aigw_cost_usd_total');
    assert.ok(!cost.some((s) => s.labels.model === 'made-up-model-xyz'), 'unknown models mint no cost series');
  });

  test('the model list is not priced', async () => {
    const r = await fetch(`${ctx.gw.baseURL}/models`, { headers: { authorization: 'Bearer x' } });
    await r.arrayBuffer();
    const log = await accessLogFor(ctx.gw, r.headers.get('x-request-id'));
    assert.ok(!('cost_usd' in log) && !('cost_unknown' in log), JSON.stringify(log));
  });

  test('aigw_cost_usd_total{route,provider,model} adds each request\'s cost', async () => {
    const labels = { route: 'chat', provider: 'up', model: 'gpt-4o' };
    const before = sample(await metric(ctx.gw, 'aigw_cost_usd_total'), labels);
    const a = await chat(chatBody('gpt-4o', 'first priced request'));
    const b = await chat(chatBody('gpt-4o-2024-11-20', 'second one, a dated alias'));
    const after = sample(await metric(ctx.gw, 'aigw_cost_usd_total'), labels);
    assert.ok(Math.abs(after - before - (a.log.cost_usd + b.log.cost_usd)) < 1e-9, `${before} -> ${after}`);
  });

  test('a price override in the config applies after a reload', async () => {
    const body = chatBody('gpt-4o-mini', 'after the reload');
    const cfg = structuredClone(ctx.gw.config);
    cfg.models = { ...cfg.models, 'gpt-4o-mini': { pricing: { input: 100, output: 1000 } } };
    fs.writeFileSync(ctx.gw.configPath, JSON.stringify(cfg, null, 2));
    const r = await ctx.gw.admin('/reload', { method: 'POST' });
    const j = await r.json();
    assert.equal(r.status, 200, JSON.stringify(j));
    const { log } = await chat(body);
    const merged = { ...CATALOG['gpt-4o-mini'].pricing, input: 100, output: 1000 }; // cached_input stays
    assertUsd(log.cost_usd, expectedCost(merged, mockUsage(body)), 'override');
    assert.ok(log.cost_usd > expectedCost(CATALOG['gpt-4o-mini'].pricing, mockUsage(body)) * 100);
  });

  test('a reload with an invalid price is refused with its JSON pointer; the old prices stay', async () => {
    const cfg = structuredClone(ctx.gw.config);
    cfg.models = { 'gpt-4o-mini': { pricing: { input: -1, output: 1 } } };
    fs.writeFileSync(ctx.gw.configPath, JSON.stringify(cfg, null, 2));
    const r = await ctx.gw.admin('/reload', { method: 'POST' });
    const j = await r.json();
    assert.ok(r.status >= 400, `status ${r.status}`);
    assert.match(JSON.stringify(j), /\/models\/gpt-4o-mini\/pricing\/input/);
    const body = chatBody('gpt-4o-mini', 'still the override price');
    const { log } = await chat(body);
    assertUsd(log.cost_usd, expectedCost({ ...CATALOG['gpt-4o-mini'].pricing, input: 100, output: 1000 }, mockUsage(body)), 'kept');
  });
});
