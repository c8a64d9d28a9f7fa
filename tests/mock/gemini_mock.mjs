#!/usr/bin/env node
// In-tree mock of Google's Gemini API (AI Studio and Vertex AI paths) and of Google's OAuth token
// endpoint for service accounts, in the real wire formats, for loopback tests. No dependencies.
//
//   import { startGeminiMock } from '../mock/gemini_mock.mjs';
//   const m = await startGeminiMock({ apiKey: 'gm-mock-key' });
//   // m.url, m.port, m.tokenUrl, m.privateKeyPem / m.publicKeyPem (a generated service-account
//   // key pair unless publicKey was given), m.stop(), m.requests(), m.clearRequests(), m.stats()
//   node tests/mock/gemini_mock.mjs [--port 0] [--api-key K] [--public-key @file.pem]  → {"port":N,...}
//
// Options: apiKey (default 'gm-mock-key'), publicKey (PEM of the service account's RSA public key
//   the JWT assertions must verify against; default: a generated pair, private half exposed as
//   privateKeyPem), clientEmail (when set, the assertion's iss must equal it), tokenTtl (seconds,
//   default 3600: minted access tokens expire, then Vertex calls with them get 401),
//   accessTokens (extra static bearer tokens Vertex accepts), anyModel (default false: models not
//   starting with gemini / text-embedding / embedding → 404), sseSeparator (default "\r\n\r\n",
//   as Google's servers send; "\n\n" possible), maxLog.
//
// Endpoints:
//   AI Studio (key in x-goog-api-key or ?key=):   /v1beta/models/{model}:{method}  (and /v1/models/...)
//   Vertex (Authorization: Bearer <minted token>): /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}
//                                                  (and /v1beta1/...)
//   methods: generateContent, streamGenerateContent (?alt=sse: SSE, each `data:` one
//     GenerateContentResponse; without alt=sse: one JSON array of them), countTokens,
//     embedContent, batchEmbedContents (AI Studio), predict (Vertex text embeddings)
//   GET /v1beta/models (AI Studio model list)
//   POST /token  OAuth2 jwt-bearer grant (form: grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer,
//     assertion=<RS256 JWT>): verifies the signature with node:crypto against the public key, and
//     the claims (iss, scope, aud = this endpoint's URL or opts.audience, iat/exp within 1 h and
//     not expired) → {access_token, expires_in, token_type:"Bearer"}; errors as Google's
//     {"error":"invalid_grant","error_description":...} (400). Mints counted in stats.token_mints.
//   GET/DELETE /__requests, /__stats (no auth)
//
// Deterministic behaviour:
//   - Reply "You said: <text of the last user content>"; when the last content holds
//     functionResponse parts: "Tool said: <JSON of each response, joined by ' | '>".
//   - functionCall: when functionDeclarations are given, mode is not NONE, the last content holds
//     no functionResponse, and the user text contains "use tool" / "parallel tools" or the mode is
//     ANY. Tool choice: allowedFunctionNames / a declared name in the text / the first.
//     "parallel tools" → two functionCall parts. args = toolArgs(name, text). finishReason STOP.
//   - Thinking: thinkingConfig.includeThoughts → a first part {text:"Thinking about: <text>",
//     thought:true}; thinking on (thinkingConfig with thinkingBudget != 0, or a gemini-2.5 / gemini-3
//     model) → usageMetadata.thoughtsTokenCount and a thoughtSignature on the first functionCall
//     part. gemini-3* models: a functionCall part of the current turn without thoughtSignature → 400.
//   - Implicit cache: the longest prefix (systemInstruction, tools, contents[0..k), k < n) this
//     instance has seen before → usageMetadata.cachedContentTokenCount = its tokens
//     (promptTokenCount includes them, as Gemini reports). An explicit cachedContent → 64 cached tokens.
//   - Tokens: ceil(chars/4) of the texts; one candidate token per word / per functionCall.
//   - maxOutputTokens below the reply's words: cut, finishReason MAX_TOKENS; stopSequences: cut, STOP.
//     candidateCount n → n identical candidates (index 0..n-1).
// Faults: as openai_mock (model "gemini-2.5-flash+fault-429", x-mock-fault header, or the user
//   text): fault-400/401/403/404/429/500/503/504 in Google's error shape
//   {"error":{"code","message","status","details"?}}, fault-hang, fault-slow-first-byte-<ms>,
//   fault-trickle-<ms>, fault-stall-after-<n>, fault-reset-after-<n>, fault-truncate-after-<n>,
//   fault-error-after-<n> (an SSE data: {"error":{...}} then the end), fault-malformed.
//
// Validated like the real API (400 INVALID_ARGUMENT): unknown fields anywhere in the request
// ('Invalid JSON payload received. Unknown name "messages": Cannot find field.'; lowerCamel and
// snake_case both accepted, as proto JSON does), contents required and parts non-empty, a part
// with exactly one data field, role user/model, functionCall only in model turns, a function call
// turn only after a user / function response turn, a function response turn right after a
// function call turn with as many responses as calls and matching names, function declaration
// names, Schema members of `parameters` (OpenAPI subset: additionalProperties, $schema, $ref ...
// are unknown fields; parametersJsonSchema takes full JSON Schema), generationConfig ranges
// (temperature 0..2, topP 0..1, candidateCount 1..8), functionCallingConfig mode.
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  createServer, startInProcess, runCli, parseFaults, tokensOf, splitWords, embeddingOf, rid,
} from './lib/common.mjs';

export const DEFAULT_API_KEY = 'gm-mock-key';
const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);

