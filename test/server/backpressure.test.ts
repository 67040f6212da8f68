/**
 * Backpressure: a worker socket whose send buffer passes the high-water mark takes no new
 * job until it drains, and then takes the queued ones without any other event; one that
 * stays over the mark is treated as dead. Real sockets, with the fake agent's TCP socket
 * paused so it stops reading; plus a stub socket for a peer that still answers pings.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import type WebSocket from 'ws';
import { WorkerSession, type SessionHost } from '../../server/worker-session.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { HttpClient, type Answer } from '../helpers/http-client.ts';
import { startTestServer } from '../helpers/server.ts';
import { trackSessions } from '../helpers/sessions.ts';
import { waitUntil } from '../helpers/wait.ts';

const MAX_PAYLOAD = 64 * 1024;
const HIGH_WATER = 4 * MAX_PAYLOAD; // as server.ts sets it
const bigJob = (pool = 'pool1', timeoutMs = 30_000) => ({ pool, timeoutMs, request: { method: 'POST', url: 'http://127.0.0.1:9/', body: 'x'.repeat(48 * 1024) } });
const tcp = (a: FakeAgent) => (a.ws as unknown as { _socket: Socket })._socket;

/** Dispatches big jobs to a worker that does not read until its socket is over the mark. */
async function fillUntilBackedUp(s: Awaited<ReturnType<typeof startTestServer>>, client: HttpClient, session: WorkerSession, answers: Promise<Answer>[]): Promise<void> {
  while (session.writable) {
    assert.ok(answers.length < 1000, 'the socket never went over its high-water mark');
    answers.push(client.dispatch('acme', bigJob()));
    await waitUntil(() => s.router.stats().pending === answers.length, 5000, 'dispatch accepted');
  }
}

test('backpressure: a worker over the high-water mark takes no new job; when it drains it gets the queued ones at once', async (t) => {
  const s = await startTestServer(t, { maxPayloadBytes: MAX_PAYLOAD, heartbeatMs: 60_000, maxWorkerConcurrency: 1024 });
  const sessions = trackSessions(s);
  const client = new HttpClient(s.url, 2000);
  t.after(() => client.destroy());
  const a = await FakeAgent.connect(t, s.wsUrl, { concurrency: 1024 });
  const session = sessions.get(a.welcome.workerId)!;
  tcp(a).pause(); // the agent stops reading

  const answers: Promise<Answer>[] = [];
  await fillUntilBackedUp(s, client, session, answers);
  const held = session.held.size;
  t.diagnostic(`over the mark after ${held} jobs; ${session.ws.bufferedAmount} bytes unsent`);

  // New jobs wait in the queue instead of piling onto the socket.
  for (let i = 0; i < 20; i++) answers.push(client.dispatch('acme', bigJob()));
  await waitUntil(() => s.router.stats().queued === 20, 5000, '20 jobs queued');
  assert.equal(session.held.size, held);
  assert.ok(session.ws.bufferedAmount < HIGH_WATER + MAX_PAYLOAD, `unsent bytes bounded: ${session.ws.bufferedAmount}`);

  // The agent reads again: nothing else happens, yet the queue moves to it.
  tcp(a).resume();
  await waitUntil(() => s.router.stats().queued === 0 && session.held.size === held + 20, 5000, 'queued jobs sent after the drain');
  await waitUntil(() => a.frames.filter((f) => f.type === 'job').length === answers.length, 5000, 'every job frame read');
  for (const f of a.frames.splice(0)) if (f.type === 'job') a.reply(f.id);
  const results = await Promise.all(answers);
  assert.ok(results.every((r) => r.status === 200));
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 1, pools: 1 });
});

