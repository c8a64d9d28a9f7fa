#!/usr/bin/env node
// In-tree mock of Amazon Bedrock Runtime's Converse API, in the real wire formats (REST-JSON and
// application/vnd.amazon.eventstream binary frames), verifying AWS SigV4 on every request.
// No dependencies: node:http + node:crypto (+ ./lib/eventstream.mjs, ./lib/sigv4.mjs).
//
//   import { startBedrockMock } from '../mock/bedrock_mock.mjs';
//   const m = await startBedrockMock({ accessKeyId, secretAccessKey, region: 'us-east-1' });
//   node tests/mock/bedrock_mock.mjs [--port 0] [--access-key-id K] [--secret-access-key S] [--region R]
//
// Options: accessKeyId (default 'AKIDMOCKEXAMPLE'), secretAccessKey (default 'mock/secret/KEY'),
//   sessionToken (when set, x-amz-security-token must equal it and be signed), region (default
//   'us-east-1'), service (default 'bedrock'), apiKey (optional: also accept
//   `Authorization: Bearer <apiKey>`, Bedrock API keys), maxSkewMs (default 15 min), maxLog.
//
// Endpoints (the model id is one path segment, URL-encoded: ids and ARNs with ':' '/' work):
//   POST /model/{modelId}/converse         → Converse JSON
//   POST /model/{modelId}/converse-stream  → 200 application/vnd.amazon.eventstream: frames with
//        headers :event-type / :content-type application/json / :message-type event and a JSON
//        payload (with Bedrock's "p" padding member): messageStart, contentBlockStart (toolUse
//        only), contentBlockDelta (text / toolUse.input fragments / reasoningContent text,
//        signature, redactedContent), contentBlockStop, messageStop (stopReason), metadata
//        (usage with cacheReadInputTokens / cacheWriteInputTokens, metrics.latencyMs)
//   POST /model/{modelId}/invoke           → InvokeModel for embedding models (below)
//   POST /model/{modelId}/count-tokens     → CountTokens: {"input": {"converse": {messages, system}}}
//        → {"inputTokens": N}, N = the mock's prompt count of that Converse request (the same
//        number a Converse call reports as inputTokens without cache points). fault-count-slow-<ms>
//        and fault-count-<status> in the model id act on this operation only.
//   GET  /async-invoke?maxResults=...      → ListAsyncInvokes: {"asyncInvokeSummaries": []} (a
//        signed request with a query and no body; the query is in the request log)
//   GET/DELETE /__requests, /__stats (no auth). Each entry also has `sigv4`: {ok, reason,
//        canonicalRequest, stringToSign} as the mock computed them.
//
// SigV4: the Authorization header is parsed and the signature recomputed from the raw path, the
// query, the SignedHeaders (host and x-amz-date must be among them), and sha256 of the body (and
// x-amz-content-sha256 must match it when sent). 403 with AWS's shape (body {"message"} and
// x-amzn-ErrorType) when wrong, naming what differed: MissingAuthenticationTokenException,
// UnrecognizedClientException (unknown access key / session token), InvalidSignatureException
// (credential scope date / region / service, expired or future x-amz-date, body hash, or the
// signature itself: the message carries the canonical request and string-to-sign the mock
// expected, plus a "(mock)" hint when a common variant matches: path not double-encoded, header
// values not trimmed, empty-body hash). The x-mock-sigv4 response header repeats the reason.
//
// Deterministic behaviour (as the other mocks):
//   - Reply "You said: <text of the last user message>"; after toolResult blocks:
//     "Tool said: <their text / JSON, joined by ' | '>".
//   - toolUse: with toolConfig.tools, no toolResult in the last user turn, and the user text
//     containing "use tool" / "parallel tools" or toolChoice any / tool. "parallel tools" → two.
//     Input toolInput(name, text); streamed as input fragments split at odd places. stopReason tool_use.
//   - Reasoning: additionalModelRequestFields.thinking.type enabled / adaptive (Anthropic models) or
//     .reasoning_config.type enabled → a first reasoningContent block "Thinking about: <text>"
//     with a signature this mock verifies when it comes back ("redacted thinking" in the text adds
//     a redactedContent block).
//   - Cache: cachePoint blocks (system, messages, tools) are breakpoints: first time written
//     (usage.cacheWriteInputTokens), later read (cacheReadInputTokens); inputTokens excludes both;
//     totalTokens = input + output + read + write.
//   - inferenceConfig.maxTokens below the words → cut, max_tokens; stopSequences → cut,
//     stop_sequence (additionalModelResponseFields.stop_sequence when its path is asked for).
// Faults: as openai_mock, from the model id ("anthropic.claude-3-haiku+fault-429"), the
//   x-mock-fault header or the user text: fault-400/403/404/408/424/429/500/503 as HTTP errors with
//   x-amzn-ErrorType (ValidationException, AccessDeniedException, ResourceNotFoundException,
//   ModelTimeoutException, ModelErrorException, ThrottlingException, InternalServerException,
//   ServiceUnavailableException), fault-hang, fault-slow-first-byte-<ms>, fault-trickle-<ms>,
//   fault-stall-after-<n>, fault-reset-after-<n>, fault-truncate-after-<n>, fault-malformed (a
//   frame with a bad message CRC), fault-error-after-<n> (an exception frame, :exception-type
//   throttlingException, or the one named by fault-exception-<name>, e.g.
//   fault-exception-modelStreamErrorException).
//
// InvokeModel embeddings (JSON in the model family's own shape; other model ids → 400
// ValidationException "The provided model identifier is invalid."):
//   amazon.titan-embed-text-v2*: body {inputText (required, non-empty, <= 50000 chars), dimensions
//     (256 | 512 | 1024, default 1024), normalize (boolean), embeddingTypes (["float"|"binary"])};
//     any other member → 400 "extraneous key [k] is not permitted". Answer {embedding,
//     inputTextTokenCount} (+ embeddingsByType when embeddingTypes is given).
//   cohere.embed-*: body {texts (1..96 strings, each <= 2048 chars), input_type (required:
//     search_document | search_query | classification | clustering), truncate, embedding_types};
//     other members → 400. Answer {id, texts, embeddings, response_type}: embeddings is
//     {float: [[...]]} when embedding_types was given ("embeddings_by_type"), else [[...]]
//     ("embeddings_floats"); 1024 dimensions (384 for *-light-*).
//   Vectors are embeddingOf(text, dims) (lib/common.mjs: deterministic, float32-exact); both
//   families send X-Amzn-Bedrock-Input-Token-Count (tokensOf per text, summed). Faults as above,
//   from the model id, x-mock-fault or the texts. stats.invoke_inflight_max records how many
//   InvokeModel calls were in flight at once (concurrency of fan-outs).
// Validated like Converse (400 ValidationException): unknown members (top level, inferenceConfig,
// blocks), messages required, first message user, roles user/assistant and alternating, content
// blocks with exactly one member, blank text, toolUse only in assistant / toolResult only in user
// turns, toolConfig present when tool blocks are used, toolResult ids matching the previous turn's
// toolUse (too many, unknown, missing), tool spec names and inputSchema.json, toolChoice shape,
// maxTokens >= 1, temperature / topP in [0, 1], at most 4 stopSequences, reasoning signatures.
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  createServer, startInProcess, runCli, parseFaults, tokensOf, splitWords, splitOdd, embeddingOf,
} from './lib/common.mjs';
import { encodeFrame } from './lib/eventstream.mjs';
import {
  parseAuthorization, canonicalRequest, stringToSign, signingKey, sha256hex, amzDateOf,
} from './lib/sigv4.mjs';

