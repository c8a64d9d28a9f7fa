#!/usr/bin/env node
// In-tree mock of Azure OpenAI (deployment URLs, api-version, api-key auth) and of the Azure AI
// Foundry model-inference endpoint, for loopback tests. A thin front over openai_mock: it checks
// what Azure checks, rewrites the request for an internal openai_mock (its own loopback port,
// started with this mock) and relays the answer, adding Azure's content-filter annotations. Every
// reply model, fault and stream behaviour of openai_mock is therefore available here too.
//
//   import { startAzureMock } from '../mock/azure_mock.mjs';
//   const m = await startAzureMock({ apiKey: 'az-mock-key', deployments: { 'my-4o': 'gpt-4o-2024-08-06' } });
//   node tests/mock/azure_mock.mjs [--port 0] [--api-key K]   → {"port":N}
//
// Options: apiKey (default 'az-mock-key'; `api-key: <key>` or `Authorization: Bearer <key>`),
//   bearerTokens (more accepted bearer tokens, e.g. a fake Entra token), deployments (name → model,
//   default DEFAULT_DEPLOYMENTS), maxLog.
//
// Endpoints:
//   POST /openai/deployments/{deployment}/chat/completions?api-version=...  (Azure OpenAI)
//   POST /openai/deployments/{deployment}/embeddings?api-version=...
//   POST /openai/v1/chat/completions, /openai/v1/embeddings   (the v1 API: api-version optional,
//        `model` in the body names the deployment)
//   POST /models/chat/completions?api-version=..., /models/embeddings?api-version=...,
//        GET /models/info?api-version=...                     (Azure AI Foundry model inference:
//        `model` in the body names the deployment; `extra-parameters: error|drop|pass-through`)
//   GET/DELETE /__requests, /__stats (no auth)
//
// Azure behaviour: no api-version on the deployment / Foundry paths → 400 (code
// "BadRequest", message names api-version); an api-version that is not YYYY-MM-DD[-preview] → 400
// "API version not supported"; unknown deployment → 404 {"error":{"code":"DeploymentNotFound",...}}
// (Foundry: 400 unknown_model); wrong / missing key → 401 {"error":{"code":"401","message":
// "Access denied due to invalid subscription key or wrong API endpoint. ..."}}. Answers carry
// the deployment's model name in `model`, `prompt_filter_results` and per-choice
// `content_filter_results`; streams start with Azure's extra chunk (choices [], empty id/model,
// prompt_filter_results), then openai_mock's chunks. A deployment path segment
// "<name>+fault-..." (or the x-mock-fault header, or a fault in the body's model) selects
// openai_mock's faults, e.g. /openai/deployments/gpt-4o-mini+fault-429/chat/completions.
import crypto from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { createMock as createOpenAIMock } from './openai_mock.mjs';
import { createServer, startInProcess, runCli } from './lib/common.mjs';

export const DEFAULT_API_KEY = 'az-mock-key';
export const DEFAULT_DEPLOYMENTS = {
  'gpt-4o-mini': 'gpt-4o-mini-2024-07-18',
  'gpt-4o': 'gpt-4o-2024-08-06',
  'text-embedding-3-small': 'text-embedding-3-small',
};
const INTERNAL_KEY = 'sk-azure-internal';
const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);

const FILTER_OK = {
  hate: { filtered: false, severity: 'safe' },
  self_harm: { filtered: false, severity: 'safe' },
  sexual: { filtered: false, severity: 'safe' },
  violence: { filtered: false, severity: 'safe' },
};
export const PROMPT_FILTER_RESULTS = [{ prompt_index: 0, content_filter_results: FILTER_OK }];

