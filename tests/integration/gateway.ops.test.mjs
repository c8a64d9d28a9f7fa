// Operations: TLS listener, `aigw --check`, SIGTERM drain, connection limits and timeouts, the admin
// API's auth and metrics cardinality, and secrets hygiene. Real sockets, real processes, loopback.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import OpenAI from 'openai';
import {
  skipUnlessGateway, startMock, defaultConfig, freePort, closedPort, rawRequest, readStream, openAIError,
  sleep, until, CLIENT_KEY, ADMIN_TOKEN, AIGW_PLUGIN_DIR,
} from './lib/harness.mjs';
import { replyText } from '../mock/openai_mock.mjs';
import {
  TEST_PLUGIN_DIR, SLACK_MS, skipUnlessTestPlugins, tmpDir, runAigw, writeConfig, launchGateway,
  canConnect, twoPorts, selfSignedCert, httpsFetch, rawConn, parseResponses, chatRequestText, metricLines, stopAndCheck,
} from './lib/ops.mjs';

const skip = skipUnlessGateway();
const chat = (content, model = 'gpt-4o-mini') => ({ model, messages: [{ role: 'user', content }] });

/** defaultConfig on fresh ports, pointed at mockPort; edit(cfg) may change it. */
async function baseConfig(mockPort, edit, { upstreamKey } = {}) {
  const [port, adminPort] = await twoPorts();
  const cfg = defaultConfig({ port, adminPort, mockPort, ...(upstreamKey ? { upstreamKey } : {}) });
  return edit ? edit(cfg) || cfg : cfg;
}

