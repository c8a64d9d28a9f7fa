// Embeddings and model listing through aigw with the official openai SDK.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useGateway, skipUnlessGateway, accessLogFor } from './lib/harness.mjs';
import { embeddingOf, MODELS } from '../mock/openai_mock.mjs';

describe('gateway: embeddings and models', { skip: skipUnlessGateway() }, () => {
  const ctx = useGateway();

  test('embeddings, float format', async () => {
    const { data: r, response } = await ctx.client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello', encoding_format: 'float' }).withResponse();
    assert.equal(r.object, 'list');
    assert.equal(r.data.length, 1);
    assert.deepEqual(r.data[0].embedding, embeddingOf('hello'));
    assert.equal(r.usage.prompt_tokens, 2);
    const rid = response.headers.get('x-request-id');
    assert.ok(rid);
    const log = await accessLogFor(ctx.gw, rid);
    assert.equal(log.route, 'embeddings');
    assert.equal(log.status, 200);
    assert.equal(log.tokens_in, 2);
  });

  test('embeddings, SDK default base64: forwarded as base64 and decoded to the same floats', async () => {
    await ctx.mock.clearRequests();
    const r = await ctx.client.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta', 'gamma'], dimensions: 32 });
    const reqs = await ctx.mock.requests();
    assert.equal(reqs.at(-1).body.encoding_format, 'base64');
    assert.equal(reqs.at(-1).body.dimensions, 32);
    assert.equal(r.data.length, 3);
    r.data.forEach((d, i) => {
      assert.equal(d.index, i);
      assert.deepEqual(Array.from(d.embedding), embeddingOf(['alpha', 'beta', 'gamma'][i], 32));
    });
  });

  test('embeddings, raw base64 string arrives unchanged', async () => {
    const res = await fetch(`${ctx.gw.baseURL}/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer x' },
      body: JSON.stringify({ model: 'text-embedding-3-small', input: 'hello', encoding_format: 'base64' }),
    });
    assert.equal(res.status, 200);
    const j = await res.json();
    const buf = Buffer.from(j.data[0].embedding, 'base64');
    const floats = [];
    for (let i = 0; i < buf.length; i += 4) floats.push(buf.readFloatLE(i));
    assert.deepEqual(floats, embeddingOf('hello'));
  });

  test('models list', async () => {
    const ids = [];
    for await (const m of ctx.client.models.list()) {
      assert.equal(m.object, 'model');
      ids.push(m.id);
    }
    for (const m of MODELS) assert.ok(ids.includes(m.id), `model ${m.id} listed`);
  });

  test('upstream errors on embeddings map to SDK classes', async () => {
    const OpenAI = (await import('openai')).default;
    await assert.rejects(ctx.client.embeddings.create({ model: 'fault-429', input: 'x' }), (e) => e instanceof OpenAI.RateLimitError);
    await assert.rejects(ctx.client.embeddings.create({ model: 'fault-400', input: 'x' }), (e) => e instanceof OpenAI.BadRequestError);
  });
});
