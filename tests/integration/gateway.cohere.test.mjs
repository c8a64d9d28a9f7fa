// Cohere v2 end to end with the official SDKs:
//   OpenAI SDK    -> aigw (chat, embeddings routes) -> cohere provider -> cohere_mock
//   Anthropic SDK -> aigw (messages route)          -> cohere provider -> cohere_mock
// The mock validates requests like the real API (unknown fields, roles, tool call pairing), so a
// translation bug is a real 400 here.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startGateway, startMock, skipUnlessGateway, readStream, accessLogFor, MOCK_KEY } from './lib/harness.mjs';
import { countInputTokens } from '../mock/openai_mock.mjs';
import { startCohereMock, replyText, toolArgs, inputTokens } from '../mock/cohere_mock.mjs';
import { embeddingOf } from '../mock/lib/common.mjs';

const skip = skipUnlessGateway();
const CO_KEY = 'co-upstream-key';
const CLIENT_KEY = 'sk-client-key-never-forwarded';
const MODEL = 'command-a-03-2025';

const weather = { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
const clock = { type: 'function', function: { name: 'get_time', description: 'Time in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } };
const anthWeather = { name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };

function config(coPort, mockPort) {
  return (cfg) => {
    cfg.providers.oa = { plugin: 'openai', config: { base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: 'oa-upstream-key' } };
    // count_tokens through the (mock's) OpenAI /responses/input_tokens
    cfg.providers.oa_ct = { plugin: 'openai', config: { base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: MOCK_KEY, count_tokens: 'responses' } };
    cfg.providers.co = { plugin: 'cohere', config: { base_url: `http://127.0.0.1:${coPort}`, api_key: CO_KEY } };
    cfg.providers.co_q = { plugin: 'cohere', config: { base_url: `http://127.0.0.1:${coPort}/`, api_key: CO_KEY, embed_input_type: 'search_query' } };
    cfg.routes = [
      { name: 'chat_co', match: { methods: ['POST'], path: '/co/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'co', model: MODEL }] },
      { name: 'emb_co', match: { methods: ['POST'], path: '/co/v1/embeddings' }, api: 'embeddings', targets: [{ provider: 'co', model: 'embed-v4.0' }] },
      { name: 'emb_co_q', match: { methods: ['POST'], path: '/coq/v1/embeddings' }, api: 'embeddings', targets: [{ provider: 'co_q', model: 'embed-v4.0' }] },
      { name: 'msg_co', match: { methods: ['POST'], path: '/co/v1/messages' }, api: 'messages', targets: [{ provider: 'co', model: MODEL }] },
      // Anthropic count_tokens (route api passthrough) and a plain passthrough route
      { name: 'ct_co', match: { methods: ['POST'], path: '/co/v1/messages/count_tokens' }, api: 'passthrough', targets: [{ provider: 'co', model: MODEL }] },
      { name: 'ct_oa', match: { methods: ['POST'], path: '/oa/v1/messages/count_tokens' }, api: 'passthrough', targets: [{ provider: 'oa' }] },
      { name: 'ct_oar', match: { methods: ['POST'], path: '/oar/v1/messages/count_tokens' }, api: 'passthrough', targets: [{ provider: 'oa_ct', model: 'gpt-4.1' }] },
      { name: 'ct_oar2', match: { methods: ['POST'], path: '/oar2/v1/messages/count_tokens' }, api: 'passthrough', targets: [{ provider: 'oa_ct' }] },
      { name: 'pass_co', match: { path_prefix: '/v2/' }, api: 'passthrough', targets: [{ provider: 'co' }] },
    ];
    return cfg;
  };
}

describe('cohere provider (official SDKs)', { skip }, () => {
  let mock, co, gw, oai, an;
  before(async () => {
    mock = await startMock();
    co = await startCohereMock({ key: CO_KEY });
    gw = await startGateway({ mockPort: mock.port, config: config(co.port, mock.port) });
    oai = new OpenAI({ baseURL: `${gw.url}/co/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    an = new Anthropic({ baseURL: `${gw.url}/co`, apiKey: CLIENT_KEY, maxRetries: 0 });
  });
  after(async () => { await gw?.stop(); await co?.stop(); await mock?.stop(); });

  const lastCo = async () => (await co.requests()).at(-1);

  // ---------------- OpenAI SDK -> cohere ----------------
  test('openai sdk -> cohere: text with system; billed usage; a valid v2 chat request upstream', async () => {
    await co.clearRequests();
    const r = await oai.chat.completions.create({ model: 'whatever', temperature: 0.3, top_p: 0.5, max_tokens: 100, stop: ['zzz'], seed: 7, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello cohere' }] });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.content, 'You said: hello cohere');
    assert.equal(r.choices[0].finish_reason, 'stop');
    const up = await lastCo();
    assert.equal(up.path, '/v2/chat');
    assert.equal(up.headers.authorization, `Bearer ${CO_KEY}`);
    assert.ok(!JSON.stringify(up.headers).includes(CLIENT_KEY), 'client key never forwarded');
    assert.equal(up.body.model, MODEL, 'route target model applied');
    assert.deepEqual(up.body.messages[0], { role: 'system', content: 'Be brief.' });
    assert.equal(up.body.p, 0.5);
    assert.equal(up.body.temperature, 0.3);
    assert.equal(up.body.max_tokens, 100);
    assert.deepEqual(up.body.stop_sequences, ['zzz']);
    assert.equal(up.body.seed, 7);
    assert.equal(r.usage.prompt_tokens, inputTokens(up.body), 'billed input tokens');
    assert.ok(r.usage.completion_tokens > 0);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  });

  test('openai sdk -> cohere: max_tokens cut is finish_reason length', async () => {
    const r = await oai.chat.completions.create({ model: 'x', max_tokens: 2, messages: [{ role: 'user', content: 'a long sentence of words' }] });
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.choices[0].message.content, 'You said: ');
  });

  test('openai sdk -> cohere: stream text with usage chunk', async () => {
    const stream = await oai.chat.completions.create({ model: 'x', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'stream me please' }] });
    let text = '', finish = null, usage = null, n = 0;
    for await (const c of stream) {
      n++;
      if (c.choices[0]?.delta?.content) text += c.choices[0].delta.content;
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
      if (c.usage) usage = c.usage;
    }
    assert.equal(text, 'You said: stream me please');
    assert.equal(finish, 'stop');
    assert.ok(n >= 4, 'several chunks, not one buffered answer');
    const up = await lastCo();
    assert.equal(up.body.stream, true);
    assert.equal(up.body.stream_options, undefined);
    assert.ok(usage && usage.prompt_tokens === inputTokens(up.body) && usage.completion_tokens > 0, 'usage chunk for a client that asked');
  });

  test('openai sdk -> cohere: stream without include_usage still meters usage', async () => {
    const r = await readStream(`${gw.url}/co/v1/chat/completions`, { model: 'x', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 200);
    assert.ok(r.text.includes('data: [DONE]'));
    const chunks = r.events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data));
    assert.ok(chunks.every((c) => !c.usage), 'no usage for a client that did not ask');
    const log = await accessLogFor(gw, r.headers.get('x-request-id'));
    assert.ok(log.tokens_in > 0 && log.tokens_out > 0, 'usage still metered');
  });

  test('openai sdk -> cohere: tool call, then the tool result round trip', async () => {
    const msgs = [{ role: 'user', content: 'use tool get_weather for Paris' }];
    const r = await oai.chat.completions.create({ model: 'x', tools: [weather, clock], messages: msgs });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const tc = r.choices[0].message.tool_calls;
    assert.equal(tc.length, 1);
    assert.equal(tc[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(tc[0].function.arguments), toolArgs('get_weather', msgs[0].content));
    assert.ok(tc[0].id);
    assert.equal(r.choices[0].message.tool_plan, 'I will use get_weather.', 'tool_plan kept (hub extension)');
    const up = await lastCo();
    assert.deepEqual(up.body.tools[0], weather);
    const r2 = await oai.chat.completions.create({ model: 'x', tools: [weather, clock], messages: [...msgs, r.choices[0].message, { role: 'tool', tool_call_id: tc[0].id, content: 'sunny, 21C' }] });
    assert.equal(r2.choices[0].message.content, 'Tool said: sunny, 21C');
    const up2 = await lastCo();
    assert.equal(up2.body.messages[1].tool_plan, 'I will use get_weather.');
    assert.equal(up2.body.messages[2].tool_call_id, tc[0].id);
  });

  test('openai sdk -> cohere: tool_choice required / named tool', async () => {
    const r = await oai.chat.completions.create({ model: 'x', tools: [weather, clock], tool_choice: { type: 'function', function: { name: 'get_time' } }, messages: [{ role: 'user', content: 'what time is it' }] });
    assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_time');
    const up = await lastCo();
    assert.equal(up.body.tool_choice, 'REQUIRED');
    assert.deepEqual(up.body.tools.map((t) => t.function.name), ['get_time']);
  });

  test('openai sdk -> cohere: parallel tool calls streamed, argument deltas reassemble', async () => {
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
      assert.ok(c.id);
      assert.deepEqual(JSON.parse(c.args), toolArgs(c.name, text));
    }
    assert.deepEqual(calls.map((c) => c.name).sort(), ['get_time', 'get_weather']);
  });

  test('openai sdk -> cohere: image part and json_schema reach Cohere in its shape', async () => {
    const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
    const schema = { type: 'object', properties: { a: { type: 'string' } }, required: ['a'] };
    const r = await oai.chat.completions.create({ model: 'x', response_format: { type: 'json_schema', json_schema: { name: 'out', schema } }, messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${png}`, detail: 'low' } }] }] });
    assert.equal(r.choices[0].message.content, 'You said: what is this');
    const up = await lastCo();
    assert.deepEqual(up.body.messages[0].content[1], { type: 'image_url', image_url: { url: `data:image/png;base64,${png}`, detail: 'low' } });
    assert.deepEqual(up.body.response_format, { type: 'json_object', json_schema: schema });
  });

  test('openai sdk -> cohere: a feature Cohere cannot take is a 400 naming field and provider', async () => {
    await assert.rejects(oai.chat.completions.create({ model: 'x', n: 2, messages: [{ role: 'user', content: 'hi' }] }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name}`);
      assert.match(e.message, /\bn\b/);
      assert.match(e.message, /cohere/);
      return true;
    });
  });

  test('openai sdk -> cohere: upstream errors arrive as the OpenAI SDK error classes', async () => {
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'fault-429' }] }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.ok(e.headers.get('retry-after'), 'retry-after kept');
      assert.match(e.error?.message, /Trial key/);
      return true;
    });
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'fault-401' }] }), (e) => e instanceof OpenAI.AuthenticationError);
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'fault-500' }] }), (e) => e instanceof OpenAI.InternalServerError && e.status === 500);
  });

  test('openai sdk -> cohere: a mid-stream error ends the stream with an error, never [DONE]', async () => {
    const r = await readStream(`${gw.url}/co/v1/chat/completions`, { model: 'x', stream: true, messages: [{ role: 'user', content: 'fault-error-after-2 go on now' }] });
    assert.equal(r.status, 200);
    assert.ok(!r.text.includes('[DONE]'));
    const last = JSON.parse(r.events.at(-1).data);
    assert.ok(last.error, 'an OpenAI-shaped error chunk ends the stream');
    assert.match(last.error.message, /internal server error/);
  });

  test('openai sdk -> cohere: a stream refused upfront (429) is a plain 429 error for the SDK', async () => {
    await assert.rejects(oai.chat.completions.create({ model: 'x', stream: true, messages: [{ role: 'user', content: 'fault-429' }] }), (e) => e instanceof OpenAI.RateLimitError);
    await assert.rejects(an.messages.create({ model: 'x', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'fault-500' }] }), (e) => e instanceof Anthropic.InternalServerError);
  });

  test('openai sdk -> cohere: a cut stream ends with an error, never [DONE]', async () => {
    const r = await readStream(`${gw.url}/co/v1/chat/completions`, { model: 'x', stream: true, messages: [{ role: 'user', content: 'fault-truncate-after-3 go on now' }] });
    assert.ok(!r.text.includes('[DONE]'));
    assert.ok(JSON.parse(r.events.at(-1).data).error);
  });

  // ---------------- embeddings ----------------
  test('openai sdk -> cohere: embeddings (SDK default base64) decode to the float vectors', async () => {
    await co.clearRequests();
    const r = await oai.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta gamma'] });
    assert.equal(r.object, 'list');
    assert.equal(r.data.length, 2);
    assert.deepEqual(r.data[0].embedding, embeddingOf('alpha', 16));
    assert.deepEqual(r.data[1].embedding, embeddingOf('beta gamma', 16));
    assert.equal(r.data[1].index, 1);
    assert.ok(r.usage.prompt_tokens > 0);
    const up = await lastCo();
    assert.equal(up.path, '/v2/embed');
    assert.equal(up.headers.authorization, `Bearer ${CO_KEY}`);
    assert.deepEqual(up.body, { model: 'embed-v4.0', texts: ['alpha', 'beta gamma'], input_type: 'search_document', embedding_types: ['float'] });
  });

  test('embeddings: float encoding, dimensions, configured input_type; token arrays refused', async () => {
    const res = await fetch(`${gw.url}/coq/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` }, body: JSON.stringify({ model: 'x', input: 'one', encoding_format: 'float', dimensions: 8 }) });
    assert.equal(res.status, 200);
    const j = await res.json();
    // JSON floats: exact to float32 (what Cohere computes), not necessarily to the last double bit
    assert.deepEqual(j.data[0].embedding.map(Math.fround), embeddingOf('one', 8));
    const up = await lastCo();
    assert.equal(up.body.input_type, 'search_query');
    assert.equal(up.body.output_dimension, 8);
    await assert.rejects(oai.embeddings.create({ model: 'x', input: [[1, 2, 3]] }), (e) => e instanceof OpenAI.BadRequestError && /cohere/.test(e.message));
    await assert.rejects(oai.embeddings.create({ model: 'x', input: 'fault-429' }), (e) => e instanceof OpenAI.RateLimitError);
  });

  // ---------------- Anthropic SDK -> cohere ----------------
  test('anthropic sdk -> cohere: text with system', async () => {
    const m = await an.messages.create({ model: 'claude-x', max_tokens: 200, system: 'You are terse.', messages: [{ role: 'user', content: 'hello from claude land' }] });
    assert.equal(m.type, 'message');
    assert.equal(m.content[0].type, 'text');
    assert.equal(m.content[0].text, 'You said: hello from claude land');
    assert.equal(m.stop_reason, 'end_turn');
    assert.ok(m.usage.input_tokens > 0 && m.usage.output_tokens > 0);
    const up = await lastCo();
    assert.equal(up.body.model, MODEL);
    assert.equal(up.body.max_tokens, 200);
    assert.equal(up.headers['anthropic-version'], undefined);
    assert.match(JSON.stringify(up.body.messages[0]), /You are terse/);
  });

  test('anthropic sdk -> cohere: stream; message_start, text deltas, usage at the end', async () => {
    const stream = an.messages.stream({ model: 'claude-x', max_tokens: 100, messages: [{ role: 'user', content: 'stream it' }] });
    const types = [];
    stream.on('streamEvent', (e) => types.push(e.type));
    const final = await stream.finalMessage();
    assert.equal(final.content[0].text, replyText({ messages: [{ role: 'user', content: 'stream it' }] }));
    assert.equal(types[0], 'message_start');
    assert.equal(types.at(-1), 'message_stop');
    assert.ok(types.filter((t) => t === 'content_block_delta').length >= 2);
    assert.ok(final.usage.output_tokens > 0);
    assert.ok(final.usage.input_tokens > 0);
    assert.equal(final.stop_reason, 'end_turn');
  });

  test('anthropic sdk -> cohere: tool use streamed, tool_result round trip', async () => {
    const req = { model: 'claude-x', max_tokens: 300, tools: [anthWeather], messages: [{ role: 'user', content: 'use tool get_weather in Rome' }] };
    const final = await an.messages.stream(req).finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    const tu = final.content.find((b) => b.type === 'tool_use');
    assert.equal(tu.name, 'get_weather');
    assert.deepEqual(tu.input, toolArgs('get_weather', 'use tool get_weather in Rome'));
    const up = await lastCo();
    assert.equal(up.body.tools[0].type, 'function');
    assert.equal(up.body.tools[0].function.name, 'get_weather');
    const m2 = await an.messages.create({ ...req, messages: [...req.messages, { role: 'assistant', content: final.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'cloudy' }] }] });
    assert.equal(m2.content[0].text, 'Tool said: cloudy');
    const up2 = await lastCo();
    const toolMsg = up2.body.messages.find((x) => x.role === 'tool');
    assert.equal(toolMsg.tool_call_id, tu.id);
  });

  test('anthropic sdk -> cohere: tool use (non-stream) and a 429 as an Anthropic RateLimitError', async () => {
    const m = await an.messages.create({ model: 'claude-x', max_tokens: 300, tools: [anthWeather], messages: [{ role: 'user', content: 'use tool please' }] });
    assert.equal(m.stop_reason, 'tool_use');
    assert.equal(m.content.find((b) => b.type === 'tool_use').name, 'get_weather');
    await assert.rejects(an.messages.create({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'fault-429' }] }), (e) => {
      assert.ok(e instanceof Anthropic.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.error?.type, 'error');
      assert.equal(e.error?.error?.type, 'rate_limit_error');
      return true;
    });
  });
  // ---------------- Anthropic count_tokens and passthrough ----------------
  const ctReq = { model: 'claude-sonnet-4-6', system: 'Be brief.', messages: [{ role: 'user', content: 'count me' }] };
  const clear400 = (provider) => (e) => {
    assert.ok(e instanceof Anthropic.BadRequestError, `got ${e?.constructor?.name} ${e?.status}`);
    assert.equal(e.error?.type, 'error', 'Anthropic\'s error shape');
    assert.equal(e.error?.error?.type, 'invalid_request_error');
    assert.match(e.error?.error?.message, new RegExp(`count_tokens is not available for provider ${provider}`));
    return true;
  };

  test('anthropic sdk countTokens -> cohere: a clear 400 in Anthropic\'s shape; nothing reaches Cohere', async () => {
    await co.clearRequests();
    await assert.rejects(an.messages.countTokens(ctReq), clear400('cohere'));
    assert.equal((await co.requests()).length, 0);
  });

  test('anthropic sdk countTokens -> openai-compatible: a clear 400 naming the provider', async () => {
    const ao = new Anthropic({ baseURL: `${gw.url}/oa`, apiKey: CLIENT_KEY, maxRetries: 0 });
    await assert.rejects(ao.messages.countTokens(ctReq), clear400('oa'));
  });

  test('anthropic sdk countTokens -> openai (count_tokens: responses): the mock\'s /responses/input_tokens count', async () => {
    const ao = new Anthropic({ baseURL: `${gw.url}/oar`, apiKey: CLIENT_KEY, maxRetries: 0 });
    await mock.clearRequests();
    const req = {
      model: 'claude-sonnet-4-6',
      system: 'Be brief.',
      tools: [anthWeather],
      tool_choice: { type: 'auto' },
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: [{ type: 'text', text: 'Checking.' }, { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' }] },
      ],
    };
    const r = await ao.messages.countTokens(req);
    const reqs = await mock.requests();
    assert.equal(reqs.length, 1);
    const up = reqs[0];
    assert.equal(up.method, 'POST');
    assert.equal(up.path, '/v1/responses/input_tokens');
    assert.equal(up.query, '');
    assert.equal(up.headers.authorization, `Bearer ${MOCK_KEY}`);
    assert.ok(!JSON.stringify(up.headers).includes(CLIENT_KEY), 'client key never forwarded');
    assert.equal(up.headers['anthropic-version'], undefined);
    assert.equal(up.body.model, 'gpt-4.1', 'route target model applied');
    assert.equal(up.body.messages, undefined);
    assert.deepEqual(up.body.input.map((i) => i.type + ':' + (i.role ?? '')), ['message:system', 'message:user', 'message:assistant', 'function_call:', 'function_call_output:']);
    assert.deepEqual(up.body.input[3], { type: 'function_call', call_id: 'toolu_1', name: 'get_weather', arguments: '{"city":"Paris"}' });
    assert.deepEqual(up.body.input[4], { type: 'function_call_output', call_id: 'toolu_1', output: 'sunny' });
    assert.deepEqual(up.body.tools, [{ type: 'function', name: 'get_weather', description: anthWeather.description, parameters: anthWeather.input_schema }]);
    assert.equal(up.body.tool_choice, 'auto');
    assert.deepEqual(r, { input_tokens: countInputTokens(up.body) }, 'Anthropic\'s shape, the mock\'s count');
    assert.ok(r.input_tokens > 0);
  });

  test('anthropic sdk countTokens -> openai (count_tokens: responses): upstream errors in Anthropic\'s shape', async () => {
    const ao = new Anthropic({ baseURL: `${gw.url}/oar2`, apiKey: CLIENT_KEY, maxRetries: 0 });
    await assert.rejects(ao.messages.countTokens({ ...ctReq, model: 'gpt-4o+fault-429' }), (e) => {
      assert.ok(e instanceof Anthropic.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.error?.type, 'error');
      assert.equal(e.error?.error?.type, 'rate_limit_error');
      return true;
    });
    await assert.rejects(ao.messages.countTokens({ ...ctReq, model: 'gpt-4o+fault-401' }), (e) => {
      assert.ok(e instanceof Anthropic.AuthenticationError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.error?.error?.type, 'authentication_error');
      return true;
    });
    await assert.rejects(ao.messages.countTokens({ ...ctReq, model: 'gpt-4o+fault-malformed' }), (e) => {
      assert.equal(e.status, 502);
      assert.equal(e.error?.type, 'error', 'Anthropic\'s error shape');
      return true;
    });
    // a request the count API cannot carry: a 400 naming the tool, nothing sent
    await mock.clearRequests();
    await assert.rejects(ao.messages.countTokens({ ...ctReq, model: 'gpt-4o', tools: [{ type: 'web_search_20250305', name: 'web_search' }] }), (e) => {
      assert.ok(e instanceof Anthropic.BadRequestError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.match(e.error?.error?.message, /web_search/);
      return true;
    });
    assert.equal((await mock.requests()).length, 0);
    const ok = await ao.messages.countTokens({ ...ctReq, model: 'gpt-4o' });
    assert.ok(ok.input_tokens > 0);
  });

  test('passthrough -> cohere: raw /v2/embed and a /v2/chat stream with the provider key, untouched', async () => {
    await co.clearRequests();
    const body = { model: 'embed-v4.0', texts: ['hello passthrough'], input_type: 'search_query', embedding_types: ['float'] };
    const r = await fetch(`${gw.url}/v2/embed?x=1`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}` }, body: JSON.stringify(body) });
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.ok(Array.isArray(j.embeddings.float[0]), 'Cohere\'s own shape');
    const up = await lastCo();
    assert.equal(up.path, '/v2/embed');
    assert.equal(up.headers.authorization, `Bearer ${CO_KEY}`);
    assert.ok(!JSON.stringify(up.headers).includes(CLIENT_KEY), 'client key never forwarded');
    assert.deepEqual(up.body, body, 'body untouched');
    const s = await fetch(`${gw.url}/v2/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'stream through' }] }) });
    assert.equal(s.status, 200);
    const text = await s.text();
    assert.match(text, /message-end/);
    assert.doesNotMatch(text, /upstream_error/);
  });
});