export const DEFAULTS = { accessKeyId: 'AKIDMOCKEXAMPLE', secretAccessKey: 'mock/secret/KEY', region: 'us-east-1', service: 'bedrock' };
const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);

// ---------------------------------------------------------------------------------------------
// Deterministic helpers (exported)
// ---------------------------------------------------------------------------------------------

const blocksText = (content) => (Array.isArray(content) ? content.filter((b) => isObj(b) && typeof b.text === 'string').map((b) => b.text).join('') : '');
function lastUser(body) {
  const msgs = Array.isArray(body?.messages) ? body.messages : [];
  for (let i = msgs.length - 1; i >= 0; i--) if (isObj(msgs[i]) && msgs[i].role === 'user') return msgs[i];
  return null;
}
const toolResultsOf = (m) => (m && Array.isArray(m.content) ? m.content.filter((b) => isObj(b) && isObj(b.toolResult)) : []);
const toolResultText = (tr) => (Array.isArray(tr.content) ? tr.content.map((c) => (typeof c.text === 'string' ? c.text : c.json !== undefined ? JSON.stringify(c.json) : '')).join('') : '');

export const userText = (body) => blocksText(lastUser(body)?.content);
export function replyText(body) {
  const u = lastUser(body);
  const trs = toolResultsOf(u);
  if (trs.length) return `Tool said: ${trs.map((b) => toolResultText(b.toolResult)).join(' | ')}`;
  return u ? `You said: ${blocksText(u.content)}` : 'Hello from the mock.';
}
export const toolInput = (name, text) => ({ tool: name, query: text, n: 42, nested: { ok: true, list: [1, 2, 3] } });
export const thinkingText = (body) => `Thinking about: ${userText(body)}`;

