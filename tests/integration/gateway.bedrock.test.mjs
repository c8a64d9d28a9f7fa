// The bedrock provider end to end with the official SDKs, against tests/mock/bedrock_mock.mjs
// (in-process, loopback), which verifies AWS SigV4 on every request, validates Converse requests
// like the real API and answers ConverseStream with binary event-stream frames:
//   OpenAI SDK    -> aigw (chat route)     -> bedrock (Converse / ConverseStream)
//   Anthropic SDK -> aigw (messages route) -> bedrock
//   OpenAI SDK    -> aigw (responses route) -> bedrock (bridged by ingress.h)
//   OpenAI SDK    -> aigw (embeddings route) -> bedrock InvokeModel (Titan v2: one signed call per
//                    input, concurrent; Cohere Embed v3: one call)
//   fetch         -> aigw (passthrough routes) -> bedrock as sent (Converse, ConverseStream bytes,
//                    InvokeModel, GET /async-invoke?query), signed by the gateway
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startGateway, startMock, skipUnlessGateway, readStream, accessLogFor, AIGW_PLUGIN_DIR } from './lib/harness.mjs';
import { runAigw, writeConfig, tmpDir } from './lib/ops.mjs';
import http from 'node:http';
import { startBedrockMock, toolInput } from '../mock/bedrock_mock.mjs';
import { decodeFrames } from '../mock/lib/eventstream.mjs';
import { embeddingOf, tokensOf } from '../mock/lib/common.mjs';

const skip = skipUnlessGateway();
const CLIENT_KEY = 'sk-client-key-never-forwarded';
const AK = 'AKIDBEDROCKTEST01';
const SK = 'bedrock/test/SECRET+key';
const TMP_AK = 'ASIATEMPORARYKEY01';
const TMP_SK = 'temporary/secret/KEY';
const TOKEN = 'FwoGZXIvYXdzEBYaDKmock//session+token==';
const MODEL = 'anthropic.claude-3-5-haiku-20241022-v1:0';
const ARN = 'arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0';

