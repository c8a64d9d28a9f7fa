// The official openai SDK accepts what aigw's Responses encoder (plugins/common/xlate_responses.c)
// produces. tests/fixtures/responses/stream_tools.sse is the encoder's output for a hub stream of
// text + two parallel tool calls + usage (stream_reasoning.sse: reasoning with a signature, then
// text cut by max_output_tokens; stream_failed.sse: an upstream error mid-text);
// tests/unit/test_xlate_responses.c checks they are byte-equal to the encoder's output, so this file needs no gateway: a local server on 127.0.0.1 replays it
// (and the golden non-stream response) to client.responses.* and the SDK's own stream parser and
// accumulator must build the expected response from it.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import OpenAI from 'openai';

const FX = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'responses');
const SSE = readFileSync(path.join(FX, 'stream_tools.sse'), 'utf8');
// by request model: the reasoning + max_output_tokens stream, and a stream failed by a rate limit
const OTHER_SSE = {
  reasoning: readFileSync(path.join(FX, 'stream_reasoning.sse'), 'utf8'),
  failed: readFileSync(path.join(FX, 'stream_failed.sse'), 'utf8'),
};
const NONSTREAM = readFileSync(path.join(FX, 'resp_tools.out.json'), 'utf8');

// the response.completed payload, straight from the file
function completedFromFile() {
  const blocks = SSE.split('\n\n').filter(Boolean);
  const last = blocks[blocks.length - 1].split('\n').find((l) => l.startsWith('data: '));
  return JSON.parse(last.slice(6)).response;
}