export const GEMINI_MODELS = [
  { name: 'models/gemini-2.5-flash', version: '001', displayName: 'Gemini 2.5 Flash', inputTokenLimit: 1048576, outputTokenLimit: 65536, supportedGenerationMethods: ['generateContent', 'countTokens', 'createCachedContent', 'batchGenerateContent'], thinking: true },
  { name: 'models/gemini-2.5-pro', version: '2.5', displayName: 'Gemini 2.5 Pro', inputTokenLimit: 1048576, outputTokenLimit: 65536, supportedGenerationMethods: ['generateContent', 'countTokens', 'createCachedContent', 'batchGenerateContent'], thinking: true },
  { name: 'models/gemini-2.0-flash', version: '2.0', displayName: 'Gemini 2.0 Flash', inputTokenLimit: 1048576, outputTokenLimit: 8192, supportedGenerationMethods: ['generateContent', 'countTokens', 'createCachedContent', 'batchGenerateContent'] },
  { name: 'models/gemini-embedding-001', version: '001', displayName: 'Gemini Embedding 001', inputTokenLimit: 2048, outputTokenLimit: 1, supportedGenerationMethods: ['embedContent', 'countTextTokens', 'countTokens'] },
  { name: 'models/text-embedding-004', version: '004', displayName: 'Text Embedding 004', inputTokenLimit: 2048, outputTokenLimit: 1, supportedGenerationMethods: ['embedContent'] },
];

// ---------------------------------------------------------------------------------------------
// Deterministic helpers (exported)
// ---------------------------------------------------------------------------------------------

const partsText = (parts) => (Array.isArray(parts) ? parts.filter((p) => isObj(p) && typeof p.text === 'string' && !p.thought).map((p) => p.text).join('') : '');

function lastUserContent(body) {
  const cs = Array.isArray(body?.contents) ? body.contents : [];
  for (let i = cs.length - 1; i >= 0; i--) if (isObj(cs[i]) && (cs[i].role ?? 'user') === 'user') return cs[i];
  return null;
}
const responsesOf = (c) => (c && Array.isArray(c.parts) ? c.parts.filter((p) => isObj(p) && isObj(p.functionResponse)) : []);

export function userText(body) {
  const c = lastUserContent(body);
  return c ? partsText(c.parts) : '';
}

export function replyText(body) {
  const c = lastUserContent(body);
  const rs = responsesOf(c);
  if (rs.length) return `Tool said: ${rs.map((p) => JSON.stringify(p.functionResponse.response ?? {})).join(' | ')}`;
  if (!c) return 'Hello from the mock.';
  return `You said: ${partsText(c.parts)}`;
}

export function toolArgs(name, text) {
  return { tool: name, query: text, n: 42, nested: { ok: true, list: [1, 2, 3] } };
}

export const thinkingText = (body) => `Thinking about: ${userText(body)}`;

/** Function names the mock calls ([] = none). Body must be camelCase (normalize() first). */
export function functionCallsFor(body) {
  const decls = [];
  for (const t of Array.isArray(body.tools) ? body.tools : []) {
    if (isObj(t) && Array.isArray(t.functionDeclarations)) decls.push(...t.functionDeclarations.filter((d) => isObj(d) && d.name));
  }
  const fcc = body.toolConfig?.functionCallingConfig ?? {};
  const mode = fcc.mode ?? 'AUTO';
  if (!decls.length || mode === 'NONE') return [];
  if (responsesOf(lastUserContent(body)).length) return [];
  const text = userText(body);
  const lower = text.toLowerCase();
  const parallel = lower.includes('parallel tools');
  if (!(parallel || lower.includes('use tool') || mode === 'ANY')) return [];
  let chosen = decls;
  if (Array.isArray(fcc.allowedFunctionNames) && fcc.allowedFunctionNames.length) chosen = decls.filter((d) => fcc.allowedFunctionNames.includes(d.name));
  const named = chosen.filter((d) => text.includes(d.name));
  if (named.length) chosen = [...named, ...chosen.filter((d) => !named.includes(d))];
  return chosen.slice(0, parallel ? Math.min(2, chosen.length) : 1).map((d) => d.name);
}

// ---------------------------------------------------------------------------------------------
// Field names: proto JSON accepts lowerCamel and snake_case. normalize() turns keys to camelCase
// (leaving free-form values alone) and validates every name against the message's fields.
// ---------------------------------------------------------------------------------------------

