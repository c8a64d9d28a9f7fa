// Helpers for the operational suites (TLS, --check, drain, limits, admin, security, example
// plugins). They complement lib/harness.mjs without changing it: here the gateway binary can be run
// with any arguments (`--check`, `-v`), a start that must fail can be observed, and raw sockets can
// pipeline, stall and speak TLS. Every process started here is stopped by PID.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { AIGW_BIN, AIGW_PLUGIN_DIR, REPO_ROOT, freePort, sleep, stopProcess } from './harness.mjs';

const resolveFromRoot = (p) => (path.isAbsolute(p) ? p : path.resolve(REPO_ROOT, p));

/** Directory of the test plugins (tests/plugins/*.c built): env or <build>/test-plugins. */
export const TEST_PLUGIN_DIR = resolveFromRoot(process.env.AIGW_TEST_PLUGIN_DIR || path.join(path.dirname(AIGW_PLUGIN_DIR), 'test-plugins'));
/** Directory of the example plugins built out of tree against the installed SDK (may be unset). */
export const EXAMPLES_DIR = process.env.AIGW_EXAMPLES_DIR ? resolveFromRoot(process.env.AIGW_EXAMPLES_DIR) : null;
/** The ASan run (scripts/test.sh sets AIGW_SANITIZE=1): everything is slower there. */
export const SANITIZED = !!process.env.AIGW_SANITIZE || /asan|sanit/i.test(AIGW_BIN);
/** Time slack for deadline assertions. */
export const SLACK_MS = SANITIZED ? 4000 : 2000; // wide: CI machines are loaded; timing goals live in bench/

/** skip option: false when the test plugins exist, else the reason. */
export function skipUnlessTestPlugins() {
  for (const n of ['test_bad_abi.so', 'test_cfg.so']) {
    if (!fs.existsSync(path.join(TEST_PLUGIN_DIR, n))) return `test plugin ${n} not found in ${TEST_PLUGIN_DIR} (set AIGW_TEST_PLUGIN_DIR) — skipped`;
  }
  return false;
}

