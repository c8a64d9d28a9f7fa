// Shared scaffolding for the in-tree provider mocks (anthropic_mock, gemini_mock, bedrock_mock,
// azure_mock): an http server on loopback that records every request, serves /__requests and
// /__stats, counts connections/streams like openai_mock, writes streams with the same fault
// knobs, and a start function / CLI entry. Plain node: no dependencies.
import fs from 'node:fs';
import http from 'node:http';
import crypto from 'node:crypto';
import { parseFaults as parseOpenAIFaults } from '../openai_mock.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Faults from the model name, the x-mock-fault header and (optionally) a text: the same tokens as
 * openai_mock (`fault-429`, `fault-trickle-50`, `fault-error-after-2`, ...) plus any 3-digit
 * status (`fault-529`).
 */
export function parseFaults(...sources) {
  const parts = sources.filter((s) => typeof s === 'string' && s.includes('fault-'));
  // openai_mock's parser takes two sources; feed it the tokens joined.
  return parseOpenAIFaults(parts.join('+'), undefined);
}

/** Deterministic "token" count: ceil(chars/4), at least 1 (same rule as openai_mock). */
export const tokensOf = (chars) => Math.max(1, Math.ceil(chars / 4));

/** Split a text into stream deltas: words with their spaces (same rule as openai_mock). */
export function splitWords(text) {
  if (text.length > 4096) {
    const out = [];
    for (let i = 0; i < text.length; i += 1024) out.push(text.slice(i, i + 1024));
    return out;
  }
  const parts = text.match(/\s*\S+\s*/g);
  return parts && parts.length ? parts : [text];
}

/**
 * Split a JSON text at deliberately awkward places (inside strings, between a key and its colon,
 * in the middle of numbers and escapes): pieces of 1, 2, 3, 5, 8, ... characters, cycling.
 */
export function splitOdd(s) {
  const sizes = [1, 2, 3, 5, 8, 4, 6];
  const out = [];
  let i = 0;
  let k = 0;
  while (i < s.length) {
    const n = sizes[k++ % sizes.length];
    out.push(s.slice(i, i + n));
    i += n;
  }
  return out.length ? out : [''];
}

/** Deterministic embedding (float32-exact values in [-1, 1]). */
export function embeddingOf(text, dims = 8) {
  const out = new Array(dims);
  let block = null;
  for (let i = 0; i < dims; i++) {
    if (i % 16 === 0) block = crypto.createHash('sha256').update(`${text}\u0000${i / 16}`).digest();
    out[i] = Math.fround((block.readUInt16LE((i % 16) * 2) / 65535) * 2 - 1);
  }
  return out;
}

export const rid = (prefix, n = 12) => `${prefix}${crypto.randomBytes(n).toString('hex')}`;

/**
 * The scaffold. `handle(req, res, ctx)` gets ctx = { url, path, rawBody, body, parseError, entry,
 * later(ms), send(status, obj, headers), stream(...) } and answers. Returns { server, stats,
 * requests, listen(port, host), close() }.
 */
