// Admin API roles: tokens with a role (viewer, operator, admin) beside the single admin "token".
// A viewer reads (metrics, routes, targets, plugins, ready), an operator may also reload, an
// unknown token gets 401 and a token whose role is too low 403. Tokens are compared in constant time.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, startMock, skipUnlessGateway, ADMIN_TOKEN } from './lib/harness.mjs';

const skip = skipUnlessGateway();
const VIEWER = 'viewer-token-0123456789';
const OPERATOR = 'operator-token-0123456789';

describe('admin API roles', { skip }, () => {
  let mock, gw;
  before(async () => {
    mock = await startMock();
    gw = await startGateway({
      mockPort: mock.port,
      config: (cfg) => {
        cfg.admin.tokens = [{ token: VIEWER, role: 'viewer' }, { token: OPERATOR, role: 'operator' }];
        return cfg;
      },
    });
  });
  after(async () => { await gw?.stop(); await mock?.stop(); });

  test('a viewer reads, may not reload', async () => {
    for (const p of ['/metrics', '/routes', '/targets', '/plugins', '/ready']) {
      const r = await gw.admin(p, { token: VIEWER });
      assert.equal(r.status, 200, p);
    }
    const r = await gw.admin('/reload', { method: 'POST', token: VIEWER });
    assert.equal(r.status, 403);
    assert.equal((await r.json()).error.type, 'permission_error');
  });

  test('an operator and the admin token may reload', async () => {
    for (const token of [OPERATOR, ADMIN_TOKEN]) {
      const r = await gw.admin('/reload', { method: 'POST', token });
      assert.equal(r.status, 200, await r.text());
    }
  });

  test('an unknown token, a prefix of a real one, no token: 401', async () => {
    for (const token of ['nope-nope-nope-nope', VIEWER.slice(0, -1), null]) {
      const r = await gw.admin('/metrics', { token });
      assert.equal(r.status, 401);
    }
  });

  test('config: an unknown role or a short token is an error at its path', async () => {
    const { spawnSync } = await import('node:child_process');
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { AIGW_BIN, AIGW_PLUGIN_DIR } = await import('./lib/harness.mjs');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigw-roles-'));
    const f = path.join(dir, 'aigw.json');
    fs.writeFileSync(f, JSON.stringify({
      listen: [{ address: '127.0.0.1', port: 1 }], plugin_paths: [AIGW_PLUGIN_DIR],
      admin: { port: 0, tokens: [{ token: 'short', role: 'viewer' }, { token: 'long-enough-token-000', role: 'root' }] },
      providers: { m: { plugin: 'mock', config: {} } },
      routes: [{ name: 'chat', match: { path: '/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'm' }] }],
    }));
    const r = spawnSync(AIGW_BIN, ['--check', f], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /\/admin\/tokens\/0\/token: admin tokens must be at least 16 characters/);
    assert.match(r.stderr, /\/admin\/tokens\/1\/role: unknown role 'root'/);
  });
});