const weather = { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
const clock = { type: 'function', function: { name: 'get_time', description: 'Time in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } };
const anthWeather = { name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

function config(br, brTok) {
  return (cfg) => {
    const creds = { access_key_id: AK, secret_access_key: SK };
    cfg.providers.br = { plugin: 'bedrock', config: { region: 'us-west-2', ...creds, base_url: br.url } };
    cfg.providers.brbad = { plugin: 'bedrock', config: { region: 'us-west-2', access_key_id: AK, secret_access_key: 'not-the-secret', base_url: br.url } };
    // temporary credentials: keys and token from ${ENV} references in the config
    cfg.providers.brtok = { plugin: 'bedrock', config: { region: 'eu-central-1', access_key_id: '${BR_TMP_AK}', secret_access_key: '${BR_TMP_SK}', session_token: '${BR_TMP_TOKEN}', base_url: `${brTok.url}/` } };
    // no keys in the config: the standard AWS_* variables (with AWS_SESSION_TOKEN), AWS_REGION
    cfg.providers.brenv = { plugin: 'bedrock', config: { base_url: brTok.url } };
    const route = (name, path, api, provider, model) => ({ name, match: { methods: ['POST'], path }, api, targets: [model ? { provider, model } : { provider }] });
    cfg.routes = [
      route('br_chat', '/br/v1/chat/completions', 'chat', 'br', MODEL),
      route('br_msg', '/br/v1/messages', 'messages', 'br', MODEL),
      route('br_resp', '/br/v1/responses', 'responses', 'br', MODEL),
      route('br_emb', '/br/v1/embeddings', 'embeddings', 'br', 'amazon.titan-embed-text-v2:0'),
      route('brco_emb', '/brco/v1/embeddings', 'embeddings', 'br', 'cohere.embed-english-v3'),
      route('brc_emb', '/brc/v1/embeddings', 'embeddings', 'br'),
      route('brc_chat', '/brc/v1/chat/completions', 'chat', 'br'),
      route('brbad_chat', '/brbad/v1/chat/completions', 'chat', 'brbad', MODEL),
      route('brbad_emb', '/brbad/v1/embeddings', 'embeddings', 'brbad', 'amazon.titan-embed-text-v2:0'),
      route('brtok_chat', '/brtok/v1/chat/completions', 'chat', 'brtok', MODEL),
      route('brenv_msg', '/brenv/v1/messages', 'messages', 'brenv', MODEL),
      // passthrough: the client's path and query under base_url, signed by the gateway (the path
      // is forwarded as is, so the providers with the wrong secret / temporary keys get their own
      // Bedrock paths: guardrails, GetAsyncInvoke)
      { name: 'br_pass', match: { path_prefix: '/model/' }, api: 'passthrough', targets: [{ provider: 'br' }] },
      { name: 'brbad_pass', match: { path_prefix: '/guardrail/' }, api: 'passthrough', targets: [{ provider: 'brbad' }] },
      { name: 'brtok_pass', match: { path_prefix: '/async-invoke/' }, api: 'passthrough', targets: [{ provider: 'brtok' }] },
      { name: 'br_pass_async', match: { path: '/async-invoke' }, api: 'passthrough', targets: [{ provider: 'br' }] },
    ];
    return cfg;
  };
}

describe('bedrock provider (Converse / ConverseStream, SigV4) with the official SDKs', { skip }, () => {
  let mock, br, brTok, gw, oai, oaiClientModel, oaiBad, oaiTok, oaiCo, an, anEnv;
  before(async () => {
    mock = await startMock(); // the harness's default "up" provider
    br = await startBedrockMock({ accessKeyId: AK, secretAccessKey: SK, region: 'us-west-2' });
    brTok = await startBedrockMock({ accessKeyId: TMP_AK, secretAccessKey: TMP_SK, sessionToken: TOKEN, region: 'eu-central-1' });
    gw = await startGateway({
      mockPort: mock.port,
      config: config(br, brTok),
      env: {
        BR_TMP_AK: TMP_AK, BR_TMP_SK: TMP_SK, BR_TMP_TOKEN: TOKEN,
        AWS_ACCESS_KEY_ID: TMP_AK, AWS_SECRET_ACCESS_KEY: TMP_SK, AWS_SESSION_TOKEN: TOKEN, AWS_REGION: 'eu-central-1', AWS_DEFAULT_REGION: '',
      },
    });
    oai = new OpenAI({ baseURL: `${gw.url}/br/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    oaiClientModel = new OpenAI({ baseURL: `${gw.url}/brc/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    oaiBad = new OpenAI({ baseURL: `${gw.url}/brbad/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    oaiTok = new OpenAI({ baseURL: `${gw.url}/brtok/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    oaiCo = new OpenAI({ baseURL: `${gw.url}/brco/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    an = new Anthropic({ baseURL: `${gw.url}/br`, apiKey: CLIENT_KEY, maxRetries: 0 });
    anEnv = new Anthropic({ baseURL: `${gw.url}/brenv`, apiKey: CLIENT_KEY, maxRetries: 0 });
  });
  after(async () => { await gw?.stop(); await br?.stop(); await brTok?.stop(); await mock?.stop(); });

  const lastBr = async () => (await br.requests()).at(-1);
  const assertSigned = (up) => assert.ok(up.sigv4?.ok, `SigV4 verified by the mock: ${JSON.stringify(up.sigv4)}`);

  // ---------------- OpenAI SDK -> bedrock ----------------
  test('openai sdk -> bedrock: text with system, usage; the upstream gets a signed, valid Converse request', async () => {
    await br.clearRequests();
    const r = await oai.chat.completions.create({ model: 'gpt-whatever', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello bedrock' }] });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.content, 'You said: hello bedrock');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    assert.match(r.id, /^chatcmpl-/);
    const up = await lastBr();
    assertSigned(up);
    assert.equal(up.path, `/model/${encodeURIComponent(MODEL)}/converse`);
    assert.equal(up.modelId, MODEL, 'route target model in the path');
    assert.deepEqual(up.body.system, [{ text: 'Be brief.' }]);
    assert.deepEqual(up.body.messages, [{ role: 'user', content: [{ text: 'hello bedrock' }] }]);
    assert.equal(up.body.model, undefined, 'model is in the path, not the body');
    assert.match(up.headers.authorization, /^AWS4-HMAC-SHA256 Credential=AKIDBEDROCKTEST01\/\d{8}\/us-west-2\/bedrock\/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=[0-9a-f]{64}$/);
    assert.ok(!JSON.stringify(up.headers).includes(CLIENT_KEY), 'client key never forwarded');
    assert.equal(up.headers['x-amz-security-token'], undefined, 'long-term keys: no token');
  });

  test('openai sdk -> bedrock: stream with deltas and a usage chunk', async () => {
    await br.clearRequests();
    const stream = await oai.chat.completions.create({ model: 'x', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'stream me please now' }] });
    let text = '', finish = null, usage = null, n = 0, role = null;
    for await (const c of stream) {
      n++;
      if (c.choices[0]?.delta?.role) role = c.choices[0].delta.role;
      if (c.choices[0]?.delta?.content) text += c.choices[0].delta.content;
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
      if (c.usage) usage = c.usage;
    }
    assert.equal(text, 'You said: stream me please now');
    assert.equal(role, 'assistant');
    assert.equal(finish, 'stop');
    assert.ok(n >= 4, `several chunks, not one buffered answer (${n})`);
    assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0, 'usage chunk for a client that asked');
    const up = await lastBr();
    assertSigned(up);
    assert.equal(up.path, `/model/${encodeURIComponent(MODEL)}/converse-stream`);
  });

  test('openai sdk -> bedrock: stream without include_usage: text/event-stream, [DONE], no usage chunk, usage metered', async () => {
    const r = await readStream(`${gw.url}/br/v1/chat/completions`, { model: 'x', stream: true, messages: [{ role: 'user', content: 'hi there' }] });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    assert.equal(r.events.at(-1).data, '[DONE]');
    const chunks = r.events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data));
    assert.ok(chunks.every((c) => !c.usage), 'no usage for a client that did not ask');
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'You said: hi there');
    const log = await accessLogFor(gw, r.headers.get('x-request-id'));
    assert.ok(log.tokens_in > 0 && log.tokens_out > 0, JSON.stringify(log));
  });

  test('openai sdk -> bedrock: tool call (non-stream), then the tool result round trip', async () => {
    const msgs = [{ role: 'user', content: 'use tool get_weather for Paris' }];
    const r = await oai.chat.completions.create({ model: 'x', tools: [weather, clock], messages: msgs });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const tc = r.choices[0].message.tool_calls;
    assert.equal(tc.length, 1);
    assert.equal(tc[0].type, 'function');
    assert.equal(tc[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(tc[0].function.arguments), toolInput('get_weather', 'use tool get_weather for Paris'));
    assert.ok(tc[0].id);
    const up = await lastBr();
    assert.equal(up.body.toolConfig.tools[0].toolSpec.name, 'get_weather');
    assert.deepEqual(up.body.toolConfig.tools[0].toolSpec.inputSchema.json, weather.function.parameters);
    // the mock checks toolUse / toolResult pairing and alternation
    const r2 = await oai.chat.completions.create({ model: 'x', tools: [weather, clock], messages: [...msgs, r.choices[0].message, { role: 'tool', tool_call_id: tc[0].id, content: 'sunny, 21C' }] });
    assert.equal(r2.choices[0].message.content, 'Tool said: sunny, 21C');
    assert.equal(r2.choices[0].finish_reason, 'stop');
    const up2 = await lastBr();
    assertSigned(up2);
    const tr = up2.body.messages.at(-1).content.find((b) => b.toolResult);
    assert.equal(tr.toolResult.toolUseId, tc[0].id);
    assert.ok(up2.body.messages[1].content.some((b) => b.toolUse?.toolUseId === tc[0].id));
  });

  test('openai sdk -> bedrock: parallel tool calls streamed, argument deltas reassemble', async () => {
    const text = 'parallel tools please: get_weather and get_time';
    const stream = await oai.chat.completions.create({ model: 'x', stream: true, tools: [weather, clock], messages: [{ role: 'user', content: text }] });
    const calls = [];
    let deltas = 0, finish = null;
    for await (const c of stream) {
      for (const d of c.choices[0]?.delta?.tool_calls ?? []) {
        deltas++;
        calls[d.index] ??= { id: '', name: '', args: '' };
        if (d.id) calls[d.index].id = d.id;
        if (d.function?.name) calls[d.index].name = d.function.name;
        if (d.function?.arguments) calls[d.index].args += d.function.arguments;
      }
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    }
    assert.equal(finish, 'tool_calls');
    assert.equal(calls.length, 2);
    assert.ok(deltas > 4, `arguments arrived in pieces (${deltas} deltas)`);
    for (const c of calls) {
      assert.match(c.id, /^tooluse_/);
      assert.deepEqual(JSON.parse(c.args), toolInput(c.name, text));
    }
    assert.deepEqual(calls.map((c) => c.name).sort(), ['get_time', 'get_weather']);
  });

  test('openai sdk -> bedrock: image (base64) reaches Converse as an image block with bytes', async () => {
    const r = await oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }] });
    assert.equal(r.choices[0].message.content, 'You said: what is this');
    const up = await lastBr();
    assertSigned(up);
    const img = up.body.messages[0].content.find((b) => b.image);
    assert.deepEqual(img.image, { format: 'png', source: { bytes: PNG } });
  });

  test('openai sdk -> bedrock: an image URL cannot be carried: 400 naming bedrock, nothing sent', async () => {
    await br.clearRequests();
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.invalid/cat.png' } }] }] }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name}`);
      assert.match(e.message, /bedrock/);
      return true;
    });
    assert.equal((await br.requests()).length, 0);
  });

  test('openai sdk -> bedrock: the client\'s model (an ARN with ":" and "/") when the route sets none', async () => {
    await br.clearRequests();
    const r = await oaiClientModel.chat.completions.create({ model: ARN, messages: [{ role: 'user', content: 'arn please' }] });
    assert.equal(r.choices[0].message.content, 'You said: arn please');
    assert.equal(r.model, ARN);
    const up = await lastBr();
    assertSigned(up);
    assert.equal(up.modelId, ARN);
    assert.equal(up.path, `/model/${encodeURIComponent(ARN)}/converse`);
  });

  test('openai sdk -> bedrock: ThrottlingException is an OpenAI RateLimitError', async () => {
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'fault-429' }] }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.match(e.message, /ThrottlingException/);
      return true;
    });
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'fault-400' }] }), (e) => e instanceof OpenAI.BadRequestError);
    await assert.rejects(oai.chat.completions.create({ model: 'x', stream: true, messages: [{ role: 'user', content: 'fault-429' }] }), (e) => e instanceof OpenAI.RateLimitError, 'before the stream starts: an HTTP error');
  });

  test('openai sdk -> bedrock: a mid-stream exception ends the stream with an error chunk, never [DONE]', async () => {
    const r = await readStream(`${gw.url}/br/v1/chat/completions`, { model: 'x', stream: true, messages: [{ role: 'user', content: 'fault-error-after-3 one two three four five' }] });
    assert.equal(r.status, 200);
    assert.ok(!r.text.includes('[DONE]'), r.text);
    const chunks = r.events.map((e) => JSON.parse(e.data));
    assert.ok(chunks.some((c) => c.choices?.[0]?.delta), 'some content came first');
    const last = chunks.at(-1);
    assert.ok(last.error, 'an OpenAI-shaped error chunk ends the stream');
    assert.match(last.error.message, /Too many tokens/);
    // the SDK surfaces it as an error
    const stream = await oai.chat.completions.create({ model: 'x', stream: true, messages: [{ role: 'user', content: 'fault-error-after-2 fault-exception-modelStreamErrorException a b c' }] });
    await assert.rejects((async () => { for await (const c of stream) void c; })(), /Injected modelStreamErrorException/);
  });

  test('openai sdk -> bedrock: truncated or corrupt event streams end with an error, never [DONE]', async () => {
    for (const fault of ['fault-truncate-after-3', 'fault-malformed']) {
      const r = await readStream(`${gw.url}/br/v1/chat/completions`, { model: 'x', stream: true, messages: [{ role: 'user', content: `${fault} a b c d e` }] });
      assert.equal(r.status, 200, fault);
      assert.ok(!r.text.includes('[DONE]'), `${fault}: ${r.text}`);
      const last = JSON.parse(r.events.at(-1).data);
      assert.ok(last.error, `${fault}: ${r.text}`);
      assert.match(last.error.message, fault === 'fault-malformed' ? /CRC/i : /ended early/);
    }
  });

  test('openai sdk -> bedrock: wrong secret key: the mock 403s, the client gets a 502 about the gateway\'s credentials', async () => {
    await br.clearRequests();
    await assert.rejects(oaiBad.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }), (e) => {
      assert.equal(e.status, 502, `got ${e?.constructor?.name} ${e?.status}`);
      assert.ok(e instanceof OpenAI.InternalServerError);
      assert.match(e.message, /gateway's AWS credentials/);
      assert.match(e.message, /InvalidSignatureException/);
      return true;
    });
    const up = await lastBr();
    assert.equal(up.sigv4.ok, false);
    assert.match(up.sigv4.reason, /signature mismatch/);
  });

  test('openai sdk -> bedrock: client x-amz-* headers never reach AWS (they would break the signature)', async () => {
    await br.clearRequests();
    const r = await oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'headers' }] }, { headers: { 'x-amz-content-sha256': 'bogus', 'X-Amz-Security-Token': 'client-token', 'x-amz-date': '19990101T000000Z' } });
    assert.equal(r.choices[0].message.content, 'You said: headers');
    const up = await lastBr();
    assertSigned(up);
    assert.equal(up.headers['x-amz-content-sha256'], undefined);
    assert.equal(up.headers['x-amz-security-token'], undefined);
    assert.notEqual(up.headers['x-amz-date'], '19990101T000000Z');
  });

  test('openai sdk -> bedrock: reasoning_effort becomes thinking; reasoning streams back as reasoning_content', async () => {
    await br.clearRequests();
    const r = await oai.chat.completions.create({ model: 'x', reasoning_effort: 'low', max_completion_tokens: 500, messages: [{ role: 'user', content: 'think first' }] });
    assert.equal(r.choices[0].message.content, 'You said: think first');
    assert.equal(r.choices[0].message.reasoning_content, 'Thinking about: think first');
    const up = await lastBr();
    assert.equal(up.body.additionalModelRequestFields.thinking.type, 'enabled');
    assert.ok(up.body.additionalModelRequestFields.thinking.budget_tokens >= 1024);
    const stream = await oai.chat.completions.create({ model: 'x', stream: true, reasoning_effort: 'low', messages: [{ role: 'user', content: 'think in a stream' }] });
    let reasoning = '', text = '';
    for await (const c of stream) {
      reasoning += c.choices[0]?.delta?.reasoning_content ?? '';
      text += c.choices[0]?.delta?.content ?? '';
    }
    assert.equal(reasoning, 'Thinking about: think in a stream');
    assert.equal(text, 'You said: think in a stream');
  });

  test('openai sdk -> bedrock: wrong secret on a stream request: an HTTP 502 before any event', async () => {
    const r = await readStream(`${gw.url}/brbad/v1/chat/completions`, { model: 'x', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 502);
    assert.match(JSON.parse(r.text).error.message, /gateway's AWS credentials/);
  });

  test('openai sdk -> bedrock: temporary credentials from ${ENV} config references (session token signed)', async () => {
    await brTok.clearRequests();
    const r = await oaiTok.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'temporary creds' }] });
    assert.equal(r.choices[0].message.content, 'You said: temporary creds');
    const stream = await oaiTok.chat.completions.create({ model: 'x', stream: true, messages: [{ role: 'user', content: 'temporary stream' }] });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'You said: temporary stream');
    const ups = await brTok.requests();
    assert.equal(ups.length, 2);
    for (const up of ups) {
      assertSigned(up);
      assert.equal(up.headers['x-amz-security-token'], TOKEN);
      assert.match(up.headers.authorization, /SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,/);
      assert.match(up.headers.authorization, /\/eu-central-1\/bedrock\/aws4_request/);
    }
  });

  // ---------------- embeddings (InvokeModel) ----------------
  const TITAN = 'amazon.titan-embed-text-v2:0';
  const COHERE = 'cohere.embed-english-v3';
  const invokes = async () => (await br.requests()).filter((q) => /\/invoke$/.test(q.path));
  // embeddings are float32: a "float" answer's numbers (printed as JSON decimals) round to
  // exactly the mock's float32 values; base64 answers decode to them exactly
  const near = (got, want, what) => {
    assert.equal(got.length, want.length, `${what}: length`);
    for (let i = 0; i < want.length; i++) assert.equal(Math.fround(got[i]), want[i], `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  };

  test('openai sdk -> bedrock titan: float embedding, usage, a signed InvokeModel body', async () => {
    await br.clearRequests();
    const r = await oai.embeddings.create({ model: 'text-embedding-3-small', input: 'hello titan', encoding_format: 'float' });
    assert.equal(r.object, 'list');
    assert.equal(r.model, TITAN);
    assert.equal(r.data.length, 1);
    assert.equal(r.data[0].object, 'embedding');
    assert.equal(r.data[0].index, 0);
    near(r.data[0].embedding, embeddingOf('hello titan', 1024), 'data[0]');
    assert.deepEqual(r.usage, { prompt_tokens: tokensOf('hello titan'.length), total_tokens: tokensOf('hello titan'.length) });
    const ups = await invokes();
    assert.equal(ups.length, 1);
    assertSigned(ups[0]);
    assert.equal(ups[0].path, `/model/${encodeURIComponent(TITAN)}/invoke`);
    assert.deepEqual(ups[0].body, { inputText: 'hello titan', normalize: true });
    assert.ok(!JSON.stringify(ups[0].headers).includes(CLIENT_KEY), 'client key never forwarded');
  });

  test('openai sdk -> bedrock titan: several inputs (SDK default base64), dimensions: one signed call each, in order, usage summed and metered', async () => {
    await br.clearRequests();
    const input = ['first text', 'the second one', 'third', 'and a fourth, a little longer'];
    const { data: r, response } = await oai.embeddings.create({ model: 'x', input, dimensions: 256 }).withResponse();
    assert.equal(r.data.length, input.length);
    r.data.forEach((d, i) => {
      assert.equal(d.index, i);
      near(d.embedding, embeddingOf(input[i], 256), `data[${i}]`);
    });
    const tokens = input.reduce((a, t) => a + tokensOf(t.length), 0);
    assert.deepEqual(r.usage, { prompt_tokens: tokens, total_tokens: tokens });
    const ups = await invokes();
    assert.equal(ups.length, input.length);
    for (const up of ups) {
      assertSigned(up);
      assert.equal(up.body.dimensions, 256);
      assert.equal(up.body.normalize, true);
    }
    assert.deepEqual(ups.map((u) => u.body.inputText).sort(), [...input].sort());
    const log = await accessLogFor(gw, response.headers.get('x-request-id'));
    assert.equal(log.tokens_in, tokens, JSON.stringify(log));
  });

  test('bedrock titan: base64 on the wire is little-endian float32', async () => {
    const res = await fetch(`${gw.url}/br/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` }, body: JSON.stringify({ model: 'x', input: ['a b', 'c d'], encoding_format: 'base64', dimensions: 512 }) });
    assert.equal(res.status, 200);
    const j = await res.json();
    assert.equal(j.data.length, 2);
    j.data.forEach((d, i) => {
      assert.equal(typeof d.embedding, 'string');
      const buf = Buffer.from(d.embedding, 'base64');
      const got = Array.from({ length: buf.length / 4 }, (_, k) => buf.readFloatLE(k * 4));
      assert.deepEqual(got, embeddingOf(['a b', 'c d'][i], 512));
    });
  });

  test('bedrock titan: many inputs run concurrently, bounded (at most 8 in flight)', async () => {
    await br.resetStats();
    const input = Array.from({ length: 12 }, (_, i) => `slow text ${i} fault-slow-first-byte-150`);
    const t0 = Date.now();
    const r = await oai.embeddings.create({ model: 'x', input, encoding_format: 'float' });
    const ms = Date.now() - t0;
    assert.equal(r.data.length, 12);
    r.data.forEach((d, i) => near(d.embedding, embeddingOf(input[i], 1024), `data[${i}]`));
    const st = await br.stats();
    assert.equal(st.invokes, 12);
    assert.ok(st.invoke_inflight_max > 1 && st.invoke_inflight_max <= 8, `in flight at once: ${st.invoke_inflight_max} (${ms} ms)`);
  });

  test('openai sdk -> bedrock cohere: one call with every text, float and the SDK default base64, usage from the token header', async () => {
    await br.clearRequests();
    const input = ['alpha doc', 'beta doc here'];
    const tokens = input.reduce((a, t) => a + tokensOf(t.length), 0);
    const f = await oaiCo.embeddings.create({ model: 'x', input, encoding_format: 'float' });
    assert.equal(f.model, COHERE);
    f.data.forEach((d, i) => near(d.embedding, embeddingOf(`search_document:${input[i]}`, 1024), `float data[${i}]`));
    assert.deepEqual(f.usage, { prompt_tokens: tokens, total_tokens: tokens });
    const b = await oaiCo.embeddings.create({ model: 'x', input });
    b.data.forEach((d, i) => near(d.embedding, embeddingOf(`search_document:${input[i]}`, 1024), `b64 data[${i}]`));
    const ups = await invokes();
    assert.equal(ups.length, 2);
    for (const up of ups) {
      assertSigned(up);
      assert.equal(up.path, `/model/${encodeURIComponent(COHERE)}/invoke`);
      assert.deepEqual(up.body, { texts: input, input_type: 'search_document', embedding_types: ['float'] });
    }
  });

  test('bedrock embeddings: what cannot be carried is a 400 naming the field and bedrock, nothing sent', async () => {
    await br.clearRequests();
    const cases = [
      [oai, { model: 'x', input: 'a', dimensions: 300 }, /dimensions/],
      [oaiCo, { model: 'x', input: 'a', dimensions: 1024 }, /dimensions/],
      [oai, { model: 'x', input: [[1, 2, 3]] }, /input\[0\]/],
      [oaiClientModel, { model: MODEL, input: 'a' }, /model/],
      [oaiClientModel, { model: 'amazon.titan-embed-text-v1', input: 'a' }, /model/],
    ];
    for (const [client, body, re] of cases) {
      const e = await client.embeddings.create(body).catch((x) => x);
      assert.ok(e instanceof OpenAI.BadRequestError, `${JSON.stringify(body)}: got ${e?.constructor?.name} ${e?.message}`);
      assert.match(e.message, /bedrock/);
      assert.match(e.message, re);
    }
    assert.equal((await invokes()).length, 0, 'nothing reached bedrock');
  });

  test('bedrock embeddings: the client\'s model picks the family when the route sets none', async () => {
    const r = await oaiClientModel.embeddings.create({ model: 'cohere.embed-multilingual-v3', input: 'hola', encoding_format: 'float', input_type: 'search_query' });
    near(r.data[0].embedding, embeddingOf('search_query:hola', 1024), 'data[0]');
    assert.equal(r.model, 'cohere.embed-multilingual-v3');
  });

  test('bedrock embeddings: ThrottlingException is an OpenAI RateLimitError (single call and one of a fan-out)', async () => {
    const one = await oai.embeddings.create({ model: 'x', input: 'please fault-429' }).catch((x) => x);
    assert.ok(one instanceof OpenAI.RateLimitError, `got ${one?.constructor?.name} ${one?.message}`);
    assert.match(one.message, /bedrock/);
    const many = await oai.embeddings.create({ model: 'x', input: ['fine', 'then fault-429', 'fine again'] }).catch((x) => x);
    assert.ok(many instanceof OpenAI.RateLimitError, `got ${many?.constructor?.name} ${many?.message}`);
    assert.match(many.message, /ThrottlingException/);
    const co = await oaiCo.embeddings.create({ model: 'x', input: ['x fault-429'] }).catch((x) => x);
    assert.ok(co instanceof OpenAI.RateLimitError, `got ${co?.constructor?.name}`);
    // the gateway is fine afterwards
    const ok = await oai.embeddings.create({ model: 'x', input: ['after', 'throttle'], encoding_format: 'float' });
    assert.equal(ok.data.length, 2);
  });

  test('bedrock embeddings: an InternalServerException in one call of a fan-out is a 500, never a partial list', async () => {
    const e = await oai.embeddings.create({ model: 'x', input: ['fine', 'fault-500 here'] }).catch((x) => x);
    assert.ok(e instanceof OpenAI.InternalServerError, `got ${e?.constructor?.name} ${e?.message}`);
  });

  test('bedrock embeddings: a client that goes away mid fan-out: pending call-outs are cancelled, the gateway serves on', async () => {
    const input = Array.from({ length: 10 }, (_, i) => `gone ${i} fault-slow-first-byte-400`);
    const ac = new AbortController();
    const p = fetch(`${gw.url}/br/v1/embeddings`, { method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'x', input }) }).catch((e) => e);
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    assert.equal((await p)?.name, 'AbortError');
    const ok = await oai.embeddings.create({ model: 'x', input: ['still', 'here'], encoding_format: 'float' });
    assert.equal(ok.data.length, 2);
  });

  test('bedrock embeddings: wrong secret key: a 502 about the gateway\'s credentials (fan-out too)', async () => {
    const oaiBadEmb = new OpenAI({ baseURL: `${gw.url}/brbad/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    const e = await oaiBadEmb.embeddings.create({ model: 'x', input: ['a', 'b'] }).catch((x) => x);
    assert.equal(e?.status, 502, `got ${e?.status} ${e?.message}`);
    assert.match(e.message, /credentials/);
  });

  // ---------------- passthrough (route api "passthrough") ----------------
  // Client headers that must never reach Bedrock: its own credentials and AWS signing headers.
  const hostile = {
    authorization: `Bearer ${CLIENT_KEY}`, 'x-api-key': CLIENT_KEY,
    'x-amz-date': '20000101T000000Z', 'x-amz-security-token': 'client-token', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
  };
  const assertClean = (up) => {
    const all = JSON.stringify(up.headers);
    assert.ok(!all.includes(CLIENT_KEY), `client credentials never forwarded: ${all}`);
    assert.ok(!all.includes('client-token') && !all.includes('UNSIGNED-PAYLOAD') && !all.includes('20000101T'), `client x-amz-* dropped: ${all}`);
    assert.match(up.headers.authorization, /^AWS4-HMAC-SHA256 Credential=AKIDBEDROCKTEST01\/\d{8}\/us-west-2\/bedrock\/aws4_request, SignedHeaders=(content-type;)?host;x-amz-date, Signature=[0-9a-f]{64}$/);
  };

  test('passthrough: a raw Converse body forwarded byte for byte, signed by the gateway, answered untouched', async () => {
    await br.clearRequests();
    // odd spacing on purpose: the mock hashes the exact bytes it got, so a re-serialized body fails SigV4
    const raw = '{ "messages": [ {"role": "user", "content": [ {"text": "raw passthrough"} ]} ],\n  "inferenceConfig": {"maxTokens": 50} }';
    const res = await fetch(`${gw.url}/model/${encodeURIComponent(MODEL)}/converse`, { method: 'POST', headers: { 'content-type': 'application/json', ...hostile }, body: raw });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const j = JSON.parse(text);
    assert.equal(j.output.message.content[0].text, 'You said: raw passthrough', 'the Converse answer itself, not translated');
    assert.equal(j.stopReason, 'end_turn');
    assert.ok(j.usage.inputTokens > 0 && j.usage.outputTokens > 0);
    const up = await lastBr();
    assertSigned(up);
    assertClean(up);
    assert.match(up.headers.authorization, /SignedHeaders=content-type;host;x-amz-date,/);
    assert.equal(up.method, 'POST');
    assert.equal(up.path, `/model/${encodeURIComponent(MODEL)}/converse`);
    assert.equal(up.modelId, MODEL);
    assert.equal(up.headers['x-amz-security-token'], undefined, 'long-term keys: no token (the client\'s is dropped)');
  });

  test('passthrough: ConverseStream answers reach the client as the exact event-stream bytes', async () => {
    await br.clearRequests();
    const res = await fetch(`${gw.url}/model/${encodeURIComponent(MODEL)}/converse-stream`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...hostile },
      body: JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'stream raw frames' }] }] }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/vnd.amazon.eventstream');
    const buf = Buffer.from(await res.arrayBuffer());
    const { frames, rest } = decodeFrames(buf); // CRCs checked: not parsed as SSE, not cut
    assert.equal(rest.length, 0, 'no partial frame');
    const types = frames.map((f) => f.headers[':event-type']);
    assert.equal(types[0], 'messageStart');
    assert.ok(types.includes('messageStop') && types.at(-1) === 'metadata', types.join(','));
    const txt = frames.filter((f) => f.headers[':event-type'] === 'contentBlockDelta').map((f) => f.json.delta.text ?? '').join('');
    assert.equal(txt, 'You said: stream raw frames');
    const up = await lastBr();
    assertSigned(up);
    assertClean(up);
  });

  test('passthrough: InvokeModel embeddings (Titan) through /model/{id}/invoke', async () => {
    await br.clearRequests();
    const res = await fetch(`${gw.url}/model/amazon.titan-embed-text-v2:0/invoke`, {
      method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', ...hostile },
      body: JSON.stringify({ inputText: 'hello passthrough', dimensions: 256 }),
    });
    const j = await res.json();
    assert.equal(res.status, 200, JSON.stringify(j));
    assert.equal(j.inputTextTokenCount, tokensOf('hello passthrough'.length));
    near(j.embedding, embeddingOf('hello passthrough', 256), 'embedding');
    const up = await lastBr();
    assertSigned(up);
    assertClean(up);
    assert.equal(up.path, '/model/amazon.titan-embed-text-v2:0/invoke', 'the path as the client sent it (\':\' not re-encoded)');
    assert.equal(up.modelId, 'amazon.titan-embed-text-v2:0');
    assert.deepEqual(up.body, { inputText: 'hello passthrough', dimensions: 256 });
  });

  test('passthrough: a GET with a query string (ListAsyncInvokes), and a POST with a query: query signed, forwarded as sent', async () => {
    await br.clearRequests();
    const q = '?statusEquals=Completed&maxResults=5&nextToken=a%2Fb%3D%3D&sortOrder=Descending&empty=&x=%7E~%20sp';
    const res = await fetch(`${gw.url}/async-invoke${q}`, { headers: hostile });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.deepEqual(JSON.parse(text), { asyncInvokeSummaries: [] });
    let up = await lastBr();
    assertSigned(up);
    assertClean(up);
    assert.equal(up.method, 'GET');
    assert.equal(up.path, '/async-invoke');
    assert.equal(up.query, q, 'query forwarded exactly as sent');
    assert.equal(up.headers['content-length'], undefined, 'GET without a body');
    assert.match(up.headers.authorization, /SignedHeaders=host;x-amz-date,/);
    assert.match(up.sigv4.canonicalRequest, /\nempty=&maxResults=5&nextToken=a%2Fb%3D%3D&sortOrder=Descending&statusEquals=Completed&x=~~%20sp\n/);
    // the mock validates the query too: its 400 comes back as is
    const bad = await fetch(`${gw.url}/async-invoke?maxResults=0`);
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).message, /maxResults/);
    // POST with a query on a model path
    await br.clearRequests();
    const r2 = await fetch(`${gw.url}/model/${encodeURIComponent(MODEL)}/converse?b=2&a=1%2B1&a=0`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'with a query' }] }] }),
    });
    assert.equal(r2.status, 200);
    assert.equal((await r2.json()).output.message.content[0].text, 'You said: with a query');
    up = await lastBr();
    assertSigned(up);
    assert.equal(up.query, '?b=2&a=1%2B1&a=0');
  });

  test('passthrough: temporary credentials sign with the session token (GET /async-invoke/{arn}, no body)', async () => {
    await brTok.clearRequests();
    const arn = encodeURIComponent('arn:aws:bedrock:eu-central-1:123456789012:async-invoke/abc123');
    const res = await fetch(`${gw.url}/async-invoke/${arn}`, { headers: hostile });
    // the mock verifies the signature first, then has no such operation: its 404 comes back as is
    assert.equal(res.status, 404);
    assert.match((await res.json()).message, /^Unknown operation: GET \/async-invoke\//);
    const up = (await brTok.requests()).at(-1);
    assertSigned(up);
    assert.equal(up.path, `/async-invoke/${arn}`);
    assert.equal(up.headers['x-amz-security-token'], TOKEN, 'ours, not the client\'s');
    assert.match(up.headers.authorization, /SignedHeaders=host;x-amz-date;x-amz-security-token,/);
    assert.ok(!JSON.stringify(up.headers).includes(CLIENT_KEY));
  });

  test('passthrough: wrong secret key: the mock\'s 403 reaches the client as is (ApplyGuardrail path)', async () => {
    const res = await fetch(`${gw.url}/guardrail/gr-abc123/version/1/apply`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...hostile },
      body: JSON.stringify({ source: 'INPUT', content: [{ text: { text: 'hi' } }] }),
    });
    assert.equal(res.status, 403);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const j = await res.json();
    assert.deepEqual(Object.keys(j), ['message'], 'AWS\'s own error shape, untranslated');
    assert.match(j.message, /^The request signature we calculated does not match the signature you provided/);
  });

  test('passthrough: a path with a dot segment is refused before anything is signed or sent', async () => {
    await br.clearRequests();
    const { status, body } = await new Promise((resolve, reject) => {
      const u = new URL(gw.url);
      const rq = http.request({ host: u.hostname, port: u.port, method: 'POST', path: '/model/x/../../converse', headers: { 'content-type': 'application/json' } }, (rs) => {
        let b = '';
        rs.on('data', (d) => { b += d; });
        rs.on('end', () => resolve({ status: rs.statusCode, body: b }));
      });
      rq.on('error', reject);
      rq.end('{}');
    });
    assert.equal(status, 400, body);
    assert.match(body, /bedrock passthrough: the request path must not contain/);
    assert.equal((await br.requests()).length, 0);
  });

  // ---------------- Anthropic SDK -> bedrock ----------------
  test('anthropic sdk -> bedrock: text with system', async () => {
    await br.clearRequests();
    const m = await an.messages.create({ model: 'claude-x', max_tokens: 200, system: 'You are terse.', messages: [{ role: 'user', content: 'hello from anthropic' }] }, { headers: { 'anthropic-beta': 'prompt-caching-2024-07-31' } });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.content[0].type, 'text');
    assert.equal(m.content[0].text, 'You said: hello from anthropic');
    assert.equal(m.stop_reason, 'end_turn');
    assert.ok(m.usage.input_tokens > 0 && m.usage.output_tokens > 0);
    const up = await lastBr();
    assertSigned(up);
    assert.equal(up.modelId, MODEL);
    assert.deepEqual(up.body.system, [{ text: 'You are terse.' }]);
    assert.equal(up.body.inferenceConfig.maxTokens, 200);
    assert.equal(up.headers['anthropic-beta'], undefined, 'Anthropic headers not sent to AWS');
    assert.equal(up.headers['anthropic-version'], undefined);
    assert.equal(up.headers['x-api-key'], undefined);
    assert.ok(!JSON.stringify(up.headers).includes(CLIENT_KEY));
  });

  test('anthropic sdk -> bedrock: stream; event sequence and usage', async () => {
    await br.clearRequests();
    const stream = an.messages.stream({ model: 'claude-x', max_tokens: 100, system: 'Count me too.', messages: [{ role: 'user', content: 'stream it to me' }] });
    const types = [];
    let startUsage = null;
    stream.on('streamEvent', (e) => {
      types.push(e.type);
      if (e.type === 'message_start') startUsage = { ...e.message.usage };
    });
    const final = await stream.finalMessage();
    assert.equal(final.content[0].text, 'You said: stream it to me');
    assert.equal(types[0], 'message_start');
    assert.equal(types[1], 'content_block_start');
    assert.ok(types.filter((t) => t === 'content_block_delta').length >= 2);
    assert.ok(types.includes('content_block_stop'));
    assert.equal(types.at(-2), 'message_delta');
    assert.equal(types.at(-1), 'message_stop');
    assert.equal(final.stop_reason, 'end_turn');
    assert.ok(final.usage.output_tokens > 0);
    assert.ok(final.usage.input_tokens > 0, 'input tokens known by the end');
    // message_start carries Bedrock's CountTokens answer (signed call-out in parallel), which is
    // the number ConverseStream reports at the end for the same prompt
    assert.equal(startUsage.input_tokens, final.usage.input_tokens);
    const cnt = (await br.requests()).filter((u) => u.path.endsWith('/count-tokens'));
    assert.equal(cnt.length, 1);
    assertSigned(cnt[0]);
    assert.deepEqual(cnt[0].body.input.converse.system, [{ text: 'Count me too.' }]);
    assert.equal(cnt[0].body.input.converse.messages[0].content[0].text, 'stream it to me');
  });

  test('anthropic sdk -> bedrock: a slow CountTokens holds the stream; it is replayed whole, message_start counted', async () => {
    for (const model of ['claude-x+fault-count-slow-300', 'claude-x+fault-count-500']) {
      await br.clearRequests();
      const stream = an.messages.stream({ model, max_tokens: 100, messages: [{ role: 'user', content: 'hold me back' }] });
      const types = [];
      let startUsage = null;
      stream.on('streamEvent', (e) => {
        types.push(e.type);
        if (e.type === 'message_start') startUsage = { ...e.message.usage };
      });
      const final = await stream.finalMessage();
      assert.equal(final.content[0].text, 'You said: hold me back');
      assert.equal(types[0], 'message_start');
      assert.equal(types.at(-1), 'message_stop');
      if (model.endsWith('slow-300')) assert.equal(startUsage.input_tokens, final.usage.input_tokens, 'the count');
      else assert.equal(startUsage.input_tokens, Math.ceil('hold me back'.length / 4), 'the count failed: the estimate');
    }
  });

  test('anthropic sdk -> bedrock: tool use streamed, input reassembled, tool_result round trip', async () => {
    const req = { model: 'claude-x', max_tokens: 300, tools: [anthWeather], messages: [{ role: 'user', content: 'use tool get_weather for Rome' }] };
    const final = await an.messages.stream(req).finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    const tu = final.content.find((b) => b.type === 'tool_use');
    assert.equal(tu.name, 'get_weather');
    assert.deepEqual(tu.input, toolInput('get_weather', 'use tool get_weather for Rome'));
    const up = await lastBr();
    assert.equal(up.body.toolConfig.tools[0].toolSpec.name, 'get_weather');
    const m2 = await an.messages.create({ ...req, messages: [...req.messages, { role: 'assistant', content: final.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'cloudy' }] }] });
    assert.equal(m2.content[0].text, 'Tool said: cloudy');
    const up2 = await lastBr();
    assertSigned(up2);
    assert.equal(up2.body.messages.at(-1).content.find((b) => b.toolResult).toolResult.toolUseId, tu.id);
  });

  test('anthropic sdk -> bedrock: thinking signatures survive a streamed tool round trip (the mock verifies them)', async () => {
    const req = { model: 'claude-x', max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 2000 }, tools: [anthWeather], messages: [{ role: 'user', content: 'use tool get_weather for Oslo' }] };
    const final = await an.messages.stream(req).finalMessage();
    assert.equal(final.content[0].type, 'thinking');
    assert.equal(final.content[0].thinking, 'Thinking about: use tool get_weather for Oslo');
    assert.ok(final.content[0].signature);
    const tu = final.content.find((b) => b.type === 'tool_use');
    assert.ok(tu);
    const up = await lastBr();
    assert.deepEqual(up.body.additionalModelRequestFields.thinking, { type: 'enabled', budget_tokens: 2000 });
    const m2 = await an.messages.create({ ...req, messages: [...req.messages, { role: 'assistant', content: final.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'snow' }] }] });
    assert.equal(m2.content.find((b) => b.type === 'text').text, 'Tool said: snow');
    const up2 = await lastBr();
    assertSigned(up2);
    assert.equal(up2.body.messages[1].content[0].reasoningContent.reasoningText.signature, final.content[0].signature);
  });

  test('anthropic sdk -> bedrock: cache_control becomes cachePoint; cache usage comes back', async () => {
    await br.clearRequests();
    const sys = 'Long stable system prompt for caching. '.repeat(30);
    const req = { model: 'claude-x', max_tokens: 100, system: [{ type: 'text', text: sys, cache_control: { type: 'ephemeral' } }], messages: [{ role: 'user', content: 'cached hello' }] };
    const m1 = await an.messages.create(req);
    const m2 = await an.messages.create(req);
    assert.equal(m1.content[0].text, 'You said: cached hello');
    assert.ok(m1.usage.cache_creation_input_tokens > 0, `first call writes the cache: ${JSON.stringify(m1.usage)}`);
    assert.ok(m2.usage.cache_read_input_tokens > 0, `second call reads it: ${JSON.stringify(m2.usage)}`);
    assert.ok(m2.usage.input_tokens < m2.usage.cache_read_input_tokens, 'input_tokens excludes the cached ones');
    const ups = await br.requests();
    assert.equal(ups.length, 2);
    assert.deepEqual(ups[0].body.system, [{ text: sys }, { cachePoint: { type: 'default' } }]);
    // stream too: the cache numbers arrive in message_start / message_delta
    const final = await an.messages.stream(req).finalMessage();
    assert.ok(final.usage.cache_read_input_tokens > 0, JSON.stringify(final.usage));
  });

  test('anthropic sdk -> bedrock: ThrottlingException is an Anthropic RateLimitError', async () => {
    await assert.rejects(an.messages.create({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-fault': 'fault-429' } }), (e) => {
      assert.ok(e instanceof Anthropic.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.error?.type, 'error');
      assert.equal(e.error?.error?.type, 'rate_limit_error');
      return true;
    });
  });

  test('anthropic sdk -> bedrock: mid-stream exception → an Anthropic error event ends the stream', async () => {
    const r = await readStream(`${gw.url}/br/v1/messages`, { model: 'claude-x', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'one two three four five' }] }, { headers: { 'x-mock-fault': 'fault-error-after-3' } });
    assert.equal(r.status, 200);
    const last = r.events.at(-1);
    assert.equal(last.event, 'error');
    const body = JSON.parse(last.data);
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, 'rate_limit_error');
    assert.ok(!r.events.some((e) => e.event === 'message_stop'), 'a cut stream never ends with message_stop');
  });

  test('anthropic sdk -> bedrock: credentials from AWS_* environment variables, session token passes', async () => {
    await brTok.clearRequests();
    const m = await anEnv.messages.create({ model: 'claude-x', max_tokens: 50, messages: [{ role: 'user', content: 'env creds' }] });
    assert.equal(m.content[0].text, 'You said: env creds');
    const final = await anEnv.messages.stream({ model: 'claude-x', max_tokens: 50, messages: [{ role: 'user', content: 'env stream' }] }).finalMessage();
    assert.equal(final.content[0].text, 'You said: env stream');
    const ups = await brTok.requests();
    // Converse, ConverseStream, and the CountTokens call the stream's message_start waits for
    assert.deepEqual(ups.map((u) => u.path.split('/').at(-1)).sort(), ['converse', 'converse-stream', 'count-tokens']);
    for (const up of ups) {
      assertSigned(up);
      assert.equal(up.headers['x-amz-security-token'], TOKEN);
      assert.match(up.headers.authorization, new RegExp(`Credential=${TMP_AK}/\\d{8}/eu-central-1/bedrock/`));
    }
  });

  // ---------------- OpenAI Responses -> bedrock ----------------
  test('openai sdk responses -> bedrock: text, stream, function call round trip', async () => {
    await br.clearRequests();
    const r = await oai.responses.create({ model: 'x', instructions: 'Be brief.', input: 'hello responses' });
    assert.equal(r.output_text, 'You said: hello responses');
    assert.ok(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
    const up = await lastBr();
    assertSigned(up);
    assert.deepEqual(up.body.system, [{ text: 'Be brief.' }]);
    const stream = oai.responses.stream({ model: 'x', input: [{ role: 'user', content: 'stream the answer' }] });
    const types = [];
    let deltas = '';
    stream.on('event', (e) => types.push(e.type));
    stream.on('response.output_text.delta', (e) => { deltas += e.delta; });
    const final = await stream.finalResponse();
    assert.equal(final.output_text, 'You said: stream the answer');
    assert.equal(deltas, final.output_text);
    assert.equal(types[0], 'response.created');
    assert.equal(types.at(-1), 'response.completed');
    const input = [{ role: 'user', content: 'use tool get_weather for Paris' }];
    const t1 = await oai.responses.create({ model: 'x', tools: [{ type: 'function', name: 'get_weather', description: 'Weather', parameters: weather.function.parameters }], input });
    const fc = t1.output.find((o) => o.type === 'function_call');
    assert.ok(fc, JSON.stringify(t1.output));
    assert.deepEqual(JSON.parse(fc.arguments), toolInput('get_weather', 'use tool get_weather for Paris'));
    const t2 = await oai.responses.create({ model: 'x', tools: [{ type: 'function', name: 'get_weather', description: 'Weather', parameters: weather.function.parameters }], input: [...input, ...t1.output, { type: 'function_call_output', call_id: fc.call_id, output: 'sunny' }] });
    assert.equal(t2.output_text, 'Tool said: sunny');
  });

  // ---------------- config ----------------
  test('config: errors at JSON pointers, checked at startup', async () => {
    const dir = tmpDir('aigw-bedrock-');
    try {
      const cfg = {
        listen: [{ address: '127.0.0.1', port: 18080 }],
        workers: 1,
        admin: { address: '127.0.0.1', port: 0 },
        plugin_paths: [AIGW_PLUGIN_DIR],
        providers: {
          typo: { plugin: 'bedrock', config: { region: 'us-east-1', access_key_id: 'A', secret_access_key: 'S', regoin: 'x' } },
          halfkey: { plugin: 'bedrock', config: { region: 'us-east-1', access_key_id: 'A' } },
          badregion: { plugin: 'bedrock', config: { region: 'US East', access_key_id: 'A', secret_access_key: 'S' } },
          badurl: { plugin: 'bedrock', config: { region: 'us-east-1', access_key_id: 'A', secret_access_key: 'S', base_url: 'ftp://x' } },
          notstr: { plugin: 'bedrock', config: { region: 'us-east-1', access_key_id: 'A', secret_access_key: 42 } },
          nokeys: { plugin: 'bedrock', config: { region: 'us-east-1' } },
          ok: { plugin: 'bedrock', config: { region: 'us-east-1', access_key_id: 'A', secret_access_key: 'S' } },
        },
        routes: [{ name: 'chat', match: { methods: ['POST'], path: '/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'ok', model: MODEL }] }],
      };
      const noAws = { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_SESSION_TOKEN: '', AWS_REGION: '', AWS_DEFAULT_REGION: '' };
      const r = await runAigw(['--check', writeConfig(cfg, dir)], { env: noAws });
      const out = r.stdout + r.stderr;
      assert.notEqual(r.code, 0, out);
      for (const re of [/typo.*\/regoin.*unknown option/, /halfkey.*\/secret_access_key/, /badregion.*\/region/, /badurl.*\/base_url/, /notstr.*\/secret_access_key/, /nokeys.*AWS_ACCESS_KEY_ID/]) assert.match(out, re);
      assert.ok(!/providers\/ok\b.*error/.test(out), out);
      const only = { ...cfg, providers: { ok: cfg.providers.ok } };
      const r2 = await runAigw(['--check', writeConfig(only, dir)], { env: noAws });
      assert.equal(r2.code, 0, r2.stdout + r2.stderr);
      // no region anywhere
      const noRegion = { ...cfg, providers: { ok: { plugin: 'bedrock', config: { access_key_id: 'A', secret_access_key: 'S' } } } };
      const r3 = await runAigw(['--check', writeConfig(noRegion, dir)], { env: noAws });
      assert.notEqual(r3.code, 0);
      assert.match(r3.stdout + r3.stderr, /\/region.*AWS_REGION/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
