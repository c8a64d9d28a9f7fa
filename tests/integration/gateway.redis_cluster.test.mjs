// The host store on a real Redis Cluster (three redis-server masters started here on loopback,
// joined with `redis-cli --cluster create`): the gateway finds each key's node from the slot map,
// two gateways share per-consumer limits whose counters live on different nodes, a slot migrated
// between nodes while the gateways run is followed (MOVED and ASK), and keys made through the admin
// API on one gateway work on the other. Requests go through the official openai SDK.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import crypto from 'node:crypto';
import OpenAI from 'openai';
import { startGateway, startMock, skipUnlessGateway, freePort, until, ADMIN_TOKEN } from './lib/harness.mjs';

function which(bin) {
  try { return execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim() || null; } catch { return null; }
}
const REDIS = which('redis-server');
const CLI = which('redis-cli');
const skip = skipUnlessGateway() || (REDIS && CLI ? false : 'redis-server / redis-cli not installed (Debian: redis-server, redis-tools)');

const cli = (port, ...args) => execFileSync(CLI, ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8' }).trim();

// Redis Cluster's key hash: CRC16 (XMODEM) of the hash tag, mod 16384 (computed here independently).
function keySlot(key) {
  const o = key.indexOf('{');
  if (o >= 0) {
    const c = key.indexOf('}', o + 1);
    if (c > o + 1) key = key.slice(o + 1, c);
  }
  let crc = 0;
  for (const b of Buffer.from(key)) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

async function startCluster(n = 3) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aigw-rcluster-'));
  const nodes = [];
  for (let i = 0; i < n; i++) {
    const port = await freePort();
    const nd = path.join(dir, String(port));
    fs.mkdirSync(nd);
    const child = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', nd,
      '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'], { stdio: 'ignore' });
    nodes.push({ port, child });
    await until(() => new Promise((res) => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); res(true); });
      s.on('error', () => res(false));
    }), 5000, 50);
  }
  const stop = async () => {
    for (const { child } of nodes)
      if (child.exitCode === null) { child.kill('SIGTERM'); await new Promise((r) => child.once('exit', r)); }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    execFileSync(CLI, ['--cluster', 'create', ...nodes.map((x) => `127.0.0.1:${x.port}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    await until(() => nodes.every((x) => /cluster_state:ok/.test(cli(x.port, 'CLUSTER', 'INFO'))), 15000, 100);
  } catch (e) { await stop(); throw e; }
  for (const x of nodes) x.id = cli(x.port, 'CLUSTER', 'MYID');
  // which node owns a slot, as node 0 sees the map
  const owner = (slot) => {
    for (const range of JSON.parse(cli(nodes[0].port, '--json', 'CLUSTER', 'SLOTS')))
      if (slot >= range[0] && slot <= range[1]) return nodes.find((x) => x.port === range[2][1]);
    return null;
  };
  return { nodes, owner, stop };
}

// Starts moving one slot, with its keys, from node `from` to node `to` as redis-cli --cluster
// reshard does; the slot stays MIGRATING/IMPORTING (keys asked for on `from` answer ASK) until
// finishMigration.
function beginMigration(cluster, slot, from, to) {
  cli(to.port, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', from.id);
  cli(from.port, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', to.id);
  for (;;) {
    const keys = cli(from.port, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '100').split('\n').filter(Boolean);
    if (!keys.length) break;
    cli(from.port, 'MIGRATE', '127.0.0.1', String(to.port), '', '0', '5000', 'KEYS', ...keys);
  }
}
function finishMigration(cluster, slot, to) {
  for (const x of cluster.nodes) cli(x.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', to.id);
}

describe('store on a Redis Cluster: slots, shared limits, migration, admin keys', { skip }, () => {
  let cluster, mock, gwA, gwB;
  const prefix = `rc${process.pid}:`;
  const consumers = ['ann', 'bob', 'cyd', 'dee', 'eve', 'fay'];
  const allowed = [...consumers, 'gus'];
  const config = (cfg) => {
    cfg.store = { backend: 'redis', redis: { cluster: true, nodes: [`127.0.0.1:${cluster.nodes[0].port}`], timeout_ms: 500, prefix } };
    cfg.routes[0].plugins = [
      { name: 'keyauth', config: { consumers: allowed.map((name) => ({ name, keys: [`sha256:${crypto.createHash('sha256').update(`sk-config-${name}`).digest('hex')}`] })) } },
      { name: 'limits', config: { limits: [{ name: 'rpm', by: ['consumer'], requests: 5, window_s: 600 }] } },
    ];
    return cfg;
  };
  before(async () => {
    cluster = await startCluster(3);
    mock = await startMock();
    gwA = await startGateway({ mockPort: mock.port, config });
    gwB = await startGateway({ mockPort: mock.port, config });
  });
  after(async () => { await gwA?.stop(); await gwB?.stop(); await mock?.stop(); await cluster?.stop(); });

  const admin = (gw, method, p, body) => gw.admin(p, { method, token: ADMIN_TOKEN, body: body === undefined ? undefined : JSON.stringify(body) });
  const keys = {};
  const ask = (gw, consumer) => new OpenAI({ baseURL: gw.baseURL, apiKey: keys[consumer], maxRetries: 0 })
    .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).withResponse();

  test('keys made on gateway A (stored on the cluster) work on gateway B', async () => {
    for (const c of consumers) {
      const r = await admin(gwA, 'POST', '/keys', { consumer: c });
      assert.equal(r.status, 201, await r.clone().text());
      keys[c] = (await r.json()).key;
    }
    for (const c of consumers) {
      const { response } = await ask(gwB, c);
      assert.equal(response.status, 200);
    }
    // the key records are spread over the nodes (the test is about more than one node)
    const holders = cluster.nodes.filter((x) => Number(cli(x.port, 'DBSIZE')) > 0);
    assert.ok(holders.length >= 2, `keys on ${holders.length} node(s) only`);
  });

  test('two gateways share each consumer\'s limit, whichever node holds its counter', async () => {
    // each consumer used 1 of 5 above; 4 more get through on any gateway, then 429 on both
    for (const c of consumers) {
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => ask(i % 2 ? gwA : gwB, c)));
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      assert.equal(ok, 4, `${c}: exactly the rest of the limit got through`);
      for (const r of results.filter((x) => x.status === 'rejected'))
        assert.ok(r.reason instanceof OpenAI.RateLimitError, String(r.reason));
    }
    // each counter is on the node that owns its slot, and they are spread over the nodes
    const at = consumers.map((c) => {
      const k = `${prefix}{limits:rpm\x1f${c}}`;
      const nd = cluster.owner(keySlot(k));
      assert.equal(cli(nd.port, 'EXISTS', k), '1', `${c}'s counter on its slot's node ${nd.port}`);
      return nd.port;
    });
    assert.ok(new Set(at).size >= 2, 'counters on more than one node');
  });

  test('a counter\'s slot migrated while the gateways run: ASK during the move, MOVED after; the count carries over', async () => {
    const c = 'gus'; // unused so far: a fresh count of 5
    keys[c] = (await (await admin(gwA, 'POST', '/keys', { consumer: c })).json()).key;
    for (const gw of [gwA, gwB]) assert.equal((await ask(gw, c)).response.status, 200);
    const counter = `${prefix}{limits:rpm\x1f${c}}`;
    const slot = keySlot(counter);
    const from = cluster.owner(slot);
    assert.equal(cli(from.port, 'EXISTS', counter), '1', 'the counter is one key on its slot\'s node');
    const to = cluster.nodes.find((x) => x !== from);
    beginMigration(cluster, slot, from, to);
    assert.equal(cli(from.port, 'CLUSTER', 'COUNTKEYSINSLOT', String(slot)), '0', 'the counter left its node');
    assert.equal(cli(to.port, 'CLUSTER', 'COUNTKEYSINSLOT', String(slot)), '1', 'the counter moved');
    // the source answers ASK now: both gateways follow it and count on the new node
    for (const gw of [gwA, gwB, gwA]) assert.equal((await ask(gw, c)).response.status, 200);
    await assert.rejects(ask(gwB, c), (e) => e instanceof OpenAI.RateLimitError || assert.fail(`6th: ${e}`));
    finishMigration(cluster, slot, to);
    assert.equal(cluster.owner(slot).port, to.port);
    // MOVED from the old owner (the gateways' maps still point there): followed, still limited
    for (const gw of [gwA, gwB])
      await assert.rejects(ask(gw, c), (e) => e instanceof OpenAI.RateLimitError || assert.fail(`after the move: ${e}`));
    const hash = cli(to.port, 'HGETALL', counter).split('\n');
    assert.equal(hash.length, 2, 'one window field');
    assert.equal(hash[1], '5', 'the five admitted requests, counted across the move');
  });

  test('a key record\'s slot migrated: the key keeps working on both gateways', async () => {
    const { key } = await (await admin(gwB, 'POST', '/keys', { consumer: 'ann' })).json();
    const hashes = cluster.nodes.flatMap((x) => cli(x.port, '--scan', '--pattern', `${prefix}kv:{keyauth:key:*`).split('\n').filter(Boolean));
    // move every key record's slot to the next node, at once
    const slots = [...new Set(hashes.map(keySlot))];
    for (const slot of slots) {
      const from = cluster.owner(slot);
      const to = cluster.nodes[(cluster.nodes.indexOf(from) + 1) % cluster.nodes.length];
      beginMigration(cluster, slot, from, to);
      finishMigration(cluster, slot, to);
    }
    const client = (gw) => new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0 });
    for (const gw of [gwA, gwB]) {
      // ann's request limit is spent: a 429 (not a 401) proves the key was found after the move
      await assert.rejects(client(gw).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
        (e) => e instanceof OpenAI.RateLimitError || assert.fail(`${e}`));
    }
  });
});