const camel = (k) => k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
const snake = (k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

const SCHEMA = ['type', 'format', 'title', 'description', 'nullable', 'enum', 'maxItems', 'minItems', 'properties', 'required',
  'minProperties', 'maxProperties', 'minLength', 'maxLength', 'pattern', 'example', 'anyOf', 'propertyOrdering', 'default',
  'items', 'minimum', 'maximum'];
const FIELDS = {
  GenerateContentRequest: { model: 0, contents: 'Content[]', tools: 'Tool[]', toolConfig: 'ToolConfig', safetySettings: 'SafetySetting[]', systemInstruction: 'Content', generationConfig: 'GenerationConfig', cachedContent: 0, labels: '*', modelArmorConfig: '*' },
  CountTokensRequest: { contents: 'Content[]', generateContentRequest: 'GenerateContentRequest', model: 0, tools: 'Tool[]', systemInstruction: 'Content', generationConfig: 'GenerationConfig' },
  Content: { role: 0, parts: 'Part[]' },
  Part: { text: 0, inlineData: 'Blob', fileData: 'FileData', functionCall: 'FunctionCall', functionResponse: 'FunctionResponse', executableCode: '*', codeExecutionResult: '*', thought: 0, thoughtSignature: 0, videoMetadata: '*', mediaResolution: '*', partMetadata: '*' },
  Blob: { mimeType: 0, data: 0 },
  FileData: { mimeType: 0, fileUri: 0 },
  FunctionCall: { id: 0, name: 0, args: '*' },
  FunctionResponse: { id: 0, name: 0, response: '*', parts: '*', willContinue: 0, scheduling: 0 },
  Tool: { functionDeclarations: 'FunctionDeclaration[]', googleSearch: '*', googleSearchRetrieval: '*', codeExecution: '*', urlContext: '*', retrieval: '*', computerUse: '*', fileSearch: '*', googleMaps: '*', enterpriseWebSearch: '*' },
  FunctionDeclaration: { name: 0, description: 0, parameters: 'Schema', parametersJsonSchema: '*', response: 'Schema', responseJsonSchema: '*', behavior: 0 },
  Schema: Object.fromEntries(SCHEMA.map((k) => [k, ['properties'].includes(k) ? 'Schema{}' : ['items'].includes(k) ? 'Schema' : k === 'anyOf' ? 'Schema[]' : k === 'example' || k === 'default' ? '*' : 0])),
  ToolConfig: { functionCallingConfig: 'FunctionCallingConfig', retrievalConfig: '*' },
  FunctionCallingConfig: { mode: 0, allowedFunctionNames: 0 },
  SafetySetting: { category: 0, threshold: 0, method: 0 },
  GenerationConfig: { stopSequences: 0, responseMimeType: 0, responseSchema: 'Schema', responseJsonSchema: '*', responseModalities: 0, candidateCount: 0, maxOutputTokens: 0, temperature: 0, topP: 0, topK: 0, seed: 0, presencePenalty: 0, frequencyPenalty: 0, responseLogprobs: 0, logprobs: 0, enableEnhancedCivicAnswers: 0, speechConfig: '*', thinkingConfig: 'ThinkingConfig', mediaResolution: 0, imageConfig: '*', routingConfig: '*', audioTimestamp: 0 },
  ThinkingConfig: { includeThoughts: 0, thinkingBudget: 0, thinkingLevel: 0 },
  EmbedContentRequest: { model: 0, content: 'Content', taskType: 0, title: 0, outputDimensionality: 0, autoTruncate: 0 },
  BatchEmbedContentsRequest: { requests: 'EmbedContentRequest[]' },
  PredictRequest: { instances: '*', parameters: '*' },
};

class Invalid extends Error {
  constructor(message, fieldViolation) { super(message); this.fieldViolation = fieldViolation; }
}
const bad = (msg, fv) => { throw new Invalid(msg, fv); };

/** Normalize keys to camelCase, rejecting unknown names like the proto JSON parser. */
export function normalize(value, type, path = '') {
  if (type === '*' || type === 0) return value;
  if (type.endsWith('[]')) {
    if (value === undefined || value === null) return value;
    if (!Array.isArray(value)) bad(`Invalid value at '${path}' (type.googleapis.com/google.ai.generativelanguage.v1beta.${type.slice(0, -2)}), ${JSON.stringify(value)}`);
    return value.map((v, i) => normalize(v, type.slice(0, -2), `${path}[${i}]`));
  }
  if (type.endsWith('{}')) {
    if (!isObj(value)) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v, type.slice(0, -2), `${path}[${JSON.stringify(k).slice(1, -1)}].value`)]));
  }
  if (value === undefined || value === null) return value;
  if (!isObj(value)) bad(`Invalid value at '${path}' (type.googleapis.com/google.ai.generativelanguage.v1beta.${type}), ${JSON.stringify(value)}`);
  const fields = FIELDS[type];
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    const ck = camel(k);
    if (!(ck in fields)) {
      const at = path ? ` at '${path}'` : '';
      bad(`Invalid JSON payload received. Unknown name "${k}"${at}: Cannot find field.`, { field: path, description: `Invalid JSON payload received. Unknown name "${k}"${at}: Cannot find field.` });
    }
    out[ck] = normalize(v, fields[ck], path ? `${path}.${snake(ck)}` : snake(ck));
  }
  return out;
}

const PART_DATA = ['text', 'inlineData', 'fileData', 'functionCall', 'functionResponse', 'executableCode', 'codeExecutionResult'];
const FN_NAME = /^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$/;
const GEN = 'GenerateContentRequest';

