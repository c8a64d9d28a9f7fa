// The gemini provider end to end with the official SDKs, against tests/mock/gemini_mock.mjs
// (in-process, loopback), which validates requests like the real API (unknown fields, turn
// order, function response names, JWT assertions at its /token endpoint):
//   OpenAI SDK    -> aigw (chat / embeddings / models) -> gemini (AI Studio)
//   Anthropic SDK -> aigw (messages route)             -> gemini (AI Studio)
//   OpenAI SDK    -> aigw                              -> gemini (Vertex AI, service-account OAuth)
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startGateway, startMock, skipUnlessGateway, readStream, rawRequest, accessLogFor, freePort, sleep, AIGW_PLUGIN_DIR } from './lib/harness.mjs';
import { runAigw, writeConfig } from './lib/ops.mjs';
import { startGeminiMock, toolArgs, replyText } from '../mock/gemini_mock.mjs';
import { embeddingOf } from '../mock/lib/common.mjs';

const skip = skipUnlessGateway();
const GM_KEY = 'gm-upstream-key';
const CLIENT_KEY = 'sk-client-key-never-forwarded';
const SA_EMAIL = 'aigw-test@mock-project.iam.gserviceaccount.com';

const weather = { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
const clock = { type: 'function', function: { name: 'get_time', description: 'Time in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } };
const anthWeather = { name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

const saKey = (privateKeyPem, extra = {}) => ({ type: 'service_account', project_id: 'mock-project', private_key_id: 'kid-1', private_key: privateKeyPem, client_email: SA_EMAIL, token_uri: 'http://127.0.0.1:9/token', ...extra });

// A token endpoint in front of the mock's that answers after delayMs (a mint that is still in
// flight when clients arrive or leave). Counts the requests it saw.
async function startSlowTokenProxy(delayMs) {
  const st = { target: null, seen: 0, aborted: 0 };
  const srv = http.createServer((req, res) => {
    st.seen++;
    const chunks = [];
    let gone = false;
    req.on('data', (c) => chunks.push(c));
    res.on('close', () => { if (!res.writableEnded) { gone = true; st.aborted++; } });
    req.on('end', () => setTimeout(async () => {
      if (gone) return;
      const r = await fetch(st.target, { method: 'POST', headers: { 'content-type': req.headers['content-type'] }, body: Buffer.concat(chunks) });
      const body = await r.text();
      if (!gone) res.writeHead(r.status, { 'content-type': 'application/json' }).end(body);
    }, delayMs));
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  st.url = `http://127.0.0.1:${srv.address().port}/token`;
  st.stop = () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(r); });
  return st;
}

describe('gemini provider (AI Studio and Vertex) with the official SDKs', { skip }, () => {
  let mock, gm, gmShort, slow, gw, dir, oai, oaiClientModel, an, vtx;
  const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
  before(async () => {
    mock = await startMock(); // the default "up" provider of the harness config
    slow = await startSlowTokenProxy(400);
    gm = await startGeminiMock({ apiKey: GM_KEY, clientEmail: SA_EMAIL, audience: slow.url });
    slow.target = gm.tokenUrl;
    gmShort = await startGeminiMock({ apiKey: GM_KEY, tokenTtl: 32 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigw-gemini-'));
    const keyFile = path.join(dir, 'sa.json');
    fs.writeFileSync(keyFile, JSON.stringify(saKey(gm.privateKeyPem, { project_id: 'file-project' })));
    const deadPort = await freePort();
    const vertex = (m, extra = {}) => ({ plugin: 'gemini', config: { mode: 'vertex', project: 'mock-project', location: 'us-central1', credentials: saKey(m.privateKeyPem), token_uri: m.tokenUrl, base_url: m.url, ...extra } });
    gw = await startGateway({
      mockPort: mock.port,
      config: (cfg) => {
        cfg.providers.gem = { plugin: 'gemini', config: { api_key: GM_KEY, base_url: gm.url, headers: { 'x-goog-user-project': 'billing-project' } } };
        cfg.providers.vtx = vertex(gm);
        cfg.providers.vtx2 = vertex(gm);
        cfg.providers.vtx_exp = vertex(gm);
        cfg.providers.vtx_file = { plugin: 'gemini', config: { mode: 'vertex', location: 'global', credentials_file: keyFile, token_uri: gm.tokenUrl, base_url: gm.url } };
        cfg.providers.vtx_bad = vertex(gm, { credentials: JSON.stringify(saKey(otherKey)) });
        cfg.providers.vtx_down = vertex(gm, { token_uri: `http://127.0.0.1:${deadPort}/token` });
        cfg.providers.vtx_slow = vertex(gm, { token_uri: slow.url });
        cfg.providers.vtx_slow2 = vertex(gm, { token_uri: slow.url });
        cfg.providers.vtx_short = vertex(gmShort);
        const chat = (name, prefix, provider, model) => ({ name, match: { methods: ['POST'], path: `${prefix}/v1/chat/completions` }, api: 'chat', targets: [model ? { provider, model } : { provider }] });
        cfg.routes = [
          chat('gem_chat', '/gem', 'gem', 'gemini-2.5-flash'),
          chat('gem_chat_cm', '/gemc', 'gem'),
          { name: 'gem_emb', match: { methods: ['POST'], path: '/gem/v1/embeddings' }, api: 'embeddings', targets: [{ provider: 'gem', model: 'gemini-embedding-001' }] },
          { name: 'gem_models', match: { methods: ['GET'], path: '/gem/v1/models' }, api: 'models', targets: [{ provider: 'gem' }] },
          { name: 'gem_msg', match: { methods: ['POST'], path: '/gem/v1/messages' }, api: 'messages', targets: [{ provider: 'gem', model: 'gemini-2.5-flash' }] },
          chat('vtx_chat', '/vtx', 'vtx', 'gemini-2.5-flash'),
          { name: 'vtx_emb', match: { methods: ['POST'], path: '/vtx/v1/embeddings' }, api: 'embeddings', targets: [{ provider: 'vtx', model: 'text-embedding-004' }] },
          { name: 'vtx_msg', match: { methods: ['POST'], path: '/vtx/v1/messages' }, api: 'messages', targets: [{ provider: 'vtx', model: 'gemini-2.0-flash' }] },
          chat('vtx2_chat', '/vtx2', 'vtx2', 'gemini-2.0-flash'),
          chat('vtx_exp_chat', '/vtxexp', 'vtx_exp', 'gemini-2.0-flash'),
          chat('vtx_file_chat', '/vtxfile', 'vtx_file', 'gemini-2.0-flash'),
          chat('vtx_bad_chat', '/vtxbad', 'vtx_bad', 'gemini-2.0-flash'),
          chat('vtx_down_chat', '/vtxdown', 'vtx_down', 'gemini-2.0-flash'),
          chat('vtx_slow_chat', '/vtxslow', 'vtx_slow', 'gemini-2.0-flash'),
          chat('vtx_slow2_chat', '/vtxslow2', 'vtx_slow2', 'gemini-2.0-flash'),
          chat('vtx_short_chat', '/vtxshort', 'vtx_short', 'gemini-2.0-flash'),
          // Anthropic count_tokens (route api passthrough) and plain passthrough routes
          { name: 'gem_ct', match: { methods: ['POST'], path: '/gem/v1/messages/count_tokens' }, api: 'passthrough', targets: [{ provider: 'gem', model: 'gemini-2.5-flash' }] },
          { name: 'gemc_ct', match: { methods: ['POST'], path: '/gemc/v1/messages/count_tokens' }, api: 'passthrough', targets: [{ provider: 'gem' }] },
          { name: 'vtx_ct', match: { methods: ['POST'], path: '/vtx/v1/messages/count_tokens' }, api: 'passthrough', targets: [{ provider: 'vtx', model: 'gemini-2.0-flash' }] },
          { name: 'gem_pass', match: { path_prefix: '/v1beta/' }, api: 'passthrough', targets: [{ provider: 'gem' }] },
          { name: 'vtx_pass', match: { path_prefix: '/v1/projects/' }, api: 'passthrough', targets: [{ provider: 'vtx' }] },
        ];
        return cfg;
      },
    });
    oai = new OpenAI({ baseURL: `${gw.url}/gem/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    oaiClientModel = new OpenAI({ baseURL: `${gw.url}/gemc/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    an = new Anthropic({ baseURL: `${gw.url}/gem`, apiKey: CLIENT_KEY, maxRetries: 0 });
    vtx = (prefix, opts = {}) => new OpenAI({ baseURL: `${gw.url}/${prefix}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, ...opts });
  });
  after(async () => {
    await gw?.stop();
    await gm?.stop();
    await gmShort?.stop();
    await slow?.stop();
    await mock?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const lastGm = async (pred = () => true) => (await gm.requests()).filter((q) => q.path !== '/token' && pred(q)).at(-1);
  const mints = async (m = gm) => (await m.stats()).token_mints;
  const user = (text) => [{ role: 'user', content: text }];

  // ---------------- OpenAI SDK -> gemini (AI Studio) ----------------
  test('openai sdk -> gemini: text with system, usage; upstream is a valid generateContent request', async () => {
    await gm.clearRequests();
    const r = await oai.chat.completions.create({ model: 'whatever', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello gemini' }] });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, 'You said: hello gemini');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
    const up = await lastGm();
    assert.equal(up.path, '/v1beta/models/gemini-2.5-flash:generateContent', 'route target model in the URL');
    assert.equal(up.headers['x-goog-api-key'], GM_KEY);
    assert.equal(up.headers['x-goog-user-project'], 'billing-project', 'configured extra header');
    assert.equal(up.headers.authorization, undefined);
    assert.ok(!JSON.stringify(up.headers).includes(CLIENT_KEY), 'client key never forwarded');
    assert.deepEqual(up.body.systemInstruction, { parts: [{ text: 'Be brief.' }] });
    assert.deepEqual(up.body.contents, [{ role: 'user', parts: [{ text: 'hello gemini' }] }]);
    assert.equal(up.body.model, undefined, 'the model is in the URL only');
  });

  test('openai sdk -> gemini: the client model picks the URL when the route target has none', async () => {
    const r = await oaiClientModel.chat.completions.create({ model: 'gemini-2.0-flash', messages: user('which model') });
    assert.equal(r.choices[0].message.content, 'You said: which model');
    assert.equal(r.model, 'gemini-2.0-flash');
    assert.equal((await lastGm()).path, '/v1beta/models/gemini-2.0-flash:generateContent');
    await assert.rejects(oaiClientModel.chat.completions.create({ model: '../../v1/evil', messages: user('x') }), (e) => e instanceof OpenAI.BadRequestError && /model/.test(e.message));
  });

  test('openai sdk -> gemini: stream with usage chunk; ends with [DONE] though Gemini sends no end marker', async () => {
    await gm.clearRequests();
    const stream = await oai.chat.completions.create({ model: 'x', stream: true, stream_options: { include_usage: true }, messages: user('stream me please now') });
    let text = '', finish = null, usage = null, n = 0;
    for await (const c of stream) {
      n++;
      if (c.choices[0]?.delta?.content) text += c.choices[0].delta.content;
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
      if (c.usage) usage = c.usage;
    }
    assert.equal(text, 'You said: stream me please now');
    assert.equal(finish, 'stop');
    assert.ok(n >= 3, `several chunks (${n})`);
    assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0, 'usage chunk');
    const up = await lastGm();
    assert.equal(up.path, '/v1beta/models/gemini-2.5-flash:streamGenerateContent');
    assert.equal(up.query, '?alt=sse');
    const r = await readStream(`${gw.url}/gem/v1/chat/completions`, { model: 'x', stream: true, messages: user('hi there') });
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1).data, '[DONE]');
    const chunks = r.events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data));
    assert.ok(chunks.every((c) => !c.usage), 'no usage chunk for a client that did not ask');
    const log = await accessLogFor(gw, r.headers.get('x-request-id'));
    assert.ok(log.tokens_in > 0 && log.tokens_out > 0, `usage metered: ${JSON.stringify(log)}`);
  });

  test('openai sdk -> gemini: tool call, then the tool result round trip (functionResponse name matched)', async () => {
    const msgs = user('use tool get_weather for Paris');
    const r = await oai.chat.completions.create({ model: 'x', tools: [weather, clock], messages: msgs });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const tc = r.choices[0].message.tool_calls;
    assert.equal(tc.length, 1);
    assert.equal(tc[0].type, 'function');
    assert.equal(tc[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(tc[0].function.arguments), toolArgs('get_weather', 'use tool get_weather for Paris'));
    assert.ok(tc[0].id);
    const up = await lastGm();
    assert.deepEqual(up.body.tools[0].functionDeclarations.map((d) => d.name), ['get_weather', 'get_time']);
    const r2 = await oai.chat.completions.create({ model: 'x', tools: [weather, clock], messages: [...msgs, r.choices[0].message, { role: 'tool', tool_call_id: tc[0].id, content: 'sunny, 21C' }] });
    const up2 = await lastGm();
    const fr = up2.body.contents.at(-1).parts.find((p) => p.functionResponse).functionResponse;
    assert.equal(fr.name, 'get_weather', 'name found through tool_call_id');
    assert.deepEqual(fr.response, { content: 'sunny, 21C' });
    assert.equal(up2.body.contents[1].role, 'model');
    assert.equal(up2.body.contents[1].parts.find((p) => p.functionCall).functionCall.name, 'get_weather');
    assert.equal(r2.choices[0].message.content, replyText(up2.body));
    assert.equal(r2.choices[0].message.content, 'Tool said: {"content":"sunny, 21C"}');
  });

  test('openai sdk -> gemini: parallel tool calls streamed, then both results in one turn', async () => {
    const text = 'parallel tools please: get_weather and get_time';
    const stream = await oai.chat.completions.create({ model: 'x', stream: true, tools: [weather, clock], messages: user(text) });
    const calls = [];
    let finish = null;
    for await (const c of stream) {
      for (const d of c.choices[0]?.delta?.tool_calls ?? []) {
        calls[d.index] ??= { id: '', name: '', args: '' };
        if (d.id) calls[d.index].id = d.id;
        if (d.function?.name) calls[d.index].name = d.function.name;
        if (d.function?.arguments) calls[d.index].args += d.function.arguments;
      }
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    }
    assert.equal(finish, 'tool_calls');
    assert.equal(calls.length, 2);
    assert.notEqual(calls[0].id, calls[1].id);
    for (const c of calls) assert.deepEqual(JSON.parse(c.args), toolArgs(c.name, text));
    assert.deepEqual(calls.map((c) => c.name).sort(), ['get_time', 'get_weather']);
    const assistant = { role: 'assistant', content: null, tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.args } })) };
    const r2 = await oai.chat.completions.create({ model: 'x', tools: [weather, clock], messages: [...user(text), assistant, { role: 'tool', tool_call_id: calls[1].id, content: '{"time":"12:00"}' }, { role: 'tool', tool_call_id: calls[0].id, content: 'rain' }] });
    const up = await lastGm();
    const turn = up.body.contents.at(-1);
    assert.equal(turn.parts.filter((p) => p.functionResponse).length, 2, 'one user turn with both responses');
    assert.match(r2.choices[0].message.content, /^Tool said: /);
    assert.ok(r2.choices[0].message.content.includes('{"time":"12:00"}'), 'a JSON object result goes as the response object');
  });

  test('openai sdk -> gemini: image (base64) becomes inlineData', async () => {
    const r = await oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }] });
    assert.equal(r.choices[0].message.content, 'You said: what is this');
    const up = await lastGm();
    assert.deepEqual(up.body.contents[0].parts[1], { inlineData: { mimeType: 'image/png', data: PNG } });
  });

  test('openai sdk -> gemini: response_format json_schema and sampling reach generationConfig', async () => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };
    const r = await oai.chat.completions.create({ model: 'x', temperature: 0.3, top_p: 0.9, max_tokens: 50, stop: ['zzz'], response_format: { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } }, messages: user('json please') });
    assert.equal(r.choices[0].message.content, 'You said: json please');
    const gc = (await lastGm()).body.generationConfig;
    assert.equal(gc.responseMimeType, 'application/json');
    assert.deepEqual(gc.responseJsonSchema ?? gc.responseSchema, schema);
    assert.equal(gc.temperature, 0.3);
    assert.equal(gc.topP, 0.9);
    assert.equal(gc.maxOutputTokens, 50);
    assert.deepEqual(gc.stopSequences, ['zzz']);
  });

  test('openai sdk -> gemini: embeddings through batchEmbedContents (float and the SDK default base64)', async () => {
    const r = await oai.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'], dimensions: 16 });
    assert.equal(r.object, 'list');
    assert.equal(r.data.length, 2);
    assert.equal(r.data[0].embedding.length, 16);
    const want = embeddingOf('alpha', 16);
    r.data[0].embedding.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-6, `dim ${i}`));
    const up = await lastGm();
    assert.equal(up.path, '/v1beta/models/gemini-embedding-001:batchEmbedContents');
    assert.equal(up.body.requests[0].model, 'models/gemini-embedding-001');
    assert.equal(up.body.requests[0].outputDimensionality, 16);
    const f = await oai.embeddings.create({ model: 'x', input: 'gamma', encoding_format: 'float' });
    assert.deepEqual(f.data[0].embedding.map(Math.fround), embeddingOf('gamma', 8), 'float32 values exact');
  });

  test('openai sdk -> gemini: model list in OpenAI shape', async () => {
    const list = await oai.models.list();
    const ids = list.data.map((m) => m.id);
    assert.ok(ids.includes('gemini-2.5-flash'), ids.join(','));
    assert.ok(list.data.every((m) => m.object === 'model' && m.owned_by === 'google'));
  });

  test('openai sdk -> gemini: 429 is a RateLimitError (Retry-After from RetryInfo), 400s map with the message', async () => {
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: user('fault-429') }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.headers.get('retry-after'), '1');
      assert.match(e.message, /quota/);
      assert.equal(e.error?.type, 'rate_limit_error');
      return true;
    });
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: user('fault-400') }), (e) => e instanceof OpenAI.BadRequestError && /invalid argument/.test(e.message));
    // the mock validates like the real API: its 400 text reaches the client
    await assert.rejects(oai.chat.completions.create({ model: 'x', temperature: 2.5, messages: user('too hot') }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name}`);
      assert.match(e.message, /temperature/);
      return true;
    });
    // cannot be carried to gemini: 400 naming the field, without calling upstream
    await assert.rejects(oai.chat.completions.create({ model: 'x', logprobs: true, messages: user('x') }), (e) => e instanceof OpenAI.BadRequestError && /logprobs/.test(e.message) && /gemini/.test(e.message));
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: user('fault-503') }), (e) => e.status === 503);
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: user('fault-401') }), (e) => e instanceof OpenAI.AuthenticationError);
  });

  test('openai sdk -> gemini: a mid-stream error ends the stream with an error, never [DONE]', async () => {
    const r = await readStream(`${gw.url}/gem/v1/chat/completions`, { model: 'x', stream: true, messages: user('fault-error-after-2 one two three four five six') });
    assert.equal(r.status, 200);
    assert.ok(!r.text.includes('[DONE]'));
    const last = JSON.parse(r.events.at(-1).data);
    assert.ok(last.error, `an error chunk ends the stream: ${r.text.slice(-300)}`);
    const t = await readStream(`${gw.url}/gem/v1/chat/completions`, { model: 'x', stream: true, messages: user('fault-truncate-after-2 one two three four five six') });
    assert.ok(!t.text.includes('[DONE]'), 'a truncated stream never looks complete');
    assert.match(JSON.parse(t.events.at(-1).data).error.message, /incomplete/);
  });

  // ---------------- Anthropic SDK -> gemini ----------------
  test('anthropic sdk -> gemini: text with system', async () => {
    const m = await an.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 200, system: 'You are terse.', messages: user('hello from claude land') }, { headers: { 'anthropic-beta': 'prompt-caching-2024-07-31' } });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.deepEqual(m.content, [{ type: 'text', text: 'You said: hello from claude land' }]);
    assert.equal(m.stop_reason, 'end_turn');
    assert.ok(m.usage.input_tokens > 0 && m.usage.output_tokens > 0);
    const up = await lastGm();
    assert.equal(up.path, '/v1beta/models/gemini-2.5-flash:generateContent');
    assert.deepEqual(up.body.systemInstruction, { parts: [{ text: 'You are terse.' }] });
    assert.equal(up.body.generationConfig.maxOutputTokens, 200);
    assert.equal(up.headers['anthropic-beta'], undefined, 'Anthropic headers not sent to Google');
    assert.equal(up.headers['anthropic-version'], undefined);
    assert.equal(up.headers['x-goog-api-key'], GM_KEY);
  });

  test('anthropic sdk -> gemini: stream event sequence and usage', async () => {
    // the tool definition counts for Gemini but not for a text-only estimate: the two numbers differ
    const stream = an.messages.stream({ model: 'c', max_tokens: 100, tools: [anthWeather], messages: user('stream it to me') });
    const types = [];
    let startUsage = null;
    stream.on('streamEvent', (e) => { types.push(e.type); if (e.type === 'message_start') startUsage = { ...e.message.usage }; });
    const final = await stream.finalMessage();
    assert.equal(final.content[0].text, 'You said: stream it to me');
    assert.equal(types[0], 'message_start');
    // Gemini reports the prompt size on its first chunk: message_start carries the real number
    assert.ok(startUsage.input_tokens > 0);
    assert.equal(startUsage.input_tokens, final.usage.input_tokens, 'message_start usage is the provider\'s, not an estimate');
    assert.equal(types[1], 'content_block_start');
    assert.ok(types.filter((t) => t === 'content_block_delta').length >= 2, types.join(','));
    assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
    assert.equal(final.stop_reason, 'end_turn');
    assert.ok(final.usage.output_tokens > 0);
    assert.ok(final.usage.input_tokens > 0);
  });

  test('anthropic sdk -> gemini: tool use streamed, tool_result round trip', async () => {
    const req = { model: 'c', max_tokens: 300, tools: [anthWeather], messages: user('use tool get_weather for Rome') };
    const final = await an.messages.stream(req).finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    const tu = final.content.find((b) => b.type === 'tool_use');
    assert.equal(tu.name, 'get_weather');
    assert.deepEqual(tu.input, toolArgs('get_weather', 'use tool get_weather for Rome'));
    const m2 = await an.messages.create({ ...req, messages: [...req.messages, { role: 'assistant', content: final.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'cloudy' }] }] });
    const up = await lastGm();
    const fr = up.body.contents.at(-1).parts.find((p) => p.functionResponse).functionResponse;
    assert.equal(fr.name, 'get_weather');
    assert.equal(m2.content.find((b) => b.type === 'text').text, replyText(up.body));
    assert.match(m2.content.find((b) => b.type === 'text').text, /cloudy/);
  });

  test('anthropic sdk -> gemini: 429 is an Anthropic RateLimitError', async () => {
    await assert.rejects(an.messages.create({ model: 'c', max_tokens: 10, messages: user('x') }, { headers: { 'x-mock-fault': 'fault-429' } }), (e) => {
      assert.ok(e instanceof Anthropic.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.error?.type, 'error');
      assert.equal(e.error?.error?.type, 'rate_limit_error');
      return true;
    });
    await assert.rejects(an.messages.create({ model: 'c', max_tokens: 10, messages: user('x') }, { headers: { 'x-mock-fault': 'fault-400' } }), (e) => e instanceof Anthropic.BadRequestError && e.error?.error?.type === 'invalid_request_error');
  });

  // ---------------- Vertex AI ----------------
  test('vertex: the first request mints a token (signed JWT checked by the endpoint), the next reuse it', async () => {
    await gm.clearRequests();
    const before = await mints();
    const c = vtx('vtx');
    const r = await c.chat.completions.create({ model: 'x', messages: user('hello vertex') });
    assert.equal(r.choices[0].message.content, 'You said: hello vertex');
    assert.equal(await mints(), before + 1);
    const reqs = await gm.requests();
    const tok = reqs.find((q) => q.path === '/token');
    assert.equal(tok.body.grant_type, 'urn:ietf:params:oauth:grant-type:jwt-bearer');
    const claims = JSON.parse(Buffer.from(tok.body.assertion.split('.')[1], 'base64url').toString());
    assert.equal(claims.iss, SA_EMAIL);
    assert.equal(claims.aud, gm.tokenUrl);
    assert.equal(claims.scope, 'https://www.googleapis.com/auth/cloud-platform');
    const up = reqs.find((q) => q.path.includes(':generateContent'));
    assert.equal(up.path, '/v1/projects/mock-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent');
    assert.match(up.headers.authorization, /^Bearer ya29\.mock-/);
    assert.equal(up.headers['x-goog-api-key'], undefined);
    // reuse, stream, Anthropic clients, embeddings (predict): no new mint
    const s = await c.chat.completions.create({ model: 'x', stream: true, stream_options: { include_usage: true }, messages: user('vertex stream') });
    let text = '';
    for await (const ch of s) text += ch.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'You said: vertex stream');
    const am = await new Anthropic({ baseURL: `${gw.url}/vtx`, apiKey: CLIENT_KEY, maxRetries: 0 }).messages.create({ model: 'c', max_tokens: 50, messages: user('anthropic via vertex') });
    assert.equal(am.content[0].text, 'You said: anthropic via vertex');
    const e = await c.embeddings.create({ model: 'x', input: ['one', 'two words'], encoding_format: 'float' });
    assert.equal(e.data.length, 2);
    assert.deepEqual(e.data[1].embedding.map(Math.fround), embeddingOf('two words', 8));
    assert.ok(e.usage.prompt_tokens > 0, 'vertex reports token counts');
    assert.equal((await lastGm((q) => q.path.endsWith(':predict'))).path, '/v1/projects/mock-project/locations/us-central1/publishers/google/models/text-embedding-004:predict');
    assert.equal(await mints(), before + 1, 'one mint for all of them');
  });

  test('vertex: 20 concurrent requests on a cold cache mint once (single flight); streams too', async () => {
    const before = await mints();
    const c = vtx('vtx2');
    const rs = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      if (i % 2) return (await c.chat.completions.create({ model: 'x', messages: user(`concurrent ${i}`) })).choices[0].message.content;
      let t = '';
      for await (const ch of await c.chat.completions.create({ model: 'x', stream: true, messages: user(`concurrent ${i}`) })) t += ch.choices[0]?.delta?.content ?? '';
      return t;
    }));
    rs.forEach((t, i) => assert.equal(t, `You said: concurrent ${i}`));
    assert.equal(await mints(), before + 1);
    // the same with a token endpoint that takes 400 ms: all 20 are in flight during the mint
    // (both workers), 19 of them wait for it
    const seen0 = slow.seen;
    const c2 = vtx('vtxslow2');
    const t0 = Date.now();
    const rs2 = await Promise.all(Array.from({ length: 20 }, (_, i) => c2.chat.completions.create({ model: 'x', messages: user(`slow mint ${i}`) })));
    rs2.forEach((r, i) => assert.equal(r.choices[0].message.content, `You said: slow mint ${i}`));
    assert.equal(slow.seen, seen0 + 1, 'one token request for 20 waiting clients');
    assert.ok(Date.now() - t0 >= 390, 'they did wait for it');
    assert.equal(await mints(), before + 2);
  });

  test('vertex: credentials_file, project from the key, location "global"', async () => {
    await gm.clearRequests();
    const r = await vtx('vtxfile').chat.completions.create({ model: 'x', messages: user('from a file') });
    assert.equal(r.choices[0].message.content, 'You said: from a file');
    assert.equal((await lastGm()).path, '/v1/projects/file-project/locations/global/publishers/google/models/gemini-2.0-flash:generateContent');
  });

  test('vertex: a token revoked early (401) is dropped; the SDK retry gets a freshly minted one', async () => {
    const c = vtx('vtxexp');
    assert.equal((await c.chat.completions.create({ model: 'x', messages: user('before') })).choices[0].message.content, 'You said: before');
    const m0 = await mints();
    gm.expireTokens();
    const raw = await rawRequest(`${gw.url}/vtxexp/v1/chat/completions`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'x', messages: user('after') }) });
    assert.equal(raw.status, 503);
    assert.match(raw.json.error.message, /access token/);
    const ok = await vtx('vtxexp', { maxRetries: 2 }).chat.completions.create({ model: 'x', messages: user('after') });
    assert.equal(ok.choices[0].message.content, 'You said: after');
    assert.equal(await mints(), m0 + 1);
    // the other providers' tokens were expired too: they recover the same way
    assert.equal((await vtx('vtx', { maxRetries: 2 }).chat.completions.create({ model: 'x', messages: user('again') })).choices[0].message.content, 'You said: again');
  });

  test('vertex: a token close to expiry is refreshed before it runs out', async () => {
    // gmShort mints tokens valid 31 s: under the 5 min margin at once, so every request refreshes;
    // once under 30 s the token is not used at all and requests wait for the new one
    const c = vtx('vtxshort');
    const m0 = await mints(gmShort);
    assert.equal((await c.chat.completions.create({ model: 'x', messages: user('one') })).choices[0].message.content, 'You said: one');
    assert.equal(await mints(gmShort), m0 + 1);
    assert.equal((await c.chat.completions.create({ model: 'x', messages: user('two') })).choices[0].message.content, 'You said: two');
    assert.equal(await mints(gmShort), m0 + 2, 'refreshed while still valid');
    await sleep(2100);
    assert.equal((await c.chat.completions.create({ model: 'x', messages: user('three') })).choices[0].message.content, 'You said: three');
    assert.equal(await mints(gmShort), m0 + 3);
    const auths = (await gmShort.requests()).filter((q) => q.path.includes(':generateContent')).map((q) => q.headers.authorization);
    assert.equal(new Set(auths.slice(-3)).size, 3, 'each request used the newest token');
  });

  test('vertex: credentials the token endpoint refuses -> 502 naming the cause; unreachable endpoint -> 503', async () => {
    const errs0 = (await gm.stats()).token_errors;
    const rs = await Promise.all(Array.from({ length: 4 }, () => rawRequest(`${gw.url}/vtxbad/v1/chat/completions`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'x', messages: user('x') }) })));
    for (const r of rs) {
      assert.equal(r.status, 502);
      assert.match(r.json.error.message, /token endpoint .* refused the service-account credentials .*Invalid JWT Signature/);
    }
    assert.ok((await gm.stats()).token_errors > errs0);
    await assert.rejects(vtx('vtxbad').chat.completions.create({ model: 'x', messages: user('x') }), (e) => e instanceof OpenAI.InternalServerError && e.status === 502);
    const d = await rawRequest(`${gw.url}/vtxdown/v1/chat/completions`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'x', messages: user('x') }) });
    assert.equal(d.status, 503);
    assert.match(d.json.error.message, /access-token request to http:\/\/127\.0\.0\.1:\d+\/token failed/);
  });

  test('vertex: a client leaving while the mint is in flight; a waiting request takes the mint over', async () => {
    const seen0 = slow.seen;
    const m0 = await mints();
    const ac = new AbortController();
    const c = vtx('vtxslow');
    const first = c.chat.completions.create({ model: 'x', messages: user('abandoned') }, { signal: ac.signal }).catch((e) => e);
    await sleep(50);
    const second = c.chat.completions.create({ model: 'x', messages: user('patient') });
    await sleep(100);
    ac.abort();
    const e = await first;
    assert.ok(e instanceof Error, 'the first client gave up');
    const r = await second;
    assert.equal(r.choices[0].message.content, 'You said: patient');
    assert.equal(slow.seen, seen0 + 2, 'the waiter ran the mint after the minter left');
    assert.equal(await mints(), m0 + 1, 'the abandoned mint never completed');
    // and an abort with nobody waiting leaves the cache usable
    const ac2 = new AbortController();
    const gone = vtx('vtxslow').chat.completions.create({ model: 'x', stream: true, messages: user('x') }, { signal: ac2.signal }).catch((x) => x);
    await sleep(20);
    ac2.abort();
    await gone;
    assert.equal((await c.chat.completions.create({ model: 'x', messages: user('still fine') })).choices[0].message.content, 'You said: still fine');
    const health = await gw.admin('/health');
    assert.equal(health.status, 200);
  });

  // ---------------- Anthropic count_tokens and passthrough ----------------
  // What the mock itself counts for the Gemini request aigw sent (AI Studio's countTokens).
  const mockCount = async (body, model = 'gemini-2.5-flash') => {
    const r = await fetch(`${gm.url}/v1beta/models/${model}:countTokens`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-goog-api-key': GM_KEY }, body: JSON.stringify(body) });
    assert.equal(r.status, 200);
    return (await r.json()).totalTokens;
  };
  const ctReq = { model: 'claude-sonnet-4-6', system: 'You are terse.', messages: [{ role: 'user', content: 'count the tokens of this sentence please' }], tools: [anthWeather] };

  test('anthropic sdk countTokens -> gemini (AI Studio): countTokens with generateContentRequest, the mock\'s count', async () => {
    await gm.clearRequests();
    const r = await an.messages.countTokens(ctReq);
    const up = await lastGm();
    assert.equal(up.path, '/v1beta/models/gemini-2.5-flash:countTokens', 'route target model');
    assert.equal(up.headers['x-goog-api-key'], GM_KEY);
    assert.equal(up.headers['anthropic-version'], undefined);
    assert.deepEqual(Object.keys(up.body), ['generateContentRequest']);
    const g = up.body.generateContentRequest;
    assert.equal(g.model, 'models/gemini-2.5-flash');
    assert.deepEqual(g.systemInstruction, { parts: [{ text: 'You are terse.' }] });
    assert.equal(g.tools[0].functionDeclarations[0].name, 'get_weather');
    assert.equal(g.generationConfig, undefined);
    const expected = await mockCount(g);
    assert.ok(expected > 0);
    assert.deepEqual(r, { input_tokens: expected });
    // without the system prompt and tools the count is smaller: they were counted
    const r2 = await an.messages.countTokens({ model: 'x', messages: ctReq.messages });
    assert.ok(r2.input_tokens < r.input_tokens, `${r2.input_tokens} < ${r.input_tokens}`);
  });

  test('anthropic sdk countTokens -> gemini: the client\'s model without a route model; bad model and upstream errors are Anthropic errors', async () => {
    await gm.clearRequests();
    const r = await new Anthropic({ baseURL: `${gw.url}/gemc`, apiKey: CLIENT_KEY, maxRetries: 0 }).messages.countTokens({ ...ctReq, model: 'gemini-2.0-flash' });
    const up = await lastGm();
    assert.equal(up.path, '/v1beta/models/gemini-2.0-flash:countTokens');
    assert.equal(r.input_tokens, await mockCount(up.body.generateContentRequest, 'gemini-2.0-flash'));
    const anc = new Anthropic({ baseURL: `${gw.url}/gemc`, apiKey: CLIENT_KEY, maxRetries: 0 });
    await assert.rejects(anc.messages.countTokens({ ...ctReq, model: 'bad/../model' }), (e) => {
      assert.ok(e instanceof Anthropic.BadRequestError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.error?.type, 'error');
      assert.equal(e.error?.error?.type, 'invalid_request_error');
      assert.match(e.error?.error?.message, /not a Gemini model name/);
      return true;
    });
    await assert.rejects(an.messages.countTokens(ctReq, { headers: { 'x-mock-fault': 'fault-429' } }), (e) => {
      assert.ok(e instanceof Anthropic.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.error?.error?.type, 'rate_limit_error');
      return true;
    });
    const raw = await fetch(`${gw.url}/gem/v1/messages/count_tokens?beta=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'not json' });
    assert.equal(raw.status, 400);
    assert.equal((await raw.json()).type, 'error', 'Anthropic\'s error shape');
  });

  test('anthropic sdk countTokens -> gemini (Vertex): top-level contents/systemInstruction/tools with the minted token', async () => {
    await gm.clearRequests();
    const a = new Anthropic({ baseURL: `${gw.url}/vtx`, apiKey: CLIENT_KEY, maxRetries: 0 });
    const r = await a.messages.countTokens(ctReq);
    const up = await lastGm();
    assert.equal(up.path, '/v1/projects/mock-project/locations/us-central1/publishers/google/models/gemini-2.0-flash:countTokens');
    assert.match(up.headers.authorization, /^Bearer /);
    assert.ok(!up.headers.authorization.includes(CLIENT_KEY));
    assert.equal(up.headers['x-api-key'], undefined);
    assert.deepEqual(Object.keys(up.body).sort(), ['contents', 'systemInstruction', 'tools']);
    assert.deepEqual(r, { input_tokens: await mockCount(up.body, 'gemini-2.0-flash') });
  });

  test('passthrough -> gemini: GET /v1beta/models and a raw countTokens with the provider key, never the client\'s', async () => {
    await gm.clearRequests();
    const r = await fetch(`${gw.url}/v1beta/models?pageSize=50&key=client-query-key`, { headers: { 'x-goog-api-key': 'client-goog-key', authorization: `Bearer ${CLIENT_KEY}` } });
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.ok(j.models.some((m) => m.name === 'models/gemini-2.5-flash'), 'Gemini\'s own shape, untouched');
    const up = await lastGm();
    assert.equal(up.method, 'GET');
    assert.equal(up.headers['x-goog-api-key'], GM_KEY);
    assert.equal(up.headers.authorization, undefined);
    assert.equal(up.query, '?pageSize=50', 'query kept (without the client\'s key parameter)');
    assert.ok(!JSON.stringify(up).includes('client-query-key'), 'the client\'s key parameter is not forwarded');
    const body = { contents: [{ role: 'user', parts: [{ text: 'twelve chars' }] }] };
    const c = await fetch(`${gw.url}/v1beta/models/gemini-2.5-flash:countTokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(c.status, 200);
    assert.equal((await c.json()).totalTokens, await mockCount(body));
    assert.deepEqual((await lastGm((q) => q.path.endsWith(':countTokens'))).body, body, 'body untouched');
    // an upstream error passes through in Google's shape
    const e = await fetch(`${gw.url}/v1beta/models/gemini-2.5-flash:noSuchMethod`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(e.status, 404);
    assert.equal((await e.json()).error.status, 'NOT_FOUND');
  });

  test('passthrough -> gemini (Vertex): the client\'s Vertex path with the gateway\'s bearer token', async () => {
    await gm.clearRequests();
    const body = { contents: [{ role: 'user', parts: [{ text: 'hello vertex passthrough' }] }] };
    const r = await fetch(`${gw.url}/v1/projects/mock-project/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` }, body: JSON.stringify(body) });
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.candidates[0].content.parts[0].text, 'You said: hello vertex passthrough');
    const up = await lastGm();
    assert.match(up.headers.authorization, /^Bearer /);
    assert.ok(!up.headers.authorization.includes(CLIENT_KEY));
    assert.deepEqual(up.body, body);
    // a passed-through SSE stream ends cleanly (the event with finishReason is its end)
    const s = await fetch(`${gw.url}/v1/projects/mock-project/locations/us-central1/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(s.status, 200);
    const text = await s.text();
    assert.match(text, /finishReason/);
    assert.doesNotMatch(text, /upstream_error|event: error/);
  });
});

// ---------------- configuration checks ----------------
describe('gemini provider: configuration errors are reported at load with JSON pointers', { skip }, () => {
  test('aigw --check lists each problem', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigw-gemini-check-'));
    try {
      const good = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
      const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
      const cfg = {
        listen: [{ address: '127.0.0.1', port: 18080 }],
        workers: 1,
        admin: { address: '127.0.0.1', port: 0 },
        plugin_paths: [AIGW_PLUGIN_DIR],
        providers: {
          nokey: { plugin: 'gemini', config: { base_url: 'http://127.0.0.1:9' } },
          noproj: { plugin: 'gemini', config: { mode: 'vertex', credentials: { type: 'service_account', client_email: 'a@b', private_key: good } } },
          badpem: { plugin: 'gemini', config: { mode: 'vertex', project: 'p', credentials: { type: 'service_account', client_email: 'a@b', private_key: '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n' } } },
          eckey: { plugin: 'gemini', config: { mode: 'vertex', project: 'p', credentials: { type: 'service_account', client_email: 'a@b', private_key: ec } } },
          nofile: { plugin: 'gemini', config: { mode: 'vertex', project: 'p', credentials_file: path.join(dir, 'missing.json') } },
          typo: { plugin: 'gemini', config: { api_key: 'k', locaton: 'us' } },
          mixed: { plugin: 'gemini', config: { mode: 'aistudio', api_key: 'k', project: 'p' } },
          badmode: { plugin: 'gemini', config: { mode: 'cloud', api_key: 'k' } },
          badloc: { plugin: 'gemini', config: { mode: 'vertex', project: 'p', location: '../x', credentials: { type: 'service_account', client_email: 'a@b', private_key: good } } },
          ok: { plugin: 'gemini', config: { mode: 'vertex', project: 'p', location: 'global', credentials: JSON.stringify({ type: 'service_account', client_email: 'a@b', private_key: good }) } },
        },
        routes: [{ name: 'chat', match: { methods: ['POST'], path: '/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'ok', model: 'gemini-2.5-flash' }] }],
      };
      const r = await runAigw(['--check', writeConfig(cfg, dir)], { env: { GOOGLE_APPLICATION_CREDENTIALS: '' } });
      const out = r.stdout + r.stderr;
      assert.notEqual(r.code, 0, out);
      const expect = [
        [/nokey.*\/api_key.*required/],
        [/noproj.*\/project.*required/],
        [/badpem.*\/credentials.*private_key/],
        [/eckey.*\/credentials.*private_key/],
        [/nofile.*\/credentials_file.*cannot open/],
        [/typo.*\/locaton.*unknown option/],
        [/mixed.*\/project.*only for mode "vertex"/],
        [/badmode.*\/mode/],
        [/badloc.*\/location/],
      ];
      for (const [re] of expect) assert.match(out, re);
      assert.ok(!/providers\/ok\b.*error/.test(out), out);
      // the valid one alone passes
      const only = { ...cfg, providers: { ok: cfg.providers.ok } };
      const r2 = await runAigw(['--check', writeConfig(only, dir)]);
      assert.equal(r2.code, 0, r2.stdout + r2.stderr);
      // credentials from GOOGLE_APPLICATION_CREDENTIALS (project from the key)
      const keyFile = path.join(dir, 'adc.json');
      fs.writeFileSync(keyFile, JSON.stringify({ type: 'service_account', project_id: 'adc-project', client_email: 'a@b', private_key: good }));
      const adc = { ...cfg, providers: { ok: { plugin: 'gemini', config: { mode: 'vertex' } } } };
      const r3 = await runAigw(['--check', writeConfig(adc, dir)], { env: { GOOGLE_APPLICATION_CREDENTIALS: keyFile } });
      assert.equal(r3.code, 0, r3.stdout + r3.stderr);
      const r4 = await runAigw(['--check', writeConfig(adc, dir)], { env: { GOOGLE_APPLICATION_CREDENTIALS: '' } });
      assert.notEqual(r4.code, 0);
      assert.match(r4.stdout + r4.stderr, /GOOGLE_APPLICATION_CREDENTIALS/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
