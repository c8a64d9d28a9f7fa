// Anthropic both ways, end to end with the official SDKs:
//   OpenAI SDK    -> aigw (chat route)     -> anthropic provider -> anthropic_mock (translated)
//   Anthropic SDK -> aigw (messages route) -> openai provider    -> openai_mock    (translated)
//   Anthropic SDK -> aigw (messages route) -> anthropic provider -> anthropic_mock (same format)
//   Anthropic SDK -> aigw (messages route) -> mock provider (offline)
// The mocks validate requests like the real APIs, so a translation bug is a real 400 here.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startGateway, startMock, skipUnlessGateway, MOCK_KEY, rawRequest, readStream, accessLogFor } from './lib/harness.mjs';
import { startAnthropicMock, replyText as anthReply, toolInput, thinkingText } from '../mock/anthropic_mock.mjs';
import { replyText as oaReply, toolArguments } from '../mock/openai_mock.mjs';

const skip = skipUnlessGateway();
const ANTH_KEY = 'sk-ant-upstream-key';
const CLIENT_KEY = 'sk-client-key-never-forwarded';

const weather = { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
const clock = { type: 'function', function: { name: 'get_time', description: 'Time in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } };
const anthWeather = { name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };

function config(mockPort, anthPort) {
  return (cfg) => {
    cfg.providers.anth = { plugin: 'anthropic', config: { base_url: `http://127.0.0.1:${anthPort}`, api_key: ANTH_KEY, headers: { 'x-team': 'core' } } };
    cfg.routes = [
      { name: 'chat_anth', match: { methods: ['POST'], path: '/anth/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'anth', model: 'claude-sonnet-4-6' }] },
      { name: 'models_anth', match: { methods: ['GET'], path: '/anth/v1/models' }, api: 'models', targets: [{ provider: 'anth' }] },
      { name: 'msg_oai', match: { methods: ['POST'], path: '/oai/v1/messages' }, api: 'messages', targets: [{ provider: 'up', model: 'gpt-4o-mini' }] },
      { name: 'msg_anth', match: { methods: ['POST'], path: '/v1/messages' }, api: 'messages', targets: [{ provider: 'anth' }] },
      { name: 'count_anth', match: { methods: ['POST'], path: '/v1/messages/count_tokens' }, api: 'passthrough', targets: [{ provider: 'anth' }] },
      { name: 'msg_mock', match: { methods: ['POST'], path: '/mock/v1/messages' }, api: 'messages', targets: [{ provider: 'local' }] },
      { name: 'count_mock', match: { methods: ['POST'], path: '/mock/v1/messages/count_tokens' }, api: 'passthrough', targets: [{ provider: 'local' }] },
    ];
    return cfg;
  };
}

describe('anthropic translation, both directions (official SDKs)', { skip }, () => {
  let mock, anth, gw, oai, an, anOai, anMock;
  before(async () => {
    mock = await startMock();
    anth = await startAnthropicMock({ key: ANTH_KEY });
    gw = await startGateway({ mockPort: mock.port, config: config(mock.port, anth.port) });
    oai = new OpenAI({ baseURL: `${gw.url}/anth/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    an = new Anthropic({ baseURL: gw.url, apiKey: CLIENT_KEY, maxRetries: 0 });
    anOai = new Anthropic({ baseURL: `${gw.url}/oai`, apiKey: CLIENT_KEY, maxRetries: 0 });
    anMock = new Anthropic({ baseURL: `${gw.url}/mock`, apiKey: CLIENT_KEY, maxRetries: 0 });
  });
  after(async () => { await gw?.stop(); await anth?.stop(); await mock?.stop(); });

  const lastAnth = async () => (await anth.requests()).at(-1);
  const lastOai = async () => (await mock.requests()).at(-1);

  // ---------------- OpenAI SDK -> anthropic ----------------
  test('openai sdk -> anthropic: text, system, usage; upstream request is a valid Messages request', async () => {
    await anth.clearRequests();
    const r = await oai.chat.completions.create({ model: 'whatever', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello claude' }] });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.content, 'You said: hello claude');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    const up = await lastAnth();
    assert.equal(up.path, '/v1/messages');
    assert.equal(up.headers['x-api-key'], ANTH_KEY, 'provider key injected');
    assert.equal(up.headers['x-team'], 'core', 'configured extra headers sent');
    assert.ok(!JSON.stringify(up.headers).includes(CLIENT_KEY), 'client key never forwarded');
    assert.ok(up.headers['anthropic-version']);
    assert.equal(up.body.model, 'claude-sonnet-4-6', 'route target model applied');
    assert.equal(typeof up.body.max_tokens, 'number');
    assert.deepEqual(JSON.stringify(up.body.system).includes('Be brief.'), true);
    assert.equal(up.body.messages.length, 1);
  });

  test('openai sdk -> anthropic: stream text with usage chunk', async () => {
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
    assert.ok(n >= 3, 'several chunks, not one buffered answer');
    assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0, 'usage chunk for a client that asked');
  });

  test('openai sdk -> anthropic: stream without include_usage gets no usage chunk', async () => {
    const r = await readStream(`${gw.url}/anth/v1/chat/completions`, { model: 'x', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 200);
    assert.ok(r.text.includes('data: [DONE]'));
    const chunks = r.events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data));
    assert.ok(chunks.every((c) => !c.usage), 'no usage for a client that did not ask');
    const log = await accessLogFor(gw, r.headers.get('x-request-id'));
    assert.ok(log.tokens_in > 0 && log.tokens_out > 0, 'usage still metered');
  });

  test('openai sdk -> anthropic: tool call (non-stream), then the tool result round trip', async () => {
    const msgs = [{ role: 'user', content: 'use tool get_weather for Paris' }];
    const r = await oai.chat.completions.create({ model: 'x', tools: [weather, clock], messages: msgs });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const tc = r.choices[0].message.tool_calls;
    assert.equal(tc.length, 1);
    assert.equal(tc[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(tc[0].function.arguments), toolInput('get_weather', 'use tool get_weather for Paris'));
    assert.ok(tc[0].id);
    const up = await lastAnth();
    assert.equal(up.body.tools[0].name, 'get_weather');
    assert.ok(up.body.tools[0].input_schema);
    // the answer goes back with the tool result: the mock checks tool_use/tool_result pairing
    const r2 = await oai.chat.completions.create({ model: 'x', tools: [weather, clock], messages: [...msgs, r.choices[0].message, { role: 'tool', tool_call_id: tc[0].id, content: 'sunny, 21C' }] });
    assert.equal(r2.choices[0].message.content, 'Tool said: sunny, 21C');
  });

  test('openai sdk -> anthropic: parallel tool calls streamed, argument deltas reassemble', async () => {
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
      assert.deepEqual(JSON.parse(c.args), toolInput(c.name, text));
    }
    assert.deepEqual(calls.map((c) => c.name).sort(), ['get_time', 'get_weather']);
  });

  test('openai sdk -> anthropic: image (base64) reaches Anthropic as an image block', async () => {
    const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
    const r = await oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }] }] });
    assert.equal(r.choices[0].message.content, 'You said: what is this');
    const up = await lastAnth();
    const img = up.body.messages[0].content.find((b) => b.type === 'image');
    assert.deepEqual(img.source, { type: 'base64', media_type: 'image/png', data: png });
  });

  test('openai sdk -> anthropic: reasoning_effort becomes thinking; thinking comes back as reasoning_content', async () => {
    const r = await oai.chat.completions.create({ model: 'x', reasoning_effort: 'low', max_completion_tokens: 4000, messages: [{ role: 'user', content: 'think first' }] });
    assert.equal(r.choices[0].message.content, 'You said: think first');
    assert.equal(r.choices[0].message.reasoning_content, thinkingText({ messages: [{ role: 'user', content: 'think first' }] }));
    const up = await lastAnth();
    assert.equal(up.body.thinking.type, 'enabled');
    assert.ok(up.body.thinking.budget_tokens >= 1024);
  });

  test('openai sdk -> anthropic: a feature Anthropic cannot take is a 400 naming field and provider', async () => {
    await assert.rejects(oai.chat.completions.create({ model: 'x', n: 2, messages: [{ role: 'user', content: 'hi' }] }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name}`);
      assert.match(e.message, /\bn\b/);
      assert.match(e.message, /anthropic/);
      return true;
    });
  });

  test('openai sdk -> anthropic: upstream errors arrive as the OpenAI SDK error classes', async () => {
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'fault-429' }] }), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.ok(e.headers.get('retry-after'), 'retry-after kept');
      assert.equal(typeof e.error?.message, 'string');
      return true;
    });
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'fault-401' }] }), (e) => e instanceof OpenAI.AuthenticationError);
    await assert.rejects(oai.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'fault-529' }] }), (e) => e instanceof OpenAI.InternalServerError && e.status === 503);
  });

  test('openai sdk -> anthropic: a mid-stream error ends the stream with an error, never [DONE]', async () => {
    const r = await readStream(`${gw.url}/anth/v1/chat/completions`, { model: 'x', stream: true, messages: [{ role: 'user', content: 'fault-error-after-2 go on now' }] });
    assert.equal(r.status, 200);
    assert.ok(!r.text.includes('[DONE]'));
    const last = JSON.parse(r.events.at(-1).data);
    assert.ok(last.error, 'an OpenAI-shaped error chunk ends the stream');
  });

  test('openai sdk -> anthropic: model list in OpenAI shape', async () => {
    const list = await oai.models.list();
    const ids = list.data.map((m) => m.id);
    assert.ok(ids.some((id) => id.startsWith('claude')));
    assert.ok(list.data.every((m) => m.object === 'model' && m.owned_by === 'anthropic'));
  });

  // ---------------- Anthropic SDK -> OpenAI ----------------
  test('anthropic sdk -> openai: text with system; the upstream gets an OpenAI chat request', async () => {
    await mock.clearRequests();
    const m = await anOai.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 200, system: 'You are terse.', messages: [{ role: 'user', content: 'hello gpt' }] }, { headers: { 'anthropic-beta': 'prompt-caching-2024-07-31' } });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.content[0].type, 'text');
    assert.equal(m.content[0].text, oaReply({ messages: [{ role: 'user', content: 'hello gpt' }] }));
    assert.equal(m.stop_reason, 'end_turn');
    assert.ok(m.usage.input_tokens > 0 && m.usage.output_tokens > 0);
    const up = await lastOai();
    assert.equal(up.body.model, 'gpt-4o-mini');
    assert.equal(up.body.messages[0].role, 'system');
    assert.match(JSON.stringify(up.body.messages[0].content), /You are terse/);
    assert.equal(up.body.max_tokens ?? up.body.max_completion_tokens, 200);
    assert.equal(up.headers.authorization, `Bearer ${MOCK_KEY}`);
    assert.equal(up.headers['anthropic-beta'], undefined, 'anthropic-beta not sent to OpenAI');
    assert.equal(up.headers['x-api-key'], undefined);
    assert.ok(!JSON.stringify(up.headers).includes(CLIENT_KEY));
  });

  test('anthropic sdk -> openai: stream; message_start, text deltas, real usage at the end', async () => {
    const stream = anOai.messages.stream({ model: 'claude-x', max_tokens: 100, messages: [{ role: 'user', content: 'stream it' }] });
    const types = [];
    let startUsage = null;
    stream.on('streamEvent', (e) => { types.push(e.type); if (e.type === 'message_start') startUsage = { ...e.message.usage }; });
    const final = await stream.finalMessage();
    assert.equal(final.content[0].text, oaReply({ messages: [{ role: 'user', content: 'stream it' }] }));
    assert.equal(types[0], 'message_start');
    assert.ok(startUsage.input_tokens > 0, 'message_start carries input usage (an estimate until message_delta)');
    assert.equal(types.at(-1), 'message_stop');
    assert.ok(types.filter((t) => t === 'content_block_delta').length >= 2);
    assert.ok(final.usage.output_tokens > 0);
    assert.ok(final.usage.input_tokens > 0, 'input tokens known by the end');
    assert.equal(final.stop_reason, 'end_turn');
    const up = await lastOai();
    assert.deepEqual(up.body.stream_options, { include_usage: true });
  });

  test('anthropic sdk -> openai: tool use, streamed input reassembled, tool_result round trip', async () => {
    const req = { model: 'claude-x', max_tokens: 300, tools: [anthWeather], messages: [{ role: 'user', content: 'weather in Rome?' }] };
    const stream = anOai.messages.stream(req);
    const final = await stream.finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    const tu = final.content.find((b) => b.type === 'tool_use');
    assert.equal(tu.name, 'get_weather');
    assert.deepEqual(tu.input, JSON.parse(toolArguments({ messages: [{ role: 'user', content: 'weather in Rome?' }] }, 'get_weather')));
    const up = await lastOai();
    assert.equal(up.body.tools[0].type, 'function');
    assert.equal(up.body.tools[0].function.name, 'get_weather');
    const m2 = await anOai.messages.create({ ...req, messages: [...req.messages, { role: 'assistant', content: final.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'cloudy' }] }] });
    assert.equal(m2.content[0].text, 'Tool said: cloudy');
    const up2 = await lastOai();
    const toolMsg = up2.body.messages.find((x) => x.role === 'tool');
    assert.equal(toolMsg.tool_call_id, tu.id);
  });

  test('anthropic sdk -> openai: upstream 429 is an Anthropic RateLimitError with Anthropic error shape', async () => {
    // the route pins the model, so the fault goes by header (the gateway forwards it)
    await assert.rejects(anOai.messages.create({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-fault': 'fault-429' } }), (e) => {
      assert.ok(e instanceof Anthropic.RateLimitError, `got ${e?.constructor?.name} ${e?.status}`);
      assert.equal(e.error?.type, 'error');
      assert.equal(e.error?.error?.type, 'rate_limit_error');
      return true;
    });
  });

  test('anthropic sdk: gateway errors on a messages route are Anthropic-shaped (malformed JSON → 400)', async () => {
    const r = await rawRequest(`${gw.url}/oai/v1/messages`, { headers: { 'content-type': 'application/json' }, body: '{"model": "x", "messages": [' });
    assert.equal(r.status, 400);
    assert.equal(r.json.type, 'error');
    assert.equal(r.json.error.type, 'invalid_request_error');
  });

  test('anthropic sdk -> openai: mid-stream upstream error → an Anthropic error event ends the stream', async () => {
    const r = await readStream(`${gw.url}/oai/v1/messages`, { model: 'claude-x', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'one two three four five' }] }, { headers: { 'x-mock-fault': 'fault-error-after-2' } });
    assert.equal(r.status, 200);
    const last = r.events.at(-1);
    assert.equal(last.event, 'error');
    assert.equal(JSON.parse(last.data).type, 'error');
    assert.ok(!r.events.some((e) => e.event === 'message_stop'), 'a cut stream never ends with message_stop');
  });

  // ---------------- Anthropic SDK -> Anthropic (same format) ----------------
  test('anthropic sdk -> anthropic: forwarded untouched (beta header, cache_control, key swapped)', async () => {
    await anth.clearRequests();
    const req = { model: 'claude-sonnet-4-6', max_tokens: 100, system: [{ type: 'text', text: 'Long stable system prompt. '.repeat(20), cache_control: { type: 'ephemeral' } }], messages: [{ role: 'user', content: 'cached hello' }] };
    const m1 = await an.messages.create(req, { headers: { 'anthropic-beta': 'context-1m-2025-08-07' } });
    const m2 = await an.messages.create(req, { headers: { 'anthropic-beta': 'context-1m-2025-08-07' } });
    assert.equal(m1.content[0].text, anthReply(req));
    assert.ok(m1.usage.cache_creation_input_tokens > 0, 'first call writes the cache');
    assert.ok(m2.usage.cache_read_input_tokens > 0, 'second call reads it');
    const ups = await anth.requests();
    assert.equal(ups.length, 2);
    assert.deepEqual(ups[0].body, req, 'body forwarded as sent');
    assert.equal(ups[0].headers['anthropic-beta'], 'context-1m-2025-08-07');
    assert.equal(ups[0].headers['x-api-key'], ANTH_KEY);
    assert.ok(!JSON.stringify(ups[0].headers).includes(CLIENT_KEY));
  });

  test('anthropic sdk -> anthropic: thinking signatures survive a tool round trip (the mock verifies them)', async () => {
    const tools = [anthWeather];
    const req = { model: 'claude-sonnet-4-6', max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 2000 }, tools, messages: [{ role: 'user', content: 'use tool get_weather for Oslo' }] };
    const final = await an.messages.stream(req).finalMessage();
    assert.equal(final.content[0].type, 'thinking');
    assert.ok(final.content[0].signature);
    const tu = final.content.find((b) => b.type === 'tool_use');
    assert.ok(tu);
    const m2 = await an.messages.create({ ...req, messages: [...req.messages, { role: 'assistant', content: final.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: 'snow' }] }] });
    assert.equal(m2.content.find((b) => b.type === 'text').text, 'Tool said: snow');
  });

  test('anthropic sdk -> anthropic: access log has the stream usage (input from message_start)', async () => {
    const r = await readStream(`${gw.url}/v1/messages`, { model: 'claude-sonnet-4-6', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'count my tokens' }] }, { headers: { 'anthropic-version': '2023-06-01' } });
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1).event, 'message_stop');
    const log = await accessLogFor(gw, r.headers.get('x-request-id'));
    assert.ok(log.tokens_in > 0, JSON.stringify(log));
    assert.ok(log.tokens_out > 0);
    assert.ok(log.ttft_ms !== null);
  });

  test('anthropic sdk -> anthropic: count_tokens through a passthrough route', async () => {
    const c = await an.messages.countTokens({ model: 'claude-sonnet-4-6', messages: [{ role: 'user', content: 'how many tokens is this' }] });
    assert.ok(c.input_tokens > 0);
  });

  test('anthropic sdk -> anthropic: upstream 529 reaches the SDK as overloaded', async () => {
    await assert.rejects(an.messages.create({ model: 'claude-sonnet-4-6+fault-529', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }), (e) => {
      assert.equal(e.status, 529);
      assert.equal(e.error?.error?.type, 'overloaded_error');
      return true;
    });
  });

  // ---------------- offline mock ----------------
  test('anthropic sdk -> built-in mock provider: works offline, stream too', async () => {
    const m = await anMock.messages.create({ model: 'claude-anything', max_tokens: 50, messages: [{ role: 'user', content: 'offline hello' }] });
    assert.match(m.content[0].text, /You said: offline hello/);
    const final = await anMock.messages.stream({ model: 'claude-anything', max_tokens: 50, messages: [{ role: 'user', content: 'offline stream' }] }).finalMessage();
    assert.match(final.content[0].text, /You said: offline stream/);
    assert.ok(final.usage.output_tokens > 0);
    const c = await anMock.messages.countTokens({ model: 'claude-anything', system: 'abcd', messages: [{ role: 'user', content: 'efgh' }] });
    assert.equal(c.input_tokens, 2, 'ceil(8 bytes / 4)');
  });
});