function validateGenerate(body, { model, signatureRequired }) {
  if (!Array.isArray(body.contents) || !body.contents.length) bad(`* ${GEN}.contents: contents is not specified\n`);
  const declared = new Set();
  (body.tools ?? []).forEach((t, i) => {
    (t.functionDeclarations ?? []).forEach((d, j) => {
      if (typeof d.name !== 'string' || !FN_NAME.test(d.name)) {
        bad(`* ${GEN}.tools[${i}].function_declarations[${j}].name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.\n`);
      }
      if (d.parameters && d.parametersJsonSchema) bad(`* ${GEN}.tools[${i}].function_declarations[${j}]: parameters and parameters_json_schema cannot both be set.\n`);
      const checkType = (s, p) => {
        if (!isObj(s)) return;
        if (s.type !== undefined && !['STRING', 'NUMBER', 'INTEGER', 'BOOLEAN', 'ARRAY', 'OBJECT', 'NULL', 'TYPE_UNSPECIFIED'].includes(String(s.type).toUpperCase())) {
          bad(`Invalid value at '${p}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), "${s.type}"`);
        }
        if (String(s.type).toUpperCase() === 'OBJECT' && s.properties && !Object.keys(s.properties).length) {
          bad(`* ${GEN}.${p}.properties: should be non-empty for OBJECT type\n`);
        }
        for (const [k, v] of Object.entries(s.properties ?? {})) checkType(v, `${p}.properties[${k}].value`);
        if (s.items) checkType(s.items, `${p}.items`);
      };
      checkType(d.parameters, `tools[${i}].function_declarations[${j}].parameters`);
      declared.add(d.name);
    });
  });
  const gc = body.generationConfig ?? {};
  if (gc.temperature !== undefined && (typeof gc.temperature !== 'number' || gc.temperature < 0 || gc.temperature > 2)) bad(`* ${GEN}.generation_config.temperature: temperature must be in the range [0.0, 2.0]\n`);
  if (gc.topP !== undefined && (typeof gc.topP !== 'number' || gc.topP < 0 || gc.topP > 1)) bad(`* ${GEN}.generation_config.top_p: top_p must be in the range [0.0, 1.0]\n`);
  if (gc.candidateCount !== undefined && (!Number.isInteger(gc.candidateCount) || gc.candidateCount < 1 || gc.candidateCount > 8)) bad(`* ${GEN}.generation_config.candidate_count: candidate_count must be in the range [1, 8]\n`);
  if (gc.maxOutputTokens !== undefined && (!Number.isInteger(gc.maxOutputTokens) || gc.maxOutputTokens < 1)) bad(`* ${GEN}.generation_config.max_output_tokens: max_output_tokens must be positive\n`);
  if (gc.stopSequences !== undefined && (!Array.isArray(gc.stopSequences) || gc.stopSequences.length > 5)) bad(`* ${GEN}.generation_config.stop_sequences: at most 5 stop sequences are allowed\n`);
  if (gc.responseSchema && gc.responseMimeType !== 'application/json' && gc.responseMimeType !== 'text/x.enum') bad(`* ${GEN}.generation_config.response_mime_type: response_mime_type must be application/json or text/x.enum when response_schema is set\n`);
  const mode = body.toolConfig?.functionCallingConfig?.mode;
  if (mode !== undefined && !['MODE_UNSPECIFIED', 'AUTO', 'ANY', 'NONE', 'VALIDATED'].includes(mode)) bad(`Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), "${mode}"`);
  for (const n of body.toolConfig?.functionCallingConfig?.allowedFunctionNames ?? []) {
    if (!declared.has(n)) bad(`* ${GEN}.tool_config.function_calling_config.allowed_function_names: ${n} is not a declared function\n`);
  }
  if (body.systemInstruction) {
    const si = body.systemInstruction;
    if (!Array.isArray(si.parts) || !si.parts.length) bad(`* ${GEN}.system_instruction.parts: contents.parts must not be empty.\n`);
  }
  // contents
  let lastUserTextIdx = -1;
  body.contents.forEach((c, i) => {
    if (!isObj(c)) bad(`Invalid value at 'contents[${i}]'`);
    const role = c.role ?? 'user';
    if (role !== 'user' && role !== 'model') bad('Please use a valid role: user, model.');
    if (!Array.isArray(c.parts) || !c.parts.length) bad(`* ${GEN}.contents[${i}].parts: contents.parts must not be empty.\n`);
    c.parts.forEach((p, j) => {
      const data = PART_DATA.filter((k) => p[k] !== undefined);
      if (data.length !== 1) {
        bad(data.length ? `* ${GEN}.contents[${i}].parts[${j}].data: oneof field 'data' is already set. Cannot set '${data[1]}'\n` : `* ${GEN}.contents[${i}].parts[${j}].data: required oneof field 'data' must have one initialized field\n`);
      }
      if (p.functionCall) {
        if (role !== 'model') bad(`* ${GEN}.contents[${i}].parts[${j}].function_call: function_call can only be set in a model turn\n`);
        if (typeof p.functionCall.name !== 'string' || !p.functionCall.name) bad(`* ${GEN}.contents[${i}].parts[${j}].function_call.name: Name cannot be empty.\n`);
        if (p.functionCall.args !== undefined && !isObj(p.functionCall.args)) bad(`Invalid value at 'contents[${i}].parts[${j}].function_call.args' (type.googleapis.com/google.protobuf.Struct), ${JSON.stringify(p.functionCall.args)}`);
      }
      if (p.functionResponse) {
        if (typeof p.functionResponse.name !== 'string' || !p.functionResponse.name) bad(`* ${GEN}.contents[${i}].parts[${j}].function_response.name: Name cannot be empty.\n`);
        if (p.functionResponse.response !== undefined && !isObj(p.functionResponse.response)) bad(`Invalid value at 'contents[${i}].parts[${j}].function_response.response' (type.googleapis.com/google.protobuf.Struct), ${JSON.stringify(p.functionResponse.response)}`);
      }
      if (p.inlineData && (typeof p.inlineData.data !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(p.inlineData.data))) bad(`Invalid value at 'contents[${i}].parts[${j}].inline_data.data' (TYPE_BYTES), Base64 decoding failed for "${String(p.inlineData.data).slice(0, 40)}"`);
      if (p.thoughtSignature !== undefined && (typeof p.thoughtSignature !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(p.thoughtSignature))) bad(`Invalid value at 'contents[${i}].parts[${j}].thought_signature' (TYPE_BYTES), Base64 decoding failed for "${String(p.thoughtSignature).slice(0, 40)}"`);
    });
    const calls = c.parts.filter((p) => p.functionCall);
    const resps = c.parts.filter((p) => p.functionResponse);
    const prev = body.contents[i - 1];
    const prevCalls = prev && (prev.role ?? 'user') === 'model' ? prev.parts.filter((p) => p.functionCall) : [];
    if (resps.length) {
      if (!prevCalls.length) bad('Please ensure that function response turn comes immediately after a function call turn.');
      if (resps.length !== prevCalls.length) bad('Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.');
      const names = prevCalls.map((p) => p.functionCall.name).sort().join(',');
      if (resps.map((p) => p.functionResponse.name).sort().join(',') !== names) bad('Please ensure that function response parts have the same names as the function call parts of the function call turn.');
    } else if (role === 'user') {
      if (prevCalls.length) bad('Please ensure that function response turn comes immediately after a function call turn.');
      lastUserTextIdx = i;
    }
    if (calls.length) {
      const prevRole = prev ? prev.role ?? 'user' : null;
      if (prevRole !== 'user') bad('Please ensure that function call turn comes immediately after a user turn or after a function response turn.');
    }
  });
  if (signatureRequired) {
    for (let i = lastUserTextIdx + 1; i < body.contents.length; i++) {
      const c = body.contents[i];
      if ((c.role ?? 'user') !== 'model') continue;
      const k = c.parts.findIndex((p) => p.functionCall);
      if (k >= 0 && !c.parts[k].thoughtSignature) {
        bad(`Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call \`default_api:${c.parts[k].functionCall.name}\` , position ${k + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.`);
      }
    }
  }
  void model;
}

