// How the openai adapter classifies a proxied chat stream's chunks (delta, tool_delta, stop,
// usage, other, done), seen by a plugin: a Lua script records each event's kind and writes the
// sequence to the access log. The common chunks are classified from their bytes (no JSON tree);
// these sequences must equal what the full parse gives. Client: the official openai SDK.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startGateway, startMock, skipUnlessGateway, accessLogFor } from './lib/harness.mjs';

const skip = skipUnlessGateway();
const KINDS = `
local seen = {}
function on_event(ctx)
  local id = aigw.request_id()
  seen[id] = (seen[id] or "") .. aigw.event.kind() .. ","
end
function on_log(ctx)
  local id = aigw.request_id()
  aigw.log_field("kinds", seen[id] or "")
  seen[id] = nil
end
`;

describe('event kinds of a proxied OpenAI chat stream', { skip }, () => {
  let mock, gw;
  before(async () => {
    mock = await startMock();
    gw = await startGateway({ mockPort: mock.port, config: (cfg) => {
      cfg.routes[0].plugins = [{ name: 'lua', config: { inline: KINDS, name: 'kinds.lua' } }];
      return cfg;
    } });
  });
  after(async () => { await gw?.stop(); await mock?.stop(); });

  const kinds = async (body) => {
    const { data: stream, response } = await new OpenAI({ baseURL: gw.baseURL, apiKey: 'sk-client', maxRetries: 0 })
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true, ...body }).withResponse();
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const rec = await accessLogFor(gw, response.headers.get('x-request-id'));
    return { seq: rec.kinds.split(',').filter(Boolean), chunks, rec };
  };
  const squash = (seq) => seq.filter((k, i) => k !== seq[i - 1]);

  test('text: the role chunk is other, text chunks delta, the finish stop, [DONE] done; the usage the gateway asked for is counted, not shown', async () => {
    const { seq, chunks, rec } = await kinds({});
    assert.deepEqual(squash(seq), ['other', 'delta', 'stop', 'done'], seq.join(','));
    assert.ok(chunks.some((c) => c.choices[0]?.delta?.content));
    assert.ok(!chunks.some((c) => c.usage), 'the client did not ask for usage');
    assert.ok(rec.tokens_in > 0 && rec.tokens_out > 0, `usage from the hidden chunk: ${rec.tokens_in}/${rec.tokens_out}`);
  });

  test('with usage asked for: the usage chunk is usage, and it reaches the client', async () => {
    const { seq, chunks } = await kinds({ stream_options: { include_usage: true } });
    assert.deepEqual(squash(seq), ['other', 'delta', 'stop', 'usage', 'done'], seq.join(','));
    assert.ok(chunks.at(-1).usage.total_tokens > 0);
  });

  test('tool calls: tool_delta chunks, then stop', async () => {
    const { seq, chunks } = await kinds({ tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      tool_choice: { type: 'function', function: { name: 'get_weather' } } });
    assert.ok(chunks.some((c) => c.choices[0]?.delta?.tool_calls), 'the mock streamed a tool call');
    assert.ok(seq.includes('tool_delta'), seq.join(','));
    assert.ok(!seq.includes('delta'), seq.join(','));
    assert.equal(seq.at(-2), 'stop');
    assert.equal(seq.at(-1), 'done');
  });
});
