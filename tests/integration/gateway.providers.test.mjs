// OpenAI-compatible provider family: Azure OpenAI and Azure AI Foundry (azure_mock checks
// deployment URLs, api-version and the api-key header like Azure), presets (one line of config
// each), passthrough routes (any other API, credentials injected, body untouched).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startGateway, startMock, skipUnlessGateway, MOCK_KEY, defaultConfig, AIGW_PLUGIN_DIR } from './lib/harness.mjs';
import { runAigw, writeConfig } from './lib/ops.mjs';
import { startAzureMock } from '../mock/azure_mock.mjs';
import { replyText } from '../mock/openai_mock.mjs';

const skip = skipUnlessGateway();
const AZ_KEY = 'az-test-key';
const CLIENT_KEY = 'sk-client-never-forwarded';
const user = (t) => [{ role: 'user', content: t }];

describe('azure, presets and passthrough', { skip }, () => {
  let mock, az, gw;
  before(async () => {
    mock = await startMock();
    az = await startAzureMock({ apiKey: AZ_KEY });
    gw = await startGateway({
      mockPort: mock.port,
      config: (cfg) => {
        cfg.providers.azure = { plugin: 'openai', config: { preset: 'azure', base_url: az.url, api_key: AZ_KEY, api_version: '2024-10-21' } };
        cfg.providers.foundry = { plugin: 'openai', config: { preset: 'azure_foundry', base_url: `${az.url}/models`, api_key: AZ_KEY, api_version: '2024-05-01-preview' } };
        cfg.routes.push(
          { name: 'az_chat', match: { methods: ['POST'], path: '/az/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'azure' }] },
          { name: 'az_pinned', match: { methods: ['POST'], path: '/azp/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'azure', model: 'gpt-4o' }] },
          { name: 'az_emb', match: { methods: ['POST'], path: '/az/v1/embeddings' }, api: 'embeddings', targets: [{ provider: 'azure' }] },
          { name: 'az_msgs', match: { methods: ['POST'], path: '/az/v1/messages' }, api: 'messages', targets: [{ provider: 'azure', model: 'gpt-4o-mini' }] },
          { name: 'fd_chat', match: { methods: ['POST'], path: '/fd/v1/chat/completions' }, api: 'chat', targets: [{ provider: 'foundry' }] },
          { name: 'pass', match: { methods: ['GET', 'POST', 'DELETE'], path_prefix: '/v1/models/' }, api: 'passthrough', targets: [{ provider: 'up' }] },
          { name: 'blue', match: { methods: ['POST'], path: '/hdr/v1/chat/completions', headers: { 'x-tenant': 'blue' } }, api: 'chat', targets: [{ provider: 'local' }] },
        );
        return cfg;
      },
    });
  });
  after(async () => { await gw?.stop(); await az?.stop(); await mock?.stop(); });

  const client = (p) => new OpenAI({ baseURL: `${gw.url}${p}`, apiKey: CLIENT_KEY, maxRetries: 0 });

  test('azure: deployment URL, api-version, api-key header (no Authorization, no client key)', async () => {
    await az.clearRequests();
    const r = await client('/az/v1').chat.completions.create({ model: 'gpt-4o-mini', messages: user('hello azure') });
    assert.equal(r.choices[0].message.content, replyText({ messages: user('hello azure') }));
    assert.equal(r.model, 'gpt-4o-mini-2024-07-18', 'the deployment answered');
    const up = (await az.requests()).at(-1);
    assert.equal(up.path, '/openai/deployments/gpt-4o-mini/chat/completions');
    assert.equal(up.query, '?api-version=2024-10-21');
    assert.equal(up.headers['api-key'], AZ_KEY);
    assert.equal(up.headers.authorization, undefined);
    assert.ok(!JSON.stringify(up.headers).includes(CLIENT_KEY));
  });

  test('azure: route target model picks the deployment; stream with usage', async () => {
    const stream = await client('/azp/v1').chat.completions.create({ model: 'ignored', stream: true, stream_options: { include_usage: true }, messages: user('stream azure') });
    let text = '', usage = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
    assert.equal(text, replyText({ messages: user('stream azure') }));
    assert.ok(usage?.completion_tokens > 0);
    const up = (await az.requests()).at(-1);
    assert.equal(up.path, '/openai/deployments/gpt-4o/chat/completions');
  });

  test('azure: embeddings', async () => {
    const e = await client('/az/v1').embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
    assert.equal(e.data.length, 2);
    assert.ok(e.data[0].embedding.length > 0);
  });

  test('azure: unknown deployment → NotFoundError; a bad deployment name → 400 before any call', async () => {
    await assert.rejects(client('/az/v1').chat.completions.create({ model: 'no-such-deploy', messages: user('x') }), (e) => e instanceof OpenAI.NotFoundError);
    const n = (await az.requests()).length;
    await assert.rejects(client('/az/v1').chat.completions.create({ model: '../../etc', messages: user('x') }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.match(e.message, /deployment/);
      return true;
    });
    assert.equal((await az.requests()).length, n, 'nothing sent upstream');
  });

  test('azure: Anthropic SDK in front of an Azure deployment (translated)', async () => {
    const an = new Anthropic({ baseURL: `${gw.url}/az`, apiKey: CLIENT_KEY, maxRetries: 0 });
    const m = await an.messages.create({ model: 'claude-whatever', max_tokens: 100, messages: user('hi from claude code') });
    assert.equal(m.content[0].text, replyText({ messages: user('hi from claude code') }));
    const final = await an.messages.stream({ model: 'c', max_tokens: 100, messages: user('stream via azure') }).finalMessage();
    assert.equal(final.content[0].text, replyText({ messages: user('stream via azure') }));
    assert.ok(final.usage.output_tokens > 0);
  });

  test('azure ai foundry: /models/chat/completions with api-version, model in the body', async () => {
    const r = await client('/fd/v1').chat.completions.create({ model: 'gpt-4o', messages: user('hello foundry') });
    assert.equal(r.choices[0].message.content, replyText({ messages: user('hello foundry') }));
    const up = (await az.requests()).at(-1);
    assert.equal(up.path, '/models/chat/completions');
    assert.equal(up.query, '?api-version=2024-05-01-preview');
    assert.equal(up.body.model, 'gpt-4o');
  });

  test('routes can match on a request header (and only with the value configured)', async () => {
    const post = (h) => fetch(`${gw.url}/hdr/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...h }, body: JSON.stringify({ model: 'm', messages: user('hi') }) });
    let r = await post({ 'x-tenant': 'blue' });
    assert.equal(r.status, 200);
    assert.match((await r.json()).choices[0].message.content, /You said: hi/);
    r = await post({ 'x-tenant': 'red' });
    assert.equal(r.status, 404);
    r = await post({});
    assert.equal(r.status, 404);
  });

  test('passthrough: any path under the route goes to the provider with its key, body and method untouched', async () => {
    await mock.clearRequests();
    const r = await fetch(`${gw.url}/v1/models/gpt-4o-mini`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.id, 'gpt-4o-mini');
    assert.equal(j.object, 'model');
    const up = (await mock.requests()).at(-1);
    assert.equal(up.method, 'GET');
    assert.equal(up.path, '/v1/models/gpt-4o-mini');
    assert.equal(up.headers.authorization, `Bearer ${MOCK_KEY}`, 'provider key, not the client one');
  });
});

describe('presets: one line of config each', { skip }, () => {
  const presets = ['openai', 'mistral', 'groq', 'deepseek', 'together', 'fireworks', 'openrouter', 'xai', 'perplexity', 'cerebras',
    'sambanova', 'nvidia', 'huggingface', 'ollama', 'vllm', 'lmstudio', 'llamacpp'];
  const base = () => {
    const c = defaultConfig({ port: 1, adminPort: 2, mockPort: 3 });
    c.plugin_paths = [AIGW_PLUGIN_DIR];
    c.providers = {};
    c.routes = [];
    return c;
  };

  test('every preset is accepted with only an api key', async () => {
    const c = base();
    for (const p of presets) {
      c.providers[p] = { plugin: 'openai', config: { preset: p, api_key: 'k' } };
      c.routes.push({ name: `r_${p}`, match: { methods: ['POST'], path: `/${p}/v1/chat/completions` }, api: 'chat', targets: [{ provider: p }] });
    }
    const r = await runAigw(['--check', writeConfig(c)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  test('an unknown preset, Azure without api_version and api_version without Azure are listed errors', async () => {
    const c = base();
    c.providers = {
      a: { plugin: 'openai', config: { preset: 'nope', api_key: 'k' } },
      b: { plugin: 'openai', config: { preset: 'azure', base_url: 'https://x.openai.azure.com', api_key: 'k' } },
      c: { plugin: 'openai', config: { preset: 'groq', api_key: 'k', api_version: '2024-10-21' } },
      d: { plugin: 'openai', config: { preset: 'azure', api_key: 'k', api_version: '2024-10-21' } },
    };
    c.routes = ['a', 'b', 'c', 'd'].map((p) => ({ name: p, match: { methods: ['POST'], path: `/${p}` }, api: 'chat', targets: [{ provider: p }] }));
    const r = await runAigw(['--check', writeConfig(c)]);
    assert.notEqual(r.code, 0);
    const out = r.stdout + r.stderr;
    assert.match(out, /preset.*unknown preset \(known: openai, mistral/);
    assert.match(out, /api_version.*required for Azure/);
    assert.match(out, /api_version.*only applies to the azure/);
    assert.match(out, /base_url.*required for Azure/);
  });
});