// ---------------------------------------------------------------------------------------------
// JWT (RS256) for the token endpoint
// ---------------------------------------------------------------------------------------------

const b64urlJson = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));

/** Verify a service-account JWT assertion; returns claims or throws Error(description). */
export function verifyAssertion(jwt, publicKey, { audiences, clientEmail, now = Math.floor(Date.now() / 1000) }) {
  const parts = String(jwt).split('.');
  if (parts.length !== 3) throw new Error('Invalid JWT: malformed assertion');
  let header;
  let claims;
  try { header = b64urlJson(parts[0]); claims = b64urlJson(parts[1]); } catch { throw new Error('Invalid JWT: malformed assertion'); }
  if (header.alg !== 'RS256') throw new Error(`Invalid JWT: unsupported alg ${header.alg}`);
  const ok = crypto.verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), publicKey, Buffer.from(parts[2], 'base64url'));
  if (!ok) throw new Error('Invalid JWT Signature.');
  if (typeof claims.iss !== 'string' || !claims.iss) throw new Error('Invalid JWT: No iss claim.');
  if (clientEmail && claims.iss !== clientEmail) throw new Error('Invalid JWT Signature.');
  if (!audiences.includes(claims.aud)) throw new Error(`Invalid JWT: Failed audience check. The right audience is ${audiences[0]}`);
  if (!Number.isInteger(claims.iat) || !Number.isInteger(claims.exp) || claims.exp - claims.iat > 3600 || claims.exp <= now || claims.iat > now + 300) {
    throw new Error('Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.');
  }
  if (typeof claims.scope !== 'string' || !claims.scope.trim()) throw new Error('Invalid OAuth scope or ID token audience provided.');
  return claims;
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

const STATUS = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 409: 'ABORTED', 429: 'RESOURCE_EXHAUSTED', 499: 'CANCELLED', 500: 'INTERNAL', 501: 'NOT_IMPLEMENTED', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED' };
const MESSAGES = {
  400: 'Request contains an invalid argument.',
  401: 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
  403: 'The caller does not have permission',
  404: 'Requested entity was not found.',
  429: 'You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.',
  500: 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting',
  503: 'The model is overloaded. Please try again later.',
  504: 'The request timed out. Please try again.',
};

