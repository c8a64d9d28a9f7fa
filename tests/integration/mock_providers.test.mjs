// Self-test of the provider mocks in tests/mock/ (anthropic_mock, gemini_mock, bedrock_mock,
// azure_mock): each is driven directly, with the official SDK where the repo has one
// (@anthropic-ai/sdk, openai's AzureOpenAI) and raw fetch otherwise, to prove the wire formats,
// the validation and the auth checks before the gateway tests rely on them.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import { AzureOpenAI } from 'openai';
import { startAnthropicMock, toolInput as anthropicToolInput, thinkingText } from '../mock/anthropic_mock.mjs';
import { startGeminiMock, signAssertion, toolArgs } from '../mock/gemini_mock.mjs';
import { startBedrockMock, toolInput as bedrockToolInput } from '../mock/bedrock_mock.mjs';
import { startAzureMock, PROMPT_FILTER_RESULTS } from '../mock/azure_mock.mjs';
import { signRequest, canonicalUri } from '../mock/lib/sigv4.mjs';
import { decodeFrames, crc32js, encodeFrame } from '../mock/lib/eventstream.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MODEL = 'claude-mock-1';
const TOOLS = [
  { name: 'get_weather', description: 'weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
  { name: 'get_time', description: 'time', input_schema: { type: 'object', properties: {} } },
];

// ---------------------------------------------------------------------------------------------
// Anthropic
// ---------------------------------------------------------------------------------------------
describe('anthropic mock, via @anthropic-ai/sdk', () => {
  let m;
  let client;
  before(async () => {
    m = await startAnthropicMock();
    client = new Anthropic({ baseURL: m.url, apiKey: m.key, maxRetries: 0, timeout: 10000 });
  });
  after(async () => { await m?.stop(); });

  test('non-stream message: full Message shape and usage', async () => {
    const r = await client.messages.create({ model: MODEL, max_tokens: 100, system: 'be brief', messages: [{ role: 'user', content: 'hello there mock' }] });
    assert.equal(r.type, 'message');
    assert.equal(r.role, 'assistant');
    assert.match(r.id, /^msg_01/);
    assert.equal(r.model, MODEL);
    assert.deepEqual(r.content, [{ type: 'text', text: 'You said: hello there mock' }]);
    assert.equal(r.stop_reason, 'end_turn');
    assert.equal(r.stop_sequence, null);
    assert.equal(r.usage.output_tokens, 5); // "You ", "said: ", "hello ", "there ", "mock"
    assert.ok(r.usage.input_tokens >= 1);
    assert.equal(r.usage.cache_creation_input_tokens, 0);
    assert.equal(r.usage.cache_read_input_tokens, 0);
  });

  test('stream with thinking and parallel tool use: exact event sequence, fragments assemble, round trip', async () => {
    const body = { model: MODEL, max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 1024 }, tools: TOOLS, messages: [{ role: 'user', content: 'please use parallel tools now' }] };
    const stream = client.messages.stream(body);
    const events = [];
    for await (const ev of stream) events.push(ev);
    const final = await stream.finalMessage();
    const types = events.map((e) => e.type);
    assert.equal(types[0], 'message_start');
    assert.equal(types.at(-1), 'message_stop');
    assert.equal(types.at(-2), 'message_delta');
    // one content block open at a time: start, deltas, stop, in index order
    let open = null;
    let next = 0;
    for (const e of events) {
      if (e.type === 'content_block_start') { assert.equal(open, null); assert.equal(e.index, next); open = e.index; }
      if (e.type === 'content_block_delta') assert.equal(e.index, open);
      if (e.type === 'content_block_stop') { assert.equal(e.index, open); open = null; next++; }
    }
    const ms = events[0].message; // (the SDK fills this object's content as the stream goes)
    for (const k of ['input_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens']) assert.equal(typeof ms.usage[k], 'number', k);
    const md = events.at(-2);
    assert.equal(md.delta.stop_reason, 'tool_use');
    assert.equal(md.usage.output_tokens, final.usage.output_tokens);
    // thinking: thinking_delta then signature_delta
    const kinds = events.filter((e) => e.type === 'content_block_delta' && e.index === 0).map((e) => e.delta.type);
    assert.ok(kinds.length >= 2 && kinds.slice(0, -1).every((k) => k === 'thinking_delta') && kinds.at(-1) === 'signature_delta');
    assert.equal(final.content[0].type, 'thinking');
    assert.equal(final.content[0].thinking, thinkingText(body));
    assert.ok(final.content[0].signature.length > 20);
    // text preamble, then two tool_use blocks whose input_json_delta fragments assemble to the input
    assert.deepEqual(final.content.map((b) => b.type), ['thinking', 'text', 'tool_use', 'tool_use']);
    assert.deepEqual(final.content.slice(2).map((b) => b.name), ['get_weather', 'get_time']);
    for (const idx of [2, 3]) {
      const frags = events.filter((e) => e.type === 'content_block_delta' && e.index === idx).map((e) => e.delta.partial_json);
      assert.ok(frags.length > 5, 'input split over many fragments');
      assert.ok(frags.some((f) => /^[^{"]/.test(f) && f.length < 4), 'fragments split at odd places');
      assert.deepEqual(JSON.parse(frags.join('')), anthropicToolInput(final.content[idx].name, 'please use parallel tools now'));
      assert.deepEqual(final.content[idx].input, anthropicToolInput(final.content[idx].name, 'please use parallel tools now'));
    }
    // round trip: the assistant turn verbatim (with its signature), then the tool results
    const results = final.content.filter((b) => b.type === 'tool_use').map((b) => ({ type: 'tool_result', tool_use_id: b.id, content: `${b.name} ok` }));
    const r2 = await client.messages.create({ ...body, messages: [...body.messages, { role: 'assistant', content: final.content }, { role: 'user', content: results }] });
    assert.equal(r2.stop_reason, 'end_turn');
    assert.equal(r2.content.at(-1).text, 'Tool said: get_weather ok | get_time ok');
    // a tampered signature, or thinking dropped from the tool-use turn, is a 400 like the real API
    const tampered = structuredClone(final.content);
    tampered[0].signature = `x${tampered[0].signature.slice(1)}`;
    await assert.rejects(client.messages.create({ ...body, messages: [...body.messages, { role: 'assistant', content: tampered }, { role: 'user', content: results }] }),
      (e) => e.status === 400 && /Invalid `signature`/.test(e.error.error.message));
    await assert.rejects(client.messages.create({ ...body, messages: [...body.messages, { role: 'assistant', content: final.content.slice(1) }, { role: 'user', content: results }] }),
      (e) => e.status === 400 && /Expected `thinking` or `redacted_thinking`/.test(e.error.error.message));
  });

  test('text stream: text_delta words, message_delta usage, stop_sequence and max_tokens', async () => {
    const events = [];
    for await (const ev of await client.messages.create({ model: MODEL, max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'one two three' }] })) events.push(ev);
    const text = events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join('');
    assert.equal(text, 'You said: one two three');
    assert.equal(events.at(-2).usage.output_tokens, 5);
    const s = await client.messages.create({ model: MODEL, max_tokens: 100, stop_sequences: ['two'], messages: [{ role: 'user', content: 'one two three' }] });
    assert.equal(s.stop_reason, 'stop_sequence');
    assert.equal(s.stop_sequence, 'two');
    assert.equal(s.content[0].text, 'You said: one ');
    const t = await client.messages.create({ model: MODEL, max_tokens: 2, messages: [{ role: 'user', content: 'one two three' }] });
    assert.equal(t.stop_reason, 'max_tokens');
    assert.equal(t.content[0].text, 'You said: ');
    assert.equal(t.usage.output_tokens, 2);
  });

  test('validation: OpenAI-only and unknown fields, required fields, turn order, tool pairing', async () => {
    const ok = { model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] };
    const cases = [
      [{ ...ok, stream_options: { include_usage: true } }, /^stream_options: Extra inputs are not permitted$/],
      [{ ...ok, n: 2 }, /^n: Extra inputs are not permitted$/],
      [{ ...ok, response_format: { type: 'json_object' } }, /^response_format: Extra inputs/],
      [{ ...ok, frequency_penalty: 0.5 }, /^frequency_penalty: Extra inputs/],
      [{ model: MODEL, messages: ok.messages }, /^max_tokens: Field required$/],
      [{ ...ok, messages: [{ role: 'assistant', content: 'x' }] }, /first message must use the "user" role/],
      [{ ...ok, messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] }, /roles must alternate/],
      [{ ...ok, messages: [{ role: 'system', content: 'a' }] }, /messages\.0\.role: Input should be 'user' or 'assistant'/],
      [{ ...ok, messages: [{ role: 'user', content: 'a', name: 'bob' }] }, /messages\.0\.name: Extra inputs/],
      [{ ...ok, tool_choice: 'auto', tools: TOOLS }, /tool_choice: Input should be a valid dictionary/],
      [{ ...ok, tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }, /tools\.0: Input tag 'function'/],
      [{ ...ok, messages: [{ role: 'user', content: [{ type: 'text', text: '' }] }] }, /text content blocks must be non-empty/],
      [{ ...ok, tools: TOOLS, messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_time', input: {} }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_2', content: 'r' }] }] }, /unexpected `tool_use_id` found in `tool_result` blocks: toolu_2/],
      [{ ...ok, tools: TOOLS, messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_time', input: {} }] }, { role: 'user', content: 'no result' }] }, /`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1/],
      [{ ...ok, tools: TOOLS, messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: [{ type: 'tool_use', id: 'call_1', name: 'get_time', input: {} }] }, { role: 'user', content: [{ type: 'text', text: 'first' }, { type: 'tool_result', tool_use_id: 'call_1' }] }] }, /`tool_result` blocks must come first/],
      [{ ...ok, max_tokens: 1000, thinking: { type: 'enabled', budget_tokens: 2000 } }, /`max_tokens` must be greater than `thinking.budget_tokens`/],
      [{ ...ok, max_tokens: 3000, thinking: { type: 'enabled', budget_tokens: 1024 }, temperature: 0.5 }, /`temperature` may only be set to 1 when thinking is enabled/],
      [{ ...ok, temperature: 1.5 }, /temperature: Input should be less than or equal to 1/],
    ];
    for (const [body, re] of cases) {
      await assert.rejects(client.messages.create(body), (e) => {
        assert.equal(e.status, 400, JSON.stringify(body));
        assert.equal(e.error.type, 'error');
        assert.equal(e.error.error.type, 'invalid_request_error');
        assert.match(e.error.error.message, re);
        return true;
      });
    }
  });

  test('auth and headers: x-api-key or Bearer; anthropic-version required; anthropic-beta recorded', async () => {
    const bad = new Anthropic({ baseURL: m.url, apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(bad.messages.create({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 401 && e.error.error.type === 'authentication_error');
    const body = JSON.stringify({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    let r = await fetch(`${m.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': m.key }, body });
    assert.equal(r.status, 400);
    assert.match((await r.json()).error.message, /anthropic-version/);
    await m.clearRequests();
    r = await fetch(`${m.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${m.key}`, 'anthropic-version': '2023-06-01', 'anthropic-beta': 'prompt-caching-2024-07-31, interleaved-thinking-2025-05-14' }, body });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('request-id'), /^req_/);
    const [entry] = await m.requests();
    assert.deepEqual(entry.betas, ['prompt-caching-2024-07-31', 'interleaved-thinking-2025-05-14']);
    assert.equal(entry.body.model, MODEL);
    assert.equal((await m.stats()).betas['prompt-caching-2024-07-31'], 1);
  });

  test('faults: 429 with retry-after, 529 overloaded, 500, mid-stream event: error', async () => {
    await assert.rejects(client.messages.create({ model: `${MODEL}+fault-429`, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), (e) => {
      assert.equal(e.status, 429);
      assert.equal(e.error.error.type, 'rate_limit_error');
      assert.equal(e.headers.get('retry-after'), '1');
      return true;
    });
    await assert.rejects(client.messages.create({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'fault-529' }] }), (e) => e.status === 529 && e.error.error.type === 'overloaded_error');
    await assert.rejects(client.messages.create({ model: `${MODEL}+fault-500`, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 500 && e.error.error.type === 'api_error');
    const r = await fetch(`${m.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': m.key, 'anthropic-version': '2023-06-01' }, body: JSON.stringify({ model: `${MODEL}+fault-error-after-3`, max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'a b c d e' }] }) });
    const text = await r.text();
    const blocks = text.split('\n\n').filter(Boolean);
    assert.equal(blocks.length, 4);
    assert.match(blocks[0], /^event: message_start\n/);
    assert.match(blocks[1], /^event: content_block_start\n/);
    assert.equal(blocks[2], 'event: ping\ndata: {"type":"ping"}');
    assert.match(blocks[3], /^event: error\ndata: \{"type":"error","error":\{"type":"overloaded_error","message":"Overloaded"\}/);
    await assert.rejects((async () => { for await (const ev of await client.messages.create({ model: `${MODEL}+fault-error-after-3`, max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'a b c' }] })) void ev; })(), /Overloaded/);
  });

  test('cache_control: first request writes, the same prefix again reads; count_tokens; models', async () => {
    const body = { model: MODEL, max_tokens: 50, system: [{ type: 'text', text: 'A long system prompt. '.repeat(20), cache_control: { type: 'ephemeral' } }], messages: [{ role: 'user', content: 'cached?' }] };
    const a = await client.messages.create(body);
    assert.ok(a.usage.cache_creation_input_tokens > 0);
    assert.equal(a.usage.cache_read_input_tokens, 0);
    assert.equal(a.usage.cache_creation.ephemeral_5m_input_tokens, a.usage.cache_creation_input_tokens);
    const b = await client.messages.create({ ...body, messages: [{ role: 'user', content: 'again?' }] });
    assert.equal(b.usage.cache_creation_input_tokens, 0);
    assert.equal(b.usage.cache_read_input_tokens, a.usage.cache_creation_input_tokens);
    const c = await client.messages.countTokens({ model: MODEL, messages: [{ role: 'user', content: 'count these chars' }] });
    assert.equal(c.input_tokens, Math.ceil('count these chars'.length / 4));
    const models = await client.models.list();
    assert.ok(models.data.length >= 3 && models.data.every((x) => x.type === 'model' && x.id.startsWith('claude')));
  });

  test('CLI: prints {"port"} and serves', async () => {
    const child = spawn(process.execPath, [path.join(HERE, '..', 'mock', 'anthropic_mock.mjs'), '--port', '0', '--key', 'k2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const port = await new Promise((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(JSON.parse(out).port); });
        child.once('exit', (c) => reject(new Error(`exited ${c}`)));
      });
      const r = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { 'x-api-key': 'k2', 'anthropic-version': '2023-06-01' } });
      assert.equal(r.status, 200);
    } finally {
      process.kill(child.pid, 'SIGTERM');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Gemini
// ---------------------------------------------------------------------------------------------
describe('gemini mock, raw fetch', () => {
  let m;
  before(async () => { m = await startGeminiMock(); });
  after(async () => { await m?.stop(); });
  const studio = (model, method, q = '') => `${m.url}/v1beta/models/${model}:${method}${q}`;
  const vertex = (model, method, q = '') => `${m.url}/v1/projects/p1/locations/us-central1/publishers/google/models/${model}:${method}${q}`;
  const post = async (url, body, headers = { 'x-goog-api-key': m.apiKey }) => {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    const text = await r.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: r.status, headers: r.headers, text, json };
  };
  const sseData = (text) => {
    assert.ok(text.includes('\r\n\r\n'), 'events separated by CRLF CRLF like Google');
    return text.split('\r\n\r\n').filter(Boolean).map((e) => { assert.ok(e.startsWith('data: ')); return JSON.parse(e.slice(6)); });
  };
  const tools = [{ functionDeclarations: [{ name: 'get_weather', description: 'w', parameters: { type: 'OBJECT', properties: { city: { type: 'STRING' } } } }, { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } }] }];

  test('generateContent (AI Studio, key in header or ?key=): candidates, usageMetadata', async () => {
    for (const [url, h] of [[studio('gemini-2.0-flash', 'generateContent'), undefined], [studio('gemini-2.0-flash', 'generateContent', `?key=${m.apiKey}`), {}]]) {
      const r = await post(url, { contents: [{ role: 'user', parts: [{ text: 'hello gemini' }] }] }, h);
      assert.equal(r.status, 200, r.text);
      const c = r.json.candidates[0];
      assert.deepEqual(c.content, { parts: [{ text: 'You said: hello gemini' }], role: 'model' });
      assert.equal(c.finishReason, 'STOP');
      assert.equal(c.index, 0);
      const u = r.json.usageMetadata;
      assert.equal(u.candidatesTokenCount, 4);
      assert.equal(u.totalTokenCount, u.promptTokenCount + u.candidatesTokenCount);
      assert.equal(r.json.modelVersion, 'gemini-2.0-flash');
    }
  });

  test('auth errors in Google shape: missing key 403, wrong key 400 API_KEY_INVALID', async () => {
    let r = await post(studio('gemini-2.0-flash', 'generateContent'), { contents: [{ parts: [{ text: 'x' }] }] }, {});
    assert.equal(r.status, 403);
    assert.equal(r.json.error.status, 'PERMISSION_DENIED');
    r = await post(studio('gemini-2.0-flash', 'generateContent'), { contents: [{ parts: [{ text: 'x' }] }] }, { 'x-goog-api-key': 'nope' });
    assert.equal(r.status, 400);
    assert.deepEqual(Object.keys(r.json.error), ['code', 'message', 'status', 'details']);
    assert.equal(r.json.error.details[0].reason, 'API_KEY_INVALID');
  });

  test('streamGenerateContent?alt=sse: chunks, thought part, functionCall with thoughtSignature, round trip', async () => {
    const body = { contents: [{ role: 'user', parts: [{ text: 'please use tool get_time' }] }], tools, generation_config: { thinking_config: { include_thoughts: true, thinking_budget: 512 } } };
    const r = await post(studio('gemini-2.5-flash', 'streamGenerateContent', '?alt=sse'), body);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    const chunks = sseData(r.text);
    assert.equal(chunks[0].candidates[0].content.parts[0].thought, true);
    const last = chunks.at(-1);
    const call = last.candidates[0].content.parts[0];
    assert.equal(call.functionCall.name, 'get_time');
    assert.deepEqual(call.functionCall.args, toolArgs('get_time', 'please use tool get_time'));
    assert.ok(call.thoughtSignature);
    assert.equal(last.candidates[0].finishReason, 'STOP');
    assert.ok(last.usageMetadata.thoughtsTokenCount > 0);
    assert.ok(chunks.slice(0, -1).every((c) => !c.candidates[0].finishReason));
    // round trip with the function response
    const r2 = await post(studio('gemini-2.5-flash', 'generateContent'), { ...body, contents: [...body.contents, { role: 'model', parts: [call] }, { role: 'user', parts: [{ functionResponse: { name: 'get_time', response: { time: '12:00' } } }] }] });
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.json.candidates[0].content.parts.at(-1).text, 'Tool said: {"time":"12:00"}');
    // the prefix was seen: implicit cache
    assert.ok(r2.json.usageMetadata.cachedContentTokenCount > 0);
  });

  test('text stream assembles; parallel tools; no alt=sse gives a JSON array', async () => {
    let r = await post(studio('gemini-2.0-flash', 'streamGenerateContent', '?alt=sse'), { contents: [{ role: 'user', parts: [{ text: 'one two three four five' }] }] });
    const chunks = sseData(r.text);
    assert.ok(chunks.length >= 3);
    assert.equal(chunks.map((c) => c.candidates[0].content.parts[0].text).join(''), 'You said: one two three four five');
    assert.equal(chunks.at(-1).usageMetadata.candidatesTokenCount, 7);
    r = await post(studio('gemini-2.0-flash', 'generateContent'), { contents: [{ role: 'user', parts: [{ text: 'parallel tools please' }] }], tools });
    assert.deepEqual(r.json.candidates[0].content.parts.map((p) => p.functionCall.name), ['get_weather', 'get_time']);
    r = await post(studio('gemini-2.0-flash', 'streamGenerateContent'), { contents: [{ role: 'user', parts: [{ text: 'array form' }] }] });
    assert.ok(Array.isArray(r.json));
    assert.equal(r.json.map((c) => c.candidates[0].content.parts[0].text).join(''), 'You said: array form');
  });

  test('validation like the real API', async () => {
    const u = (t) => ({ role: 'user', parts: [{ text: t }] });
    const cases = [
      [{ messages: [{ role: 'user', content: 'x' }] }, /Unknown name "messages": Cannot find field/],
      [{ contents: [] }, /contents is not specified/],
      [{ contents: [{ role: 'assistant', parts: [{ text: 'x' }] }] }, /Please use a valid role: user, model\./],
      [{ contents: [{ role: 'user', parts: [] }] }, /parts must not be empty/],
      [{ contents: [{ role: 'user', parts: [{ text: 'a', functionCall: { name: 'f' } }] }] }, /oneof field 'data' is already set/],
      [{ contents: [u('x'), { role: 'user', parts: [{ functionResponse: { name: 'f', response: {} } }] }] }, /function response turn comes immediately after a function call turn/],
      [{ contents: [u('x'), { role: 'model', parts: [{ functionCall: { name: 'f', args: {} } }, { functionCall: { name: 'g', args: {} } }] }, { role: 'user', parts: [{ functionResponse: { name: 'f', response: {} } }] }] }, /number of function response parts is equal to the number of function call parts/],
      [{ contents: [u('x')], tools: [{ functionDeclarations: [{ name: 'f', parameters: { type: 'object', additionalProperties: false, properties: { a: { type: 'string' } } } }] }] }, /Unknown name "additionalProperties" at 'tools\[0\]\.function_declarations\[0\]\.parameters'/],
      [{ contents: [u('x')], generationConfig: { max_tokens: 5 } }, /Unknown name "max_tokens" at 'generation_config'/],
      [{ contents: [u('x')], generationConfig: { temperature: 3 } }, /temperature must be in the range/],
      [{ contents: [u('x')], tools: [{ functionDeclarations: [{ name: '1bad name' }] }] }, /Invalid function name/],
    ];
    for (const [body, re] of cases) {
      const r = await post(studio('gemini-2.0-flash', 'generateContent'), body);
      assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.text}`);
      assert.equal(r.json.error.code, 400);
      assert.equal(r.json.error.status, 'INVALID_ARGUMENT');
      assert.match(r.json.error.message, re);
    }
    // gemini-3: a function call of the current turn must carry its thoughtSignature
    const r = await post(studio('gemini-3-pro-preview', 'generateContent'), { contents: [u('x'), { role: 'model', parts: [{ functionCall: { name: 'get_time', args: {} } }] }, { role: 'user', parts: [{ functionResponse: { name: 'get_time', response: {} } }] }], tools });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /missing a thought_signature/);
  });

  test('embedContent and batchEmbedContents', async () => {
    let r = await post(studio('gemini-embedding-001', 'embedContent'), { content: { parts: [{ text: 'embed me' }] }, outputDimensionality: 16 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.embedding.values.length, 16);
    r = await post(studio('gemini-embedding-001', 'batchEmbedContents'), { requests: [{ model: 'models/gemini-embedding-001', content: { parts: [{ text: 'a' }] } }, { model: 'models/gemini-embedding-001', content: { parts: [{ text: 'b' }] } }] });
    assert.equal(r.json.embeddings.length, 2);
    assert.notDeepEqual(r.json.embeddings[0].values, r.json.embeddings[1].values);
  });

  test('faults in Google error shape: 429 RESOURCE_EXHAUSTED with RetryInfo, 503 UNAVAILABLE', async () => {
    let r = await post(studio('gemini-2.0-flash+fault-429', 'generateContent'), { contents: [{ parts: [{ text: 'x' }] }] });
    assert.equal(r.status, 429);
    assert.equal(r.json.error.status, 'RESOURCE_EXHAUSTED');
    assert.equal(r.json.error.details[0].retryDelay, '1s');
    r = await post(studio('gemini-2.0-flash', 'generateContent'), { contents: [{ parts: [{ text: 'fault-503' }] }] });
    assert.equal(r.status, 503);
    assert.equal(r.json.error.status, 'UNAVAILABLE');
  });

  test('Vertex: RS256 JWT → token endpoint → Bearer; wrong key, bad audience, expired token', async () => {
    const grant = (assertion) => fetch(m.tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }) });
    const before0 = (await m.stats()).token_mints;
    // no token
    let r = await post(vertex('gemini-2.0-flash', 'generateContent'), { contents: [{ role: 'user', parts: [{ text: 'x' }] }] }, {});
    assert.equal(r.status, 401);
    assert.equal(r.json.error.status, 'UNAUTHENTICATED');
    // a JWT signed with another key
    const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    let t = await grant(signAssertion({ privateKeyPem: other, aud: m.tokenUrl }));
    assert.equal(t.status, 400);
    assert.deepEqual(await t.json(), { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
    // wrong audience, too long lifetime
    t = await grant(signAssertion({ privateKeyPem: m.privateKeyPem, aud: 'http://elsewhere/token' }));
    assert.equal(t.status, 400);
    assert.match((await t.json()).error_description, /audience/);
    const now = Math.floor(Date.now() / 1000);
    t = await grant(signAssertion({ privateKeyPem: m.privateKeyPem, aud: m.tokenUrl, iat: now, exp: now + 7200 }));
    assert.equal(t.status, 400);
    assert.equal((await t.json()).error, 'invalid_grant');
    // the right key
    t = await grant(signAssertion({ privateKeyPem: m.privateKeyPem, aud: m.tokenUrl }));
    assert.equal(t.status, 200);
    const tok = await t.json();
    assert.deepEqual(Object.keys(tok).sort(), ['access_token', 'expires_in', 'token_type']);
    assert.equal(tok.token_type, 'Bearer');
    assert.equal((await m.stats()).token_mints, before0 + 1);
    r = await post(vertex('gemini-2.0-flash', 'generateContent'), { contents: [{ role: 'user', parts: [{ text: 'vertex hi' }] }] }, { authorization: `Bearer ${tok.access_token}` });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.candidates[0].content.parts[0].text, 'You said: vertex hi');
    r = await post(vertex('gemini-2.0-flash', 'streamGenerateContent', '?alt=sse'), { contents: [{ role: 'user', parts: [{ text: 'vertex stream' }] }] }, { authorization: `Bearer ${tok.access_token}` });
    assert.equal(sseData(r.text).map((c) => c.candidates[0].content.parts[0].text).join(''), 'You said: vertex stream');
    // the API key does not work on Vertex paths; an expired token is refused
    r = await post(vertex('gemini-2.0-flash', 'generateContent'), { contents: [{ role: 'user', parts: [{ text: 'x' }] }] });
    assert.equal(r.status, 401);
    m.expireTokens();
    r = await post(vertex('gemini-2.0-flash', 'generateContent'), { contents: [{ role: 'user', parts: [{ text: 'x' }] }] }, { authorization: `Bearer ${tok.access_token}` });
    assert.equal(r.status, 401);
    assert.equal(r.json.error.details[0].reason, 'ACCESS_TOKEN_EXPIRED');
  });
});

// ---------------------------------------------------------------------------------------------
// Bedrock
// ---------------------------------------------------------------------------------------------
describe('bedrock mock, SigV4-signed fetch + eventstream decoding', () => {
  let m;
  before(async () => { m = await startBedrockMock({ accessKeyId: 'AKIDTEST', secretAccessKey: 'test/secret', region: 'eu-west-1' }); });
  after(async () => { await m?.stop(); });
  const call = async (modelId, op, body, { secret, region, tamper, signUrl, accessKeyId } = {}) => {
    const url = `${m.url}/model/${encodeURIComponent(modelId)}/${op}`;
    const payload = JSON.stringify(body);
    const s = signRequest({ url: signUrl ?? url, headers: { 'content-type': 'application/json', accept: op === 'converse' ? 'application/json' : 'application/vnd.amazon.eventstream' }, body: payload, accessKeyId: accessKeyId ?? m.accessKeyId, secretAccessKey: secret ?? m.secretAccessKey, region: region ?? m.region });
    if (signUrl) s.headers.host = new URL(url).host;
    const r = await fetch(url, { method: 'POST', headers: s.headers, body: tamper ? payload.replace('hello', 'HELLO') : payload });
    const buf = Buffer.from(await r.arrayBuffer());
    let json;
    try { json = JSON.parse(buf.toString('utf8')); } catch { json = undefined; }
    return { status: r.status, headers: r.headers, buf, json };
  };
  const user = (t) => ({ role: 'user', content: [{ text: t }] });
  const toolConfig = { tools: [{ toolSpec: { name: 'get_weather', description: 'w', inputSchema: { json: { type: 'object', properties: { city: { type: 'string' } } } } } }, { toolSpec: { name: 'get_time', inputSchema: { json: { type: 'object' } } } }] };

  test('sigv4 helper reproduces the AWS get-vanilla test vector', () => {
    const s = signRequest({ method: 'GET', url: 'https://example.amazonaws.com/', body: '', accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', region: 'us-east-1', service: 'service', date: new Date('2015-08-30T12:36:00Z') });
    assert.equal(s.signature, '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31');
    assert.equal(canonicalUri('/model/a%3Ab/converse'), '/model/a%253Ab/converse');
  });

  test('Converse: signed request → output.message, stopReason, usage, metrics', async () => {
    const r = await call('anthropic.claude-3-haiku-20240307-v1:0', 'converse', { messages: [user('hello bedrock')], inferenceConfig: { maxTokens: 100 } });
    assert.equal(r.status, 200, r.buf.toString());
    assert.deepEqual(r.json.output, { message: { role: 'assistant', content: [{ text: 'You said: hello bedrock' }] } });
    assert.equal(r.json.stopReason, 'end_turn');
    assert.equal(r.json.usage.outputTokens, 4);
    assert.equal(r.json.usage.totalTokens, r.json.usage.inputTokens + r.json.usage.outputTokens);
    assert.equal(typeof r.json.metrics.latencyMs, 'number');
    const entries = await m.requests();
    assert.equal(entries.at(-1).sigv4.ok, true);
    assert.equal(entries.at(-1).modelId, 'anthropic.claude-3-haiku-20240307-v1:0');
  });

  test('ConverseStream: binary frames with valid CRCs, event sequence, toolUse input fragments, reasoning', async () => {
    const arn = 'arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-sonnet';
    const r = await call(arn, 'converse-stream', { messages: [user('use tool get_time please')], toolConfig, additionalModelRequestFields: { thinking: { type: 'enabled', budget_tokens: 1024 } } });
    assert.equal(r.status, 200, r.buf.toString());
    assert.equal(r.headers.get('content-type'), 'application/vnd.amazon.eventstream');
    // check the CRCs by hand on the first frame too (independent of the decoder)
    const total = r.buf.readUInt32BE(0);
    assert.equal(crc32js(r.buf.subarray(0, 8)), r.buf.readUInt32BE(8));
    assert.equal(crc32js(r.buf.subarray(0, total - 4)), r.buf.readUInt32BE(total - 4));
    const { frames, rest } = decodeFrames(r.buf);
    assert.equal(rest.length, 0);
    assert.ok(frames.every((f) => f.headers[':message-type'] === 'event' && f.headers[':content-type'] === 'application/json'));
    const types = frames.map((f) => f.headers[':event-type']);
    assert.equal(types[0], 'messageStart');
    assert.deepEqual(types.slice(-2), ['messageStop', 'metadata']);
    assert.ok(frames.every((f) => typeof f.json.p === 'string'), 'padding member p');
    const deltas = (i) => frames.filter((f) => f.headers[':event-type'] === 'contentBlockDelta' && f.json.contentBlockIndex === i).map((f) => f.json.delta);
    // block 0: reasoning text then signature
    const d0 = deltas(0);
    assert.ok(d0.at(-1).reasoningContent.signature);
    assert.equal(d0.slice(0, -1).map((d) => d.reasoningContent.text).join(''), 'Thinking about: use tool get_time please');
    // block 2: toolUse, announced by contentBlockStart, input as fragments
    const start = frames.find((f) => f.headers[':event-type'] === 'contentBlockStart');
    assert.equal(start.json.contentBlockIndex, 2);
    assert.equal(start.json.start.toolUse.name, 'get_time');
    assert.match(start.json.start.toolUse.toolUseId, /^tooluse_/);
    const frags = deltas(2).map((d) => d.toolUse.input);
    assert.ok(frags.length > 5);
    assert.deepEqual(JSON.parse(frags.join('')), bedrockToolInput('get_time', 'use tool get_time please'));
    assert.equal(frames.at(-2).json.stopReason, 'tool_use');
    const meta = frames.at(-1).json;
    assert.ok(meta.usage.outputTokens > 0 && typeof meta.metrics.latencyMs === 'number');
    // round trip: the assistant turn (reasoning with signature, text, toolUse) and the toolResult
    const sig = d0.at(-1).reasoningContent.signature;
    const assistant = { role: 'assistant', content: [
      { reasoningContent: { reasoningText: { text: 'Thinking about: use tool get_time please', signature: sig } } },
      { text: 'Let me use get_time.' },
      { toolUse: { toolUseId: start.json.start.toolUse.toolUseId, name: 'get_time', input: JSON.parse(frags.join('')) } },
    ] };
    const r2 = await call(arn, 'converse', { messages: [user('use tool get_time please'), assistant, { role: 'user', content: [{ toolResult: { toolUseId: start.json.start.toolUse.toolUseId, content: [{ json: { t: '12:00' } }] } }] }], toolConfig });
    assert.equal(r2.status, 200, r2.buf.toString());
    assert.equal(r2.json.output.message.content[0].text, 'Tool said: {"t":"12:00"}');
    assistant.content[0].reasoningContent.reasoningText.signature = 'AAAA';
    const r3 = await call(arn, 'converse', { messages: [user('use tool get_time please'), assistant, { role: 'user', content: [{ toolResult: { toolUseId: start.json.start.toolUse.toolUseId, content: [{ text: 'x' }] } }] }], toolConfig });
    assert.equal(r3.status, 400);
  });

  test('SigV4 failures: 403 with AWS error shape naming what differed', async () => {
    const body = { messages: [user('hello')] };
    let r = await call('m1', 'converse', body, { secret: 'wrong/secret' });
    assert.equal(r.status, 403);
    assert.match(r.headers.get('x-amzn-errortype'), /^InvalidSignatureException/);
    assert.match(r.json.message, /The Canonical String for this request should have been/);
    r = await call('m1', 'converse', body, { tamper: true });
    assert.equal(r.status, 403);
    assert.match(r.headers.get('x-mock-sigv4'), /signature mismatch/);
    r = await call('m1', 'converse', body, { region: 'us-east-1' });
    assert.equal(r.status, 403);
    assert.match(r.json.message, /Credential should be scoped to a valid region/);
    r = await call('m1', 'converse', body, { accessKeyId: 'AKIDOTHER' });
    assert.equal(r.status, 403);
    assert.match(r.headers.get('x-amzn-errortype'), /^UnrecognizedClientException/);
    // a client that forgets to encode the path a second time gets told so
    r = await call('a:b', 'converse', body, { signUrl: `${m.url}/model/a:b/converse` });
    assert.equal(r.status, 403);
    assert.match(r.json.message, /NOT URI-encoded a second time/);
    r = await fetch(`${m.url}/model/m1/converse`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 403);
    assert.match(r.headers.get('x-amzn-errortype'), /^MissingAuthenticationTokenException/);
    assert.ok((await m.stats()).sigv4_failed >= 6);
  });

  test('Converse validation: toolResult without toolUse, alternation, first role, unknown member, blank text', async () => {
    const cases = [
      [{ messages: [{ role: 'user', content: [{ toolResult: { toolUseId: 'tooluse_x', content: [{ text: 'a' }] } }] }], toolConfig }, /number of toolResult blocks at messages\.0\.content exceeds the number of toolUse blocks/],
      [{ messages: [user('a'), { role: 'assistant', content: [{ toolUse: { toolUseId: 't1', name: 'get_time', input: {} } }] }, user('b')], toolConfig }, /Expected toolResult blocks at messages\.2\.content for the following Ids: t1/],
      [{ messages: [user('a'), { role: 'assistant', content: [{ toolUse: { toolUseId: 't1', name: 'get_time', input: {} } }] }, { role: 'user', content: [{ toolResult: { toolUseId: 't1', content: [{ text: 'x' }] } }] }] }, /toolConfig field must be defined/],
      [{ messages: [user('a'), user('b')] }, /must alternate between user and assistant/],
      [{ messages: [{ role: 'assistant', content: [{ text: 'a' }] }] }, /must start with a user message/],
      [{ messages: [user('a')], stream: true }, /Unknown member 'stream'/],
      [{ messages: [user(' ')] }, /is blank/],
      [{ messages: [user('a')], inferenceConfig: { max_tokens: 5 } }, /Unknown member 'max_tokens'/],
    ];
    for (const [body, re] of cases) {
      const r = await call('m1', 'converse', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.headers.get('x-amzn-errortype'), /^ValidationException:/);
      assert.match(r.json.message, re);
    }
  });

  test('exceptions: HTTP ThrottlingException, in-stream exception frame', async () => {
    let r = await call('m1+fault-429', 'converse', { messages: [user('x')] });
    assert.equal(r.status, 429);
    assert.match(r.headers.get('x-amzn-errortype'), /^ThrottlingException/);
    assert.deepEqual(Object.keys(r.json), ['message']);
    r = await call('m1+fault-error-after-2', 'converse-stream', { messages: [user('a b c d')] });
    assert.equal(r.status, 200);
    const { frames } = decodeFrames(r.buf);
    assert.equal(frames.length, 3);
    assert.equal(frames[2].headers[':message-type'], 'exception');
    assert.equal(frames[2].headers[':exception-type'], 'throttlingException');
    assert.equal(typeof frames[2].json.message, 'string');
    r = await call('m1', 'converse-stream', { messages: [user('a b c fault-error-after-1 fault-exception-modelStreamErrorException')] });
    assert.equal(decodeFrames(r.buf).frames[1].headers[':exception-type'], 'modelStreamErrorException');
    // a corrupted frame (fault-malformed) is caught by the CRC check
    r = await call('m1+fault-malformed', 'converse-stream', { messages: [user('a b c')] });
    assert.throws(() => decodeFrames(r.buf), /CRC/);
  });

  test('cachePoint: write then read; maxTokens cut', async () => {
    const body = { system: [{ text: 'System prompt that is cached. '.repeat(10) }, { cachePoint: { type: 'default' } }], messages: [user('first')] };
    const a = await call('m1', 'converse', body);
    assert.ok(a.json.usage.cacheWriteInputTokens > 0);
    assert.equal(a.json.usage.cacheReadInputTokens, 0);
    const b = await call('m1', 'converse', { ...body, messages: [user('second')] });
    assert.equal(b.json.usage.cacheReadInputTokens, a.json.usage.cacheWriteInputTokens);
    assert.equal(b.json.usage.cacheWriteInputTokens, 0);
    assert.equal(b.json.usage.totalTokens, b.json.usage.inputTokens + b.json.usage.outputTokens + b.json.usage.cacheReadInputTokens);
    const c = await call('m1', 'converse', { messages: [user('one two three')], inferenceConfig: { maxTokens: 2 } });
    assert.equal(c.json.stopReason, 'max_tokens');
    assert.equal(c.json.output.message.content[0].text, 'You said: ');
  });

  test('eventstream encoder/decoder round trip with non-string headers', () => {
    const f = encodeFrame({ ':event-type': 'x', n: { type: 'int', value: -7 }, b: { type: 'bool', value: true } }, { a: 1 });
    const { frames } = decodeFrames(f);
    assert.deepEqual(frames[0].headers, { ':event-type': 'x', n: -7, b: true });
    assert.deepEqual(frames[0].json, { a: 1 });
  });
});

// ---------------------------------------------------------------------------------------------
// Azure OpenAI / Foundry
// ---------------------------------------------------------------------------------------------
describe('azure mock, via openai AzureOpenAI and fetch', () => {
  let m;
  before(async () => { m = await startAzureMock(); });
  after(async () => { await m?.stop(); });

  test('AzureOpenAI SDK: chat (deployment URL, api-key), stream starts with the prompt_filter_results chunk', async () => {
    const c = new AzureOpenAI({ endpoint: m.url, apiKey: m.apiKey, apiVersion: '2024-10-21', deployment: 'gpt-4o-mini', maxRetries: 0 });
    const r = await c.chat.completions.create({ model: 'unused', messages: [{ role: 'user', content: 'hi azure' }] });
    assert.equal(r.choices[0].message.content, 'You said: hi azure');
    assert.equal(r.model, 'gpt-4o-mini-2024-07-18');
    assert.deepEqual(r.prompt_filter_results, PROMPT_FILTER_RESULTS);
    const chunks = [];
    for await (const ch of await c.chat.completions.create({ model: 'unused', stream: true, messages: [{ role: 'user', content: 'stream to azure' }] })) chunks.push(ch);
    assert.deepEqual(chunks[0].choices, []);
    assert.equal(chunks[0].id, '');
    assert.deepEqual(chunks[0].prompt_filter_results, PROMPT_FILTER_RESULTS);
    assert.equal(chunks.slice(1).map((x) => x.choices[0]?.delta?.content ?? '').join(''), 'You said: stream to azure');
    const [entry] = (await m.requests()).slice(-1);
    assert.equal(entry.path, '/openai/deployments/gpt-4o-mini/chat/completions');
    assert.equal(entry.apiVersion, '2024-10-21');
    assert.equal(entry.headers['api-key'], m.apiKey);
  });

  test('Azure errors: DeploymentNotFound, missing api-version, bad key, faults via the deployment segment', async () => {
    const post = (p, h = { 'api-key': m.apiKey }, body = { messages: [{ role: 'user', content: 'x' }] }) => fetch(m.url + p, { method: 'POST', headers: { 'content-type': 'application/json', ...h }, body: JSON.stringify(body) });
    let r = await post('/openai/deployments/nope/chat/completions?api-version=2024-10-21');
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.code, 'DeploymentNotFound');
    r = await post('/openai/deployments/gpt-4o/chat/completions');
    assert.equal(r.status, 400);
    assert.match((await r.json()).error.message, /api-version/);
    r = await post('/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21', { 'api-key': 'wrong' });
    assert.equal(r.status, 401);
    assert.match((await r.json()).error.message, /Access denied/);
    r = await post('/openai/deployments/gpt-4o+fault-429/chat/completions?api-version=2024-10-21');
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '1');
    r = await post('/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21', { authorization: `Bearer ${m.apiKey}` }, { input: ['a', 'b'] });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).data.length, 2);
  });

  test('Foundry model inference: /models/chat/completions with model = deployment; v1 path', async () => {
    const post = (p, body) => fetch(m.url + p, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${m.apiKey}` }, body: JSON.stringify(body) });
    let r = await post('/models/chat/completions?api-version=2024-05-01-preview', { model: 'gpt-4o', messages: [{ role: 'user', content: 'foundry' }] });
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.choices[0].message.content, 'You said: foundry');
    assert.equal(j.model, 'gpt-4o-2024-08-06');
    r = await post('/models/chat/completions?api-version=2024-05-01-preview', { model: 'mystery', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.code, 'unknown_model');
    r = await post('/models/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.status, 400);
    r = await post('/openai/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'v1 path' }] });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).choices[0].message.content, 'You said: v1 path');
  });
});