export function createServer({ name, maxLog = 10000, extraStats = {}, handle }) {
  const requests = [];
  const baseStats = () => ({
    connections_open: 0,
    connections_total: 0,
    requests_total: 0,
    requests_in_flight: 0,
    requests_aborted: 0,
    streams_started: 0,
    streams_completed: 0,
    streams_aborted: 0,
    streams_reset: 0,
    streams_stalled: 0,
    by_path: {},
    ...structuredClone(extraStats),
  });
  const stats = baseStats();
  const sockets = new Set();
  const timers = new Set();

  function later(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(() => { timers.delete(t); resolve(); }, ms);
      timers.add(t);
    });
  }

  function send(res, status, obj, headers = {}) {
    if (res.destroyed || res.writableEnded) return;
    const body = Buffer.isBuffer(obj) ? obj : Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj));
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length, ...headers });
    res.end(body);
  }

  /**
   * Write a stream of pre-built events (strings or Buffers) with openai_mock's fault knobs:
   * trickleMs, stallAfter, resetAfter, truncateAfter, errorAfter (errorEvent() is written instead
   * of event n). `malformedEvent` is written before event 1 when faults.malformed.
   */
  async function stream(req, res, ctx, events, { faults = {}, status = 200, headers, errorEvent, malformedEvent } = {}) {
    stats.streams_started++;
    ctx.stream = true;
    res.writeHead(status, headers);
    if (typeof res.flushHeaders === 'function') res.flushHeaders();
    let lastWrite = Promise.resolve();
    const write = (s) => {
      if (!res.destroyed && !res.writableEnded) lastWrite = new Promise((r) => res.write(s, () => r()));
    };
    let sent = 0;
    for (const ev of events) {
      if (res.destroyed || ctx.closed) return;
      if (faults.stallAfter !== undefined && sent >= faults.stallAfter) {
        stats.streams_stalled++;
        ctx.stalled = true;
        return;
      }
      if (faults.resetAfter !== undefined && sent >= faults.resetAfter) {
        stats.streams_reset++;
        ctx.selfDestroyed = true;
        await lastWrite;
        await later(20);
        req.socket.destroy();
        return;
      }
      if (faults.truncateAfter !== undefined && sent >= faults.truncateAfter) {
        ctx.done = true;
        res.end();
        return;
      }
      if (faults.errorAfter !== undefined && sent >= faults.errorAfter && errorEvent) {
        write(errorEvent());
        ctx.done = true;
        res.end();
        return;
      }
      if (faults.trickleMs) await later(faults.trickleMs);
      if (res.destroyed || ctx.closed) return;
      if (faults.malformed && sent === 1 && malformedEvent) write(malformedEvent);
      write(ev);
      sent++;
    }
    ctx.done = true;
    stats.streams_completed++;
    res.end();
  }

  async function onRequest(req, res, rawBody) {
    const url = new URL(req.url, 'http://mock');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (path === '/__requests') {
      if (req.method === 'DELETE') { requests.length = 0; return send(res, 200, { ok: true }); }
      return send(res, 200, requests);
    }
    if (path === '/__stats') {
      if (req.method === 'DELETE') { resetStats(); return send(res, 200, { ok: true }); }
      return send(res, 200, stats);
    }
    if (path === '/__health') return send(res, 200, { ok: true });

    stats.requests_total++;
    stats.by_path[path] = (stats.by_path[path] || 0) + 1;
    let body;
    let parseError = false;
    const ct = String(req.headers['content-type'] || '');
    if (rawBody.length) {
      if (ct.startsWith('application/x-www-form-urlencoded')) {
        body = Object.fromEntries(new URLSearchParams(rawBody.toString('utf8')));
      } else {
        try { body = JSON.parse(rawBody.toString('utf8')); } catch { parseError = true; }
      }
    }
    const entry = {
      time: Date.now(),
      method: req.method,
      path: url.pathname,
      query: url.search,
      headers: req.headers,
      body: parseError ? null : body ?? null,
    };
    if (parseError) entry.raw = rawBody.toString('utf8').slice(0, 65536);
    requests.push(entry);
    if (requests.length > maxLog) requests.splice(0, requests.length - maxLog);
    const ctx = res.__ctx;
    Object.assign(ctx, { url, path, rawBody, body, parseError, entry });
    return handle(req, res, ctx);
  }

  function resetStats() {
    const keep = ['connections_open', 'requests_in_flight', 'streams_stalled'];
    const fresh = baseStats();
    for (const k of Object.keys(stats)) if (!keep.includes(k)) stats[k] = fresh[k];
  }

  const server = http.createServer((req, res) => {
    const ctx = { closed: false, done: false, stream: false, stalled: false, selfDestroyed: false };
    res.__ctx = ctx;
    const introspect = String(req.url).startsWith('/__');
    if (!introspect) stats.requests_in_flight++;
    res.on('close', () => {
      if (!introspect) stats.requests_in_flight--;
      ctx.closed = true;
      if (ctx.stalled) stats.streams_stalled--;
      const finished = res.writableFinished || ctx.done;
      if (!finished && !ctx.selfDestroyed) {
        if (ctx.stream) stats.streams_aborted++;
        else if (!introspect) stats.requests_aborted++;
      }
    });
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      onRequest(req, res, Buffer.concat(chunks)).catch((e) => {
        process.stderr.write(`${name}: handler error: ${e && e.stack}\n`);
        if (!res.headersSent) send(res, 500, { error: { message: `${name} internal error: ${e && e.message}` } });
        else res.destroy();
      });
    });
    req.on('error', () => {});
  });
  server.keepAliveTimeout = 30000;
  server.headersTimeout = 35000;
  server.requestTimeout = 0;
  server.on('connection', (sock) => {
    stats.connections_open++;
    stats.connections_total++;
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.on('close', () => { stats.connections_open--; sockets.delete(sock); });
  });

  return {
    server,
    stats,
    requests,
    later,
    send,
    stream,
    resetStats,
    listen(port = 0, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve(server.address().port));
      });
    },
    close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Start a mock built with createServer in this process on 127.0.0.1 (port 0 = any free port).
 * Returns { url, port, stop(), requests(), clearRequests(), stats(), resetStats(), mock } like
 * harness.startMock (the accessors return promises there; here they resolve to copies too).
 */
export async function startInProcess(mock, { port = 0, host = '127.0.0.1', extra = {} } = {}) {
  const p = await mock.listen(port, host);
  const url = `http://${host}:${p}`;
  return {
    url,
    port: p,
    mock,
    ...extra,
    requests: async () => structuredClone(mock.requests),
    clearRequests: async () => { mock.requests.length = 0; return { ok: true }; },
    stats: async () => structuredClone(mock.stats),
    resetStats: async () => { mock.resetStats(); return { ok: true }; },
    stop: () => mock.close(),
  };
}

/**
 * CLI entry shared by the mocks: `node x_mock.mjs [--port 0] [--host 127.0.0.1] [--opt k=v ...]`
 * prints one JSON line {"port": N, ...info} once listening; stops on SIGTERM/SIGINT.
 * `start(opts)` must resolve the object startInProcess returns.
 */
export function runCli(name, argv, start, { describe = () => ({}) } = {}) {
  const o = { port: 0, host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    if (a === '--port') o.port = Number(v());
    else if (a === '--host') o.host = v();
    else if (a.startsWith('--')) {
      const key = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
      const val = v();
      o[key] = val.startsWith('@') ? fsRead(val.slice(1)) : val;
    } else throw new Error(`unknown argument ${a}`);
  }
  start(o).then(
    (m) => {
      process.stdout.write(`${JSON.stringify({ port: m.port, ...describe(m) })}\n`);
      const stop = () => { m.stop().finally(() => process.exit(0)); setTimeout(() => process.exit(0), 500).unref(); };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    },
    (e) => { process.stderr.write(`${name}: ${e.message}\n`); process.exit(1); },
  );
}

function fsRead(p) {
  return fs.readFileSync(p, 'utf8');
}
