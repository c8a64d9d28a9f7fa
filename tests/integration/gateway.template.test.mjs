// The plugin template (examples/plugin-template/, built out of tree against the installed SDK by
// scripts/test.sh into AIGW_EXAMPLES_DIR) loaded by a real gateway: its config validation, its
// request hook (400 without the team header, 403 for a team not allowed, the team in the access
// log) and its on_done (a counter by team and status class).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { skipUnlessGateway, startMock, defaultConfig, metricValue, until, CLIENT_KEY, AIGW_PLUGIN_DIR } from './lib/harness.mjs';
import { EXAMPLES_DIR, launchGateway, twoPorts, runAigw, writeConfig, tmpDir, stopAndCheck } from './lib/ops.mjs';

function skipReason() {
  if (skipUnlessGateway()) return skipUnlessGateway();
  if (!EXAMPLES_DIR) return 'AIGW_EXAMPLES_DIR is not set (scripts/test.sh builds the template into it) — template tests skipped';
  if (!fs.existsSync(path.join(EXAMPLES_DIR, 'my_plugin.so'))) return `my_plugin.so not found in AIGW_EXAMPLES_DIR=${EXAMPLES_DIR} — template tests skipped`;
  return false;
}
const skip = skipReason();
if (skip && !skipUnlessGateway()) process.stderr.write(`# gateway.template: ${skip}\n`);
const chat = (content, model = 'gpt-4o-mini') => ({ model, messages: [{ role: 'user', content }] });

describe('plugin template (my_plugin) built against the installed SDK', { skip }, () => {
  let mock;
  let gw;
  const clientAt = (prefix, team) => new OpenAI({
    baseURL: `${gw.url}${prefix}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000,
    defaultHeaders: team ? { 'x-team': team } : {},
  });
  const metrics = async () => (await fetch(`${gw.adminURL}/metrics`, { headers: { authorization: `Bearer ${gw.config.admin.token}` } })).text();
  const count = async (labels) => (metricValue(await metrics(), 'aigw_plugin_my_plugin_requests_total', labels) ?? 0);
  const logOf = async (id) => {
    let rec = null;
    await until(() => { rec = gw.lines().find((l) => l.request_id === id) ?? null; return rec !== null; }, 3000);
    return rec;
  };

  before(async () => {
    mock = await startMock();
    const [port, adminPort] = await twoPorts();
    const cfg = defaultConfig({ port, adminPort, mockPort: mock.port });
    cfg.plugin_paths = [EXAMPLES_DIR, AIGW_PLUGIN_DIR];
    cfg.routes[0].plugins = [{ name: 'my_plugin', config: { teams: ['red', 'blue'] } }];
    cfg.routes.push({
      name: 'open', match: { methods: ['POST'], path: '/open/v1/chat/completions' }, api: 'chat',
      targets: [{ provider: 'up' }], plugins: [{ name: 'my_plugin', config: { required: false } }],
    });
    gw = await launchGateway(cfg);
  });
  after(async () => {
    try { await stopAndCheck(gw); } finally { await mock?.stop(); }
  });

  test('an allowed team passes: the answer is the upstream\'s, the access log has the team, the counter counts 2xx', async () => {
    const before = await count({ team: 'red', code: '2xx' });
    const { data, response } = await clientAt('', 'red').chat.completions.create(chat('hi')).withResponse();
    assert.equal(data.choices[0].message.content, 'You said: hi');
    const rec = await logOf(response.headers.get('x-request-id'));
    assert.equal(rec?.team, 'red', JSON.stringify(rec));
    assert.ok(await until(async () => (await count({ team: 'red', code: '2xx' })) === before + 1, 3000), 'counted in on_done');
  });

  test('streams pass too', async () => {
    const s = await clientAt('', 'blue').chat.completions.create({ ...chat('a stream'), stream: true });
    let text = '';
    for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'You said: a stream');
  });

  test('no team header → 400 BadRequestError naming the header; the upstream is not called', async () => {
    await mock.clearRequests();
    await assert.rejects(clientAt('').chat.completions.create(chat('x')), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.error?.type, 'invalid_request_error');
      assert.match(e.error?.message ?? '', /x-team header is required/);
      return true;
    });
    assert.equal((await mock.requests()).length, 0);
  });

  test('a team not in "teams" → 403 PermissionDeniedError, not counted (on_request set no rctx)', async () => {
    await assert.rejects(clientAt('', 'green').chat.completions.create(chat('x')), (e) => {
      assert.ok(e instanceof OpenAI.PermissionDeniedError, `got ${e?.constructor?.name} ${e?.status}`);
      return true;
    });
    assert.equal(await count({ team: 'green' }), 0);
  });

  test('"required": false: no header counts as team "none"; an upstream 500 is counted as 5xx', async () => {
    const before = await count({ team: 'none', code: '2xx' });
    const r = await clientAt('/open').chat.completions.create(chat('open'));
    assert.equal(r.choices[0].message.content, 'You said: open');
    assert.ok(await until(async () => (await count({ team: 'none', code: '2xx' })) === before + 1, 3000));
    const b5 = await count({ team: 'red', code: '5xx' });
    await assert.rejects(clientAt('/open', 'red').chat.completions.create(chat('x', 'fault-500')), (e) => e.status === 500);
    assert.ok(await until(async () => (await count({ team: 'red', code: '5xx' })) === b5 + 1, 3000), 'counted as 5xx');
  });
});

describe('plugin template: config validation', { skip }, () => {
  test('every bad value is reported at its JSON pointer and the config is refused', async () => {
    const dir = tmpDir('aigw-tpl-');
    try {
      const cfg = defaultConfig({ port: 18080, adminPort: 18081, mockPort: 9 });
      cfg.plugin_paths = [EXAMPLES_DIR, AIGW_PLUGIN_DIR];
      cfg.routes[0].plugins = [{ name: 'my_plugin', config: { header: 'bad header!', teams: ['red', 7], required: 'yes' } }];
      const r = await runAigw(['--check', writeConfig(cfg, dir)]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /\/routes\/0\/plugins\/0\/config\/header: /);
      assert.match(r.stderr, /\/routes\/0\/plugins\/0\/config\/teams\/1: /);
      assert.match(r.stderr, /\/routes\/0\/plugins\/0\/config\/required: /);
      cfg.routes[0].plugins = [{ name: 'my_plugin', config: { teams: ['red'] } }];
      const ok = await runAigw(['--check', writeConfig(cfg, dir)]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /my_plugin \(priority 50\)/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
