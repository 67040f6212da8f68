/** The cluster's transport layers against a real nats-server: connection owner, chunked bodies, URL parsing. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { toFrames, Reassembler } from '../../server/cluster/chunks.ts';
import { NatsLink } from '../../server/cluster/nats-link.ts';
import { parseNatsUrls } from '../../server/cluster/nats-urls.ts';
import { NodeBus } from '../../server/cluster/node-bus.ts';
import type { InboxMessage } from '../../server/cluster/cluster-protocol.ts';
import { createLogger } from '../../server/logger.ts';
import { startNats } from '../helpers/nats.ts';
import { waitUntil } from '../helpers/wait.ts';

const log = createLogger({ level: 'silent' });

test('--nats list: servers, credentials out of the URL, tls scheme, bad entries refused', () => {
  assert.deepEqual(parseNatsUrls('nats://a:4222, nats://u:p%40ss@b:5222'), { servers: ['a:4222', 'b:5222'], user: 'u', pass: 'p@ss', tls: false });
  assert.deepEqual(parseNatsUrls('tls://tok@h'), { servers: ['h:4222'], token: 'tok', tls: true });
  assert.deepEqual(parseNatsUrls('127.0.0.1:4333'), { servers: ['127.0.0.1:4333'], tls: false });
  assert.throws(() => parseNatsUrls('http://x:1'), /scheme/);
  assert.throws(() => parseNatsUrls(' , '), /no URL/);
  assert.throws(() => parseNatsUrls('nats://u:secret@x:1/path'), (err: Error) => !err.message.includes('secret'));
});

test('chunks: a message over the frame size is cut and put back together in order', () => {
  const payload = randomBytes(300_000);
  const frames = toFrames(payload, 64 * 1024, 'n1.1');
  assert.ok(frames.length >= 5);
  for (const f of frames) assert.ok(f.length <= 64 * 1024);
  const r = new Reassembler({ maxBytes: 1_000_000, idleMs: 1000 });
  let out: Uint8Array | null = null;
  for (const f of frames) {
    const res = r.push(f);
    if (res.kind === 'message') out = res.payload;
    else assert.equal(res.kind, 'partial');
  }
  assert.ok(out && Buffer.from(out).equals(payload));
  assert.equal(r.pending, 0);
  assert.equal(r.bytes, 0);
  const small = toFrames(Buffer.from('hi'), 64 * 1024, 'n1.2');
  assert.equal(small.length, 1);
  const res = r.push(small[0]);
  assert.ok(res.kind === 'message' && Buffer.from(res.payload).toString() === 'hi');
  r.close();
});

test('chunks: reassembly state is bounded, dropped for a dead sender, and swept when abandoned', async () => {
  const drops: string[] = [];
  const r = new Reassembler({ maxBytes: 100_000, idleMs: 60, onDrop: (id, reason) => drops.push(`${id}: ${reason}`) });
  const big = toFrames(randomBytes(200_000), 16 * 1024, 'a.1');
  let last: string = '';
  for (const f of big) last = r.push(f).kind;
  assert.equal(last, 'invalid', 'over the byte bound the transfer is dropped');
  assert.equal(r.pending, 0);
  assert.equal(r.bytes, 0);

  const fromB = toFrames(randomBytes(50_000), 16 * 1024, 'b.1');
  r.push(fromB[0]);
  const fromC = toFrames(randomBytes(50_000), 16 * 1024, 'c.1');
  r.push(fromC[0]);
  assert.equal(r.pending, 2);
  r.dropSender('b');
  assert.equal(r.pending, 1);
  await waitUntil(() => r.pending === 0, 2000, 'the abandoned transfer to be swept');
  assert.equal(r.bytes, 0);
  assert.ok(drops.some((d) => d.startsWith('c.1: no chunk')));
  // A chunk of a transfer that was dropped is refused, not half-assembled.
  assert.equal(r.push(fromC[1]).kind, 'invalid');
  r.close();
});

test('NATS link: connected flag follows the server going away and coming back', async (t) => {
  const nats = await startNats(t);
  const link = await NatsLink.open({ urls: nats.url, name: 'test' }, log);
  t.after(() => link.close());
  assert.equal(link.connected, true);
  assert.equal(link.maxPayload, 1024 * 1024);
  const changes: boolean[] = [];
  link.onChange((c) => changes.push(c));
  await nats.kill();
  await waitUntil(() => !link.connected, 3000, 'disconnected');
  await nats.restart();
  await waitUntil(() => link.connected, 5000, 'reconnected');
  assert.deepEqual(changes, [false, true]);
});

test('NATS link: a frozen server is noticed (ping) within ~3 s', async (t) => {
  const nats = await startNats(t);
  const link = await NatsLink.open({ urls: nats.url, name: 'test' }, log);
  t.after(() => link.close());
  nats.freeze();
  t.after(() => nats.thaw());
  const started = Date.now();
  await waitUntil(() => !link.connected, 5000, 'stale connection noticed');
  assert.ok(Date.now() - started <= 4000, `noticed after ${Date.now() - started} ms`);
  nats.thaw();
  await waitUntil(() => link.connected, 5000, 'reconnected after thaw');
});

test('NATS link: an unreachable NATS fails start with a one-line reason that hides credentials', async () => {
  await assert.rejects(
    NatsLink.open({ urls: 'nats://user:hunter2@127.0.0.1:1', name: 'test', connectTimeoutMs: 1000 }, log),
    (err: Error) => /cannot connect to NATS/.test(err.message) && !err.message.includes('hunter2') && !err.message.includes('\n'),
  );
});

test('node bus: 5 MiB messages cross a default nats-server (1 MiB max_payload) both ways', async (t) => {
  const nats = await startNats(t);
  const linkA = await NatsLink.open({ urls: nats.url, name: 'a' }, log);
  t.after(() => linkA.close());
  const linkB = await NatsLink.open({ urls: nats.url, name: 'b' }, log);
  t.after(() => linkB.close());
  const opts = { maxReassemblyBytes: 64 * 1024 * 1024, transferIdleMs: 5000 };
  const busA = new NodeBus(linkA, { nodeId: 'a', nonce: 'na', ...opts }, log);
  const busB = new NodeBus(linkB, { nodeId: 'b', nonce: 'nb', ...opts }, log);
  t.after(() => busA.close());
  t.after(() => busB.close());
  const atA: InboxMessage[] = [];
  const atB: InboxMessage[] = [];
  busA.start((m) => atA.push(m));
  busB.start((m) => atB.push(m));
  await Promise.all([linkA.nc.flush(), linkB.nc.flush()]);

  const body = randomBytes(5 * 1024 * 1024 * 3 / 4).toString('base64'); // 5 MiB of base64
  assert.equal(body.length, 5 * 1024 * 1024);
  assert.ok(busA.send('b', { type: 'job', id: 'j1', suite: 's', pool: 'p', timeoutMs: 1000, waitForWorkerMs: 0, request: { method: 'POST', url: 'http://t/', body, bodyEncoding: 'base64' } }));
  await waitUntil(() => atB.length === 1, 10_000, 'the 5 MiB job at B');
  const job = atB[0];
  assert.ok(job.type === 'job' && job.request.body === body && job.from === 'a' && job.nonce === 'na');

  assert.ok(busB.send('a', { type: 'outcome', id: 'j1', workerId: 'w', response: { status: 200, headers: {}, body, bodyEncoding: 'base64' } }));
  await waitUntil(() => atA.length === 1, 10_000, 'the 5 MiB outcome at A');
  assert.ok(atA[0].type === 'outcome' && atA[0].response?.body === body);
  assert.equal(busA.pendingTransfers, 0);
  assert.equal(busB.pendingTransfers, 0);
});

test('node bus: invalid messages are dropped, valid ones still arrive', async (t) => {
  const nats = await startNats(t);
  const link = await NatsLink.open({ urls: nats.url, name: 'a' }, log);
  t.after(() => link.close());
  const bus = new NodeBus(link, { nodeId: 'a', nonce: 'na', maxReassemblyBytes: 1e6, transferIdleMs: 1000 }, log);
  t.after(() => bus.close());
  const got: InboxMessage[] = [];
  bus.start((m) => got.push(m));
  link.nc.publish('flowtest.cluster.node.a.in', Buffer.from('\x00not json'));
  link.nc.publish('flowtest.cluster.node.a.in', Buffer.from('\x00{"type":"cancel","id":"x"}'));
  link.nc.publish('flowtest.cluster.node.a.in', Buffer.from('\x07'));
  bus.send('a', { type: 'cancel', id: 'x', reason: 'timeout' });
  await waitUntil(() => got.length === 1, 3000, 'the valid message');
  assert.equal(got[0].type, 'cancel');
});

test('NATS link: a tls:// URL refuses a NATS without TLS', async (t) => {
  const nats = await startNats(t);
  await assert.rejects(
    NatsLink.open({ urls: `tls://127.0.0.1:${nats.port}`, name: 'test', connectTimeoutMs: 2000 }, log),
    /does not support 'tls'/,
  );
});