describe('Responses stream shape, via the openai SDK', () => {
  let server;
  let client;
  const seen = [];
  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        const json = body ? JSON.parse(body) : {};
        seen.push({ method: req.method, url: req.url, body: json });
        if (req.method !== 'POST' || req.url !== '/v1/responses') {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end('{"error":{"message":"not found","type":"not_found_error","param":null,"code":null}}');
          return;
        }
        if (json.stream) {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          // in small pieces, so the SDK's SSE decoder reassembles events across reads
          const text = OTHER_SSE[json.model] ?? SSE;
          let i = 0;
          const step = () => {
            if (i >= text.length) { res.end(); return; }
            res.write(text.slice(i, i + 97));
            i += 97;
            setImmediate(step);
          };
          step();
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(NONSTREAM);
        }
      });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address();
    client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 10000 });
  });
  after(async () => { await new Promise((resolve) => server.close(resolve)); });

  const params = {
    model: 'gpt-x',
    input: 'Weather in Paris and Oslo?',
    tools: [{ type: 'function', name: 'get_weather', strict: false, parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }],
  };

  test('responses.stream().finalResponse() builds the response: text, both function calls, usage', async () => {
    const stream = client.responses.stream(params);
    const textDeltas = [];
    const argDeltas = [];
    stream.on('response.output_text.delta', (e) => textDeltas.push(e.delta));
    stream.on('response.function_call_arguments.delta', (e) => argDeltas.push([e.output_index, e.delta, e.snapshot]));
    const final = await stream.finalResponse();
    assert.equal(final.id, 'resp_S1');
    assert.equal(final.object, 'response');
    assert.equal(final.status, 'completed');
    assert.equal(final.model, 'gpt-x');
    assert.equal(final.output_text, 'Let me check.');
    assert.deepEqual(textDeltas, ['Let me ', 'check.']);
    assert.deepEqual(argDeltas, [[1, '{"city":', '{"city":'], [1, '"Paris"}', '{"city":"Paris"}'], [2, '{"city":"Oslo"}', '{"city":"Oslo"}']]);
    const calls = final.output.filter((o) => o.type === 'function_call');
    assert.deepEqual(calls.map((c) => [c.call_id, c.name, JSON.parse(c.arguments), c.status]), [
      ['call_P', 'get_weather', { city: 'Paris' }, 'completed'],
      ['call_O', 'get_weather', { city: 'Oslo' }, 'completed'],
    ]);
    assert.equal(final.output[0].type, 'message');
    assert.equal(final.output[0].content[0].type, 'output_text');
    assert.deepEqual(final.usage, {
      input_tokens: 50, input_tokens_details: { cached_tokens: 10 },
      output_tokens: 20, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 70,
    });
    // what the SDK accumulated from the events equals the response.completed payload
    const fromFile = completedFromFile();
    assert.deepEqual(final.output.map(({ parsed_arguments, ...o }) => ({
      ...o, ...(o.content ? { content: o.content.map(({ parsed, ...c }) => c) } : {}),
    })), fromFile.output);
    const req = seen[seen.length - 1];
    assert.equal(req.url, '/v1/responses');
    assert.equal(req.body.stream, true);
  });

  test('responses.create({stream:true}) yields every event in order with increasing sequence numbers', async () => {
    const events = [];
    const stream = await client.responses.create({ ...params, stream: true });
    for await (const e of stream) events.push(e);
    assert.equal(events.length, 19);
    events.forEach((e, i) => assert.equal(e.sequence_number, i));
    assert.equal(events[0].type, 'response.created');
    assert.equal(events[1].type, 'response.in_progress');
    assert.equal(events.at(-1).type, 'response.completed');
    const types = new Set(events.map((e) => e.type));
    for (const t of ['response.output_item.added', 'response.content_part.added', 'response.output_text.delta',
      'response.output_text.done', 'response.content_part.done', 'response.output_item.done',
      'response.function_call_arguments.delta', 'response.function_call_arguments.done']) assert.ok(types.has(t), t);
    const added = events.filter((e) => e.type === 'response.output_item.added').map((e) => [e.output_index, e.item.type, e.item.id]);
    assert.deepEqual(added, [[0, 'message', 'msg_S1'], [1, 'function_call', 'fc_S1_0'], [2, 'function_call', 'fc_S1_1']]);
  });

  test('non-stream: the golden response is a Response the SDK reads (output_text, function calls)', async () => {
    const r = await client.responses.create({ model: 'm', input: 'weather?' });
    assert.equal(r.id, 'resp_T1');
    assert.equal(r.output_text, 'Checking both.');
    assert.equal(r.output[0].type, 'reasoning');
    assert.equal(r.output[0].summary[0].text, 'User wants two cities.');
    assert.deepEqual(r.output.filter((o) => o.type === 'function_call').map((c) => c.call_id), ['toolu_1', 'toolu_2']);
    assert.equal(r.usage.output_tokens_details.reasoning_tokens, 12);
  });

  test('reasoning summary events and response.incomplete: the SDK builds the reasoning item and the cut text', async () => {
    const stream = client.responses.stream({ model: 'reasoning', input: 'x', max_output_tokens: 9, include: ['reasoning.encrypted_content'] });
    const summary = [];
    stream.on('response.reasoning_summary_text.delta', (e) => summary.push(e.delta));
    const final = await stream.finalResponse();
    assert.equal(final.status, 'incomplete');
    assert.deepEqual(final.incomplete_details, { reason: 'max_output_tokens' });
    assert.equal(final.output_text, 'The');
    assert.deepEqual(summary, ['Hmm, ', 'ok.']);
    assert.equal(final.output[0].type, 'reasoning');
    assert.deepEqual(final.output[0].summary, [{ type: 'summary_text', text: 'Hmm, ok.' }]);
    // aigw's encrypted_content: the signed thinking block, for a stateless round trip
    const enc = final.output[0].encrypted_content;
    assert.ok(enc.startsWith('aigw1:'));
    assert.deepEqual(JSON.parse(Buffer.from(enc.slice(6), 'base64').toString()), [{ type: 'thinking', thinking: 'Hmm, ok.', signature: 'SG' }]);
    assert.equal(final.output[1].status, 'incomplete');
    assert.equal(final.usage.output_tokens_details.reasoning_tokens, 4);
  });

  test('a failed stream: response.failed then error; finalResponse() rejects', async () => {
    const stream = client.responses.stream({ model: 'failed', input: 'x' });
    const types = [];
    stream.on('event', (e) => types.push(e.type));
    await assert.rejects(stream.finalResponse(), (err) => {
      assert.equal(err.code ?? err.error?.code, 'rate_limit_exceeded');
      return true;
    });
    assert.deepEqual(types.slice(-2), ['response.failed', 'error']);
  });
});