test('backpressure: a worker that stays over the mark is dropped, its jobs fail worker_disconnected, and unsent bytes stay bounded', async (t) => {
  // Long enough that a loaded machine answers the whole flood before the heartbeat drops the
  // worker (after 2–3 intervals): the flood must meet a full queue, not an empty pool.
  const heartbeatMs = 3000;
  const s = await startTestServer(t, { maxPayloadBytes: MAX_PAYLOAD, heartbeatMs, maxQueue: 50, maxWorkerConcurrency: 1024 });
  const sessions = trackSessions(s);
  const client = new HttpClient(s.url, 2000);
  t.after(() => client.destroy());
  const a = await FakeAgent.connect(t, s.wsUrl, { concurrency: 1024 });
  const session = sessions.get(a.welcome.workerId)!;
  // Every job frame written to this worker's socket, counted at the write: the promise is
  // about the socket, whether or not the heartbeat has dropped the worker yet.
  let jobFramesSent = 0;
  const send = session.ws.send.bind(session.ws);
  session.ws.send = ((data: unknown, ...rest: unknown[]) => {
    if (typeof data === 'string' && data.startsWith('{"type":"job"')) jobFramesSent += 1;
    return (send as (...args: unknown[]) => void)(data, ...rest);
  }) as typeof session.ws.send;
  tcp(a).pause();
  let maxUnsent = 0;
  let overAt = 0;
  const sampler = setInterval(() => {
    maxUnsent = Math.max(maxUnsent, session.ws.bufferedAmount);
    if (!overAt && session.ws.bufferedAmount >= HIGH_WATER) overAt = performance.now();
  }, 1);
  t.after(() => clearInterval(sampler));

  // Jobs at a worker that does not read: it takes them until it is over the mark...
  const answers = Array.from({ length: 150 }, () => client.dispatch('acme', bigJob()));
  await waitUntil(() => !session.writable, 5000, 'socket over the mark');
  assert.equal(session.state, 'ready', 'still connected when over the mark');
  const held = session.held.size;
  assert.equal(jobFramesSent, held, 'every job it holds was written to it, and nothing else');
  // ...then a flood while it is stuck: the queue takes 50, the rest are refused, nothing more is written to it
  // (the heartbeat may drop it while the flood is still being answered: the count holds either way).
  const flood = await Promise.all(Array.from({ length: 200 }, () => client.dispatch('acme', bigJob())));
  assert.ok(flood.some((r) => r.body.error?.code === 'overloaded'), 'a full queue refuses');
  assert.equal(jobFramesSent, held, 'no job frame written to the socket over the mark');
  const results = [...(await Promise.all(answers)), ...flood];
  const droppedMs = performance.now() - overAt;
  clearInterval(sampler);
  const codes = new Map<string, number>();
  for (const r of results) codes.set(r.body.error.code, (codes.get(r.body.error.code) ?? 0) + 1);
  t.diagnostic(`${held} jobs held when it went over the mark; answers ${JSON.stringify(Object.fromEntries(codes))}`);
  assert.equal(codes.get('worker_disconnected'), held);
  assert.ok((codes.get('overloaded') ?? 0) > 0, 'a full queue refuses');
  assert.equal(held + (codes.get('overloaded') ?? 0) + (codes.get('no_worker') ?? 0), 350);
  assert.match(results.find((r) => r.body.error.code === 'worker_disconnected')!.body.error.message, /heartbeat|backpressure/);
  assert.ok(droppedMs < 3 * heartbeatMs + 500, `dropped ${droppedMs.toFixed(0)} ms after going over the mark`);
  assert.ok(maxUnsent < HIGH_WATER + MAX_PAYLOAD + 1024, `unsent bytes peaked at ${maxUnsent}`);
  t.diagnostic(`dropped ${droppedMs.toFixed(0)} ms after going over the mark (heartbeat ${heartbeatMs} ms); unsent peak ${maxUnsent} bytes`);
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 0, pools: 0 });
});

/** A WebSocket stand-in whose send buffer the test sets, answering every ping. */
class StubSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  readonly writes: ((err?: Error) => void)[] = [];
  send(_data: string, cb: (err?: Error) => void): void {
    this.writes.push(cb);
  }
  ping(): void {
    setImmediate(() => this.emit('pong'));
  }
  terminate(): void {
    this.readyState = 3;
  }
  close(): void {
    this.readyState = 2;
  }
}

function stubSession(ws: StubSocket, heartbeatMs: number): { session: WorkerSession; events: string[] } {
  const events: string[] = [];
  const host: SessionHost = {
    onResult: () => {},
    onDrain: () => {},
    onWritable: () => events.push('writable'),
    onGone: (_s, reason) => events.push(`gone: ${reason}`),
  };
  const session = new WorkerSession(
    ws as unknown as WebSocket,
    { suite: 'acme', name: 'p', concurrency: 1, agentVersion: null, remoteAddress: null },
    { heartbeatMs, maxPayloadBytes: 1000, highWaterBytes: 4000 },
    host,
  );
  return { session, events };
}

test('backpressure: the write that brings a backed-up socket under the mark tells the host once', (t) => {
  const ws = new StubSocket();
  const { session, events } = stubSession(ws, 60_000);
  session.start();
  t.after(() => session.terminate('test over'));
  ws.bufferedAmount = 5000;
  session.send({ type: 'cancel', id: 'a', reason: 'timeout' });
  session.send({ type: 'cancel', id: 'b', reason: 'timeout' });
  assert.equal(session.writable, false);
  ws.writes.shift()!(); // still over the mark
  assert.deepEqual(events, []);
  ws.bufferedAmount = 0;
  ws.writes.shift()!();
  assert.deepEqual(events, ['writable']);
  ws.writes.shift()!(); // the welcome's callback: nothing more to tell
  assert.deepEqual(events, ['writable']);
});

test('backpressure: a peer that answers pings but never drains is dropped after more than 2 heartbeat intervals', async (t) => {
  const heartbeatMs = 30;
  const ws = new StubSocket();
  const { session, events } = stubSession(ws, heartbeatMs);
  t.after(() => session.terminate('test over'));
  session.start();
  ws.bufferedAmount = 5000;
  const started = performance.now();
  await waitUntil(() => session.state === 'gone', 2000, 'session dropped');
  const elapsed = performance.now() - started;
  assert.match(events.at(-1)!, /^gone: backpressure/);
  assert.equal(ws.readyState, 3, 'terminated, not closed politely');
  assert.ok(elapsed >= 2 * heartbeatMs, `dropped after ${elapsed.toFixed(0)} ms`);
});
