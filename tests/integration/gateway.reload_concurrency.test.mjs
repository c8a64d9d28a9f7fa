// Hot reload (admin POST /reload and SIGHUP) and concurrent traffic through aigw.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';
import {
  startMock, startGateway, skipUnlessGateway, readStream, until, parseSSE, CLIENT_KEY,
} from './lib/harness.mjs';
import { replyText } from '../mock/openai_mock.mjs';

const skip = skipUnlessGateway();

describe('gateway: hot reload', { skip }, () => {
  let mockA;
  let mockB;
  let gw;
  let client;
  const pointAt = (mock) => {
    const cfg = structuredClone(gw.config);
    cfg.providers.up.config.base_url = mock.baseURL;
    fs.writeFileSync(gw.configPath, JSON.stringify(cfg, null, 2));
  };
  const hits = async (mock) => (await mock.requests()).filter((r) => r.path.endsWith('/chat/completions')).length;

  before(async () => {
    mockA = await startMock();
    mockB = await startMock();
    gw = await startGateway({ mockPort: mockA.port });
    client = new OpenAI({ baseURL: gw.baseURL, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 15000 });
  });
  after(async () => {
    await gw?.stop();
    await mockA?.stop();
    await mockB?.stop();
  });

  const ask = (text = 'hi') => client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: text }] });

  test('POST /reload needs the admin token', async () => {
    const r = await gw.admin('/reload', { method: 'POST', token: false });
    assert.equal(r.status, 401);
    await r.arrayBuffer();
  });

  test('POST /reload applies a changed provider; in-flight stream finishes on the old generation', async () => {
    await ask();
    assert.equal(await hits(mockA), 1);
    // start a slow stream on generation 1 (mock A)
    const words = Array.from({ length: 15 }, (_, i) => `w${i}`).join(' ');
    const body = { model: 'gpt-4o-mini+fault-trickle-60', stream: true, messages: [{ role: 'user', content: words }] };
    const streaming = readStream(`${gw.baseURL}/chat/completions`, body, { timeoutMs: 10000 });
    await until(async () => (await mockA.stats()).streams_started >= 1, 2000);
    pointAt(mockB);
    const r = await gw.admin('/reload', { method: 'POST' });
    const j = await r.json();
    assert.equal(r.status, 200, JSON.stringify(j));
    assert.equal(j.ok, true);
    await ask('after reload');
    assert.equal(await hits(mockB), 1, 'new requests go to the new upstream');
    const s = await streaming;
    assert.ok(s.text.endsWith('data: [DONE]\n\n'), 'in-flight stream completed');
    const text = s.events.filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data).choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, replyText(body));
  });

  test('a broken config is refused and the running one keeps serving', async () => {
    const cfg = structuredClone(gw.config);
    cfg.providers.up.config.base_url = mockB.baseURL;
    cfg.routes[0].targets = [{ provider: 'does-not-exist' }];
    fs.writeFileSync(gw.configPath, JSON.stringify(cfg, null, 2));
    const r = await gw.admin('/reload', { method: 'POST' });
    const j = await r.json();
    assert.ok(r.status >= 400, `status ${r.status}`);
    assert.equal(j.ok, false);
    assert.match(JSON.stringify(j), /routes|targets|provider/);
    const before = await hits(mockB);
    const a = await ask('still up');
    assert.equal(a.choices[0].message.content, 'You said: still up');
    assert.equal(await hits(mockB), before + 1);
  });

  test('SIGHUP reloads too', async () => {
    pointAt(mockA);
    const beforeA = await hits(mockA);
    process.kill(gw.child.pid, 'SIGHUP');
    const ok = await until(async () => {
      await ask('hup');
      return (await hits(mockA)) > beforeA;
    }, 3000, 100);
    assert.ok(ok, 'after SIGHUP requests reach the upstream of the new config');
    assert.equal(gw.exited, null, 'gateway still running');
  });
});

describe('gateway: concurrent traffic', { skip }, () => {
  let mock;
  let gw;
  let client;
  before(async () => {
    mock = await startMock();
    gw = await startGateway({ mockPort: mock.port });
    client = new OpenAI({ baseURL: gw.baseURL, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 20000 });
  });
  after(async () => {
    await gw?.stop();
    await mock?.stop();
  });

  test('50 concurrent streams each get exactly their own deltas, in order', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
      const body = { model: 'gpt-4o-mini+fault-trickle-5', stream: true, messages: [{ role: 'user', content: `stream number ${i} with a few more words` }] };
      const s = await client.chat.completions.create(body);
      let text = '';
      for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
      return [text, replyText(body)];
    }));
    for (const [got, want] of results) assert.equal(got, want);
  });

  test('100 concurrent non-stream requests, mixed with errors, all answered correctly', async () => {
    const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => client.chat.completions.create({
      model: i % 10 === 0 ? 'fault-429' : 'gpt-4o-mini',
      messages: [{ role: 'user', content: `req ${i}` }],
    })));
    results.forEach((r, i) => {
      if (i % 10 === 0) {
        assert.equal(r.status, 'rejected');
        assert.ok(r.reason instanceof OpenAI.RateLimitError);
      } else {
        assert.equal(r.status, 'fulfilled', String(r.reason));
        assert.equal(r.value.choices[0].message.content, `You said: req ${i}`);
      }
    });
  });

  test('keep-alive: many sequential requests on one client connection', async () => {
    for (let i = 0; i < 30; i++) {
      const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `seq ${i}` }] });
      assert.equal(r.choices[0].message.content, `You said: seq ${i}`);
    }
    const h = await gw.admin('/health', { token: false });
    assert.equal(h.status, 200);
  });

  test('SSE events are whole even when the upstream sends large ones', async () => {
    const r = await readStream(`${gw.baseURL}/chat/completions`, { model: 'fault-big-200000', stream: true, messages: [{ role: 'user', content: 'x' }] });
    const evs = parseSSE(r.text).filter((e) => e.data !== '[DONE]');
    let n = 0;
    for (const e of evs) n += (JSON.parse(e.data).choices[0]?.delta?.content ?? '').length;
    assert.equal(n, 200000);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'));
  });
});
