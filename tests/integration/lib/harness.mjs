// Test harness: start the OpenAI mock and the aigw gateway on free loopback ports, capture the
// gateway's output (JSON access-log lines on stdout), and stop every process it started, by PID.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before as nodeBefore, after as nodeAfter } from 'node:test';
import OpenAI from 'openai';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..', '..');
export const MOCK_SCRIPT = path.join(REPO_ROOT, 'tests', 'mock', 'openai_mock.mjs');
export const MOCK_KEY = 'sk-mock';
export const ADMIN_TOKEN = 't0k';

const resolveFromRoot = (p) => (path.isAbsolute(p) ? p : path.resolve(REPO_ROOT, p));
export const AIGW_BIN = resolveFromRoot(process.env.AIGW_BIN || 'build/aigw');
export const AIGW_PLUGIN_DIR = resolveFromRoot(process.env.AIGW_PLUGIN_DIR || 'build/plugins');
/** Test plugins (tests/plugins/*.c): scripts/test.sh sets it; default: test-plugins beside AIGW_PLUGIN_DIR. */
export const AIGW_TEST_PLUGIN_DIR = resolveFromRoot(process.env.AIGW_TEST_PLUGIN_DIR || path.join(path.dirname(AIGW_PLUGIN_DIR), 'test-plugins'));
/** AIGW_SANITIZE=1: the gateway is an ASan/UBSan build; every stop checks its exit code and stderr. */
export const SANITIZE = process.env.AIGW_SANITIZE === '1';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// process bookkeeping: every child is killed by PID in after() hooks, and on exit as a last resort
// ---------------------------------------------------------------------------------------------
const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { process.kill(c.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Stop a child by PID: SIGTERM, then SIGKILL after graceMs. Resolves when it has exited. */
export async function stopProcess(child, graceMs = 3000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  try { process.kill(child.pid, 'SIGTERM'); } catch { return; }
  const t = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
  await exited;
  clearTimeout(t);
}

// ---------------------------------------------------------------------------------------------
// sanitizer / crash checks on every gateway exit
// ---------------------------------------------------------------------------------------------
/** What a sanitizer prints when it finds something (ASan, UBSan, LSan). */
export const SANITIZER_MARKERS = ['ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer'];
const CRASH_SIGNALS = new Set(['SIGSEGV', 'SIGABRT', 'SIGBUS', 'SIGILL', 'SIGFPE']);
/** Problems found by gatewayExitProblems() in this test file; the file-level after() hook fails on them. */
const gatewayProblems = [];
/** Gateways started and not yet stopped (the file-level after() hook stops and checks them). */
const liveGateways = new Set();

/**
 * The problems with a finished gateway process: with AIGW_SANITIZE=1, any exit other than code 0
 * (a leak or an ASan/UBSan report makes the exit non-zero; a SIGKILL after the grace period counts too) and any
 * sanitizer report on stderr; in every mode, a crash signal. Returns a list of strings.
 */
export function gatewayExitProblems(exited, stderr, { expectCleanExit = true } = {}) {
  const out = [];
  const markers = SANITIZER_MARKERS.filter((m) => stderr.includes(m));
  if (markers.length) out.push(`sanitizer report on stderr (${markers.join(', ')})`);
  if (exited && CRASH_SIGNALS.has(exited.sig)) out.push(`crashed with ${exited.sig}`);
  if (SANITIZE && expectCleanExit && exited && (exited.code !== 0 || exited.sig)) {
    out.push(`exit ${exited.sig ? `by signal ${exited.sig}` : `code ${exited.code}`} (expected code 0 after SIGTERM)`);
  }
  return out;
}

function sanitizerExcerpt(stderr) {
  const lines = stderr.split('\n');
  const i = lines.findIndex((l) => SANITIZER_MARKERS.some((m) => l.includes(m)));
  return (i >= 0 ? lines.slice(Math.max(0, i - 5), i + 60) : lines.slice(-40)).join('\n');
}

function recordGatewayProblems(label, problems, stderr) {
  if (!problems.length) return null;
  const msg = `aigw ${label}: ${problems.join('; ')}\n---- aigw stderr (excerpt) ----\n${sanitizerExcerpt(stderr)}`;
  gatewayProblems.push(msg);
  process.stderr.write(`\n!!!! ${msg}\n`);
  return new Error(msg);
}

// File-level safety net: stop any gateway a suite left running (SIGTERM, wait), then fail the file
// loudly when any gateway of this file crashed, leaked or tripped a sanitizer.
nodeAfter(async () => {
  for (const gw of [...liveGateways]) {
    try { await gw.stop(); } catch { /* recorded in gatewayProblems */ }
  }
  if (gatewayProblems.length) {
    throw new Error(`${gatewayProblems.length} gateway process(es) ended badly:\n\n${gatewayProblems.join('\n\n')}`);
  }
});

// ---------------------------------------------------------------------------------------------
// ports
// ---------------------------------------------------------------------------------------------
/** A currently free loopback TCP port (bind to 0, read, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A port on which nothing listens (for "connection refused"). */
export const closedPort = freePort;

// ---------------------------------------------------------------------------------------------
// mock
// ---------------------------------------------------------------------------------------------
/**
 * Start tests/mock/openai_mock.mjs on a free port.
 * Returns { port, url, baseURL, child, requests(), clearRequests(), stats(), resetStats(), stop() }.
 */
export async function startMock({ key = MOCK_KEY, args = [] } = {}) {
  const child = track(spawn(process.execPath, [MOCK_SCRIPT, '--port', '0', '--key', key, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const onData = (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        child.stdout.off('data', onData);
        try { resolve(JSON.parse(out.slice(0, nl)).port); } catch (e) { reject(e); }
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`mock exited (${code}) before listening: ${stderr}`)));
    setTimeout(() => reject(new Error(`mock did not start within 10s: ${stderr}`)), 10000).unref();
  });
  child.stdout.resume();
  const url = `http://127.0.0.1:${port}`;
  const j = async (method, p) => {
    const r = await fetch(url + p, { method });
    return r.json();
  };
  return {
    port,
    url,
    baseURL: `${url}/v1`,
    child,
    get stderr() { return stderr; },
    requests: () => j('GET', '/__requests'),
    clearRequests: () => j('DELETE', '/__requests'),
    stats: () => j('GET', '/__stats'),
    resetStats: () => j('DELETE', '/__stats'),
    /** counters of the fault-<status>-first-<n> faults: { first: { key: seen } } */
    faults: () => j('GET', '/__faults'),
    /** reset those counters (the next request with such a fault fails again) */
    resetFaults: () => j('DELETE', '/__faults'),
    stop: () => stopProcess(child),
  };
}

// ---------------------------------------------------------------------------------------------
// redis (the host store's Redis backend)
// ---------------------------------------------------------------------------------------------
function onPath(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const f = path.join(dir || '.', name);
    try { fs.accessSync(f, fs.constants.X_OK); return f; } catch { /* next */ }
  }
  return null;
}