// ---------------------------------------------------------------------------------------------
describe('ops: TLS listener', { skip }, () => {
  let mock;
  let gw;
  let dir;
  let tls;
  let client;
  before(async () => {
    dir = tmpDir('aigw-tls-');
    tls = selfSignedCert(dir);
    mock = await startMock();
    const cfg = await baseConfig(mock.port, (c) => { c.listen[0].tls = { cert: tls.cert, key: tls.key }; });
    gw = await launchGateway(cfg);
    client = new OpenAI({ baseURL: `https://127.0.0.1:${gw.port}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000, fetch: httpsFetch(tls.ca) });
  });
  after(async () => {
    try { await stopAndCheck(gw); } finally {
      await mock?.stop();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the SDK over https (trusting the self-signed cert): non-stream chat', async () => {
    const { data, response } = await client.chat.completions.create(chat('over tls')).withResponse();
    assert.equal(data.choices[0].message.content, 'You said: over tls');
    assert.ok(response.headers.get('x-request-id'));
  });

  test('the SDK over https: streamed chat assembles and ends normally', async () => {
    const body = { model: 'gpt-4o-mini+fault-trickle-5', stream: true, messages: [{ role: 'user', content: 'a streamed answer over tls with several words' }] };
    const s = await client.chat.completions.create(body);
    let text = '';
    let finish = null;
    for await (const c of s) {
      text += c.choices[0]?.delta?.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, replyText(body));
    assert.equal(finish, 'stop');
  });

  test('a client that does not trust the certificate fails the handshake (TLS is real)', async () => {
    const strict = new OpenAI({ baseURL: `https://127.0.0.1:${gw.port}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 5000 });
    await assert.rejects(strict.chat.completions.create(chat('untrusted')), (e) => e instanceof OpenAI.APIConnectionError);
  });

  test('plain HTTP on the TLS port: no HTTP answer, connection closed, gateway unharmed', async () => {
    const c = await rawConn(gw.port);
    await c.write(`GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
    const closed = await Promise.race([c.closed, sleep(5000).then(() => null)]);
    c.destroy();
    assert.ok(closed, 'the gateway closes a connection that does not speak TLS');
    assert.ok(!/^HTTP\/1\.[01] 200/.test(c.text()), `no HTTP 200 over a plaintext connection: ${JSON.stringify(c.text().slice(0, 80))}`);
    // a flood of garbage too
    await Promise.all(Array.from({ length: 20 }, async () => {
      const g = await rawConn(gw.port);
      await g.write(crypto.randomBytes(3000));
      await Promise.race([g.closed, sleep(3000)]);
      g.destroy();
    }));
    assert.equal(gw.exited, null, 'gateway still running');
    const r = await client.chat.completions.create(chat('still fine'));
    assert.equal(r.choices[0].message.content, 'You said: still fine');
  });

  test('a client that connects and never handshakes does not block others', async () => {
    const idle = await rawConn(gw.port);
    const r = await client.chat.completions.create(chat('next to an idle socket'));
    assert.equal(r.choices[0].message.content, 'You said: next to an idle socket');
    idle.destroy();
  });
});

describe('ops: TLS misconfiguration refuses to start', { skip }, () => {
  let dir;
  let tls;
  before(() => {
    dir = tmpDir('aigw-tlsbad-');
    tls = selfSignedCert(dir);
  });
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  async function startExpectFailure(edit) {
    const [port, adminPort] = await twoPorts();
    const cfg = defaultConfig({ port, adminPort, mockPort: await closedPort() });
    edit(cfg);
    const p = writeConfig(cfg, dir);
    const r = await runAigw(['-c', p], { timeoutMs: 15000 });
    return { ...r, port };
  }

  test('missing certificate file → non-zero exit, message names the file and its JSON pointer', async () => {
    const missing = path.join(dir, 'no-such-cert.pem');
    const r = await startExpectFailure((c) => { c.listen[0].tls = { cert: missing, key: tls.key }; });
    assert.notEqual(r.code, 0, `exit code ${r.code}`);
    assert.ok(r.stderr.includes(missing), `stderr names ${missing}:\n${r.stderr}`);
    assert.match(r.stderr, /\/listen\/0\/tls\/cert/);
  });

  test('missing key file → non-zero exit, message names the file', async () => {
    const missing = path.join(dir, 'no-such-key.pem');
    const r = await startExpectFailure((c) => { c.listen[0].tls = { cert: tls.cert, key: missing }; });
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(missing), `stderr names ${missing}:\n${r.stderr}`);
    assert.match(r.stderr, /\/listen\/0\/tls\/key/);
  });

  test('key file that is not a key (readable garbage) → non-zero exit naming it, port not left bound', async () => {
    const garbage = path.join(dir, 'garbage-key.pem');
    fs.writeFileSync(garbage, 'this is not a PEM private key\n');
    const r = await startExpectFailure((c) => { c.listen[0].tls = { cert: tls.cert, key: garbage }; });
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(garbage), `stderr names ${garbage}:\n${r.stderr}`);
    assert.equal(await canConnect(r.port), false, 'nothing listens after the refused start');
  });

  test('certificate and key that do not match → non-zero exit', async () => {
    const other = tmpDir('aigw-tls2-');
    try {
      const t2 = selfSignedCert(other);
      const r = await startExpectFailure((c) => { c.listen[0].tls = { cert: tls.cert, key: t2.key }; });
      assert.notEqual(r.code, 0);
      assert.ok(r.stderr.includes(t2.key) || r.stderr.includes(tls.cert), `stderr names the files:\n${r.stderr}`);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('ops: aigw --check', { skip: skip || skipUnlessTestPlugins() }, () => {
  let dir;
  before(() => { dir = tmpDir('aigw-check-'); });
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  const validConfig = () => ({
    listen: [{ address: '127.0.0.1', port: 18080 }],
    workers: 1,
    admin: { address: '127.0.0.1', port: 0 },
    plugin_paths: [AIGW_PLUGIN_DIR, TEST_PLUGIN_DIR],
    providers: { local: { plugin: 'mock', config: {} }, up: { plugin: 'openai', config: { base_url: 'http://127.0.0.1:9/v1', api_key: 'sk-x' } } },
    plugins: [{ name: 'test_cfg', config: { limit: 5 } }],
    routes: [
      { name: 'chat', match: { methods: ['POST'], path: '/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'up', model: 'gpt-4o' }, { provider: 'local' }] },
      { name: 'prefixed', match: { path_prefix: '/v1/embeddings' }, api: 'embeddings', targets: [{ provider: 'local' }], plugins: [{ name: 'test_cfg', config: { limit: 2 }, priority: 77 }] },
    ],
  });

  test('valid file → exit 0, prints every route with its targets and plugin order', async () => {
    const p = writeConfig(validConfig(), dir);
    const r = await runAigw(['--check', p]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /OK \(2 routes, 2 providers, 1 workers\)/);
    assert.match(r.stdout, /route chat: \/v1\/chat\/completions -> up\/gpt-4o, local/);
    assert.match(r.stdout, /route prefixed: \/v1\/embeddings\* -> local/);
    // global plugin on the first route, at its own priority; the route's override on the second
    const lines = r.stdout.split('\n');
    const at = (name) => lines.findIndex((l) => l.includes(`route ${name}:`));
    assert.match(lines[at('chat') + 1], /1\. test_cfg \(priority 10\)/);
    assert.match(lines[at('prefixed') + 1], /1\. test_cfg \(priority 77\)/);
  });

  test('invalid file with several problems → non-zero exit, every error listed with its JSON pointer', async () => {
    const cfg = validConfig();
    cfg.bogus_key = 1;
    cfg.listen[0].port = 'eighty';
    cfg.workers = -3;
    cfg.providers.up.config = {}; // openai without base_url
    cfg.routes[0].targets = [{ provider: 'nope' }];
    cfg.routes[1].api = 'weird';
    cfg.routes[1].plugins[0].config.limit = -1; // test_cfg's own validation
    cfg.routes.push({ name: 'empty', match: {}, api: 'chat', targets: [] });
    const p = writeConfig(cfg, dir);
    const r = await runAigw(['--check', p]);
    assert.notEqual(r.code, 0);
    const expected = [
      ['/bogus_key', /unknown key/],
      ['/listen/0/port', /integer/],
      ['/workers', />= 0/],
      ['/providers/up/config/base_url', /required/],
      ['/routes/0/targets/0/provider', /unknown provider 'nope'/],
      ['/routes/1/api', /unknown api 'weird'/],
      ['/routes/1/plugins/0/config/limit', /test_cfg: must be an integer > 0/],
      ['/routes/2/match', /path/],
      ['/routes/2/targets', /non-empty/],
    ];
    for (const [ptr, re] of expected) {
      const line = r.stderr.split('\n').find((l) => l.trim().startsWith(`${ptr}:`));
      assert.ok(line, `stderr lists ${ptr}:\n${r.stderr}`);
      assert.match(line, re);
    }
    assert.match(r.stderr, new RegExp(`${expected.length} errors`), r.stderr);
    assert.equal(r.stdout.includes('OK'), false);
  });

  test('malformed JSON → non-zero exit with a position', async () => {
    const p = writeConfig('{"listen": [ {"port": 1,} ', dir);
    const r = await runAigw(['--check', p]);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(p), r.stderr);
    assert.ok(r.stderr.trim().length > p.length + 5, `says what is wrong: ${r.stderr}`);
  });

  test('a plugin built for ABI 2.0 is refused, naming the file and both versions', async () => {
    const cfg = validConfig();
    cfg.routes[1].plugins = [{ name: 'test_bad_abi', config: {} }];
    const p = writeConfig(cfg, dir);
    const r = await runAigw(['--check', p]);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(path.join(TEST_PLUGIN_DIR, 'test_bad_abi.so')), `names the file:\n${r.stderr}`);
    assert.match(r.stderr, /\b2\.0\b/);
    assert.match(r.stderr, /provides ABI 1\.\d+\b/);
    assert.match(r.stderr, /\/routes\/1\/plugins\/0/);
  });

  test('starting the gateway with an invalid config → non-zero exit with the errors, nothing listens', async () => {
    const [port] = await twoPorts();
    const cfg = validConfig();
    cfg.listen[0].port = port;
    cfg.routes[0].targets = [{ provider: 'ghost' }];
    cfg.limits = { max_header_bytes: 'lots' };
    const p = writeConfig(cfg, dir);
    const r = await runAigw(['-c', p], { timeoutMs: 15000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /\/routes\/0\/targets\/0\/provider: unknown provider 'ghost'/);
    assert.match(r.stderr, /\/limits\/max_header_bytes/);
    assert.equal(await canConnect(port), false);
  });

  test('a plugin refused at start (ABI 2.0) stops the gateway from starting', async () => {
    const cfg = validConfig();
    cfg.listen[0].port = await freePort();
    cfg.plugins = [{ name: 'test_bad_abi', config: {} }];
    const p = writeConfig(cfg, dir);
    const r = await runAigw(['-c', p], { timeoutMs: 15000 });
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes('test_bad_abi.so'), r.stderr);
    assert.match(r.stderr, /2\.0/);
  });
});

// ---------------------------------------------------------------------------------------------
describe('ops: SIGTERM drain', { skip }, () => {
  let mock;
  before(async () => { mock = await startMock(); });
  after(async () => { await mock?.stop(); });

  const longContent = (n) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');

  test('in-flight stream completes with [DONE] after SIGTERM; the process then exits 0', async () => {
    const gw = await launchGateway(await baseConfig(mock.port, (c) => { c.drain_timeout_ms = 15000; }));
    try {
      // ~24 events, 100 ms apart: about 2.5 s
      const body = { model: 'gpt-4o-mini+fault-trickle-100', stream: true, messages: [{ role: 'user', content: longContent(20) }] };
      const streamP = readStream(`${gw.baseURL}/chat/completions`, body, { timeoutMs: 20000 });
      await until(async () => (await mock.stats()).requests_in_flight >= 1, 5000);
      await sleep(400); // a few events are out
      const t0 = Date.now();
      gw.signal('SIGTERM');
      await sleep(300);
      assert.equal(gw.exited, null, 'still draining while the stream runs');
      const s = await streamP;
      assert.equal(s.status, 200);
      assert.ok(s.ended, `stream ended cleanly (${s.error})`);
      assert.equal(s.events.at(-1)?.data, '[DONE]', `stream ends with [DONE]: ${s.text.slice(-200)}`);
      const content = s.events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data).choices[0]?.delta?.content ?? '').join('');
      assert.equal(content, replyText(body), 'the whole answer arrived');
      const ex = await gw.waitExit(5000 + SLACK_MS);
      assert.ok(ex, 'gateway exits after the drain');
      assert.equal(ex.code, 0, `exit code 0 after a drain (got ${JSON.stringify(ex)})\n${gw.stderr}`);
      assert.ok(ex.at - t0 >= 1000, 'it waited for the stream');
    } finally {
      await stopAndCheck(gw);
    }
  });

  test('during the drain a new connection is refused promptly (not parked until the drain ends)', async () => {
    const gw = await launchGateway(await baseConfig(mock.port, (c) => { c.drain_timeout_ms = 15000; }));
    try {
      // ~45 events 100 ms apart keep the drain going for ~4.5 s
      const body = { model: 'gpt-4o-mini+fault-trickle-100', stream: true, messages: [{ role: 'user', content: longContent(40) }] };
      const streamP = readStream(`${gw.baseURL}/chat/completions`, body, { timeoutMs: 20000 });
      await until(async () => (await mock.stats()).requests_in_flight >= 1, 5000);
      gw.signal('SIGTERM');
      await sleep(300);
      const t0 = Date.now();
      const probe = await rawRequest(`${gw.url}/v1/chat/completions`, { body: JSON.stringify(chat('during drain')), timeoutMs: 8000 })
        .then((r) => ({ status: r.status }), (e) => ({ error: e.code || e.message }));
      const took = Date.now() - t0;
      const s = await streamP;
      const ex = await gw.waitExit(5000 + SLACK_MS);
      const drainMs = ex ? ex.at - t0 : NaN;
      assert.equal(s.events.at(-1)?.data, '[DONE]', 'the in-flight stream still completes');
      assert.ok(probe.error || probe.status === 503, `new request during the drain is not served: ${JSON.stringify(probe)}`);
      assert.ok(took < 1000 + SLACK_MS,
        `the new connection is refused at once (ECONNREFUSED or 503), not parked in the listen backlog until the process exits: it settled after ${took} ms with ${JSON.stringify(probe)}; the process exited ${drainMs} ms after the probe started`);
    } finally {
      await stopAndCheck(gw);
    }
  });

  test('idle gateway exits promptly on SIGTERM with code 0', async () => {
    const gw = await launchGateway(await baseConfig(mock.port));
    try {
      // an idle keep-alive connection must not hold the drain
      const c = await rawConn(gw.port);
      await c.write(chatRequestText(gw.port, 'then idle'));
      await c.waitFor((t) => parseResponses(Buffer.from(t, 'latin1')).length === 1);
      const t0 = Date.now();
      gw.signal('SIGTERM');
      const ex = await gw.waitExit(2000 + SLACK_MS);
      assert.ok(ex, 'exited');
      assert.equal(ex.code, 0);
      assert.ok(ex.at - t0 < 1500 + SLACK_MS, `prompt exit (${ex.at - t0} ms)`);
      await Promise.race([c.closed, sleep(1000)]);
      assert.ok(c.isClosed(), 'idle keep-alive connection closed');
    } finally {
      await stopAndCheck(gw);
    }
  });

  test('drain_timeout_ms shorter than the stream: the process exits within the deadline', async () => {
    const drainMs = 1000;
    const gw = await launchGateway(await baseConfig(mock.port, (c) => { c.drain_timeout_ms = drainMs; }));
    try {
      // ~55 events, 100 ms apart: 5.5 s, far past the deadline
      const body = { model: 'gpt-4o-mini+fault-trickle-100', stream: true, messages: [{ role: 'user', content: longContent(50) }] };
      const streamP = readStream(`${gw.baseURL}/chat/completions`, body, { timeoutMs: 20000 });
      await until(async () => (await mock.stats()).requests_in_flight >= 1, 5000);
      await sleep(300);
      const t0 = Date.now();
      gw.signal('SIGTERM');
      const ex = await gw.waitExit(drainMs + 3 * SLACK_MS);
      assert.ok(ex, `exited within ${drainMs} ms + slack`);
      const took = ex.at - t0;
      assert.ok(took >= drainMs - 150, `did not cut before the deadline (${took} ms)`);
      assert.ok(took <= drainMs + SLACK_MS, `exit ${took} ms after SIGTERM (deadline ${drainMs})`);
      const s = await streamP;
      assert.notEqual(s.events.at(-1)?.data, '[DONE]', 'a stream cut by the deadline does not end with [DONE]');
      // the upstream stream is not left running
      await until(async () => (await mock.stats()).requests_in_flight === 0, 3000);
      assert.equal((await mock.stats()).requests_in_flight, 0, 'upstream stream closed');
    } finally {
      await stopAndCheck(gw);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('ops: connection limits and timeouts', { skip }, () => {
  const HEADER_TIMEOUT = 600;
  const BODY_TIMEOUT = 600;
  let mock;
  let gw;
  let client;
  before(async () => {
    mock = await startMock();
    gw = await launchGateway(await baseConfig(mock.port, (c) => {
      c.limits = {
        max_body_bytes: 1048576,
        max_header_bytes: 4096,
        client_header_timeout_ms: HEADER_TIMEOUT,
        client_body_timeout_ms: BODY_TIMEOUT,
        keepalive_timeout_ms: 10000,
      };
      c.routes[0].timeouts = { connect_ms: 2000, first_byte_ms: 800, idle_ms: 2000, total_ms: 0 };
      c.routes.push({
        name: 'chat_total', match: { methods: ['POST'], path: '/total/v1/chat/completions' }, api: 'chat',
        targets: [{ provider: 'up' }], timeouts: { connect_ms: 2000, first_byte_ms: 10000, idle_ms: 10000, total_ms: 1000 },
      });
    }));
    client = new OpenAI({ baseURL: gw.baseURL, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000 });
  });
  after(async () => {
    try { await stopAndCheck(gw); } finally { await mock?.stop(); }
  });

  // The head goes out in one write with no body, so the gateway has read everything we sent when
  // it answers and closes (no RST from unread input eating the response).
  async function sendHead(head) {
    const c = await rawConn(gw.port);
    await c.write(head);
    await Promise.race([c.closed, sleep(5000)]);
    c.destroy();
    return { responses: parseResponses(c.data()), closed: c.isClosed(), text: c.text() };
  }

  test('request head larger than max_header_bytes → 431, OpenAI-shaped, connection closed', async () => {
    const r = await sendHead(`GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: ${'a'.repeat(8000)}\r\n\r\n`);
    assert.equal(r.responses[0]?.status, 431, r.text.slice(0, 200));
    openAIError(r.responses[0].json);
    assert.ok(r.closed);
    // a head just under the limit still works
    const ok = await rawRequest(`${gw.url}/v1/chat/completions`, { headers: { 'content-type': 'application/json', 'x-medium': 'b'.repeat(3000) }, body: JSON.stringify(chat('medium head')) });
    assert.equal(ok.status, 200, ok.body);
  });

  test('many small headers adding up past max_header_bytes → 431', async () => {
    let head = 'GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\n';
    for (let i = 0; i < 200; i++) head += `x-h${i}: ${'v'.repeat(30)}\r\n`;
    const r = await sendHead(`${head}\r\n`);
    assert.equal(r.responses[0]?.status, 431, r.text.slice(0, 200));
    assert.ok(r.closed);
  });

  test('half a request head, then silence → 408 after client_header_timeout_ms, connection closed', async () => {
    const c = await rawConn(gw.port);
    const t0 = Date.now();
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-ty');
    await Promise.race([c.closed, sleep(HEADER_TIMEOUT + 3 * SLACK_MS)]);
    const took = Date.now() - t0;
    c.destroy();
    const [res] = parseResponses(c.data());
    assert.ok(res, `a response arrived: ${JSON.stringify(c.text())}`);
    assert.equal(res.status, 408);
    openAIError(res.json);
    assert.ok(c.isClosed(), 'connection closed');
    assert.ok(took >= HEADER_TIMEOUT - 100, `not before the timeout (${took} ms)`);
    assert.ok(took <= HEADER_TIMEOUT + SLACK_MS, `soon after the timeout (${took} ms)`);
  });

  test('slowloris: a head dribbled byte by byte still gets 408 once client_header_timeout_ms has passed since it began', async () => {
    // client_header_timeout_ms must bound the whole head, not the gap between two bytes: otherwise
    // one byte every (timeout - 1) ms holds a connection (and its memory) forever
    const c = await rawConn(gw.port);
    const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ${'z'.repeat(200)}\r\n`;
    const t0 = Date.now();
    let i = 0;
    while (!c.isClosed() && i < head.length && Date.now() - t0 < 4 * HEADER_TIMEOUT + 2 * SLACK_MS) {
      c.sock.write(head[i++]);
      await sleep(Math.floor(HEADER_TIMEOUT / 3));
    }
    const took = Date.now() - t0;
    const closed = c.isClosed();
    c.destroy();
    const res = parseResponses(c.data())[0];
    assert.ok(closed, `connection still open after dribbling ${i} head bytes for ${took} ms (client_header_timeout_ms ${HEADER_TIMEOUT}): the header timeout is re-armed on every read`);
    assert.ok(took <= HEADER_TIMEOUT + SLACK_MS + HEADER_TIMEOUT / 3, `closed ${took} ms after the head began`);
    assert.equal(res?.status, 408, c.text().slice(0, 80));
  });

  test('request body slower than client_body_timeout_ms → 408, connection closed, upstream not called', async () => {
    await mock.clearRequests();
    const c = await rawConn(gw.port);
    const body = JSON.stringify(chat('slow body'));
    const t0 = Date.now();
    await c.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
    await Promise.race([c.closed, sleep(BODY_TIMEOUT + 3 * SLACK_MS)]);
    const took = Date.now() - t0;
    c.destroy();
    const [res] = parseResponses(c.data());
    assert.ok(res, `a response arrived: ${JSON.stringify(c.text())}`);
    assert.equal(res.status, 408);
    openAIError(res.json);
    assert.ok(c.isClosed());
    assert.ok(took >= BODY_TIMEOUT - 100 && took <= BODY_TIMEOUT + SLACK_MS, `408 after ~${BODY_TIMEOUT} ms (${took})`);
    assert.equal((await mock.requests()).length, 0, 'nothing reached the upstream');
  });

  test('a 408 during the request body releases the request: connection closed, no concurrency slot leaked', async () => {
    const active = async () => (await (await fetch(`${gw.adminURL}/ready`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()).active_requests;
    const base = await active(); // earlier tests may have leaked already: compare with now
    const c = await rawConn(gw.port);
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"model":');
    await c.waitFor((t) => t.includes('408'), BODY_TIMEOUT + 3 * SLACK_MS);
    c.destroy(); // even once the client is gone
    await sleep(300);
    const n = await until(async () => (await active()) === base, 2000);
    assert.ok(n, `active_requests back to ${base} after the 408 (now ${await active()}); a leaked slot counts against max_concurrent_requests forever`);
  });

  test('upstream first byte later than first_byte_ms → 504, OpenAI error, SDK InternalServerError', async () => {
    const t0 = Date.now();
    await assert.rejects(client.chat.completions.create(chat('late', 'gpt-4o-mini+fault-slow-first-byte-3000')), (e) => {
      assert.ok(e instanceof OpenAI.InternalServerError, `got ${e?.constructor?.name}`);
      assert.equal(e.status, 504);
      assert.ok(e.error && typeof e.error.message === 'string', `OpenAI error body: ${JSON.stringify(e.error)}`);
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took >= 700 && took < 800 + SLACK_MS, `504 after ~800 ms (${took})`);
  });

  test('upstream exchange longer than total_ms → 504, OpenAI error, SDK InternalServerError', async () => {
    const c2 = new OpenAI({ baseURL: `${gw.url}/total/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000 });
    const t0 = Date.now();
    await assert.rejects(c2.chat.completions.create(chat('too long', 'gpt-4o-mini+fault-slow-first-byte-4000')), (e) => {
      assert.ok(e instanceof OpenAI.InternalServerError, `got ${e?.constructor?.name}`);
      assert.equal(e.status, 504);
      assert.ok(e.error && typeof e.error.message === 'string' && e.error.type, `OpenAI error body: ${JSON.stringify(e.error)}`);
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 1000 + SLACK_MS, `504 after ~1000 ms (${took})`);
    // the raw body too
    const r = await rawRequest(`${gw.url}/total/v1/chat/completions`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat('raw', 'gpt-4o-mini+fault-hang')) });
    assert.equal(r.status, 504);
    openAIError(r.json);
  });

  test('total_ms cuts a stream that outlives it: error event, no [DONE]', async () => {
    const body = { model: 'gpt-4o-mini+fault-trickle-200', stream: true, messages: [{ role: 'user', content: 'one two three four five six seven eight nine ten' }] };
    const s = await readStream(`${gw.url}/total/v1/chat/completions`, body, { timeoutMs: 10000 });
    assert.equal(s.status, 200);
    assert.ok(s.elapsedMs < 1000 + SLACK_MS, `cut near total_ms (${s.elapsedMs} ms)`);
    assert.notEqual(s.events.at(-1)?.data, '[DONE]');
    assert.ok(s.events.some((e) => { try { return JSON.parse(e.data).error; } catch { return false; } }), `error event: ${s.text.slice(-300)}`);
  });

  test('keep-alive: 50 requests reuse one connection', async () => {
    const c = await rawConn(gw.port);
    try {
      for (let i = 0; i < 50; i++) {
        await c.write(chatRequestText(gw.port, `ka ${i}`));
        const ok = await c.waitFor((t) => parseResponses(Buffer.from(t, 'latin1')).length === i + 1, 5000);
        assert.ok(ok, `response ${i} on the same connection (closed: ${c.isClosed()})`);
      }
      const rs = parseResponses(c.data());
      assert.equal(rs.length, 50);
      rs.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.equal(r.json.choices[0].message.content, `You said: ka ${i}`);
        assert.notEqual((r.headers.connection || '').toLowerCase(), 'close');
      });
      assert.equal(c.isClosed(), false, 'still open');
    } finally {
      c.destroy();
    }
  });

  test('keep-alive through node:http Agent (maxSockets 1): one socket for all requests', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set();
    try {
      for (let i = 0; i < 20; i++) {
        const r = await new Promise((resolve, reject) => {
          const body = JSON.stringify(chat(`agent ${i}`));
          const req = http.request(`${gw.baseURL}/chat/completions`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
            let t = '';
            res.setEncoding('utf8').on('data', (d) => { t += d; }).on('end', () => resolve({ status: res.statusCode, json: JSON.parse(t) }));
          });
          req.on('socket', (s) => sockets.add(s));
          req.on('error', reject);
          req.end(body);
        });
        assert.equal(r.status, 200);
        assert.equal(r.json.choices[0].message.content, `You said: agent ${i}`);
      }
      assert.equal(sockets.size, 1, `one socket used (${sockets.size})`);
    } finally {
      agent.destroy();
    }
  });

  test('pipelined requests on one connection are answered in order', async () => {
    const c = await rawConn(gw.port);
    try {
      const N = 8;
      let all = '';
      for (let i = 0; i < N; i++) {
        // mix in a slower one so out-of-order completion would show
        all += chatRequestText(gw.port, `pipe ${i}`, { model: i === 1 ? 'gpt-4o-mini+fault-slow-first-byte-300' : 'gpt-4o-mini' });
      }
      all += 'GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n';
      await c.write(all);
      await c.waitFor((t) => parseResponses(Buffer.from(t, 'latin1')).length === N + 1, 10000);
      const rs = parseResponses(c.data());
      assert.equal(rs.length, N + 1, `all answered: ${c.text().slice(0, 300)}`);
      for (let i = 0; i < N; i++) {
        assert.equal(rs[i].status, 200);
        assert.equal(rs[i].json.choices[0].message.content, `You said: pipe ${i}`, `response ${i} in order`);
      }
      assert.equal(rs[N].json.object, 'list');
      const ids = new Set(rs.map((r) => r.headers['x-request-id']));
      assert.equal(ids.size, N + 1);
    } finally {
      c.destroy();
    }
  });

  test('HTTP/1.0 request is answered with a complete body and the connection closed', async () => {
    const c = await rawConn(gw.port);
    const body = JSON.stringify(chat('old client'));
    await c.write(`POST /v1/chat/completions HTTP/1.0\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    await Promise.race([c.closed, sleep(5000)]);
    c.destroy();
    assert.ok(c.isClosed(), 'server closed the HTTP/1.0 connection');
    const [r] = parseResponses(c.data());
    assert.ok(r, c.text());
    assert.equal(r.status, 200);
    assert.ok(!/chunked/i.test(r.headers['transfer-encoding'] || ''), 'no chunked encoding to an HTTP/1.0 client');
    assert.equal(r.json.choices[0].message.content, 'You said: old client');
  });

  test('HTTP/1.0 streamed request: SSE without chunked encoding (HTTP/1.0 has none), ends with [DONE], then close', async () => {
    const c = await rawConn(gw.port);
    const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'old stream' }] });
    await c.write(`POST /v1/chat/completions HTTP/1.0\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    await Promise.race([c.closed, sleep(5000)]);
    c.destroy();
    assert.ok(c.isClosed());
    const t = c.text();
    const he = t.indexOf('\r\n\r\n');
    assert.match(t.slice(0, he), /^HTTP\/1\.[01] 200/);
    assert.doesNotMatch(t.slice(0, he), /transfer-encoding:\s*chunked/i);
    assert.match(t.slice(he + 4), /^data: /, 'body starts with an SSE event, not a chunk size');
    assert.match(t, /data: \[DONE\]\n\n$/);
  });

  test('HTTP/1.1 with "connection: close" is answered then closed', async () => {
    const c = await rawConn(gw.port);
    await c.write(chatRequestText(gw.port, 'bye', { close: true }));
    await Promise.race([c.closed, sleep(5000)]);
    c.destroy();
    assert.ok(c.isClosed());
    const rs = parseResponses(c.data());
    assert.equal(rs.length, 1);
    assert.equal(rs[0].status, 200);
  });

  test('gateway still healthy after the limit tests', async () => {
    assert.equal(gw.exited, null);
    const r = await client.chat.completions.create(chat('healthy'));
    assert.equal(r.choices[0].message.content, 'You said: healthy');
  });
});

describe('ops: max_concurrent_requests', { skip }, () => {
  let mock;
  let gw;
  let client;
  before(async () => {
    mock = await startMock();
    gw = await launchGateway(await baseConfig(mock.port, (c) => {
      c.limits = { max_concurrent_requests: 1 };
      c.routes[0].timeouts = { connect_ms: 2000, first_byte_ms: 20000, idle_ms: 20000, total_ms: 0 };
    }));
    client = new OpenAI({ baseURL: gw.baseURL, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000 });
  });
  after(async () => {
    try { await stopAndCheck(gw); } finally { await mock?.stop(); }
  });

  test('one request hanging upstream; a second gets 503 (OpenAI error, SDK InternalServerError); capacity returns after', async () => {
    const ac = new AbortController();
    const hanging = client.chat.completions.create(chat('hang', 'gpt-4o-mini+fault-hang'), { signal: ac.signal }).catch((e) => e);
    await until(async () => (await mock.stats()).requests_in_flight >= 1, 5000);
    const raw = await rawRequest(`${gw.url}/v1/chat/completions`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat('second')) });
    assert.equal(raw.status, 503);
    const err = openAIError(raw.json);
    assert.match(err.message, /concurrent|retry/i);
    await assert.rejects(client.chat.completions.create(chat('third')), (e) => {
      assert.ok(e instanceof OpenAI.InternalServerError, `got ${e?.constructor?.name}`);
      assert.equal(e.status, 503);
      return true;
    });
    ac.abort();
    await hanging;
    // the slot is released once the hanging request is gone
    const ok = await until(async () => {
      try { return (await client.chat.completions.create(chat('after'))).choices[0].message.content; } catch { return null; }
    }, 5000, 100);
    assert.equal(ok, 'You said: after');
  });
});

// ---------------------------------------------------------------------------------------------
describe('ops: admin API', { skip }, () => {
  let mock;
  let gw;
  let client;
  before(async () => {
    mock = await startMock();
    gw = await launchGateway(await baseConfig(mock.port));
    client = new OpenAI({ baseURL: gw.baseURL, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000 });
  });
  after(async () => {
    try { await stopAndCheck(gw); } finally { await mock?.stop(); }
  });
  const admin = (p, { method = 'GET', token } = {}) => fetch(gw.adminURL + p, { method, headers: token === undefined ? {} : { authorization: token } });

  test('/health needs no token', async () => {
    const r = await admin('/health');
    assert.equal(r.status, 200);
    assert.equal((await r.json()).status, 'ok');
  });

  test('/ready, /metrics, /plugins, /routes, /reload: 401 without a token and with a wrong one', async () => {
    const eps = [['/ready', 'GET'], ['/metrics', 'GET'], ['/plugins', 'GET'], ['/routes', 'GET'], ['/reload', 'POST']];
    const wrong = [undefined, 'Bearer wrong', `Bearer ${ADMIN_TOKEN}x`, `Bearer ${ADMIN_TOKEN.slice(0, -1)}`, ADMIN_TOKEN, `Basic ${ADMIN_TOKEN}`, 'Bearer '];
    for (const [p, method] of eps) {
      for (const token of wrong) {
        const r = await admin(p, { method, token });
        const body = await r.text();
        assert.equal(r.status, 401, `${method} ${p} with ${JSON.stringify(token)} → ${r.status}`);
        assert.ok(!body.includes(ADMIN_TOKEN), 'the token is not echoed');
      }
      const ok = await admin(p, { method, token: `Bearer ${ADMIN_TOKEN}` });
      assert.equal(ok.status, 200, `${method} ${p} with the token`);
      await ok.arrayBuffer();
    }
  });

  test('/metrics exposes requests, duration buckets, active streams and tokens', async () => {
    await client.chat.completions.create(chat('count me'));
    const s = await client.chat.completions.create({ ...chat('stream me'), stream: true, stream_options: { include_usage: true } });
    for await (const _ of s) { /* drain */ }
    // a request is counted as it ends, just after its last byte went out: read until the stream's
    // end is in (bounded), so a fast client does not race the worker
    let r, text;
    for (let i = 0; i < 40; i++) {
      r = await admin('/metrics', { token: `Bearer ${ADMIN_TOKEN}` });
      text = await r.text();
      if (metricLines(text, 'aigw_active_streams').reduce((a, l) => a + Number(l.trim().split(/\s+/).pop()), 0) === 0) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.match(r.headers.get('content-type') || '', /^text\/plain/);
    for (const name of ['aigw_requests_total', 'aigw_request_duration_seconds_bucket', 'aigw_active_streams', 'aigw_tokens_total']) {
      assert.ok(metricLines(text, name).length >= 1, `${name} present:\n${text.slice(0, 2000)}`);
    }
    assert.ok(metricLines(text, 'aigw_request_duration_seconds_bucket').some((l) => /le="\+Inf"/.test(l)), '+Inf bucket');
    const tokens = metricLines(text, 'aigw_tokens_total').reduce((a, l) => a + Number(l.trim().split(/\s+/).pop()), 0);
    assert.ok(tokens > 0, 'tokens counted');
    const active = metricLines(text, 'aigw_active_streams').reduce((a, l) => a + Number(l.trim().split(/\s+/).pop()), 0);
    assert.equal(active, 0, 'no stream active now');
  });

  test('metric cardinality is bounded: 300 requests to random unknown paths add no series', async () => {
    const get = async () => (await (await admin('/metrics', { token: `Bearer ${ADMIN_TOKEN}` })).text());
    // one 404 first, so its "_none" series exists before the snapshot
    await (await fetch(`${gw.url}/warmup-unknown`)).arrayBuffer();
    const before = await get();
    const tokens = [];
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    try {
      await Promise.all(Array.from({ length: 300 }, (_, i) => new Promise((resolve, reject) => {
        const tok = `zz${crypto.randomBytes(6).toString('hex')}`;
        tokens.push(tok);
        const req = http.request(`${gw.url}/${tok}/v${i}/${tok}`, { method: i % 2 ? 'GET' : 'POST', agent, headers: { 'content-length': 0 } }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 404 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end();
      })));
    } finally {
      agent.destroy();
    }
    const b = metricLines(before, 'aigw_requests_total');
    const sum = (ls) => ls.filter((l) => l.includes('_none')).reduce((x, l) => x + Number(l.trim().split(/\s+/).pop()), 0);
    // a request is counted as it ends, on its worker, just after its last byte went out: the
    // client can be a hair faster than the count, so read until all 300 are in (bounded)
    let after = await get();
    for (let i = 0; i < 40 && sum(metricLines(after, 'aigw_requests_total')) - sum(b) < 300; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await get();
    }
    const a = metricLines(after, 'aigw_requests_total');
    assert.equal(a.length, b.length, `aigw_requests_total series count unchanged:\nbefore:\n${b.join('\n')}\nafter:\n${a.join('\n')}`);
    assert.ok(a.some((l) => l.includes('route="_none"')), 'unknown paths counted under route="_none"');
    for (const t of tokens) assert.ok(!after.includes(t), `path token ${t} is not a label`);
    assert.ok(sum(a) - sum(b) >= 300, `the 404s are counted (${sum(b)} → ${sum(a)})`);
    assert.ok(after.split('\n').length <= before.split('\n').length + 5, 'metrics text did not grow with the paths');
  });
});

// ---------------------------------------------------------------------------------------------
describe('ops: secrets and upstream identity', { skip }, () => {
  const PROVIDER_KEY = `sk-provider-${crypto.randomBytes(12).toString('hex')}`;
  let mock;
  let gw;
  let client;
  before(async () => {
    mock = await startMock({ key: PROVIDER_KEY });
    const refused = await closedPort();
    gw = await launchGateway(await baseConfig(mock.port, (c) => {
      c.providers.down = { plugin: 'openai', config: { base_url: `http://127.0.0.1:${refused}/v1`, api_key: PROVIDER_KEY } };
      c.providers.wrongkey = { plugin: 'openai', config: { base_url: `http://127.0.0.1:${mock.port}/v1`, api_key: `${PROVIDER_KEY}-WRONG` } };
      c.routes[0].timeouts = { connect_ms: 2000, first_byte_ms: 700, idle_ms: 2000, total_ms: 0 };
      c.routes.push({ name: 'down', match: { methods: ['POST'], path: '/down/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'down' }] });
      c.routes.push({ name: 'wrongkey', match: { methods: ['POST'], path: '/wrongkey/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'wrongkey' }] });
    }, { upstreamKey: PROVIDER_KEY }), { args: ['-v'] });
    client = new OpenAI({ baseURL: gw.baseURL, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000 });
  });
  after(async () => {
    try { await stopAndCheck(gw); } finally { await mock?.stop(); }
  });

  test("the client's Authorization, x-api-key and cookie never reach the upstream; the provider key does", async () => {
    await mock.clearRequests();
    const r = await rawRequest(`${gw.url}/v1/chat/completions`, {
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${CLIENT_KEY}`,
        'x-api-key': 'client-x-api-key-secret',
        cookie: 'session=client-cookie-secret; other=1',
      },
      body: JSON.stringify(chat('secrets')),
    });
    assert.equal(r.status, 200, r.body);
    const s = await readStream(`${gw.baseURL}/chat/completions`, { ...chat('secret stream'), stream: true }, {
      headers: { 'x-api-key': 'client-x-api-key-secret', cookie: 'session=client-cookie-secret' },
    });
    assert.equal(s.status, 200);
    await fetch(`${gw.baseURL}/models`, { headers: { authorization: `Bearer ${CLIENT_KEY}`, 'x-api-key': 'client-x-api-key-secret', cookie: 'a=client-cookie-secret' } }).then((x) => x.arrayBuffer());
    const reqs = await mock.requests();
    assert.equal(reqs.length, 3);
    for (const q of reqs) {
      assert.equal(q.headers.authorization, `Bearer ${PROVIDER_KEY}`, `${q.path}: provider key injected`);
      assert.equal(q.headers['x-api-key'], undefined, `${q.path}: no x-api-key upstream`);
      assert.equal(q.headers.cookie, undefined, `${q.path}: no cookie upstream`);
      const all = JSON.stringify(q);
      for (const secret of [CLIENT_KEY, 'client-x-api-key-secret', 'client-cookie-secret']) assert.ok(!all.includes(secret), `${q.path}: ${secret} not forwarded`);
    }
  });

  test('a client Host header does not change the upstream host', async () => {
    await mock.clearRequests();
    const r = await rawRequest(`${gw.url}/v1/chat/completions`, {
      headers: { host: 'evil.example.com:4443', 'content-type': 'application/json', 'x-forwarded-host': 'evil.example.com' },
      body: JSON.stringify(chat('host')),
    });
    assert.equal(r.status, 200, r.body);
    const [q] = await mock.requests();
    assert.equal(q.headers.host, `127.0.0.1:${mock.port}`);
    assert.ok(!JSON.stringify(q.headers).includes('evil.example.com') || q.headers['x-forwarded-host'] !== undefined,
      'the client host only appears, if at all, as a forwarding header');
    assert.ok(!String(q.headers.host).includes('evil'));
  });

  test('the provider key appears in no error body, access log line or stderr (debug logging on)', async () => {
    const bodies = [];
    const collect = async (p) => { try { await p; } catch (e) { bodies.push(JSON.stringify({ m: e.message, e: e.error, h: [...(e.headers?.entries?.() ?? [])] })); } };
    await client.chat.completions.create(chat('ok')).then((x) => bodies.push(JSON.stringify(x)));
    for (const m of ['fault-401', 'fault-400', 'fault-429', 'fault-500', 'fault-malformed', 'fault-200-error', 'gpt-4o-mini+fault-slow-first-byte-2000']) {
      await collect(client.chat.completions.create(chat('err', m)));
    }
    const down = new OpenAI({ baseURL: `${gw.url}/down/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000 });
    await collect(down.chat.completions.create(chat('refused')));
    const wrong = new OpenAI({ baseURL: `${gw.url}/wrongkey/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000 });
    await collect(wrong.chat.completions.create(chat('wrong key')));
    const s = await readStream(`${gw.baseURL}/chat/completions`, { ...chat('stream err', 'gpt-4o-mini+fault-error-after-2'), stream: true });
    bodies.push(s.text);
    const s2 = await readStream(`${gw.baseURL}/chat/completions`, { ...chat('stream reset', 'gpt-4o-mini+fault-reset-after-2'), stream: true });
    bodies.push(s2.text);
    for (const p of ['/nope', '/v1/chat/completions?x=1']) {
      const r = await rawRequest(`${gw.url}${p}`, { method: 'GET' });
      bodies.push(r.body, JSON.stringify(r.headers));
    }
    const bad = await rawRequest(`${gw.url}/v1/chat/completions`, { headers: { 'content-type': 'application/json' }, body: '{"model": ' });
    bodies.push(bad.body);
    assert.ok(bodies.length >= 14);
    for (const b of bodies) assert.ok(!b.includes(PROVIDER_KEY), `provider key leaked in a response: ${b.slice(0, 300)}`);
    await sleep(200);
    assert.ok(gw.lines().some((l) => l.request_id), 'access log lines were written');
    assert.ok(!gw.stdout.includes(PROVIDER_KEY), 'provider key not in the access log / stdout');
    assert.ok(!gw.stderr.includes(PROVIDER_KEY), `provider key not in stderr (-v):\n${gw.stderr.split('\n').filter((l) => l.includes(PROVIDER_KEY)).slice(0, 3).join('\n')}`);
    assert.ok(!gw.stdout.includes(CLIENT_KEY) && !gw.stderr.includes(CLIENT_KEY), 'client key not logged either');
    // nor the admin surface
    for (const p of ['/routes', '/plugins', '/metrics', '/ready']) {
      const t = await (await fetch(gw.adminURL + p, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
      assert.ok(!t.includes(PROVIDER_KEY), `provider key not in admin ${p}`);
    }
  });
});

