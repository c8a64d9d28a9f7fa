// Chat completions through aigw with the official openai SDK (OpenAI ingress → OpenAI provider).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useGateway, skipUnlessGateway, readStream, accessLogFor, CLIENT_KEY, MOCK_KEY,
} from './lib/harness.mjs';
import { replyText, splitDeltas, promptTokens, toolArguments } from '../mock/openai_mock.mjs';

const TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
  { type: 'function', function: { name: 'get_time', description: 'time', parameters: { type: 'object', properties: {} } } },
];

describe('gateway: chat completions', { skip: skipUnlessGateway() }, () => {
  const ctx = useGateway();

  test('non-stream chat: answer, usage, x-request-id, access log', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello through the gateway' }] };
    const { data: r, response } = await ctx.client.chat.completions.create(body).withResponse();
    assert.equal(response.status, 200);
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, 'gpt-4o-mini');
    assert.equal(r.choices[0].message.content, replyText(body));
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.usage.prompt_tokens, promptTokens(body));
    assert.equal(r.usage.completion_tokens, splitDeltas(replyText(body)).length);
    const rid = response.headers.get('x-request-id');
    assert.ok(rid, 'x-request-id response header');
    const log = await accessLogFor(ctx.gw, rid);
    assert.equal(log.route, 'chat');
    assert.equal(log.status, 200);
    assert.equal(log.provider, 'up');
    assert.equal(log.model, 'gpt-4o-mini');
    assert.equal(log.tokens_in, r.usage.prompt_tokens);
    assert.equal(log.tokens_out, r.usage.completion_tokens);
    assert.equal(typeof log.latency_ms, 'number');
  });

  test("the client's Authorization is not forwarded; the provider key from config is", async () => {
    await ctx.mock.clearRequests();
    await ctx.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'who am I' }] });
    const reqs = await ctx.mock.requests();
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].path, '/v1/chat/completions');
    assert.equal(reqs[0].headers.authorization, `Bearer ${MOCK_KEY}`);
    const all = JSON.stringify(reqs[0].headers);
    assert.ok(!all.includes(CLIENT_KEY), `client key leaked upstream: ${all}`);
  });

  test('stream chat: deltas assemble to the content; no usage chunk unless asked; upstream always asked for usage', async () => {
    await ctx.mock.clearRequests();
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'please stream these words to me' }], stream: true };
    const { data: stream, response } = await ctx.client.chat.completions.create(body).withResponse();
    assert.ok(response.headers.get('x-request-id'));
    assert.match(response.headers.get('content-type') || '', /^text\/event-stream/);
    let text = '';
    const chunks = [];
    for await (const c of stream) {
      chunks.push(c);
      for (const ch of c.choices) text += ch.delta?.content ?? '';
    }
    assert.equal(text, replyText(body));
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.ok(chunks.some((c) => c.choices[0]?.finish_reason === 'stop'));
    assert.ok(chunks.every((c) => c.choices.length > 0), 'no choices:[] usage chunk reached the client');
    assert.ok(chunks.every((c) => c.usage == null), 'no usage reached the client');
    const reqs = await ctx.mock.requests();
    assert.equal(reqs.at(-1).body.stream, true);
    assert.equal(reqs.at(-1).body.stream_options?.include_usage, true, 'gateway asks upstream for usage');
    const log = await accessLogFor(ctx.gw, response.headers.get('x-request-id'));
    assert.equal(log.status, 200);
    assert.equal(log.tokens_in, promptTokens(body));
    assert.equal(log.tokens_out, splitDeltas(replyText(body)).length);
  });

  test('stream chat with include_usage: final usage chunk (choices []) reaches the client', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count please' }], stream: true, stream_options: { include_usage: true } };
    const stream = await ctx.client.chat.completions.create(body);
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.prompt_tokens, promptTokens(body));
    assert.equal(last.usage.completion_tokens, splitDeltas(replyText(body)).length);
    assert.equal(chunks.filter((c) => c.usage).length, 1);
  });

  test('stream wire format through the gateway: data events, one per chunk, ending data: [DONE]', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a b c d' }], stream: true };
    const r = await readStream(`${ctx.gw.baseURL}/chat/completions`, body);
    assert.equal(r.status, 200);
    assert.ok(r.ended);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'), `ends with [DONE]: ${JSON.stringify(r.text.slice(-80))}`);
    const evs = r.events.filter((e) => e.data !== '[DONE]');
    assert.equal(evs.length, 1 + splitDeltas(replyText(body)).length + 1);
    for (const e of evs) assert.equal(JSON.parse(e.data).object, 'chat.completion.chunk');
  });

  test('streaming is not buffered: the first delta arrives long before the last', async () => {
    const body = { model: 'gpt-4o-mini+fault-trickle-250', messages: [{ role: 'user', content: 'one two three four' }], stream: true };
    const t0 = Date.now();
    const stream = await ctx.client.chat.completions.create(body);
    let first = null;
    for await (const c of stream) if (first === null && c.choices[0]?.delta?.content) first = Date.now() - t0;
    const total = Date.now() - t0;
    assert.ok(first !== null);
    assert.ok(total - first >= 800, `first content at ${first} ms, end at ${total} ms: looks buffered`);
  });

  test('tool call, non-stream', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'weather?' }], tools: TOOLS };
    const r = await ctx.client.chat.completions.create(body);
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const tc = r.choices[0].message.tool_calls[0];
    assert.equal(tc.function.name, 'get_weather');
    assert.equal(tc.function.arguments, toolArguments(body, 'get_weather'));
  });

  test('tool-call streaming deltas arrive intact (index, id, name, split arguments)', async () => {
    const body = { model: 'gpt-4o-mini+fault-parallel', messages: [{ role: 'user', content: 'both tools' }], tools: TOOLS, stream: true };
    const stream = await ctx.client.chat.completions.create(body);
    const calls = [];
    let finish = null;
    let argDeltas = 0;
    for await (const c of stream) {
      const ch = c.choices[0];
      if (!ch) continue;
      if (ch.finish_reason) finish = ch.finish_reason;
      for (const tc of ch.delta?.tool_calls ?? []) {
        if (tc.id) {
          assert.equal(tc.type, 'function');
          calls[tc.index] = { id: tc.id, name: tc.function.name, arguments: tc.function.arguments ?? '' };
        } else {
          assert.ok(calls[tc.index], `arguments delta for unknown index ${tc.index}`);
          calls[tc.index].arguments += tc.function?.arguments ?? '';
          argDeltas++;
        }
      }
    }
    assert.equal(finish, 'tool_calls');
    assert.equal(calls.length, 2);
    assert.deepEqual(calls.map((c) => c.name), ['get_weather', 'get_time']);
    assert.equal(calls[0].arguments, toolArguments(body, 'get_weather'));
    assert.equal(calls[1].arguments, toolArguments(body, 'get_time'));
    assert.ok(argDeltas > 6);
  });

  test('SDK stream helper assembles the tool calls through the gateway', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'weather' }], tools: TOOLS };
    const final = await ctx.client.chat.completions.stream(body).finalChatCompletion();
    assert.equal(final.choices[0].message.tool_calls[0].function.arguments, toolArguments(body, 'get_weather'));
  });

  test('large non-stream answer (1 MB) passes intact', async () => {
    const r = await ctx.client.chat.completions.create({ model: 'fault-big-1000000', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.choices[0].message.content.length, 1000000);
  });

  test('x-request-id differs per request', async () => {
    const ids = new Set();
    for (let i = 0; i < 3; i++) {
      const { response } = await ctx.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `n${i}` }] }).withResponse();
      ids.add(response.headers.get('x-request-id'));
    }
    assert.equal(ids.size, 3);
  });
});
