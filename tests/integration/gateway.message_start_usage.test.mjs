// message_start's input_tokens for Anthropic-format clients in front of an OpenAI-compatible
// upstream (which reports usage only at the end of a stream): with counting available
// ("count_tokens": "responses", the default on OpenAI's own API) the adapter counts the prompt in
// parallel through POST /responses/input_tokens and message_start carries that count; upstream
// events that arrive before the count are held and replayed in order. Without counting, or when
// the count fails or is late past the stream's end, message_start carries the estimate.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { startGateway, startMock, skipUnlessGateway, MOCK_KEY } from './lib/harness.mjs';

const skip = skipUnlessGateway();
const CLIENT_KEY = 'sk-client-secret-must-not-leak';
const PROMPT = 'count my prompt carefully, every single word of it, please';
const SYSTEM = 'You are terse.';

function config(mockPort) {
  return (cfg) => {
    const p = (extra = {}) => ({ plugin: 'openai', config: { base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: MOCK_KEY, ...extra } });
    cfg.providers = {
      counted: p({ count_tokens: 'responses' }),
      estimated: p({ count_tokens: 'responses', message_start_usage: 'estimate' }),
      plain: p(),
    };
    const route = (name, provider, model = 'gpt-4o-mini') => ({
      name, match: { methods: ['POST'], path: `/${name}/v1/messages` }, api: 'messages', targets: [{ provider, model }],
    });
    const count = (name, provider) => ({
      name: `${name}_count`, match: { methods: ['POST'], path: `/${name}/v1/messages/count_tokens` }, api: 'passthrough',
      targets: [{ provider, model: 'gpt-4o-mini' }],
    });
    cfg.routes = [
      route('counted', 'counted'), count('counted', 'counted'),
      route('slowcount', 'counted', 'gpt-4o-mini+fault-count-slow-400'),
      route('midcount', 'counted', 'gpt-4o-mini+fault-trickle-40+fault-count-slow-150'),
      route('failcount', 'counted', 'gpt-4o-mini+fault-count-500'),
      route('estimated', 'estimated'),
      route('plain', 'plain'),
    ];
    return cfg;
  };
}

describe('message_start usage through an OpenAI-compatible upstream', { skip }, () => {
  let mock, gw;
  before(async () => {
    mock = await startMock();
    gw = await startGateway({ mockPort: mock.port, config: config(mock.port) });
  });
  after(async () => { await gw?.stop(); await mock?.stop(); });

  const client = (route) => new Anthropic({ baseURL: `${gw.url}/${route}`, apiKey: CLIENT_KEY, maxRetries: 0 });
  const req = { model: 'client-model', max_tokens: 100, system: SYSTEM, messages: [{ role: 'user', content: PROMPT }] };

  async function streamed(route) {
    const events = [];
    let start = null;
    const s = client(route).messages.stream(req);
    s.on('streamEvent', (e) => {
      events.push(e.type);
      if (e.type === 'message_start') start = { ...e.message.usage };
    });
    const msg = await s.finalMessage();
    return { msg, events, start };
  }

  test('message_start carries the count /v1/messages/count_tokens gives for the same request', async () => {
    const counted = await client('counted').messages.countTokens({ model: req.model, system: SYSTEM, messages: req.messages });
    assert.ok(counted.input_tokens > 0);
    const { msg, events, start } = await streamed('counted');
    assert.equal(start.input_tokens, counted.input_tokens);
    assert.equal(events[0], 'message_start');
    assert.equal(msg.content[0].text, `You said: ${PROMPT}`);
    // the count went to the upstream's counting API, with our credentials
    const calls = (await mock.requests()).filter((r) => r.path.endsWith('/responses/input_tokens'));
    assert.ok(calls.length >= 2);
    assert.equal(calls.at(-1).headers.authorization, `Bearer ${MOCK_KEY}`);
  });

  test('a slow count: the stream is held until it is back, then replayed whole and in order', async () => {
    const counted = await client('counted').messages.countTokens({ model: req.model, system: SYSTEM, messages: req.messages });
    const { msg, events, start } = await streamed('slowcount');
    assert.equal(start.input_tokens, counted.input_tokens, 'the count, not the estimate');
    assert.deepEqual(events.filter((t) => t === 'message_start' || t === 'message_stop'), ['message_start', 'message_stop']);
    assert.equal(events[0], 'message_start');
    assert.equal(msg.content.length, 1);
    assert.equal(msg.content[0].text, `You said: ${PROMPT}`);
    assert.equal(msg.stop_reason, 'end_turn');
  });

  test('the count comes back mid-stream: held events go out first, then the stream goes on live', async () => {
    const counted = await client('counted').messages.countTokens({ model: req.model, system: SYSTEM, messages: req.messages });
    const { msg, events, start } = await streamed('midcount');
    assert.equal(start.input_tokens, counted.input_tokens);
    assert.equal(events[0], 'message_start');
    assert.equal(events.at(-1), 'message_stop');
    assert.equal(msg.content[0].text, `You said: ${PROMPT}`);
  });

  test('the count fails: message_start carries the estimate, the answer is whole', async () => {
    const { msg, start } = await streamed('failcount');
    const estimate = Math.ceil((SYSTEM.length + PROMPT.length) / 4);
    assert.equal(start.input_tokens, estimate);
    assert.equal(msg.content[0].text, `You said: ${PROMPT}`);
  });

  test('"message_start_usage": "estimate", or no counting API: no count call, the estimate', async () => {
    for (const route of ['estimated', 'plain']) {
      await mock.clearRequests();
      const { msg, start } = await streamed(route);
      assert.equal(start.input_tokens, Math.ceil((SYSTEM.length + PROMPT.length) / 4), route);
      assert.equal(msg.content[0].text, `You said: ${PROMPT}`);
      const calls = (await mock.requests()).filter((r) => r.path.endsWith('/responses/input_tokens'));
      assert.equal(calls.length, 0, route);
    }
  });
});
