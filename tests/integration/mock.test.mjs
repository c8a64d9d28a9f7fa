// Self-test of tests/mock/openai_mock.mjs: the official openai SDK pointed straight at the mock.
// Proves the mock speaks OpenAI's wire format (the gateway tests rely on it) and that the client
// side of the gateway tests works, before and independently of the gateway.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  startMock, readStream, until, sleep, parseSSE, openAIError,
} from './lib/harness.mjs';
import {
  replyText, splitDeltas, promptTokens, toolArguments, embeddingOf, MODELS,
} from '../mock/openai_mock.mjs';

const TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
  { type: 'function', function: { name: 'get_time', description: 'time', parameters: { type: 'object', properties: {} } } },
];

describe('openai mock, via the openai SDK', () => {
  let mock;
  let client;
  before(async () => {
    mock = await startMock();
    client = new OpenAI({ baseURL: mock.baseURL, apiKey: 'sk-mock', maxRetries: 0, timeout: 10000 });
  });
  after(async () => { await mock?.stop(); });

  test('non-stream chat completion has the full chat.completion shape', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there mock' }] };
    const r = await client.chat.completions.create(body);
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(typeof r.created, 'number');
    assert.equal(r.model, 'gpt-4o-mini');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].index, 0);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, 'You said: hello there mock');
    assert.equal(r.choices[0].message.refusal, null);
    assert.equal(r.usage.prompt_tokens, promptTokens(body));
    assert.equal(r.usage.completion_tokens, splitDeltas(replyText(body)).length);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    assert.equal(r.usage.prompt_tokens_details.cached_tokens, 0);
    assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 0);
  });

  test('content given as an array of text parts', async () => {
    const r = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'part one ' }, { type: 'text', text: 'part two' }] }],
    });
    assert.equal(r.choices[0].message.content, 'You said: part one part two');
  });

  test('stream without include_usage: deltas assemble to the content, no usage chunk', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stream me some words please' }], stream: true };
    const stream = await client.chat.completions.create(body);
    let text = '';
    const chunks = [];
    for await (const c of stream) {
      chunks.push(c);
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.model, 'gpt-4o-mini');
      for (const ch of c.choices) text += ch.delta.content ?? '';
    }
    assert.equal(text, replyText(body));
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
    assert.ok(chunks.every((c) => !('usage' in c) || c.usage == null), 'no usage without include_usage');
    assert.ok(chunks.every((c) => c.choices.length === 1));
    assert.ok(chunks.length >= 4, 'several content deltas');
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'one id for every chunk');
  });

  test('stream with include_usage: final chunk has choices [] and usage', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count my tokens' }], stream: true, stream_options: { include_usage: true } };
    const stream = await client.chat.completions.create(body);
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.prompt_tokens, promptTokens(body));
    assert.equal(last.usage.completion_tokens, splitDeltas(replyText(body)).length);
    assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null), 'usage: null on the other chunks');
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
  });

  test('raw SSE framing: data lines, blank-line separated, ends with [DONE]', async () => {
    const r = await readStream(`${mock.baseURL}/chat/completions`, { model: 'm', stream: true, messages: [{ role: 'user', content: 'x y' }] }, { headers: { authorization: 'Bearer sk-mock' } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'));
    assert.ok(r.events.every((e) => e.event === null));
    assert.ok(/^data: \{/.test(r.text));
  });

  test('tool call, non-stream', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'weather in Paris?' }], tools: TOOLS };
    const r = await client.chat.completions.create(body);
    const m = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.content, null);
    assert.equal(m.tool_calls.length, 1);
    assert.match(m.tool_calls[0].id, /^call_/);
    assert.equal(m.tool_calls[0].type, 'function');
    assert.equal(m.tool_calls[0].function.name, 'get_weather');
    assert.equal(m.tool_calls[0].function.arguments, toolArguments(body, 'get_weather'));
  });

  test('tool_choice names the function; a tool result gets a text answer', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'time?' }], tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_time' } } };
    const r = await client.chat.completions.create(body);
    const call = r.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, 'get_time');
    const r2 = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      tools: TOOLS,
      messages: [...body.messages, r.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '12:00' }],
    });
    assert.equal(r2.choices[0].finish_reason, 'stop');
    assert.equal(r2.choices[0].message.content, 'Tool said: 12:00');
  });

  test('tool call streaming: index/id/name first, arguments split over several deltas', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'weather in Paris?' }], tools: TOOLS, stream: true };
    const stream = await client.chat.completions.create(body);
    const calls = [];
    let argDeltas = 0;
    let finish = null;
    for await (const c of stream) {
      const ch = c.choices[0];
      if (!ch) continue;
      if (ch.finish_reason) finish = ch.finish_reason;
      for (const tc of ch.delta.tool_calls ?? []) {
        if (tc.id) {
          assert.equal(tc.type, 'function');
          assert.equal(typeof tc.function.name, 'string');
          calls[tc.index] = { id: tc.id, name: tc.function.name, arguments: tc.function.arguments ?? '' };
        } else {
          calls[tc.index].arguments += tc.function.arguments;
          argDeltas++;
        }
      }
    }
    assert.equal(finish, 'tool_calls');
    assert.equal(calls.length, 1);
    assert.equal(calls[0].name, 'get_weather');
    assert.ok(argDeltas > 3);
    assert.deepEqual(JSON.parse(calls[0].arguments), JSON.parse(toolArguments(body, 'get_weather')));
  });

  test('parallel tool calls stream with index 0 and 1; SDK stream helper assembles them', async () => {
    const body = { model: 'gpt-4o-mini+fault-parallel', messages: [{ role: 'user', content: 'both' }], tools: TOOLS };
    const runner = client.chat.completions.stream({ ...body });
    const final = await runner.finalChatCompletion();
    const tcs = final.choices[0].message.tool_calls;
    assert.equal(tcs.length, 2);
    assert.deepEqual(tcs.map((t) => t.function.name), ['get_weather', 'get_time']);
    assert.equal(tcs[1].function.arguments, toolArguments(body, 'get_time'));
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
  });

  test('embeddings: explicit float format', async () => {
    const r = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello', encoding_format: 'float' });
    assert.equal(r.object, 'list');
    assert.equal(r.model, 'text-embedding-3-small');
    assert.equal(r.data.length, 1);
    assert.equal(r.data[0].object, 'embedding');
    assert.equal(r.data[0].index, 0);
    assert.deepEqual(r.data[0].embedding, embeddingOf('hello'));
    assert.equal(r.usage.prompt_tokens, 2);
    assert.equal(r.usage.total_tokens, 2);
  });

  test('embeddings: SDK default (base64 on the wire) decodes to the same floats, array input', async () => {
    await mock.clearRequests();
    const r = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['hello', 'world'], dimensions: 16 });
    const reqs = await mock.requests();
    assert.equal(reqs.at(-1).body.encoding_format, 'base64', 'the SDK asks for base64 by default');
    assert.equal(r.data.length, 2);
    assert.deepEqual(Array.from(r.data[0].embedding), embeddingOf('hello', 16));
    assert.deepEqual(Array.from(r.data[1].embedding), embeddingOf('world', 16));
    assert.equal(r.data[1].index, 1);
  });

  test('models list', async () => {
    const ids = [];
    for await (const m of client.models.list()) {
      assert.equal(m.object, 'model');
      assert.equal(typeof m.created, 'number');
      assert.equal(typeof m.owned_by, 'string');
      ids.push(m.id);
    }
    assert.deepEqual(ids, MODELS.map((m) => m.id));
    const one = await client.models.retrieve('gpt-4o');
    assert.equal(one.id, 'gpt-4o');
  });

  test('wrong key → 401 AuthenticationError invalid_api_key; missing key too', async () => {
    const bad = new OpenAI({ baseURL: mock.baseURL, apiKey: 'sk-wrong', maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === 'invalid_api_key');
    const r = await fetch(`${mock.baseURL}/models`);
    assert.equal(r.status, 401);
    assert.equal(openAIError(await r.json()).code, 'invalid_api_key');
  });

  const chatReq = (model) => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] });

  test('fault-429 → RateLimitError with retry-after', async () => {
    await assert.rejects(chatReq('fault-429'), (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError);
      assert.equal(e.status, 429);
      assert.equal(e.code, 'rate_limit_exceeded');
      assert.equal(e.headers.get('retry-after'), '1');
      return true;
    });
  });

  test('fault-400/404/500/503 map to the SDK error classes', async () => {
    await assert.rejects(chatReq('fault-400'), (e) => e instanceof OpenAI.BadRequestError && e.type === 'invalid_request_error');
    await assert.rejects(chatReq('fault-404'), (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
    await assert.rejects(chatReq('fault-500'), (e) => e instanceof OpenAI.InternalServerError && e.status === 500 && e.type === 'server_error');
    await assert.rejects(chatReq('fault-503'), (e) => e instanceof OpenAI.InternalServerError && e.status === 503);
  });

  test('invalid requests: malformed JSON, missing messages, stream_options without stream, unknown path', async () => {
    let r = await fetch(`${mock.baseURL}/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-mock', 'content-type': 'application/json' }, body: '{"model":' });
    assert.equal(r.status, 400);
    assert.equal(openAIError(await r.json()).type, 'invalid_request_error');
    await assert.rejects(client.chat.completions.create({ model: 'm' }), (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
    await assert.rejects(client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream_options: { include_usage: true } }), (e) => e.status === 400 && e.param === 'stream_options');
    r = await fetch(`${mock.baseURL}/nope`, { headers: { authorization: 'Bearer sk-mock' } });
    assert.equal(r.status, 404);
    openAIError(await r.json());
  });

  test('paths without the /v1 prefix work too', async () => {
    const c2 = new OpenAI({ baseURL: mock.url, apiKey: 'sk-mock', maxRetries: 0 });
    const r = await c2.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'no prefix' }] });
    assert.equal(r.choices[0].message.content, 'You said: no prefix');
  });

  test('fault-hang never answers; the client timeout fires and the mock counts the abort', async () => {
    await mock.resetStats();
    const quick = new OpenAI({ baseURL: mock.baseURL, apiKey: 'sk-mock', maxRetries: 0, timeout: 300 });
    await assert.rejects(quick.chat.completions.create({ model: 'fault-hang', messages: [{ role: 'user', content: 'x' }] }), (e) => e instanceof OpenAI.APIConnectionTimeoutError);
    const s = await until(async () => { const st = await mock.stats(); return st.requests_aborted >= 1 && st; });
    assert.ok(s, 'requests_aborted incremented');
  });

  test('fault-slow-first-byte-<ms> delays the answer', async () => {
    const t0 = Date.now();
    const r = await chatReq('fault-slow-first-byte-300');
    assert.ok(Date.now() - t0 >= 280);
    assert.equal(r.choices[0].message.content, 'You said: x');
  });

  test('fault-trickle-<ms> spaces the events', async () => {
    const t0 = Date.now();
    const stream = await client.chat.completions.create({ model: 'fault-trickle-40', stream: true, messages: [{ role: 'user', content: 'a b c' }] });
    let n = 0;
    for await (const c of stream) { void c; n++; }
    assert.equal(n, 7); // role chunk + 5 content deltas ("You said: a b c") + finish chunk
    assert.ok(Date.now() - t0 >= 7 * 40 - 20);
  });

  test('fault-stall-after-<n>: n chunks then silence; a client abort counts as an aborted stream', async () => {
    await mock.resetStats();
    const ac = new AbortController();
    const res = await fetch(`${mock.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-mock', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'fault-stall-after-2', stream: true, messages: [{ role: 'user', content: 'one two three' }] }),
      signal: ac.signal,
    });
    const reader = res.body.getReader();
    let text = '';
    const dec = new TextDecoder();
    while (parseSSE(text).length < 2) {
      const { value } = await reader.read();
      text += dec.decode(value, { stream: true });
    }
    const nothing = await Promise.race([reader.read().then(() => 'data'), sleep(300).then(() => 'silence')]);
    assert.equal(nothing, 'silence');
    let st = await mock.stats();
    assert.equal(st.streams_stalled, 1);
    ac.abort();
    st = await until(async () => { const s = await mock.stats(); return s.streams_aborted === 1 && s; }, 2000);
    assert.ok(st, 'streams_aborted incremented after the client closed');
    assert.equal(st.streams_stalled, 0);
  });

  test('fault-reset-after-<n>: the SDK stream fails after n chunks', async () => {
    await mock.resetStats();
    const stream = await client.chat.completions.create({ model: 'fault-reset-after-2', stream: true, messages: [{ role: 'user', content: 'one two three' }] });
    let n = 0;
    await assert.rejects((async () => { for await (const c of stream) { void c; n++; } })());
    assert.equal(n, 2);
    const st = await mock.stats();
    assert.equal(st.streams_reset, 1);
    assert.equal(st.streams_aborted, 0, 'a reset by the mock is not a client abort');
  });

  test('fault-truncate-after-<n>: clean end without [DONE] (the SDK alone does not notice)', async () => {
    const r = await readStream(`${mock.baseURL}/chat/completions`, { model: 'fault-truncate-after-2', stream: true, messages: [{ role: 'user', content: 'one two three' }] }, { headers: { authorization: 'Bearer sk-mock' } });
    assert.equal(r.ended, true);
    assert.equal(r.events.length, 2);
    assert.ok(!r.text.includes('[DONE]'));
  });

  test('fault-error-after-<n>: an in-stream error event makes the SDK throw APIError', async () => {
    const stream = await client.chat.completions.create({ model: 'fault-error-after-2', stream: true, messages: [{ role: 'user', content: 'one two three' }] });
    let n = 0;
    await assert.rejects((async () => { for await (const c of stream) { void c; n++; } })(), (e) => e instanceof OpenAI.APIError);
    assert.equal(n, 2);
  });

  test('fault-malformed: 200 with invalid JSON', async () => {
    const r = await fetch(`${mock.baseURL}/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-mock' }, body: JSON.stringify({ model: 'fault-malformed', messages: [{ role: 'user', content: 'x' }] }) });
    assert.equal(r.status, 200);
    const t = await r.text();
    assert.throws(() => JSON.parse(t));
    await assert.rejects(chatReq('fault-malformed'));
  });

  test('fault-200-error: 200 with an OpenAI error body', async () => {
    const r = await fetch(`${mock.baseURL}/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-mock' }, body: JSON.stringify({ model: 'fault-200-error', messages: [{ role: 'user', content: 'x' }] }) });
    assert.equal(r.status, 200);
    assert.equal(openAIError(await r.json()).type, 'server_error');
  });

  test('fault-big-<n>: content of exactly n bytes, streamed in pieces too', async () => {
    const r = await chatReq('fault-big-200000');
    assert.equal(r.choices[0].message.content.length, 200000);
    const stream = await client.chat.completions.create({ model: 'fault-big-10000', stream: true, messages: [{ role: 'user', content: 'x' }] });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text.length, 10000);
  });

  test('x-mock-fault header works for GET /models', async () => {
    const r = await fetch(`${mock.baseURL}/models`, { headers: { authorization: 'Bearer sk-mock', 'x-mock-fault': 'fault-503' } });
    assert.equal(r.status, 503);
  });

  test('introspection: /__requests records method, path, headers, body; DELETE clears', async () => {
    await mock.clearRequests();
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'recorded' }] }, { headers: { 'x-test': 'yes' } });
    const reqs = await mock.requests();
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].method, 'POST');
    assert.equal(reqs[0].path, '/v1/chat/completions');
    assert.equal(reqs[0].headers.authorization, 'Bearer sk-mock');
    assert.equal(reqs[0].headers['x-test'], 'yes');
    assert.equal(reqs[0].body.messages[0].content, 'recorded');
    await mock.clearRequests();
    assert.deepEqual(await mock.requests(), []);
    const st = await mock.stats();
    for (const k of ['connections_open', 'connections_total', 'requests_total', 'streams_started', 'streams_completed', 'streams_aborted']) {
      assert.equal(typeof st[k], 'number', k);
    }
  });
});