/** The redis-server binary on PATH, or null (suites skip with REDIS_SKIP). */
export const REDIS_SERVER = onPath('redis-server');
export const REDIS_SKIP = REDIS_SERVER ? false : 'redis-server not installed (Debian: redis-server)';

/**
 * Start a redis-server on 127.0.0.1 (no persistence, its own temp dir) on `port`, or on a free
 * port; resolves when it accepts connections (rejects after 5 s). Start it again on the same port
 * to bring Redis "back" after stop(). Returns { port, child, dir, stop() }; stop() ends it by PID
 * (SIGTERM, then SIGKILL) and removes the dir, and may be called more than once.
 */
export async function startRedis({ port } = {}) {
  if (!REDIS_SERVER) throw new Error('redis-server not found on PATH');
  port ??= await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigw-redis-'));
  const child = track(spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' }));
  const stop = async () => {
    await stopProcess(child);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const up = await until(() => new Promise((res) => {
    const s = net.connect(port, '127.0.0.1', () => { s.end(); res(true); });
    s.on('error', () => res(false));
  }), 5000, 50);
  if (!up) {
    await stop();
    throw new Error(`redis-server did not accept connections on 127.0.0.1:${port}`);
  }
  return { port, child, dir, stop };
}

// ---------------------------------------------------------------------------------------------
// gateway
// ---------------------------------------------------------------------------------------------
/** { ok: true } when the gateway binary exists, else { ok: false, reason } for a clean skip. */
export function gatewayAvailability() {
  try {
    fs.accessSync(AIGW_BIN, fs.constants.X_OK);
  } catch {
    return {
      ok: false,
      reason: `aigw binary not found at ${AIGW_BIN} (build it, or set AIGW_BIN / AIGW_PLUGIN_DIR) — gateway tests skipped`,
    };
  }
  return { ok: true, reason: '' };
}

/** The skip option for describe()/test(): false when the gateway is available, else the reason. */
export function skipUnlessGateway() {
  const a = gatewayAvailability();
  return a.ok ? false : a.reason;
}

/** Default test configuration (see conf/aigw.json); `timeouts` apply to the chat route. */
export function defaultConfig({ port, adminPort, mockPort, upstreamKey = MOCK_KEY, maxBodyBytes = 1048576, timeouts } = {}) {
  return {
    listen: [{ address: '127.0.0.1', port }],
    workers: 2,
    admin: { address: '127.0.0.1', port: adminPort, token: ADMIN_TOKEN },
    plugin_paths: [AIGW_PLUGIN_DIR],
    access_log: { path: '-' },
    limits: { max_body_bytes: maxBodyBytes },
    providers: {
      up: { plugin: 'openai', config: { base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: upstreamKey } },
      local: { plugin: 'mock', config: {} },
    },
    routes: [
      {
        name: 'chat',
        match: { methods: ['POST'], path: '/v1/chat/completions' },
        api: 'chat',
        targets: [{ provider: 'up' }],
        timeouts: timeouts || { connect_ms: 2000, first_byte_ms: 1500, idle_ms: 1500, total_ms: 0 },
      },
      { name: 'embeddings', match: { methods: ['POST'], path: '/v1/embeddings' }, api: 'embeddings', targets: [{ provider: 'up' }] },
      { name: 'models', match: { methods: ['GET'], path: '/v1/models' }, api: 'models', targets: [{ provider: 'up' }] },
    ],
  };
}

function httpGet(url, headers = {}, timeoutMs = 1000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/**
 * Start the gateway.
 *   mockPort     port of the OpenAI mock the "up" provider points at (required unless `config` given)
 *   config       a full config object, or a function (cfg) => cfg to edit the default one
 *   env          extra environment
 * Returns a handle: { port, adminPort, url, baseURL, adminURL, child, stdout, stderr, logs(),
 *   accessLogs(), waitForLog(pred, ms), admin(path, opts), stop() }.
 * Retries with new ports when the gateway fails to start (port races between parallel test files).
 */
export async function startGateway(opts = {}) {
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startGatewayOnce(opts);
    } catch (e) {
      lastErr = e;
      if (!/EADDRINUSE|address already in use|bind/i.test(String(e && e.message))) break;
    }
  }
  throw lastErr;
}

async function startGatewayOnce({ mockPort, config, env = {}, configOverrides, startTimeoutMs = 10000 } = {}) {
  const port = await freePort();
  let adminPort = await freePort();
  while (adminPort === port) adminPort = await freePort();
  let cfg = defaultConfig({ port, adminPort, mockPort, ...(configOverrides || {}) });
  if (typeof config === 'function') cfg = config(cfg) || cfg;
  else if (config && typeof config === 'object') cfg = config;
  const actualPort = cfg.listen?.[0]?.port ?? port;
  const actualAdmin = cfg.admin?.port ?? adminPort;

  // AIGW_TEST_HTTP_CLIENT=libcurl runs the suite through libcurl instead of the built-in
  // HTTP/1.1 upstream client (scripts/test.sh runs both).
  if (process.env.AIGW_TEST_HTTP_CLIENT && cfg.providers) {
    for (const p of Object.values(cfg.providers)) p.http_client = process.env.AIGW_TEST_HTTP_CLIENT;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigw-it-'));
  const cfgPath = path.join(dir, 'aigw.json');
  fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));

  const child = track(spawn(AIGW_BIN, ['-c', cfgPath], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const state = { stdout: '', stderr: '', lines: [], waiters: new Set(), errWaiters: new Set(), exited: null };
  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    state.stdout += d;
    pending += d;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      let obj = null;
      try { obj = JSON.parse(line); } catch { /* not JSON */ }
      if (obj && typeof obj === 'object') state.lines.push(obj);
    }
    for (const w of state.waiters) w();
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { state.stderr += d; for (const w of state.errWaiters) w(); });
  child.once('exit', (code, sig) => { state.exited = { code, sig }; for (const w of state.waiters) w(); for (const w of state.errWaiters) w(); });
  // 'close' comes after the last stdout/stderr bytes: checks of stderr wait for it
  const closed = new Promise((r) => child.once('close', r));

  const url = `http://127.0.0.1:${actualPort}`;
  const adminURL = `http://127.0.0.1:${actualAdmin}`;
  const handle = {
    port: actualPort,
    adminPort: actualAdmin,
    url,
    baseURL: `${url}/v1`,
    adminURL,
    adminToken: cfg.admin?.token,
    config: cfg,
    configPath: cfgPath,
    child,
    get stdout() { return state.stdout; },
    get stderr() { return state.stderr; },
    get exited() { return state.exited; },
    /** every JSON object printed on stdout */
    logs: () => state.lines.slice(),
    /** access-log records (JSON lines that carry a request_id) */
    accessLogs: () => state.lines.filter((l) => l && l.request_id !== undefined),
    /** wait for a JSON stdout line matching pred */
    waitForLog(pred, timeoutMs = 3000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = state.lines.find((l) => { try { return pred(l); } catch { return false; } });
          if (hit) { done(); resolve(hit); }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no matching log line within ${timeoutMs}ms; stdout so far:\n${state.stdout.slice(-4000)}`));
        }, timeoutMs);
        const done = () => { clearTimeout(timer); state.waiters.delete(check); };
        state.waiters.add(check);
        check();
      });
    },
    /** stderr lines (the gateway's own log) */
    stderrLines: () => state.stderr.split('\n').filter(Boolean),
    /**
     * Wait until stderr has a line matching pred (a RegExp or (line) => bool); resolves the line.
     * With count > 1, waits for that many matching lines and resolves all of them.
     */
    waitForStderr(pred, timeoutMs = 3000, count = 1) {
      const test = typeof pred === 'function' ? pred : (l) => pred.test(l);
      return new Promise((resolve, reject) => {
        const check = () => {
          const hits = state.stderr.split('\n').filter((l) => { try { return test(l); } catch { return false; } });
          if (hits.length >= count) { done(); resolve(count === 1 ? hits[0] : hits); }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no matching stderr line (${count} wanted) within ${timeoutMs}ms; stderr so far:\n${state.stderr.slice(-4000)}`));
        }, timeoutMs);
        const done = () => { clearTimeout(timer); state.errWaiters.delete(check); };
        state.errWaiters.add(check);
        check();
      });
    },
    /** fetch on the admin listener; token: true = configured token, string = that token, false = none */
    admin(p, { method = 'GET', token = true, body } = {}) {
      const headers = {};
      if (token) headers.authorization = `Bearer ${token === true ? cfg.admin?.token : token}`;
      return fetch(adminURL + p, { method, headers, body });
    },
    /**
     * SIGTERM, wait for the exit (SIGKILL after the grace period), then check the exit: with
     * AIGW_SANITIZE=1 it must be code 0 with no sanitizer report on stderr; a crash signal fails
     * in every mode. Throws (and fails the file's after() hook) when it is not clean.
     */
    async stop() {
      if (handle.stopped) return handle.stopped;
      handle.stopped = (async () => {
        const diedBefore = state.exited !== null;
        await stopProcess(child, SANITIZE ? 20000 : 5000);
        await closed;
        liveGateways.delete(handle);
        fs.rmSync(dir, { recursive: true, force: true });
        const problems = gatewayExitProblems(state.exited, state.stderr);
        if (diedBefore && !problems.length && SANITIZE) problems.push('exited before it was stopped');
        const err = recordGatewayProblems(`pid ${child.pid}`, problems, state.stderr);
        if (err) throw err;
      })();
      return handle.stopped;
    },
  };
  liveGateways.add(handle);

  // wait for admin /health
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (state.exited) {
      fs.rmSync(dir, { recursive: true, force: true });
      await closed;
      recordGatewayProblems('(exited during startup)', gatewayExitProblems(state.exited, state.stderr, { expectCleanExit: false }), state.stderr);
      throw new Error(`aigw exited (code ${state.exited.code}, signal ${state.exited.sig}) during startup.\nstderr:\n${state.stderr}\nstdout:\n${state.stdout}`);
    }
    try {
      const r = await httpGet(`${adminURL}/health`);
      if (r.status === 200) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) {
      liveGateways.delete(handle);
      await stopProcess(child);
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`aigw admin /health did not answer within ${startTimeoutMs}ms.\nstderr:\n${state.stderr}\nstdout:\n${state.stdout}`);
    }
    await sleep(50);
  }
  // the data listener should be up as well; give it a moment if not
  for (let i = 0; i < 40; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(actualPort, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    await sleep(50);
  }
  return handle;
}