export function createAzureMock(opts = {}) {
  const apiKey = opts.apiKey ?? DEFAULT_API_KEY;
  const bearers = new Set([apiKey, ...(opts.bearerTokens ?? [])]);
  const deployments = opts.deployments ?? DEFAULT_DEPLOYMENTS;
  const inner = createOpenAIMock({ key: INTERNAL_KEY, maxLog: 100 });
  let innerPort = 0;

  const base = createServer({ name: 'azure_mock', maxLog: opts.maxLog, extraStats: { proxied: 0 }, handle });
  const { stats, send } = base;
  const azErr = (res, status, code, message, extra = {}) => send(res, status, { error: { code, message, ...extra } }, { 'apim-request-id': crypto.randomUUID(), 'x-ms-region': 'East US' });

  function relay(req, res, ctx, innerPath, body, model, extraFaults) {
    stats.proxied++;
    const payload = Buffer.from(JSON.stringify(body));
    const headers = { 'content-type': 'application/json', 'content-length': payload.length, authorization: `Bearer ${INTERNAL_KEY}` };
    const xf = [req.headers['x-mock-fault'], extraFaults].filter(Boolean).join('+');
    if (xf) headers['x-mock-fault'] = xf;
    return new Promise((resolve) => {
      const up = http.request({ host: '127.0.0.1', port: innerPort, method: 'POST', path: innerPath, headers }, (ur) => {
        const ct = String(ur.headers['content-type'] || '');
        const h = { 'content-type': ct, 'apim-request-id': crypto.randomUUID(), 'x-ms-region': 'East US', 'x-ms-deployment-name': ctx.entry.deployment ?? '' };
        if (ur.headers['retry-after']) { h['retry-after'] = ur.headers['retry-after']; h['retry-after-ms'] = String(Number(ur.headers['retry-after']) * 1000); }
        if (ct.startsWith('text/event-stream')) {
          ctx.stream = true;
          stats.streams_started++;
          res.writeHead(ur.statusCode, h);
          if (typeof res.flushHeaders === 'function') res.flushHeaders();
          res.write(`data: ${JSON.stringify({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: PROMPT_FILTER_RESULTS })}\n\n`);
          let buf = '';
          ur.setEncoding('utf8');
          ur.on('data', (d) => {
            buf += d;
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              let ev = buf.slice(0, i + 2);
              buf = buf.slice(i + 2);
              const m = /^data: (\{.*\})\n\n$/s.exec(ev);
              if (m) {
                try {
                  const o = JSON.parse(m[1]);
                  if (Array.isArray(o.choices)) {
                    o.model = model;
                    for (const c of o.choices) if (c.delta && (c.delta.content || c.finish_reason)) c.content_filter_results = c.finish_reason ? {} : FILTER_OK;
                    delete o.service_tier;
                    ev = `data: ${JSON.stringify(o)}\n\n`;
                  }
                } catch { /* malformed on purpose: relay as is */ }
              }
              res.write(ev);
            }
          });
          ur.on('end', () => {
            if (buf) res.write(buf);
            ctx.done = true;
            stats.streams_completed++;
            res.end();
            resolve();
          });
          ur.on('aborted', () => { ctx.selfDestroyed = true; res.destroy(); resolve(); });
          ur.on('error', () => { ctx.selfDestroyed = true; res.destroy(); resolve(); });
          return;
        }
        const chunks = [];
        ur.on('data', (c) => chunks.push(c));
        ur.on('end', () => {
          let out = Buffer.concat(chunks);
          if (ur.statusCode === 200) {
            try {
              const o = JSON.parse(out.toString('utf8'));
              if (o.object === 'chat.completion') {
                o.model = model;
                o.prompt_filter_results = PROMPT_FILTER_RESULTS;
                for (const c of o.choices ?? []) c.content_filter_results = FILTER_OK;
                delete o.service_tier;
              } else if (o.object === 'list') o.model = model;
              out = Buffer.from(JSON.stringify(o));
            } catch { /* malformed on purpose */ }
          }
          h['content-length'] = out.length;
          if (!res.destroyed) { res.writeHead(ur.statusCode, h); res.end(out); }
          resolve();
        });
        ur.on('aborted', () => { res.destroy(); resolve(); });
      });
      up.on('error', () => { if (!res.headersSent) azErr(res, 500, 'InternalServerError', 'upstream mock failed'); else res.destroy(); resolve(); });
      res.on('close', () => { if (!ctx.done) up.destroy(); });
      up.end(payload);
    });
  }

  function checkVersion(res, ctx, required) {
    const v = ctx.url.searchParams.get('api-version');
    if (v === null) {
      if (!required) return true;
      azErr(res, 400, 'BadRequest', "Missing required query parameter 'api-version'. Supported versions: 2024-10-21, 2025-04-01-preview, ...");
      return false;
    }
    if (!/^\d{4}-\d{2}-\d{2}(-preview)?$/.test(v) && v !== 'preview' && v !== 'latest') {
      azErr(res, 400, 'BadRequest', 'API version not supported');
      return false;
    }
    ctx.entry.apiVersion = v;
    return true;
  }

  async function handle(req, res, ctx) {
    const { path, body } = ctx;
    // auth
    const k = req.headers['api-key'];
    const auth = String(req.headers.authorization || '');
    const ok = k !== undefined ? k === apiKey : auth.startsWith('Bearer ') && bearers.has(auth.slice(7));
    if (!ok) {
      return azErr(res, 401, '401', 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.');
    }
    let m;
    if ((m = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/.exec(path))) {
      if (!checkVersion(res, ctx, true)) return;
      const [name, ...faultParts] = decodeURIComponent(m[1]).split('+');
      const model = deployments[name];
      ctx.entry.deployment = name;
      if (!model) return azErr(res, 404, 'DeploymentNotFound', 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.');
      if (req.method !== 'POST') return azErr(res, 405, 'MethodNotAllowed', `Method ${req.method} not allowed`);
      if (ctx.parseError) return azErr(res, 400, 'BadRequest', 'Invalid JSON in request body');
      const b = isObj(body) ? { ...body } : body;
      if (isObj(b)) b.model = [model, ...faultParts, ...(typeof body.model === 'string' && body.model.includes('fault-') ? [body.model] : [])].join('+');
      return relay(req, res, ctx, `/v1/${m[2]}`, b, model, '');
    }
    const foundry = /^\/models\/(chat\/completions|embeddings|info)$/.exec(path);
    const v1 = /^\/openai\/v1\/(chat\/completions|embeddings)$/.exec(path);
    if (foundry || v1) {
      if (!checkVersion(res, ctx, !!foundry)) return;
      const op = (foundry || v1)[1];
      if (op === 'info') {
        if (req.method !== 'GET') return azErr(res, 405, 'MethodNotAllowed', `Method ${req.method} not allowed`);
        return send(res, 200, { model_name: 'gpt-4o-2024-08-06', model_type: 'chat-completion', model_provider_name: 'OpenAI' });
      }
      if (req.method !== 'POST') return azErr(res, 405, 'MethodNotAllowed', `Method ${req.method} not allowed`);
      if (ctx.parseError || !isObj(body)) return azErr(res, 400, 'BadRequest', 'Invalid JSON in request body');
      if (typeof body.model !== 'string') return azErr(res, 400, foundry ? 'no_model_name' : 'BadRequest', foundry ? "No model specified in request. Please provide a model name in the request body or as a x-ms-model-mesh-model-name header." : "Missing required parameter: 'model'.");
      const [name, ...faultParts] = body.model.split('+');
      const model = deployments[name];
      ctx.entry.deployment = name;
      if (!model) {
        return foundry
          ? azErr(res, 400, 'unknown_model', `Unknown model: ${name}`, { details: `Unknown model: ${name}` })
          : azErr(res, 404, 'DeploymentNotFound', 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.');
      }
      const extra = req.headers['extra-parameters'];
      if (foundry && extra !== undefined && !['error', 'drop', 'pass-through'].includes(extra)) return azErr(res, 400, 'BadRequest', `Invalid value for header 'extra-parameters': ${extra}`);
      return relay(req, res, ctx, `/v1/${op}`, { ...body, model: [model, ...faultParts].join('+') }, model, '');
    }
    return azErr(res, 404, '404', 'Resource not found');
  }

  const close = base.close;
  base.close = async () => { await close(); await inner.close(); };
  base.startInner = async () => { innerPort = await inner.listen(0, '127.0.0.1'); return innerPort; };
  base.inner = inner;
  return base;
}

/** Start the mock (and its internal openai_mock) in this process. Returns { url, port, apiKey, deployments, stop(), requests(), clearRequests(), stats(), resetStats(), innerStats() }. */
export async function startAzureMock(opts = {}) {
  const mock = createAzureMock(opts);
  await mock.startInner();
  return startInProcess(mock, {
    port: opts.port ?? 0,
    host: opts.host ?? '127.0.0.1',
    extra: { apiKey: opts.apiKey ?? DEFAULT_API_KEY, deployments: opts.deployments ?? DEFAULT_DEPLOYMENTS, innerStats: async () => structuredClone(mock.inner.stats) },
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runCli('azure_mock', process.argv.slice(2), (o) => startAzureMock({ ...o, deployments: o.deployments ? JSON.parse(o.deployments) : undefined }));
}