export function googleError(code, message, details) {
  const e = { code, message, status: STATUS[code] || (code >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT') };
  if (details) e.details = details;
  return { error: e };
}

export function createGeminiMock(opts = {}) {
  const apiKey = opts.apiKey ?? DEFAULT_API_KEY;
  const anyModel = !!opts.anyModel;
  const sep = opts.sseSeparator ?? '\r\n\r\n';
  const tokenTtl = opts.tokenTtl ?? 3600;
  let publicKey = opts.publicKey;
  let privateKeyPem = null;
  if (!publicKey) {
    const kp = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    publicKey = kp.publicKey.export({ type: 'spki', format: 'pem' });
    privateKeyPem = kp.privateKey.export({ type: 'pkcs8', format: 'pem' });
  }
  const publicKeyPem = typeof publicKey === 'string' ? publicKey : publicKey.export({ type: 'spki', format: 'pem' });
  const tokens = new Map(); // access token → { exp, iss, scope }
  for (const t of opts.accessTokens ?? []) tokens.set(t, { exp: Infinity, iss: 'static' });
  const prefixSeen = new Set();
  const sigSecret = crypto.randomBytes(16);

  const base = createServer({ name: 'gemini_mock', maxLog: opts.maxLog, extraStats: { token_mints: 0, token_errors: 0, auth_failures: 0, cache_hits: 0 }, handle });
  const { stats, send, later } = base;

  const gErr = (res, code, message, details) => {
    if (code === 401 || code === 403) stats.auth_failures++;
    send(res, code, googleError(code, message, details), { 'content-type': 'application/json; charset=UTF-8', vary: 'Origin, X-Origin, Referer' });
  };

  function tokenEndpoint(req, res, ctx) {
    const f = isObj(ctx.body) ? ctx.body : {};
    const fail = (error, description, status = 400) => {
      stats.token_errors++;
      send(res, status, { error, error_description: description });
    };
    if (req.method !== 'POST') return fail('invalid_request', 'Method not allowed', 405);
    if (!String(req.headers['content-type'] || '').startsWith('application/x-www-form-urlencoded')) return fail('invalid_request', 'Content-Type must be application/x-www-form-urlencoded');
    if (f.grant_type !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return fail('unsupported_grant_type', `Invalid grant_type: ${f.grant_type ?? ''}`);
    if (!f.assertion) return fail('invalid_request', 'Missing required parameter: assertion');
    const audiences = [`http://${req.headers.host}/token`, ...(opts.audience ? [opts.audience] : [])];
    let claims;
    try {
      claims = verifyAssertion(f.assertion, publicKey, { audiences, clientEmail: opts.clientEmail });
    } catch (e) {
      return fail(/scope/.test(e.message) ? 'invalid_scope' : 'invalid_grant', e.message);
    }
    const token = `ya29.mock-${crypto.randomBytes(24).toString('base64url')}`;
    tokens.set(token, { exp: Date.now() + tokenTtl * 1000, iss: claims.iss, scope: claims.scope });
    stats.token_mints++;
    ctx.entry.minted = { iss: claims.iss, scope: claims.scope };
    return send(res, 200, { access_token: token, expires_in: Math.max(0, tokenTtl - 1), token_type: 'Bearer' }, { 'cache-control': 'no-cache, no-store, max-age=0, must-revalidate', pragma: 'no-cache' });
  }

  const signatureOf = (s) => crypto.createHmac('sha256', sigSecret).update(s).digest('base64');

  function thinkingOn(body, model) {
    const tc = body.generationConfig?.thinkingConfig;
    if (tc && tc.thinkingBudget === 0) return false;
    if (tc && (tc.includeThoughts || tc.thinkingBudget || tc.thinkingLevel)) return true;
    return /gemini-(2\.5|3)/.test(model);
  }

  function promptChars(body) {
    let n = 0;
    const add = (c) => {
      for (const p of c?.parts ?? []) {
        if (typeof p.text === 'string') n += p.text.length;
        if (p.functionCall) n += JSON.stringify(p.functionCall).length;
        if (p.functionResponse) n += JSON.stringify(p.functionResponse).length;
        if (p.inlineData) n += 1032; // ~258 tokens, like an image
      }
    };
    add(body.systemInstruction);
    for (const c of body.contents ?? []) add(c);
    for (const t of body.tools ?? []) n += JSON.stringify(t).length;
    return n;
  }

  function generate(body, model) {
    const thinking = thinkingOn(body, model);
    const include = !!body.generationConfig?.thinkingConfig?.includeThoughts;
    const text = userText(body);
    const calls = functionCallsFor(body);
    const promptTokens = tokensOf(promptChars(body));
    let cached = 0;
    // implicit cache: the longest earlier-seen prefix (systemInstruction, tools, contents[0..k))
    const prefixHash = (k) => crypto.createHash('sha256').update(JSON.stringify({ s: body.systemInstruction ?? null, t: body.tools ?? null, c: body.contents.slice(0, k), m: model })).digest('hex');
    if (body.cachedContent) cached = Math.min(64, promptTokens);
    else {
      for (let k = body.contents.length - 1; k >= 1; k--) {
        if (prefixSeen.has(prefixHash(k))) {
          cached = Math.min(promptTokens, tokensOf(promptChars({ systemInstruction: body.systemInstruction, tools: body.tools, contents: body.contents.slice(0, k) })));
          stats.cache_hits++;
          break;
        }
      }
    }
    for (let k = 1; k <= body.contents.length; k++) prefixSeen.add(prefixHash(k));
    const thoughtWords = thinking ? splitWords(thinkingText(body)) : [];
    const chunks = []; // arrays of parts, one per stream chunk
    if (include) chunks.push([{ text: thinkingText(body), thought: true }]);
    let finishReason = 'STOP';
    let candidateTokens;
    if (calls.length) {
      const parts = calls.map((name) => ({ functionCall: { name, args: toolArgs(name, text) } }));
      if (thinking) parts[0].thoughtSignature = signatureOf(`${calls[0]}${text}`);
      chunks.push(parts);
      candidateTokens = calls.length;
    } else {
      let reply = replyText(body);
      for (const s of body.generationConfig?.stopSequences ?? []) {
        const at = reply.indexOf(s);
        if (at >= 0) reply = reply.slice(0, at);
      }
      let words = splitWords(reply);
      const max = body.generationConfig?.maxOutputTokens;
      if (max !== undefined && words.length > max) { words = words.slice(0, max); finishReason = 'MAX_TOKENS'; }
      for (let i = 0; i < words.length; i += 2) chunks.push([{ text: words.slice(i, i + 2).join('') }]);
      candidateTokens = words.length;
    }
    const usage = {
      promptTokenCount: promptTokens,
      candidatesTokenCount: candidateTokens,
      totalTokenCount: promptTokens + candidateTokens + thoughtWords.length,
      promptTokensDetails: [{ modality: 'TEXT', tokenCount: promptTokens }],
    };
    if (cached) {
      usage.cachedContentTokenCount = cached;
      usage.cacheTokensDetails = [{ modality: 'TEXT', tokenCount: cached }];
    }
    if (thoughtWords.length) usage.thoughtsTokenCount = thoughtWords.length;
    return { chunks, finishReason, usage };
  }

  async function generateContent(req, res, ctx, model, streaming, faults, vertex) {
    const isSse = ctx.url.searchParams.get('alt') === 'sse';
    let body;
    try {
      body = normalize(ctx.body, 'GenerateContentRequest');
      validateGenerate(body, { model, signatureRequired: /gemini-3/.test(model) });
    } catch (e) {
      if (e instanceof Invalid) {
        return gErr(res, 400, e.message, e.fieldViolation ? [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [e.fieldViolation] }] : undefined);
      }
      throw e;
    }
    const g = generate(body, model);
    const n = body.generationConfig?.candidateCount ?? 1;
    const responseId = crypto.randomBytes(12).toString('base64url');
    const meta = vertex ? { modelVersion: model, createTime: new Date().toISOString(), responseId } : { modelVersion: model, responseId };
    const headers = { 'content-type': 'application/json; charset=UTF-8', vary: 'Origin, X-Origin, Referer', 'server-timing': 'gfet4t7; dur=1' };
    if (!streaming) {
      if (faults.malformed) return send(res, 200, '{"candidates": [{"content": {"parts": [{"text": "trunc', headers);
      const parts = g.chunks.flat();
      // consecutive text parts of the same kind are merged in the non-stream answer
      const merged = [];
      for (const p of parts) {
        const prev = merged.at(-1);
        if (prev && typeof p.text === 'string' && typeof prev.text === 'string' && !!p.thought === !!prev.thought && !prev.thoughtSignature) prev.text += p.text;
        else merged.push({ ...p });
      }
      const candidates = Array.from({ length: n }, (_, index) => ({ content: { parts: structuredClone(merged), role: 'model' }, finishReason: g.finishReason, index }));
      return send(res, 200, { candidates, usageMetadata: g.usage, ...meta }, headers);
    }
    const partial = { promptTokenCount: g.usage.promptTokenCount, totalTokenCount: g.usage.promptTokenCount, promptTokensDetails: g.usage.promptTokensDetails };
    const events = g.chunks.map((parts, i) => {
      const last = i === g.chunks.length - 1;
      const candidates = Array.from({ length: n }, (_, index) => {
        const c = { content: { parts, role: 'model' }, index };
        if (last) c.finishReason = g.finishReason;
        return c;
      });
      return { candidates, usageMetadata: last ? g.usage : partial, ...meta };
    });
    if (!isSse) {
      // streamGenerateContent without alt=sse: one JSON array, elements written as they come
      const texts = events.map((e, i) => `${i === 0 ? '[' : ',\r\n'}${JSON.stringify(e, null, 0)}`);
      texts.push(']');
      return base.stream(req, res, ctx, texts, {
        faults,
        headers: { ...headers },
        errorEvent: () => `,\r\n${JSON.stringify(googleError(503, MESSAGES[503]))}]`,
        malformedEvent: ',{"candidates": [',
      });
    }
    return base.stream(req, res, ctx, events.map((e) => `data: ${JSON.stringify(e)}${sep}`), {
      faults,
      headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', vary: 'Origin, X-Origin, Referer', 'server-timing': 'gfet4t7; dur=1' },
      errorEvent: () => `data: ${JSON.stringify(googleError(503, MESSAGES[503]))}${sep}`,
      malformedEvent: `data: {"candidates": [{"content": {${sep}`,
    });
  }

  function embed(res, body, model, type) {
    const one = (r, path) => {
      const text = partsText(r.content?.parts);
      if (!r.content || !Array.isArray(r.content.parts) || !r.content.parts.length) bad(`* EmbedContentRequest.${path}content.parts: contents.parts must not be empty.\n`);
      const dims = Number.isInteger(r.outputDimensionality) && r.outputDimensionality > 0 ? Math.min(r.outputDimensionality, 3072) : 8;
      return embeddingOf(text, dims);
    };
    try {
      if (type === 'embedContent') {
        const b = normalize(body, 'EmbedContentRequest');
        return send(res, 200, { embedding: { values: one(b, '') } });
      }
      if (type === 'batchEmbedContents') {
        const b = normalize(body, 'BatchEmbedContentsRequest');
        if (!Array.isArray(b.requests) || !b.requests.length) bad('* BatchEmbedContentsRequest.requests: requests is not specified\n');
        const embeddings = b.requests.map((r, i) => {
          if (r.model !== `models/${model}`) bad(`* BatchEmbedContentsRequest.requests[${i}].model: Model in the request (${r.model}) does not match the model in the URL (models/${model}).\n`);
          return { values: one(r, `requests[${i}].`) };
        });
        return send(res, 200, { embeddings });
      }
      // Vertex predict
      const b = normalize(body, 'PredictRequest');
      if (!Array.isArray(b.instances) || !b.instances.length) bad('instances must be a non-empty list');
      const dims = Number.isInteger(b.parameters?.outputDimensionality) ? b.parameters.outputDimensionality : 8;
      let chars = 0;
      const predictions = b.instances.map((inst, i) => {
        if (!isObj(inst) || typeof inst.content !== 'string') bad(`instances[${i}].content must be a string`);
        chars += inst.content.length;
        return { embeddings: { values: embeddingOf(inst.content, dims), statistics: { truncated: false, token_count: tokensOf(inst.content.length) } } };
      });
      return send(res, 200, { predictions, metadata: { billableCharacterCount: chars } });
    } catch (e) {
      if (e instanceof Invalid) return gErr(res, 400, e.message);
      throw e;
    }
  }

  function countTokens(res, body) {
    let b;
    try {
      b = normalize(body, 'CountTokensRequest');
      if (b.generateContentRequest) b = b.generateContentRequest;
    } catch (e) {
      if (e instanceof Invalid) return gErr(res, 400, e.message);
      throw e;
    }
    const total = tokensOf(promptChars(b));
    return send(res, 200, { totalTokens: total, promptTokensDetails: [{ modality: 'TEXT', tokenCount: total }] });
  }

  async function handle(req, res, ctx) {
    const { path } = ctx;
    if (path === '/token') return tokenEndpoint(req, res, ctx);

    let m;
    let vertex = false;
    let model;
    let method;
    if ((m = /^\/(v1|v1beta)\/models\/([^/:]+):([A-Za-z]+)$/.exec(path))) {
      [, , model, method] = m;
    } else if ((m = /^\/(v1|v1beta1)\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/google\/models\/([^/:]+):([A-Za-z]+)$/.exec(path))) {
      vertex = true;
      model = m[4];
      method = m[5];
      ctx.entry.vertex = { project: m[2], location: m[3] };
    } else if (path === '/v1beta/models' || path === '/v1/models') {
      method = 'list';
    } else {
      return gErr(res, 404, `Method not found: ${req.method} ${path}`);
    }
    model = model && decodeURIComponent(model);

    // auth
    if (vertex) {
      const auth = String(req.headers.authorization || '');
      const tok = auth.startsWith('Bearer ') ? auth.slice(7) : null;
      const t = tok && tokens.get(tok);
      if (!t) return gErr(res, 401, MESSAGES[401], [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: tok ? 'ACCESS_TOKEN_TYPE_UNSUPPORTED' : 'CREDENTIALS_MISSING', domain: 'googleapis.com', metadata: { service: 'aiplatform.googleapis.com', method: `google.cloud.aiplatform.v1.PredictionService.${method[0].toUpperCase()}${method.slice(1)}` } }]);
      if (t.exp <= Date.now()) return gErr(res, 401, MESSAGES[401], [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'ACCESS_TOKEN_EXPIRED', domain: 'googleapis.com', metadata: { service: 'aiplatform.googleapis.com' } }]);
    } else {
      const k = req.headers['x-goog-api-key'] ?? ctx.url.searchParams.get('key');
      if (!k) return gErr(res, 403, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.");
      if (k !== apiKey) return gErr(res, 400, 'API key not valid. Please pass a valid API key.', [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com', metadata: { service: 'generativelanguage.googleapis.com' } }]);
    }
    if (method === 'list') {
      if (req.method !== 'GET') return gErr(res, 404, `Method not found: ${req.method} ${path}`);
      return send(res, 200, { models: GEMINI_MODELS.map(({ thinking, ...x }) => ({ ...x, description: x.displayName, ...(thinking ? { thinking: true } : {}) })) });
    }
    if (req.method !== 'POST') return gErr(res, 404, `Method not found: ${req.method} ${path}`);

    const body = ctx.body;
    const text = isObj(body) ? userText(normalizeQuiet(body)) : '';
    const faults = parseFaults(model, req.headers['x-mock-fault'], text);
    if (faults.hang) return;
    if (faults.firstByteMs) {
      await later(faults.firstByteMs);
      if (res.destroyed || ctx.closed) return;
    }
    if (faults.status) {
      const details = faults.status === 429 ? [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '1s' }] : undefined;
      return gErr(res, faults.status, MESSAGES[faults.status] || `Injected status ${faults.status}.`, details);
    }
    if (ctx.parseError) return gErr(res, 400, `Invalid JSON payload received. Unexpected token.\n${ctx.entry.raw.slice(0, 40)}\n^`);
    if (!isObj(body)) return gErr(res, 400, 'Invalid JSON payload received. Expected an object.');
    const baseModel = model.split('+')[0];
    if (!anyModel && !/^(gemini|text-embedding|embedding|text-multilingual-embedding)/.test(baseModel)) {
      return gErr(res, 404, vertex
        ? `Publisher Model \`projects/${ctx.entry.vertex.project}/locations/${ctx.entry.vertex.location}/publishers/google/models/${model}\` was not found or your project does not have access to it. Please ensure you are using a valid model version. For more information, see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions`
        : `models/${model} is not found for API version v1beta, or is not supported for ${method}. Call ListModels to see the list of available models and their supported methods.`);
    }
    switch (method) {
      case 'generateContent': return generateContent(req, res, ctx, model, false, faults, vertex);
      case 'streamGenerateContent': return generateContent(req, res, ctx, model, true, faults, vertex);
      case 'countTokens': return countTokens(res, body);
      case 'embedContent': return embed(res, body, model, 'embedContent');
      case 'batchEmbedContents':
        if (vertex) break;
        return embed(res, body, model, 'batchEmbedContents');
      case 'predict':
        if (!vertex) break;
        return embed(res, body, model, 'predict');
      default:
    }
    return gErr(res, 404, `Method not found: ${method}`);
  }

  function normalizeQuiet(body) {
    try { return normalize(body, 'GenerateContentRequest'); } catch { return {}; }
  }

  base.publicKeyPem = publicKeyPem;
  base.privateKeyPem = privateKeyPem;
  /** Expire every minted token now (to test refresh). */
  base.expireTokens = () => { for (const t of tokens.values()) if (t.iss !== 'static') t.exp = 0; };
  return base;
}

/**
 * Start the mock in this process. Returns { url, port, apiKey, tokenUrl, publicKeyPem,
 * privateKeyPem (null when publicKey was given), expireTokens(), stop(), requests(),
 * clearRequests(), stats(), resetStats() }.
 */
export async function startGeminiMock(opts = {}) {
  const mock = createGeminiMock(opts);
  const host = opts.host ?? '127.0.0.1';
  const m = await startInProcess(mock, { port: opts.port ?? 0, host, extra: { apiKey: opts.apiKey ?? DEFAULT_API_KEY, publicKeyPem: mock.publicKeyPem, privateKeyPem: mock.privateKeyPem, expireTokens: mock.expireTokens } });
  m.tokenUrl = `${m.url}/token`;
  return m;
}

/** Build and sign a service-account JWT assertion (RS256), for tests and for the CLI. */
export function signAssertion({ privateKeyPem, iss = 'mock-sa@mock-project.iam.gserviceaccount.com', aud, scope = 'https://www.googleapis.com/auth/cloud-platform', iat = Math.floor(Date.now() / 1000), exp, kid = 'mock-key-1' }) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = enc({ alg: 'RS256', typ: 'JWT', kid });
  const claims = enc({ iss, scope, aud, iat, exp: exp ?? iat + 3600 });
  const sig = crypto.sign('RSA-SHA256', Buffer.from(`${head}.${claims}`), privateKeyPem).toString('base64url');
  return `${head}.${claims}.${sig}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runCli('gemini_mock', process.argv.slice(2), (o) => startGeminiMock({
    ...o,
    tokenTtl: o.tokenTtl !== undefined ? Number(o.tokenTtl) : undefined,
    anyModel: o.anyModel === 'true',
    accessTokens: o.accessTokens ? String(o.accessTokens).split(',') : undefined,
  }), { describe: (m) => ({ tokenUrl: m.tokenUrl, privateKeyPem: m.privateKeyPem }) });
}
