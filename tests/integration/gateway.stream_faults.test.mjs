// Streams that go wrong: upstream stalls, resets, truncation, and clients that walk away.
// A cut stream must end with an error event and never with `data: [DONE]`.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { useGateway, skipUnlessGateway, readStream, parseSSE, until, accessLogFor } from './lib/harness.mjs';

const streamBody = (model, text = 'one two three four five') => ({ model, stream: true, messages: [{ role: 'user', content: text }] });

function assertCutStream(r, contentEvents) {
  assert.equal(r.status, 200, 'headers were already sent as 200');
  assert.ok(!r.timedOut, `the gateway did not end the stream (waited ${r.elapsedMs} ms)`);
  assert.ok(!r.text.includes('data: [DONE]'), 'a cut stream must not end with [DONE]');
  const evs = r.events;
  const chunks = evs.filter((e) => { try { return JSON.parse(e.data).object === 'chat.completion.chunk'; } catch { return false; } });
  assert.equal(chunks.length, contentEvents, 'the chunks sent before the fault reached the client');
  const errs = evs.filter((e) => {
    if (e.event === 'error') return true;
    try { return !!JSON.parse(e.data).error; } catch { return false; }
  });
  assert.ok(errs.length >= 1, `an error event ends the stream; got:\n${r.text.slice(-500)}`);
  assert.ok(evs.indexOf(errs[0]) === evs.length - 1, `the error event is the last event; got:\n${r.text.slice(-700)}`);
  const e = JSON.parse(errs[0].data);
  assert.equal(typeof (e.error?.message ?? e.message), 'string');
}

describe('gateway: stream faults', { skip: skipUnlessGateway() }, () => {
  const ctx = useGateway();

  test('upstream stalls mid-stream → error event within idle_ms, no [DONE]', async () => {
    const r = await readStream(`${ctx.gw.baseURL}/chat/completions`, streamBody('fault-stall-after-3'), { timeoutMs: 8000 });
    assertCutStream(r, 3);
    assert.ok(r.elapsedMs >= 1300, `ended after ${r.elapsedMs} ms, before idle_ms (1500)`);
    const log = await accessLogFor(ctx.gw, r.headers.get('x-request-id'));
    assert.ok(log.error, 'access log records the error');
  });

  test('upstream stall: the SDK iteration throws an APIError', async () => {
    const stream = await ctx.client.chat.completions.create(streamBody('fault-stall-after-2'));
    let n = 0;
    await assert.rejects((async () => { for await (const c of stream) { void c; n++; } })(), (e) => e instanceof OpenAI.APIError);
    assert.equal(n, 2);
  });

  test('upstream resets the connection mid-stream → error event, no [DONE]', async () => {
    const r = await readStream(`${ctx.gw.baseURL}/chat/completions`, streamBody('fault-reset-after-3'), { timeoutMs: 8000 });
    assertCutStream(r, 3);
    // noticed as a reset, not as an idle cut: the idle deadline's error text differs
    assert.doesNotMatch(JSON.stringify(r.events.at(-1) ?? {}), /idle/i, 'cut by the reset, not by idle_ms');
  });

  test('upstream ends cleanly without finish_reason/[DONE] → error event, no [DONE]', async () => {
    const r = await readStream(`${ctx.gw.baseURL}/chat/completions`, streamBody('fault-truncate-after-3'), { timeoutMs: 8000 });
    assertCutStream(r, 3);
  });

  test('upstream in-stream error event is passed on, no [DONE]', async () => {
    const r = await readStream(`${ctx.gw.baseURL}/chat/completions`, streamBody('fault-error-after-2'), { timeoutMs: 8000 });
    assertCutStream(r, 2);
  });

  test('client aborts mid-stream → upstream stream cancelled; gateway stays healthy', async () => {
    await ctx.mock.resetStats();
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    const ac = new AbortController();
    const res = await fetch(`${ctx.gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(streamBody('gpt-4o-mini+fault-trickle-100', words)),
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let text = '';
    while (parseSSE(text).length < 3) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'stream ended early');
      text += dec.decode(value, { stream: true });
    }
    const before = await ctx.mock.stats();
    assert.equal(before.streams_aborted, 0);
    ac.abort();
    const st = await until(async () => { const s = await ctx.mock.stats(); return s.streams_aborted >= 1 && s; }, 4000);
    assert.ok(st, `upstream stream not cancelled within 4 s of the client abort (it would run 6 s) (stats: ${JSON.stringify(await ctx.mock.stats())})`);
    assert.equal(st.streams_completed, 0, 'the upstream stream did not run to completion');
    const h = await ctx.gw.admin('/health', { token: false });
    assert.equal(h.status, 200);
    const r = await ctx.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'still there?' }] });
    assert.equal(r.choices[0].message.content, 'You said: still there?');
  });

  test('many aborted streams leave no upstream connections or streams behind', async () => {
    await ctx.mock.resetStats();
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    await Promise.all(Array.from({ length: 10 }, async () => {
      const ac = new AbortController();
      const res = await fetch(`${ctx.gw.baseURL}/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify(streamBody('gpt-4o-mini+fault-trickle-50', words)), signal: ac.signal,
      });
      const reader = res.body.getReader();
      await reader.read();
      ac.abort();
    }));
    const st = await until(async () => { const s = await ctx.mock.stats(); return s.streams_aborted >= 10 && s; }, 3000);
    assert.ok(st, `expected 10 aborted upstream streams: ${JSON.stringify(await ctx.mock.stats())}`);
    assert.equal(st.requests_in_flight, 0);
  });
});