/** skip option: false when hello.so and async_callout.so are in AIGW_EXAMPLES_DIR, else the reason. */
export function skipUnlessExamples() {
  if (!EXAMPLES_DIR) return 'AIGW_EXAMPLES_DIR is not set (scripts/test.sh sets it to the example plugins built against the installed SDK) — example plugin tests skipped';
  for (const n of ['hello.so', 'async_callout.so']) {
    if (!fs.existsSync(path.join(EXAMPLES_DIR, n))) return `${n} not found in AIGW_EXAMPLES_DIR=${EXAMPLES_DIR} — example plugin tests skipped`;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// processes
// ---------------------------------------------------------------------------------------------
const mine = new Set();
process.on('exit', () => {
  for (const c of mine) {
    try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

export function tmpDir(prefix = 'aigw-ops-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Run `aigw args...` to completion (for --check and failing starts). Resolves { code, signal, stdout, stderr }. */
export function runAigw(args, { timeoutMs = 20000, env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(AIGW_BIN, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    mine.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const t = setTimeout(() => {
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
      reject(new Error(`aigw ${args.join(' ')} did not exit within ${timeoutMs} ms\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.once('error', (e) => { clearTimeout(t); reject(e); });
    child.once('close', (code, signal) => {
      clearTimeout(t);
      mine.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Write a config object to a fresh temp file; returns its path. */
export function writeConfig(cfg, dir = tmpDir()) {
  const p = path.join(dir, 'aigw.json');
  fs.writeFileSync(p, typeof cfg === 'string' ? cfg : JSON.stringify(cfg, null, 2));
  return p;
}

/**
 * Start the gateway with a full config (any args, e.g. ['-v']). Waits for the admin /health
 * (or, without an admin port, for the first listener to accept). Returns a handle like the
 * harness's: { port, url, baseURL, adminURL, child, stdout, stderr, exited, lines(), waitExit(ms),
 * signal(sig), stop() }.
 */
export async function launchGateway(cfg, { args = [], env = {}, startTimeoutMs = 15000 } = {}) {
  const dir = tmpDir();
  const cfgPath = writeConfig(cfg, dir);
  const child = spawn(AIGW_BIN, ['-c', cfgPath, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  mine.add(child);
  const st = { stdout: '', stderr: '', exited: null };
  const exitP = new Promise((r) => child.once('exit', (code, sig) => { st.exited = { code, sig, at: Date.now() }; mine.delete(child); r(st.exited); }));
  child.stdout.setEncoding('utf8').on('data', (d) => { st.stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d) => { st.stderr += d; });
  const port = cfg.listen[0].port;
  const adminPort = cfg.admin?.port || 0;
  const h = {
    port,
    adminPort,
    url: `http://127.0.0.1:${port}`,
    baseURL: `http://127.0.0.1:${port}/v1`,
    adminURL: `http://127.0.0.1:${adminPort}`,
    config: cfg,
    configPath: cfgPath,
    child,
    get stdout() { return st.stdout; },
    get stderr() { return st.stderr; },
    get exited() { return st.exited; },
    lines() {
      const out = [];
      for (const l of st.stdout.split('\n')) { try { const o = JSON.parse(l); if (o && typeof o === 'object') out.push(o); } catch { /* not JSON */ } }
      return out;
    },
    /** resolves the exit record, or null after ms */
    waitExit(ms) { return Promise.race([exitP, sleep(ms).then(() => null)]); },
    signal(sig) { process.kill(child.pid, sig); },
    async stop() {
      await stopProcess(child, 5000);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (st.exited) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`aigw exited (${JSON.stringify(st.exited)}) during startup\nstderr:\n${st.stderr}`);
    }
    const ok = adminPort
      ? await new Promise((resolve) => {
        const rq = http.get(`${h.adminURL}/health`, { timeout: 1000 }, (res) => { res.resume(); resolve(res.statusCode === 200); });
        rq.on('timeout', () => rq.destroy());
        rq.on('error', () => resolve(false));
      })
      : await canConnect(port);
    if (ok && (await canConnect(port))) return h;
    if (Date.now() > deadline) {
      await h.stop();
      throw new Error(`aigw did not become ready within ${startTimeoutMs} ms\nstderr:\n${st.stderr}`);
    }
    await sleep(50);
  }
}

export function canConnect(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Two distinct free ports. */
export async function twoPorts() {
  const a = await freePort();
  let b = await freePort();
  while (b === a) b = await freePort();
  return [a, b];
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------
/** A self-signed certificate for 127.0.0.1/localhost in dir: { cert, key, ca (PEM text) }. */
export function selfSignedCert(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  return { cert, key, ca: fs.readFileSync(cert, 'utf8') };
}

/**
 * A fetch() over node:https that trusts `ca` (for the openai SDK's `fetch` option): streams the
 * response body, honours AbortSignal.
 */
export function httpsFetch(ca) {
  const agent = new https.Agent({ ca, keepAlive: true });
  const f = (input, init = {}) => new Promise((resolve, reject) => {
    const u = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const headers = {};
    new Headers(init.headers || {}).forEach((v, k) => { headers[k] = v; });
    const req = https.request(u, { method: init.method || 'GET', headers, agent }, (res) => {
      const hs = new Headers();
      for (const [k, v] of Object.entries(res.headers)) {
        if (Array.isArray(v)) v.forEach((x) => hs.append(k, x));
        else if (v !== undefined) hs.set(k, String(v));
      }
      const noBody = [204, 304].includes(res.statusCode) || (init.method || 'GET') === 'HEAD';
      resolve(new Response(noBody ? null : Readable.toWeb(res), { status: res.statusCode, headers: hs }));
    });
    req.on('error', reject);
    const sig = init.signal;
    if (sig) {
      if (sig.aborted) { req.destroy(); return reject(new DOMException('aborted', 'AbortError')); }
      sig.addEventListener('abort', () => req.destroy(new DOMException('aborted', 'AbortError')), { once: true });
    }
    const b = init.body;
    if (b === undefined || b === null) req.end();
    else if (typeof b === 'string' || b instanceof Uint8Array) req.end(b);
    else if (b instanceof ArrayBuffer) req.end(Buffer.from(b));
    else reject(new Error(`httpsFetch: unsupported body type ${Object.prototype.toString.call(b)}`));
  });
  f.agent = agent;
  return f;
}

// ---------------------------------------------------------------------------------------------
// raw sockets
// ---------------------------------------------------------------------------------------------
/**
 * A raw TCP connection that collects everything received. { sock, data() (Buffer), text(),
 * closed (promise: resolves when the server ends/closes), isClosed(), waitFor(pred, ms), write() }.
 */
export function rawConn(port, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, host);
    const chunks = [];
    const waiters = new Set();
    let closed = false;
    let closeInfo = null;
    const closedP = new Promise((r) => {
      const done = (how) => { if (!closed) { closed = true; closeInfo = { how, at: Date.now() }; r(closeInfo); } for (const w of waiters) w(); };
      sock.on('end', () => done('end'));
      sock.on('close', () => done('close'));
      sock.on('error', (e) => done(`error:${e.code || e.message}`));
    });
    sock.on('data', (d) => { chunks.push(d); for (const w of waiters) w(); });
    sock.once('connect', () => {
      sock.setNoDelay(true);
      resolve({
        sock,
        data: () => Buffer.concat(chunks),
        text: () => Buffer.concat(chunks).toString('latin1'),
        closed: closedP,
        isClosed: () => closed,
        closeInfo: () => closeInfo,
        write: (s) => new Promise((r) => sock.write(s, () => r())),
        /** wait until pred(text) is true (or the socket closes); resolves pred's last value */
        waitFor(pred, ms = 5000) {
          return new Promise((res2) => {
            const check = () => {
              const v = pred(Buffer.concat(chunks).toString('latin1'));
              if (v || closed) { clearTimeout(t); waiters.delete(check); res2(v); }
            };
            const t = setTimeout(() => { waiters.delete(check); res2(pred(Buffer.concat(chunks).toString('latin1'))); }, ms);
            waiters.add(check);
            check();
          });
        },
        destroy: () => sock.destroy(),
      });
    });
    sock.once('error', reject);
  });
}

/**
 * Parse as many complete HTTP/1.x responses as `buf` holds, in order:
 * [{ status, version, headers, body, json }]. Handles content-length and chunked bodies.
 */
export function parseResponses(buf) {
  const out = [];
  let off = 0;
  for (;;) {
    const he = buf.indexOf('\r\n\r\n', off);
    if (he < 0) break;
    const lines = buf.subarray(off, he).toString('latin1').split('\r\n');
    const m = /^HTTP\/(1\.[01]) (\d{3})/.exec(lines[0]);
    if (!m) break;
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let p = he + 4;
    let body;
    if (/chunked/i.test(headers['transfer-encoding'] || '')) {
      const parts = [];
      let complete = false;
      for (;;) {
        const nl = buf.indexOf('\r\n', p);
        if (nl < 0) break;
        const size = parseInt(buf.subarray(p, nl).toString('latin1'), 16);
        if (!Number.isFinite(size)) break;
        if (size === 0) {
          const end = buf.indexOf('\r\n', nl + 2);
          if (end < 0) break;
          p = end + 2;
          complete = true;
          break;
        }
        if (nl + 2 + size + 2 > buf.length) break;
        parts.push(buf.subarray(nl + 2, nl + 2 + size));
        p = nl + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (p + n > buf.length) break;
      body = buf.subarray(p, p + n);
      p += n;
    } else {
      body = buf.subarray(p);
      p = buf.length;
    }
    const text = body.toString('utf8');
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    out.push({ status: Number(m[2]), version: m[1], headers, body: text, json });
    off = p;
    if (off >= buf.length) break;
  }
  return out;
}

/** A chat request as raw HTTP/1.1 text. */
export function chatRequestText(port, content, { model = 'gpt-4o-mini', extraHeaders = {}, close = false, stream = false } = {}) {
  const body = JSON.stringify({ model, stream, messages: [{ role: 'user', content }] });
  let head = `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
  for (const [k, v] of Object.entries(extraHeaders)) head += `${k}: ${v}\r\n`;
  if (close) head += 'connection: close\r\n';
  return `${head}\r\n${body}`;
}

// ---------------------------------------------------------------------------------------------
// a small loopback HTTP server (allow-list service for async_callout)
// ---------------------------------------------------------------------------------------------
/**
 * Start node:http on a loopback port with handler(req, bodyText, res). Returns
 * { port, url, calls: [{method, url, headers, body}], close() }.
 */
export async function startHttpServer(handler) {
  const calls = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      calls.push({ method: req.method, url: req.url, headers: req.headers, body });
      Promise.resolve(handler(req, body, res)).catch(() => { try { res.destroy(); } catch { /* */ } });
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    calls,
    close: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** The sample lines of metric `name` (exact name, with or without labels). */
export function metricLines(text, name) {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

/** Sanitizer (ASan / LSan / UBSan) report lines in a process's stderr. */
export function sanitizerReports(stderr) {
  return String(stderr || '').split('\n').filter((l) => /ERROR: \w*Sanitizer|SUMMARY: \w*Sanitizer|runtime error:/.test(l));
}

/** Stop a launched gateway and fail (throw) if its stderr holds a sanitizer report. */
export async function stopAndCheck(gw) {
  if (!gw) return;
  await gw.stop();
  const rep = sanitizerReports(gw.stderr);
  if (rep.length) throw new Error(`sanitizer report in aigw stderr:\n${gw.stderr.slice(-6000)}`);
}