export function toolUsesFor(body) {
  const specs = (body.toolConfig?.tools ?? []).filter((t) => isObj(t) && isObj(t.toolSpec)).map((t) => t.toolSpec);
  if (!specs.length) return [];
  if (toolResultsOf(lastUser(body)).length) return [];
  const tc = body.toolConfig.toolChoice ?? { auto: {} };
  const text = userText(body);
  const lower = text.toLowerCase();
  const parallel = lower.includes('parallel tools');
  if (!(parallel || lower.includes('use tool') || tc.any || tc.tool)) return [];
  let chosen = specs;
  if (tc.tool) chosen = specs.filter((s) => s.name === tc.tool.name);
  else {
    const named = specs.filter((s) => text.includes(s.name));
    if (named.length) chosen = [...named, ...specs.filter((s) => !named.includes(s))];
  }
  return chosen.slice(0, parallel && !tc.tool ? Math.min(2, chosen.length) : 1).map((s) => s.name);
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

class Invalid extends Error {}
const bad = (m) => { throw new Invalid(m); };
const TOP = ['messages', 'system', 'inferenceConfig', 'toolConfig', 'guardrailConfig', 'additionalModelRequestFields', 'promptVariables',
  'additionalModelResponseFieldPaths', 'requestMetadata', 'performanceConfig', 'serviceTier'];
const BLOCK = ['text', 'image', 'document', 'video', 'toolUse', 'toolResult', 'guardContent', 'cachePoint', 'reasoningContent', 'citationsContent', 'searchResult'];
const unknownMember = (path, k) => bad(`1 validation error detected: Value at '${path}' failed to satisfy constraint: Unknown member '${k}' is not permitted`);

function validateConverse(body, verifySig) {
  if (!isObj(body)) bad('Malformed input request, please reformat your input and try again.');
  for (const k of Object.keys(body)) if (!TOP.includes(k)) unknownMember(k, k);
  if (!Array.isArray(body.messages)) bad("1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null");
  const ic = body.inferenceConfig;
  if (ic !== undefined) {
    if (!isObj(ic)) bad("1 validation error detected: Value at 'inferenceConfig' failed to satisfy constraint: Member must be a structure");
    for (const k of Object.keys(ic)) if (!['maxTokens', 'temperature', 'topP', 'stopSequences'].includes(k)) unknownMember(`inferenceConfig.${k}`, k);
    if (ic.maxTokens !== undefined && (!Number.isInteger(ic.maxTokens) || ic.maxTokens < 1)) bad(`1 validation error detected: Value '${ic.maxTokens}' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1`);
    if (ic.temperature !== undefined && (typeof ic.temperature !== 'number' || ic.temperature < 0 || ic.temperature > 1)) bad(`1 validation error detected: Value '${ic.temperature}' at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value less than or equal to 1`);
    if (ic.topP !== undefined && (typeof ic.topP !== 'number' || ic.topP < 0 || ic.topP > 1)) bad(`1 validation error detected: Value '${ic.topP}' at 'inferenceConfig.topP' failed to satisfy constraint: Member must have value less than or equal to 1`);
    if (ic.stopSequences !== undefined && (!Array.isArray(ic.stopSequences) || ic.stopSequences.length > 4)) bad("1 validation error detected: Value at 'inferenceConfig.stopSequences' failed to satisfy constraint: Member must have length less than or equal to 4");
  }
  if (body.system !== undefined) {
    if (!Array.isArray(body.system)) bad("1 validation error detected: Value at 'system' failed to satisfy constraint: Member must be a list");
    body.system.forEach((b, k) => {
      if (!isObj(b) || Object.keys(b).length !== 1 || !['text', 'guardContent', 'cachePoint'].includes(Object.keys(b)[0])) bad(`The system block at system.${k} must contain exactly one of text, guardContent, cachePoint.`);
      if (b.text !== undefined && (typeof b.text !== 'string' || !b.text.trim())) bad(`The text field in the SystemContentBlock object at system.${k} is blank. Add text to the text field, and try again.`);
    });
  }
  const tc = body.toolConfig;
  const names = [];
  if (tc !== undefined) {
    if (!isObj(tc)) bad("1 validation error detected: Value at 'toolConfig' failed to satisfy constraint: Member must be a structure");
    for (const k of Object.keys(tc)) if (!['tools', 'toolChoice'].includes(k)) unknownMember(`toolConfig.${k}`, k);
    if (!Array.isArray(tc.tools) || !tc.tools.length) bad("1 validation error detected: Value '[]' at 'toolConfig.tools' failed to satisfy constraint: Member must have length greater than or equal to 1");
    tc.tools.forEach((t, k) => {
      if (!isObj(t) || Object.keys(t).length !== 1 || !['toolSpec', 'cachePoint', 'systemTool'].includes(Object.keys(t)[0])) bad(`The tool at toolConfig.tools.${k} must contain exactly one of toolSpec, cachePoint, systemTool.`);
      if (t.toolSpec) {
        const s = t.toolSpec;
        for (const f of Object.keys(s)) if (!['name', 'description', 'inputSchema', 'strict'].includes(f)) unknownMember(`toolConfig.tools.${k}.member.toolSpec.${f}`, f);
        if (typeof s.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(s.name)) bad(`1 validation error detected: Value '${s.name}' at 'toolConfig.tools.${k + 1}.member.toolSpec.name' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+`);
        if (!isObj(s.inputSchema) || !isObj(s.inputSchema.json)) bad(`1 validation error detected: Value null at 'toolConfig.tools.${k + 1}.member.toolSpec.inputSchema' failed to satisfy constraint: Member must not be null`);
        if (names.includes(s.name)) bad(`The toolConfig field contains duplicate tool names: ${s.name}.`);
        names.push(s.name);
      }
    });
    const ch = tc.toolChoice;
    if (ch !== undefined) {
      if (!isObj(ch) || Object.keys(ch).length !== 1 || !['auto', 'any', 'tool'].includes(Object.keys(ch)[0])) bad("1 validation error detected: Value at 'toolConfig.toolChoice' failed to satisfy constraint: Member must contain exactly one of auto, any, tool");
      if (ch.tool && !names.includes(ch.tool.name)) bad(`The tool ${ch.tool.name} in toolChoice is not defined in toolConfig.tools.`);
    }
  }
  const msgs = body.messages;
  if (!msgs.length) bad('A conversation must start with a user message. Try again with a conversation that starts with a user message.');
  let prevUses = [];
  let usesTools = false;
  msgs.forEach((m, i) => {
    if (!isObj(m)) bad(`1 validation error detected: Value at 'messages.${i + 1}.member' failed to satisfy constraint: Member must be a structure`);
    for (const k of Object.keys(m)) if (!['role', 'content'].includes(k)) unknownMember(`messages.${i + 1}.member.${k}`, k);
    if (m.role !== 'user' && m.role !== 'assistant') bad(`1 validation error detected: Value '${m.role}' at 'messages.${i + 1}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]`);
    if (i === 0 && m.role !== 'user') bad('A conversation must start with a user message. Try again with a conversation that starts with a user message.');
    if (i > 0 && msgs[i - 1].role === m.role) bad('A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.');
    if (!Array.isArray(m.content) || !m.content.length) bad(`1 validation error detected: Value '[]' at 'messages.${i + 1}.member.content' failed to satisfy constraint: Member must have length greater than or equal to 1`);
    m.content.forEach((b, j) => {
      const keys = isObj(b) ? Object.keys(b) : [];
      if (keys.length !== 1) bad(`The content block at messages.${i}.content.${j} must contain exactly one of ${BLOCK.join(', ')}.`);
      if (!BLOCK.includes(keys[0])) unknownMember(`messages.${i + 1}.member.content.${j + 1}.member.${keys[0]}`, keys[0]);
      if (b.text !== undefined && (typeof b.text !== 'string' || !b.text.trim())) bad(`The text field in the ContentBlock object at messages.${i}.content.${j} is blank. Add text to the text field, and try again.`);
      if (b.toolUse) {
        usesTools = true;
        if (m.role !== 'assistant') bad(`The toolUse block at messages.${i}.content.${j} can only be in an assistant message.`);
        const u = b.toolUse;
        for (const f of Object.keys(u)) if (!['toolUseId', 'name', 'input', 'type'].includes(f)) unknownMember(`messages.${i + 1}.member.content.${j + 1}.member.toolUse.${f}`, f);
        if (typeof u.toolUseId !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(u.toolUseId)) bad(`1 validation error detected: Value '${u.toolUseId}' at 'messages.${i + 1}.member.content.${j + 1}.member.toolUse.toolUseId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+`);
        if (typeof u.name !== 'string') bad(`1 validation error detected: Value null at 'messages.${i + 1}.member.content.${j + 1}.member.toolUse.name' failed to satisfy constraint: Member must not be null`);
        if (u.input === undefined) bad(`1 validation error detected: Value null at 'messages.${i + 1}.member.content.${j + 1}.member.toolUse.input' failed to satisfy constraint: Member must not be null`);
      }
      if (b.toolResult) {
        usesTools = true;
        if (m.role !== 'user') bad(`The toolResult block at messages.${i}.content.${j} can only be in a user message.`);
        const r = b.toolResult;
        for (const f of Object.keys(r)) if (!['toolUseId', 'content', 'status', 'type'].includes(f)) unknownMember(`messages.${i + 1}.member.content.${j + 1}.member.toolResult.${f}`, f);
        if (!Array.isArray(r.content)) bad(`1 validation error detected: Value null at 'messages.${i + 1}.member.content.${j + 1}.member.toolResult.content' failed to satisfy constraint: Member must not be null`);
        r.content.forEach((c, k) => {
          if (!isObj(c) || Object.keys(c).length !== 1 || !['text', 'json', 'image', 'document', 'video', 'searchResult'].includes(Object.keys(c)[0])) {
            bad(`The toolResult content at messages.${i}.content.${j}.toolResult.content.${k} must contain exactly one of text, json, image, document, video.`);
          }
        });
        if (r.status !== undefined && r.status !== 'success' && r.status !== 'error') bad(`1 validation error detected: Value '${r.status}' at 'messages.${i + 1}.member.content.${j + 1}.member.toolResult.status' failed to satisfy constraint: Member must satisfy enum value set: [success, error]`);
      }
      if (b.reasoningContent) {
        if (m.role !== 'assistant') bad(`The reasoningContent block at messages.${i}.content.${j} can only be in an assistant message.`);
        const rc = b.reasoningContent;
        if (rc.reasoningText) {
          if (!verifySig(rc.reasoningText.text, rc.reasoningText.signature)) bad(`The reasoning signature at messages.${i}.content.${j} is invalid. Make sure reasoning content is passed back unmodified.`);
        } else if (typeof rc.redactedContent !== 'string') bad(`The reasoningContent block at messages.${i}.content.${j} must contain exactly one of reasoningText, redactedContent.`);
      }
      if (b.image) {
        if (!['png', 'jpeg', 'gif', 'webp'].includes(b.image.format)) bad(`1 validation error detected: Value '${b.image.format}' at 'messages.${i + 1}.member.content.${j + 1}.member.image.format' failed to satisfy constraint: Member must satisfy enum value set: [png, jpeg, gif, webp]`);
        if (!isObj(b.image.source) || (typeof b.image.source.bytes !== 'string' && !isObj(b.image.source.s3Location))) bad(`The image source at messages.${i}.content.${j} must contain bytes or s3Location.`);
      }
    });
    const results = m.content.filter((b) => b.toolResult).map((b) => b.toolResult.toolUseId);
    if (m.role === 'user') {
      if (results.length > prevUses.length) bad(`The number of toolResult blocks at messages.${i}.content exceeds the number of toolUse blocks of previous turn.`);
      const unknown = results.filter((id) => !prevUses.includes(id));
      if (unknown.length) bad(`The toolResult blocks at messages.${i}.content contain toolUseIds that do not match any toolUse ids of the previous turn: ${unknown.join(', ')}`);
      const missing = prevUses.filter((id) => !results.includes(id));
      if (missing.length) bad(`Expected toolResult blocks at messages.${i}.content for the following Ids: ${missing.join(', ')}`);
      prevUses = [];
    } else {
      prevUses = m.content.filter((b) => b.toolUse).map((b) => b.toolUse.toolUseId);
    }
  });
  if (usesTools && !tc) bad('The toolConfig field must be defined when using toolUse and toolResult content blocks.');
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

const HTTP_ERRORS = {
  400: ['ValidationException', 'Malformed input request (injected).'],
  403: ['AccessDeniedException', "You don't have access to the model with the specified model ID."],
  404: ['ResourceNotFoundException', 'Could not resolve the foundation model from the provided model identifier.'],
  408: ['ModelTimeoutException', 'Model has timed out in processing the request. Try your request again.'],
  424: ['ModelErrorException', 'The model returned an error (injected).'],
  429: ['ThrottlingException', 'Too many requests, please wait before trying again.'],
  500: ['InternalServerException', 'The server encountered an error processing your request. Try your request again.'],
  503: ['ServiceUnavailableException', 'Bedrock is unable to process your request.'],
};

export function createBedrockMock(opts = {}) {
  const cfg = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const maxSkewMs = opts.maxSkewMs ?? 15 * 60 * 1000;
  const secret = crypto.randomBytes(32);
  const cacheSeen = new Set();
  const sign = (t) => crypto.createHmac('sha256', secret).update(String(t)).digest('base64');
  const verifySig = (t, s) => typeof s === 'string' && s === sign(t);

  const base = createServer({ name: 'bedrock_mock', maxLog: opts.maxLog, extraStats: { sigv4_ok: 0, sigv4_failed: 0, cache_writes: 0, cache_reads: 0, invokes: 0, invoke_inflight: 0, invoke_inflight_max: 0 }, handle });
  const { stats, send, later } = base;

  const reqId = () => crypto.randomUUID();
  function awsError(res, status, type, message, extra = {}) {
    send(res, status, { message }, {
      'x-amzn-requestid': reqId(),
      'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
      ...extra,
    });
  }

  /** Verify SigV4; returns null when fine, else { type, message, reason }. */
  function verifySigV4(req, ctx) {
    const h = req.headers;
    const info = { ok: false };
    ctx.entry.sigv4 = info;
    const auth = h.authorization;
    if (!auth) {
      info.reason = 'no Authorization header';
      return { type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token', status: 403 };
    }
    if (cfg.apiKey && auth === `Bearer ${cfg.apiKey}`) { info.ok = true; info.reason = 'bearer api key'; return null; }
    const a = parseAuthorization(auth);
    if (!a || a.malformed) {
      info.reason = 'malformed Authorization header';
      return { type: 'IncompleteSignatureException', message: `Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization=${String(auth).slice(0, 40)}`, status: 403 };
    }
    const fail = (type, message, reason) => { info.reason = reason; return { type, message, status: 403, reason }; };
    if (a.accessKeyId !== cfg.accessKeyId) return fail('UnrecognizedClientException', 'The security token included in the request is invalid.', `unknown access key id '${a.accessKeyId}' (expected '${cfg.accessKeyId}')`);
    if (cfg.sessionToken !== undefined && h['x-amz-security-token'] !== cfg.sessionToken) return fail('UnrecognizedClientException', 'The security token included in the request is invalid.', 'x-amz-security-token missing or different from the configured session token');
    if (cfg.sessionToken !== undefined && !a.signedHeaders.includes('x-amz-security-token')) return fail('InvalidSignatureException', "'x-amz-security-token' must be a 'SignedHeader' in the AWS Authorization.", 'x-amz-security-token not signed');
    if (a.credentialParts !== 5 || a.terminator !== 'aws4_request') return fail('IncompleteSignatureException', `Credential should be scoped with a valid terminator: 'aws4_request', not '${a.terminator}'.`, 'credential scope terminator');
    const amzDate = h['x-amz-date'];
    if (!amzDate || !/^\d{8}T\d{6}Z$/.test(amzDate)) return fail('IncompleteSignatureException', 'Authorization header requires existence of either a \'X-Amz-Date\' or a \'Date\' header.', 'x-amz-date missing or malformed');
    if (!a.signedHeaders.includes('host')) return fail('InvalidSignatureException', "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.", 'host not signed');
    if (!a.signedHeaders.includes('x-amz-date')) return fail('InvalidSignatureException', "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.", 'x-amz-date not signed');
    if (a.date !== amzDate.slice(0, 8)) return fail('InvalidSignatureException', `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${a.date}' != '${amzDate.slice(0, 8)}', from 'X-Amz-Date'.`, 'credential scope date differs from x-amz-date');
    if (a.region !== cfg.region) return fail('InvalidSignatureException', `Credential should be scoped to a valid region, not '${a.region}'. `, `credential scope region '${a.region}' (expected '${cfg.region}')`);
    if (a.service !== cfg.service) return fail('InvalidSignatureException', `Credential should be scoped to correct service: '${cfg.service}'. `, `credential scope service '${a.service}' (expected '${cfg.service}')`);
    const when = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
    const now = Date.now();
    if (when < now - maxSkewMs) return fail('InvalidSignatureException', `Signature expired: ${amzDate} is now earlier than ${amzDateOf(new Date(now - maxSkewMs))} (${amzDateOf(new Date(now))} - 15 min.)`, 'x-amz-date too old');
    if (when > now + maxSkewMs) return fail('InvalidSignatureException', `Signature not yet current: ${amzDate} is still later than ${amzDateOf(new Date(now + maxSkewMs))} (${amzDateOf(new Date(now))} + 15 min.)`, 'x-amz-date in the future');
    for (const sh of a.signedHeaders) {
      if (h[sh] === undefined) return fail('InvalidSignatureException', `The request signature we calculated does not match the signature you provided. Signed header '${sh}' is not present in the request.`, `signed header '${sh}' absent from the request`);
    }
    const bodyHash = sha256hex(ctx.rawBody);
    const claimed = h['x-amz-content-sha256'];
    if (claimed !== undefined && claimed !== 'UNSIGNED-PAYLOAD' && claimed !== bodyHash) {
      return fail('InvalidSignatureException', 'The provided \'x-amz-content-sha256\' header does not match what was computed.', `x-amz-content-sha256 ${claimed} != sha256(body) ${bodyHash}`);
    }
    const payloadHash = claimed ?? bodyHash;
    const raw = String(req.url);
    const qi = raw.indexOf('?');
    const rawPath = qi < 0 ? raw : raw.slice(0, qi);
    const rawQuery = qi < 0 ? '' : raw.slice(qi + 1);
    const scope = `${a.date}/${a.region}/${a.service}/aws4_request`;
    const key = signingKey(cfg.secretAccessKey, a.date, a.region, a.service);
    const sigOf = (variant = {}) => {
      const canon = canonicalRequest({ method: req.method, rawPath, rawQuery, headers: h, signedHeaders: a.signedHeaders, payloadHash: variant.payloadHash ?? payloadHash, doubleEncode: variant.doubleEncode ?? true, trimValues: variant.trimValues ?? true });
      const sts = stringToSign(amzDate, scope, canon);
      return { canon, sts, sig: crypto.createHmac('sha256', key).update(sts).digest('hex') };
    };
    const expected = sigOf();
    info.canonicalRequest = expected.canon;
    info.stringToSign = expected.sts;
    if (expected.sig === a.signature) { info.ok = true; return null; }
    const variants = [
      [{ doubleEncode: false }, 'the signature matches when the path is NOT URI-encoded a second time (non-S3 services need the encoded path encoded again)'],
      [{ trimValues: false }, 'the signature matches with untrimmed header values (canonical header values must be trimmed, inner spaces collapsed)'],
      [{ payloadHash: sha256hex('') }, 'the signature matches with the hash of an EMPTY body (sign the body you send)'],
      [{ payloadHash: 'UNSIGNED-PAYLOAD' }, 'the signature matches with UNSIGNED-PAYLOAD (Bedrock wants the body hash)'],
    ];
    let hint = 'no common variant matches: check the secret key, the signing key derivation, the signed header list, and the query';
    for (const [v, text] of variants) if (sigOf(v).sig === a.signature) { hint = text; break; }
    return fail('InvalidSignatureException',
      `The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'${expected.canon}'\n\nThe String-to-Sign should have been\n'${expected.sts}'\n\n(mock) ${hint}`,
      `signature mismatch: ${hint}`);
  }

  function cacheUsage(body, dry = false) {
    let chars = 0;
    const h = crypto.createHash('sha256');
    const bps = [];
    const add = (s) => { chars += s.length; h.update(s); h.update('\u0000'); };
    const bp = () => bps.push({ tokens: tokensOf(chars), hash: h.copy().digest('hex') });
    for (const t of body.toolConfig?.tools ?? []) if (t.cachePoint) bp(); else add(JSON.stringify(t));
    for (const b of body.system ?? []) if (b.cachePoint) bp(); else add(String(b.text ?? ''));
    for (const m of body.messages) {
      for (const b of m.content) {
        if (b.cachePoint) { bp(); continue; }
        if (typeof b.text === 'string') add(b.text);
        else if (b.toolUse) add(`${b.toolUse.name}${JSON.stringify(b.toolUse.input)}`);
        else if (b.toolResult) add(toolResultText(b.toolResult));
        else if (b.reasoningContent) add(String(b.reasoningContent.reasoningText?.text ?? ''));
        else add(JSON.stringify(b).slice(0, 400));
      }
    }
    const total = Math.max(1, tokensOf(chars));
    let read = 0;
    for (const p of bps) if (cacheSeen.has(p.hash)) read = Math.max(read, p.tokens);
    const last = bps.at(-1);
    const write = last && last.tokens > read ? last.tokens - read : 0;
    if (dry) return { total, read: 0, write: 0, any: bps.length > 0 }; // counting never touches the cache
    for (const p of bps) cacheSeen.add(p.hash);
    if (write) stats.cache_writes++;
    if (read) stats.cache_reads++;
    return { total, read, write, any: bps.length > 0 };
  }

  function plan(body) {
    const blocks = []; // { final, start?, deltas: [delta], tokens }
    const text = userText(body);
    const amrf = isObj(body.additionalModelRequestFields) ? body.additionalModelRequestFields : {};
    const thinking = ['enabled', 'adaptive'].includes(amrf.thinking?.type) || amrf.reasoning_config?.type === 'enabled';
    if (thinking && !toolResultsOf(lastUser(body)).length) {
      const t = thinkingText(body);
      const words = splitWords(t);
      const signature = sign(t);
      blocks.push({
        final: { reasoningContent: { reasoningText: { text: t, signature } } },
        deltas: [...words.map((w) => ({ reasoningContent: { text: w } })), { reasoningContent: { signature } }],
        tokens: words.length,
      });
      if (text.toLowerCase().includes('redacted thinking')) {
        const data = Buffer.from(`mock-redacted:${sign(`r${t}`)}`).toString('base64');
        blocks.push({ final: { reasoningContent: { redactedContent: data } }, deltas: [{ reasoningContent: { redactedContent: data } }], tokens: 1 });
      }
    }
    const uses = toolUsesFor(body);
    let stopReason = 'end_turn';
    let stopSequence = null;
    if (uses.length) {
      const pre = `Let me use ${uses[0]}.`;
      const pw = splitWords(pre);
      blocks.push({ final: { text: pre }, deltas: pw.map((w) => ({ text: w })), tokens: pw.length });
      uses.forEach((name, i) => {
        const toolUseId = `tooluse_${crypto.createHash('sha256').update(`${Date.now()}${Math.random()}${i}`).digest('base64url').replace(/[^A-Za-z0-9]/g, '').slice(0, 22)}`;
        const input = toolInput(name, text);
        const pieces = splitOdd(JSON.stringify(input));
        blocks.push({ final: { toolUse: { toolUseId, name, input } }, start: { toolUse: { toolUseId, name } }, deltas: pieces.map((p) => ({ toolUse: { input: p } })), tokens: pieces.length });
      });
      stopReason = 'tool_use';
    } else {
      let reply = replyText(body);
      for (const s of body.inferenceConfig?.stopSequences ?? []) {
        const at = reply.indexOf(s);
        if (at >= 0) { reply = reply.slice(0, at); stopReason = 'stop_sequence'; stopSequence = s; }
      }
      let words = splitWords(reply);
      const max = body.inferenceConfig?.maxTokens;
      const used = blocks.reduce((a, b) => a + b.tokens, 0);
      if (max !== undefined && words.length > Math.max(1, max - used)) { words = words.slice(0, Math.max(1, max - used)); stopReason = 'max_tokens'; stopSequence = null; }
      reply = words.join('');
      if (reply) blocks.push({ final: { text: reply }, deltas: words.map((w) => ({ text: w })), tokens: words.length });
    }
    return { blocks, stopReason, stopSequence, outputTokens: blocks.reduce((a, b) => a + b.tokens, 0) };
  }

  const pad = (n) => 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.slice(0, 1 + (n % 40));
  const eventFrame = (type, payload, i) => encodeFrame({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, { ...payload, p: pad(i) });
  const exceptionFrame = (type, message) => encodeFrame({ ':exception-type': type, ':content-type': 'application/json', ':message-type': 'exception' }, { message });

  async function converse(req, res, ctx, modelId, streaming, faults, excType) {
    const started = Date.now();
    const body = ctx.body;
    try {
      validateConverse(body, verifySig);
    } catch (e) {
      if (e instanceof Invalid) return awsError(res, 400, 'ValidationException', e.message);
      throw e;
    }
    const cu = cacheUsage(body);
    const p = plan(body);
    const usage = { inputTokens: Math.max(0, cu.total - cu.read - cu.write), outputTokens: p.outputTokens };
    usage.totalTokens = usage.inputTokens + usage.outputTokens + cu.read + cu.write;
    if (cu.any || cu.read || cu.write) Object.assign(usage, { cacheReadInputTokens: cu.read, cacheWriteInputTokens: cu.write });
    const wantStop = Array.isArray(body.additionalModelResponseFieldPaths) && body.additionalModelResponseFieldPaths.includes('/stop_sequence');
    const amrf = wantStop ? { stop_sequence: p.stopSequence } : undefined;
    const requestId = reqId();
    if (!streaming) {
      const headers = { 'x-amzn-requestid': requestId };
      if (faults.malformed) return send(res, 200, '{"output":{"message":{"role":"assistant","content":[{"text":"trunc', headers);
      const out = {
        output: { message: { role: 'assistant', content: p.blocks.map((b) => b.final) } },
        stopReason: p.stopReason,
        usage,
        metrics: { latencyMs: Math.max(1, Date.now() - started) },
      };
      if (amrf) out.additionalModelResponseFields = amrf;
      return send(res, 200, out, headers);
    }
    const frames = [];
    let i = 0;
    frames.push(eventFrame('messageStart', { role: 'assistant' }, i++));
    p.blocks.forEach((b, index) => {
      if (b.start) frames.push(eventFrame('contentBlockStart', { contentBlockIndex: index, start: b.start }, i++));
      for (const d of b.deltas) frames.push(eventFrame('contentBlockDelta', { contentBlockIndex: index, delta: d }, i++));
      frames.push(eventFrame('contentBlockStop', { contentBlockIndex: index }, i++));
    });
    const stop = { stopReason: p.stopReason };
    if (amrf) stop.additionalModelResponseFields = amrf;
    frames.push(eventFrame('messageStop', stop, i++));
    frames.push(eventFrame('metadata', { usage, metrics: { latencyMs: Math.max(1, Date.now() - started) } }, i++));
    const corrupt = Buffer.from(eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'corrupt' } }, 0));
    corrupt.writeUInt32BE((corrupt.readUInt32BE(corrupt.length - 4) ^ 0xdeadbeef) >>> 0, corrupt.length - 4);
    return base.stream(req, res, ctx, frames, {
      faults,
      headers: { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': requestId },
      errorEvent: () => exceptionFrame(excType, excType === 'throttlingException' ? 'Too many tokens, please wait before trying again.' : `Injected ${excType}.`),
      malformedEvent: corrupt,
    });
  }

  // ---- InvokeModel (embedding models) ----
  const embedFamily = (modelId) => {
    const id = modelId.split('/').at(-1).replace(/^(us|eu|apac|global|us-gov|jp|au)\./, '');
    if (id.startsWith('amazon.titan-embed-text-v2')) return 'titan';
    if (id.startsWith('cohere.embed-')) return 'cohere';
    return null;
  };
  const invokeText = (body) => {
    if (!isObj(body)) return '';
    if (typeof body.inputText === 'string') return body.inputText;
    return Array.isArray(body.texts) ? body.texts.filter((t) => typeof t === 'string').join(' ') : '';
  };
  const malformed = (m) => bad(`Malformed input request: ${m}, please reformat your input and try again.`);

  function invokeAnswer(modelId, body) {
    const fam = embedFamily(modelId);
    if (!fam) bad('The provided model identifier is invalid.');
    if (!isObj(body)) bad('Malformed input request, please reformat your input and try again.');
    if (fam === 'titan') {
      for (const k of Object.keys(body)) if (!['inputText', 'dimensions', 'normalize', 'embeddingTypes'].includes(k)) malformed(`#: extraneous key [${k}] is not permitted`);
      if (typeof body.inputText !== 'string') malformed('#: required key [inputText] not found');
      if (!body.inputText.length) malformed('#/inputText: expected minLength: 1, actual: 0');
      if (body.inputText.length > 50000) malformed(`#/inputText: expected maxLength: 50000, actual: ${body.inputText.length}`);
      if (body.dimensions !== undefined && ![256, 512, 1024].includes(body.dimensions)) malformed(`#/dimensions: ${body.dimensions} is not a valid enum value`);
      if (body.normalize !== undefined && typeof body.normalize !== 'boolean') malformed(`#/normalize: expected type: Boolean, found: ${typeof body.normalize}`);
      const types = body.embeddingTypes;
      if (types !== undefined && (!Array.isArray(types) || !types.length || types.some((t) => !['float', 'binary'].includes(t)))) malformed('#/embeddingTypes: expected a non-empty list of float, binary');
      const tokens = tokensOf(body.inputText.length);
      const embedding = embeddingOf(body.inputText, body.dimensions ?? 1024);
      const out = { embedding, inputTextTokenCount: tokens };
      if (types) out.embeddingsByType = Object.fromEntries(types.map((t) => [t, t === 'float' ? embedding : embedding.map((x) => (x > 0 ? 1 : 0))]));
      return { out, tokens };
    }
    for (const k of Object.keys(body)) if (!['texts', 'input_type', 'truncate', 'embedding_types', 'images'].includes(k)) malformed(`#: extraneous key [${k}] is not permitted`);
    if (!Array.isArray(body.texts)) malformed('#: required key [texts] not found');
    if (!body.texts.length || body.texts.length > 96) malformed(`#/texts: expected minimum item count: 1, maximum item count: 96, found: ${body.texts.length}`);
    body.texts.forEach((t, i) => {
      if (typeof t !== 'string') malformed(`#/texts/${i}: expected type: String`);
      if (t.length > 2048) malformed(`#/texts/${i}: expected maxLength: 2048, actual: ${t.length}`);
    });
    if (body.input_type === undefined) malformed('#: required key [input_type] not found');
    if (!['search_document', 'search_query', 'classification', 'clustering'].includes(body.input_type)) malformed(`#/input_type: ${body.input_type} is not a valid enum value`);
    if (body.truncate !== undefined && !['NONE', 'START', 'END'].includes(body.truncate)) malformed(`#/truncate: ${body.truncate} is not a valid enum value`);
    const et = body.embedding_types;
    if (et !== undefined && (!Array.isArray(et) || !et.length || et.some((t) => !['float', 'int8', 'uint8', 'binary', 'ubinary'].includes(t)))) malformed('#/embedding_types: expected a non-empty list of float, int8, uint8, binary, ubinary');
    const dims = modelId.includes('-light-') ? 384 : 1024;
    const vecs = body.texts.map((t) => embeddingOf(`${body.input_type}:${t}`, dims));
    const tokens = body.texts.reduce((a, t) => a + tokensOf(t.length), 0);
    const out = { id: reqId(), texts: body.texts.map((t) => t.toLowerCase()) };
    if (et) {
      out.embeddings = Object.fromEntries(et.map((t) => [t, t === 'float' ? vecs : vecs.map((v) => v.map((x) => Math.round(x * 127)))]));
      out.response_type = 'embeddings_by_type';
    } else {
      out.embeddings = vecs;
      out.response_type = 'embeddings_floats';
    }
    return { out, tokens };
  }

  async function invoke(req, res, ctx, modelId) {
    const started = Date.now();
    let ans;
    try {
      ans = invokeAnswer(modelId, ctx.body);
    } catch (e) {
      if (e instanceof Invalid) return awsError(res, 400, 'ValidationException', e.message);
      throw e;
    }
    return send(res, 200, ans.out, {
      'x-amzn-requestid': reqId(),
      'x-amzn-bedrock-input-token-count': String(ans.tokens),
      'x-amzn-bedrock-invocation-latency': String(Math.max(1, Date.now() - started)),
    });
  }

  // GET /async-invoke?maxResults=&statusEquals=&sortOrder=&nextToken= (ListAsyncInvokes): a
  // request with a query and no body. Always an empty list (the query is in the request log).
  function listAsyncInvokes(req, res, ctx) {
    if (req.method !== 'GET') return awsError(res, 405, 'UnknownOperationException', `Method ${req.method} not allowed`);
    const mr = ctx.url.searchParams.get('maxResults');
    if (mr !== null && !(/^\d+$/.test(mr) && +mr >= 1 && +mr <= 1000)) return awsError(res, 400, 'ValidationException', `1 validation error detected: Value '${mr}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 1000`);
    return send(res, 200, { asyncInvokeSummaries: [] }, { 'x-amzn-requestid': reqId() });
  }

  async function handle(req, res, ctx) {
    const { path } = ctx;
    const m = /^\/model\/([^/]+)\/(converse|converse-stream|invoke|count-tokens)$/.exec(String(req.url).split('?')[0]);
    const sigErr = verifySigV4(req, ctx);
    if (sigErr) {
      stats.sigv4_failed++;
      return awsError(res, sigErr.status, sigErr.type, sigErr.message, { 'x-mock-sigv4': (sigErr.reason || sigErr.type).replace(/[^\x20-\x7e]/g, '?') });
    }
    stats.sigv4_ok++;
    if (!m && path === '/async-invoke') return listAsyncInvokes(req, res, ctx);
    if (!m) return awsError(res, 404, 'UnknownOperationException', `Unknown operation: ${req.method} ${path}`);
    if (req.method !== 'POST') return awsError(res, 405, 'UnknownOperationException', `Method ${req.method} not allowed`);
    let modelId;
    try { modelId = decodeURIComponent(m[1]); } catch { modelId = m[1]; }
    ctx.entry.modelId = modelId;
    if (m[2] === 'count-tokens') return countTokens(req, res, ctx, modelId);
    const isInvoke = m[2] === 'invoke';
    if (isInvoke) {
      stats.invokes++;
      stats.invoke_inflight++;
      stats.invoke_inflight_max = Math.max(stats.invoke_inflight_max, stats.invoke_inflight);
      try {
        return await handleModel(req, res, ctx, m, modelId, invokeText(ctx.body), isInvoke);
      } finally {
        stats.invoke_inflight--;
      }
    }
    return handleModel(req, res, ctx, m, modelId, isObj(ctx.body) ? userText(ctx.body) : '', isInvoke);
  }

  async function countTokens(req, res, ctx, modelId) {
    const slow = /fault-count-slow-(\d+)/.exec(modelId);
    const st = /fault-count-(\d{3})(?!\d)/.exec(modelId);
    if (slow) {
      await later(Number(slow[1]));
      if (res.destroyed || ctx.closed) return;
    }
    if (st) return awsError(res, Number(st[1]), Number(st[1]) >= 500 ? 'InternalServerException' : 'ValidationException', `Injected status ${st[1]}.`);
    if (ctx.parseError) return awsError(res, 400, 'SerializationException', 'Malformed input request, please reformat your input and try again.');
    const conv = ctx.body?.input?.converse;
    if (!isObj(conv) || !Array.isArray(conv.messages)) return awsError(res, 400, 'ValidationException', '1 validation error detected: Value at \'input.converse.messages\' failed to satisfy constraint: Member must not be null');
    const extra = Object.keys(conv).filter((k) => k !== 'messages' && k !== 'system');
    if (extra.length) return awsError(res, 400, 'ValidationException', `Unknown member(s) in input.converse: ${extra.join(', ')}`);
    try {
      validateConverse({ messages: conv.messages, system: conv.system }, verifySig);
    } catch (e) {
      if (e instanceof Invalid) return awsError(res, 400, 'ValidationException', e.message);
      throw e;
    }
    stats.count_tokens = (stats.count_tokens || 0) + 1;
    return send(res, 200, { inputTokens: cacheUsage({ messages: conv.messages, system: conv.system }, true).total }, { 'x-amzn-requestid': reqId() });
  }

  async function handleModel(req, res, ctx, m, modelId, text, isInvoke) {
    const faults = parseFaults(modelId, req.headers['x-mock-fault'], text);
    const em = /fault-exception-([A-Za-z]+)/.exec(`${modelId} ${req.headers['x-mock-fault'] ?? ''} ${text}`);
    const excType = em ? em[1] : 'throttlingException';
    if (faults.hang) return;
    if (faults.firstByteMs) {
      await later(faults.firstByteMs);
      if (res.destroyed || ctx.closed) return;
    }
    if (faults.status) {
      const [type, msg] = HTTP_ERRORS[faults.status] ?? [faults.status >= 500 ? 'InternalServerException' : 'ValidationException', `Injected status ${faults.status}.`];
      return awsError(res, faults.status, type, msg);
    }
    if (ctx.parseError) return awsError(res, 400, 'SerializationException', 'Malformed input request, please reformat your input and try again.');
    if (isInvoke) return invoke(req, res, ctx, modelId);
    return converse(req, res, ctx, modelId, m[2] === 'converse-stream', faults, excType);
  }

  return base;
}

/** Start the mock in this process. Returns { url, port, accessKeyId, secretAccessKey, region, service, stop(), requests(), clearRequests(), stats(), resetStats() }. */
export async function startBedrockMock(opts = {}) {
  const mock = createBedrockMock(opts);
  const c = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  return startInProcess(mock, {
    port: opts.port ?? 0,
    host: opts.host ?? '127.0.0.1',
    extra: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken, region: c.region, service: c.service },
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runCli('bedrock_mock', process.argv.slice(2), (o) => startBedrockMock({ ...o, maxSkewMs: o.maxSkewMs ? Number(o.maxSkewMs) : undefined }));
}