// ---------------------------------------------------------------------------------------------
// raw HTTP helpers
// ---------------------------------------------------------------------------------------------
/** Decode a chunked transfer-encoded body (tolerates a missing final chunk). */
function dechunk(buf) {
  const out = [];
  let off = 0;
  while (off < buf.length) {
    const nl = buf.indexOf('\r\n', off);
    if (nl < 0) break;
    const size = parseInt(buf.subarray(off, nl).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(buf.subarray(nl + 2, nl + 2 + size));
    off = nl + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/**
 * A raw HTTP/1.1 request over node:net ("connection: close"). It tolerates the server answering
 * (and closing) before the request body is fully sent (413 cases): the body goes out in paced
 * pieces and sending stops as soon as response bytes arrive. body: string|Buffer; chunked: send
 * with transfer-encoding: chunked instead of content-length. headerPauseMs: wait that long after
 * the request head before sending the body (lets a server reject on Content-Length alone).
 * slowAfterBytes: past that many body bytes, pause 20 ms between pieces (lets a 413 arrive before
 * the client writes into a closed socket and loses the response to a reset).
 * Resolves { status, headers (lower-case), body, json } or rejects when no response came at all.
 */
export function rawRequest(url, { method = 'POST', headers = {}, body, chunked = false, chunkSize = 16384, timeoutMs = 10000, headerPauseMs = 0, slowAfterBytes = Infinity } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const buf = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body);
    const h = { host: `${u.hostname}:${u.port}`, connection: 'close', ...headers };
    if (buf && !chunked) h['content-length'] = String(buf.length);
    if (buf && chunked) h['transfer-encoding'] = 'chunked';
    if (!buf && ['POST', 'PUT', 'PATCH'].includes(method)) h['content-length'] = '0';
    let head = `${method} ${u.pathname}${u.search} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(h)) head += `${k}: ${v}\r\n`;
    head += '\r\n';

    const sock = net.connect(Number(u.port), u.hostname);
    const got = [];
    let gotAny = false;
    let settled = false;
    let sockErr = null;
    const timer = setTimeout(() => finish(new Error(`rawRequest timeout after ${timeoutMs} ms`)), timeoutMs);

    function parse() {
      const all = Buffer.concat(got);
      const he = all.indexOf('\r\n\r\n');
      if (he < 0) return null;
      const lines = all.subarray(0, he).toString('latin1').split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
      if (!m) return null;
      const hdrs = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) hdrs[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      let rest = all.subarray(he + 4);
      if (/chunked/i.test(hdrs['transfer-encoding'] || '')) rest = dechunk(rest);
      else if (hdrs['content-length'] !== undefined) rest = rest.subarray(0, Number(hdrs['content-length']));
      const text = rest.toString('utf8');
      let json = null;
      try { json = JSON.parse(text); } catch { /* not JSON */ }
      return { status: Number(m[1]), headers: hdrs, body: text, json };
    }
    function complete() {
      // complete once headers are in and the body is complete by content-length (or on close)
      const r = parse();
      if (!r) return false;
      const all = Buffer.concat(got);
      const he = all.indexOf('\r\n\r\n');
      const cl = r.headers['content-length'];
      return cl !== undefined && all.length - he - 4 >= Number(cl);
    }
    function finish(err) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      const r = parse();
      if (r) resolve(r);
      else reject(err || sockErr || new Error(`no HTTP response (${Buffer.concat(got).length} bytes received)`));
    }
    sock.on('data', (d) => {
      got.push(d);
      gotAny = true;
      if (complete()) finish();
    });
    sock.on('end', () => finish());
    sock.on('close', () => finish());
    sock.on('error', (e) => { sockErr = e; setTimeout(() => finish(e), 50); });
    sock.on('connect', async () => {
      sock.setNoDelay(true);
      sock.write(head);
      if (!buf) return;
      if (headerPauseMs) await sleep(headerPauseMs);
      for (let off = 0; off < buf.length; off += chunkSize) {
        if (gotAny || sock.destroyed || settled) return; // the server answered: stop sending
        const piece = buf.subarray(off, off + chunkSize);
        const ok = chunked ? sock.write(`${piece.length.toString(16)}\r\n`) && sock.write(piece) && sock.write('\r\n') : sock.write(piece);
        if (!ok) await new Promise((r) => { sock.once('drain', r); sock.once('close', r); });
        else await new Promise((r) => setImmediate(r));
        if (off + chunkSize > slowAfterBytes) await sleep(20);
      }
      if (!gotAny && !sock.destroyed && chunked) sock.write('0\r\n\r\n');
    });
  });
}

/** Parse an SSE text into events [{event, data, raw}]. */
export function parseSSE(text) {
  const out = [];
  for (const block of text.replace(/\r\n/g, '\n').split('\n\n')) {
    if (!block.trim()) continue;
    let event = null;
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    out.push({ event, data: data.join('\n'), raw: block });
  }
  return out;
}

/**
 * POST a streaming request with fetch and read the whole SSE body (until the server ends it, or
 * timeoutMs). Returns { status, headers, text, events, ended, error, elapsedMs }.
 */
export async function readStream(url, body, { headers = {}, timeoutMs = 15000 } = {}) {
  const t0 = Date.now();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  let res;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-client', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      signal: ac.signal,
    });
  } catch (e) {
    clearTimeout(timer);
    return { status: 0, headers: null, text: '', events: [], ended: false, error: e, elapsedMs: Date.now() - t0 };
  }
  let text = '';
  let ended = false;
  let error = null;
  const dec = new TextDecoder();
  try {
    for await (const chunk of res.body) text += dec.decode(chunk, { stream: true });
    ended = true;
  } catch (e) {
    error = e; // socket reset / abort by timeout
  }
  clearTimeout(timer);
  return { status: res.status, headers: res.headers, text, events: parseSSE(text), ended, error, timedOut: ac.signal.aborted, elapsedMs: Date.now() - t0 };
}

/** Poll fn() until it returns truthy or timeoutMs passes; returns the last value. */
export async function until(fn, timeoutMs = 2000, stepMs = 25) {
  const deadline = Date.now() + timeoutMs;
  let v;
  for (;;) {
    v = await fn();
    if (v || Date.now() > deadline) return v;
    await sleep(stepMs);
  }
}

/** Assert-friendly check of OpenAI's error shape; returns the inner error object. */
export function openAIError(json) {
  if (!json || typeof json !== 'object' || !json.error || typeof json.error !== 'object') {
    throw new Error(`not an OpenAI-style error body: ${JSON.stringify(json)}`);
  }
  if (typeof json.error.message !== 'string' || !json.error.message) throw new Error(`error.message missing: ${JSON.stringify(json)}`);
  if (typeof json.error.type !== 'string' || !json.error.type) throw new Error(`error.type missing: ${JSON.stringify(json)}`);
  return json.error;
}

// ---------------------------------------------------------------------------------------------
// suite fixture
// ---------------------------------------------------------------------------------------------

/** The key test clients send to the gateway; it must never reach the upstream. */
export const CLIENT_KEY = 'sk-client-secret-must-not-leak';

/**
 * Call inside describe(): starts a mock and a gateway pointed at it in before(), stops both by PID
 * in after(). Returns a context filled in before(): { mock, gw, client }.
 * gatewayOptions go to startGateway (config editor, env, configOverrides).
 * Set AIGW_TEST_VERBOSE=1 to print the gateway's stderr when the suite ends.
 */
export function useGateway(gatewayOptions = {}) {
  const ctx = { mock: null, gw: null, client: null };
  nodeBefore(async () => {
    ctx.mock = await startMock();
    ctx.gw = await startGateway({ mockPort: ctx.mock.port, ...gatewayOptions });
    ctx.client = new OpenAI({ baseURL: ctx.gw.baseURL, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000 });
  });
  nodeAfter(async () => {
    try {
      await ctx.gw?.stop(); // throws when the gateway did not exit cleanly (see stop())
    } finally {
      if (ctx.gw && process.env.AIGW_TEST_VERBOSE) {
        process.stderr.write(`---- aigw stderr ----\n${ctx.gw.stderr}\n---- aigw exit: ${JSON.stringify(ctx.gw.exited)}\n`);
      }
      await ctx.mock?.stop();
    }
  });
  return ctx;
}

/** Wait for the access-log record of a request id. */
export function accessLogFor(gw, requestId, timeoutMs = 3000) {
  return gw.waitForLog((l) => l.request_id === requestId, timeoutMs);
}

// ---------------------------------------------------------------------------------------------
// small helpers (routing suites)
// ---------------------------------------------------------------------------------------------

/**
 * POST a JSON body with fetch and read the whole answer.
 * Resolves { status, headers (a Headers object), text, json (null when not JSON), ms }.
 */
export async function postJSON(url, body, { headers = {}, timeoutMs = 20000 } = {}) {
  const t0 = Date.now();
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json, ms: Date.now() - t0 };
}

/** Sum of the samples of Prometheus metric `name` whose labels include all of `labels`; null when none. */
export function metricValue(text, name, labels = {}) {
  let sum = null;
  for (const line of String(text).split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) sum = (sum ?? 0) + Number(line.trim().split(/\s+/).pop());
  }
  return sum;
}

/**
 * Start one openai mock per name, in parallel. Resolves { [name]: mock handle (see startMock) }.
 */
export async function startMocks(names) {
  const list = await Promise.all(names.map(() => startMock()));
  return Object.fromEntries(names.map((n, i) => [n, list[i]]));
}

/**
 * Every request the given mocks received, merged in arrival order (by the mocks' `t`, one monotonic clock):
 * [{ mock (its name), model (body.model), t, path, headers, body }]. Introspection calls are not
 * recorded by the mocks, so this is exactly what reached the upstreams.
 */
export async function mergedRequests(mocks) {
  const out = [];
  for (const [name, m] of Object.entries(mocks)) {
    for (const r of await m.requests()) {
      out.push({ mock: name, model: r.body && typeof r.body === 'object' ? r.body.model : undefined, t: r.t ?? r.time, path: r.path, headers: r.headers, body: r.body });
    }
  }
  return out.sort((a, b) => a.t - b.t);
}

/**
 * Routing fixture, to call inside describe(): starts one openai mock per name in `mocks` and a
 * gateway whose providers are `up_<name>` (openai plugin, base URL on that mock) plus `up_<name>`
 * for each name in `closed` (base URL on a port where nothing listens: connection refused).
 *   routes(ctx) returns the config's routes (ctx.mocks is filled in by then);
 *   edit(cfg, ctx) may change the whole config before it is written (model_catalog, workers...).
 * Returns ctx, filled in before(): { mocks, gw, client, seq(), clear() }: seq() = mergedRequests
 * of all mocks; clear() empties the mocks' request logs and fault counters. Everything started is
 * stopped by PID in after().
 */
export function useRouting({ mocks = ['A', 'B'], closed = [], routes, edit, env } = {}) {
  const ctx = { mocks: null, gw: null, client: null };
  ctx.seq = () => mergedRequests(ctx.mocks);
  ctx.clear = async () => {
    await Promise.all(Object.values(ctx.mocks).map(async (m) => { await m.clearRequests(); await m.resetFaults(); }));
  };
  nodeBefore(async () => {
    ctx.mocks = await startMocks(mocks);
    const closedPorts = {};
    for (const n of closed) closedPorts[n] = await closedPort();
    ctx.gw = await startGateway({
      env,
      config: (cfg) => {
        cfg.providers = {};
        for (const [n, m] of Object.entries(ctx.mocks)) cfg.providers[`up_${n}`] = { plugin: 'openai', config: { base_url: `${m.url}/v1`, api_key: MOCK_KEY } };
        for (const [n, p] of Object.entries(closedPorts)) cfg.providers[`up_${n}`] = { plugin: 'openai', config: { base_url: `http://127.0.0.1:${p}/v1`, api_key: MOCK_KEY } };
        cfg.routes = routes(ctx);
        return (edit && edit(cfg, ctx)) || cfg;
      },
    });
    ctx.client = new OpenAI({ baseURL: ctx.gw.baseURL, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 20000 });
  });
  nodeAfter(async () => {
    try {
      await ctx.gw?.stop();
    } finally {
      if (ctx.gw && process.env.AIGW_TEST_VERBOSE) {
        process.stderr.write(`---- aigw stderr ----\n${ctx.gw.stderr}\n---- aigw exit: ${JSON.stringify(ctx.gw.exited)}\n`);
      }
      await Promise.all(Object.values(ctx.mocks || {}).map((m) => m.stop()));
    }
  });
  return ctx;
}
