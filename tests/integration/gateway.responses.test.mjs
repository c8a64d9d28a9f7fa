// The OpenAI Responses API bridged to providers that only speak chat or messages, with the
// official openai SDK: text, stream (the full event sequence), function calls and their outputs,
// previous_response_id through the responses_state plugin (conversation kept in the host store).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startGateway, startMock, skipUnlessGateway } from './lib/harness.mjs';
import { startAnthropicMock, toolInput } from '../mock/anthropic_mock.mjs';

const skip = skipUnlessGateway();
const ANTH_KEY = 'sk-ant-up';
const weather = { type: 'function', name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };

describe('responses API bridged (official openai SDK)', { skip }, () => {
  let mock, anth, gw, viaAnth, viaMock, noState;
  before(async () => {
    mock = await startMock();
    anth = await startAnthropicMock({ key: ANTH_KEY });
    gw = await startGateway({
      mockPort: mock.port,
      config: (cfg) => {
        cfg.providers.anth = { plugin: 'anthropic', config: { base_url: `http://127.0.0.1:${anth.port}`, api_key: ANTH_KEY } };
        const st = [{ name: 'responses_state' }];
        cfg.routes.push(
          { name: 'r_anth', match: { methods: ['POST'], path: '/anth/v1/responses' }, api: 'responses', targets: [{ provider: 'anth', model: 'claude-sonnet-4-6' }], plugins: st },
          { name: 'r_mock', match: { methods: ['POST'], path: '/mock/v1/responses' }, api: 'responses', targets: [{ provider: 'local' }], plugins: st },
          { name: 'r_nostate', match: { methods: ['POST'], path: '/nostate/v1/responses' }, api: 'responses', targets: [{ provider: 'local' }] },
        );
        return cfg;
      },
    });
    const c = (p) => new OpenAI({ baseURL: `${gw.url}${p}/v1`, apiKey: 'k', maxRetries: 0 });
    viaAnth = c('/anth');
    viaMock = c('/mock');
    noState = c('/nostate');
  });
  after(async () => { await gw?.stop(); await anth?.stop(); await mock?.stop(); });

  test('text through Anthropic: output_text, usage, instructions become the system prompt', async () => {
    await anth.clearRequests();
    const r = await viaAnth.responses.create({ model: 'x', instructions: 'Be brief.', input: 'hello responses' });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(r.output_text, 'You said: hello responses');
    assert.ok(r.id.startsWith('resp_'));
    assert.ok(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
    const up = (await anth.requests()).at(-1);
    assert.match(JSON.stringify(up.body.system), /Be brief/);
    assert.equal(up.body.model, 'claude-sonnet-4-6');
  });

  test('stream: the SDK assembles the final response from the event sequence', async () => {
    const stream = viaAnth.responses.stream({ model: 'x', input: [{ role: 'user', content: 'stream the answer' }] });
    const types = [];
    let deltas = '';
    stream.on('event', (e) => types.push(e.type));
    stream.on('response.output_text.delta', (e) => { deltas += e.delta; });
    const final = await stream.finalResponse();
    assert.equal(final.output_text, 'You said: stream the answer');
    assert.equal(deltas, final.output_text);
    assert.equal(types[0], 'response.created');
    assert.equal(types.at(-1), 'response.completed');
    for (const t of ['response.output_item.added', 'response.content_part.added', 'response.output_text.done', 'response.output_item.done']) assert.ok(types.includes(t), t);
    assert.ok(final.usage.output_tokens > 0);
  });

  test('function call, then function_call_output in the next request (stateless)', async () => {
    const input = [{ role: 'user', content: 'use tool get_weather for Paris' }];
    const r = await viaAnth.responses.create({ model: 'x', tools: [weather], input });
    const fc = r.output.find((o) => o.type === 'function_call');
    assert.ok(fc, JSON.stringify(r.output));
    assert.equal(fc.name, 'get_weather');
    assert.deepEqual(JSON.parse(fc.arguments), toolInput('get_weather', 'use tool get_weather for Paris'));
    const r2 = await viaAnth.responses.create({ model: 'x', tools: [weather], input: [...input, ...r.output, { type: 'function_call_output', call_id: fc.call_id, output: 'sunny' }] });
    assert.equal(r2.output_text, 'Tool said: sunny');
  });

  test('previous_response_id: the conversation is kept by aigw (non-stream and stream)', async () => {
    const r1 = await viaAnth.responses.create({ model: 'x', input: 'my name is Ada' });
    await anth.clearRequests();
    const r2 = await viaAnth.responses.create({ model: 'x', previous_response_id: r1.id, input: 'what did I say?' });
    assert.equal(r2.output_text, 'You said: what did I say?');
    assert.equal(r2.previous_response_id, r1.id, 'echoed');
    const up = (await anth.requests()).at(-1);
    const texts = JSON.stringify(up.body.messages);
    assert.match(texts, /my name is Ada/, 'the first turn was sent again');
    assert.match(texts, /You said: my name is Ada/, 'with the answer');
    // chain on a streamed response
    const s3 = await viaAnth.responses.stream({ model: 'x', previous_response_id: r2.id, input: 'third' }).finalResponse();
    assert.equal(s3.output_text, 'You said: third');
    const r4 = await viaAnth.responses.create({ model: 'x', previous_response_id: s3.id, input: 'fourth' });
    assert.equal(r4.output_text, 'You said: fourth');
    const msgs = (await anth.requests()).at(-1).body.messages;
    assert.equal(msgs.length, 7, 'three earlier turns with answers, then the new one');
  });

  test('previous_response_id: unknown id → 400; store:false is not kept; without the plugin → 400 naming it', async () => {
    await assert.rejects(viaMock.responses.create({ model: 'x', previous_response_id: 'resp_nope', input: 'x' }), (e) => e instanceof OpenAI.BadRequestError && /not found/.test(e.message));
    const r = await viaMock.responses.create({ model: 'x', input: 'secret', store: false });
    await assert.rejects(viaMock.responses.create({ model: 'x', previous_response_id: r.id, input: 'x' }), (e) => e instanceof OpenAI.BadRequestError);
    await assert.rejects(noState.responses.create({ model: 'x', previous_response_id: r.id, input: 'x' }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.match(e.message, /responses_state/);
      return true;
    });
  });

  test('built-in tools cannot be bridged: 400 naming the tool', async () => {
    await assert.rejects(viaMock.responses.create({ model: 'x', tools: [{ type: 'web_search' }], input: 'x' }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.match(e.message, /web_search/);
      return true;
    });
  });

  test('upstream errors keep their class (429 → RateLimitError)', async () => {
    await assert.rejects(viaAnth.responses.create({ model: 'x', input: 'fault-429' }), (e) => e instanceof OpenAI.RateLimitError);
  });
});
