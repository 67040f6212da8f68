/**
 * Child process of 02-departed-worker.test.ts, run with `--expose-gc`: a live server in
 * this process, CYCLES worker sockets that connect and leave in every way a worker can
 * (clean close, terminate, TCP reset, heartbeat kill, bad frame, oversize frame), some
 * holding jobs. Each WorkerSession is registered in a FinalizationRegistry as the worker
 * registry takes it; after forced GCs every session but one deliberately kept (the negative
 * control, which proves the method sees a retained session) must have been collected,
 * with the server still running. Prints one JSON line with the counts.
 */
import { Writable } from 'node:stream';
import type { Server } from 'node:net';
import { createLogger } from '../../server/logger.ts';
import { startServer } from '../../server/server.ts';
import type { WorkerSession } from '../../server/worker-session.ts';
import { HttpClient } from '../helpers/http-client.ts';
import { runPool } from '../helpers/prng.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';
import { testTokenStore } from '../helpers/server.ts';
import { waitUntil } from '../helpers/wait.ts';

const CYCLES = Number(process.env.CYCLES ?? 2000);
const HEARTBEAT_MS = 40;
const KINDS = ['close', 'terminate', 'reset', 'heartbeat', 'bad-frame', 'oversize'] as const;
type Kind = (typeof KINDS)[number];

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const resourcesNow = () => process.getActiveResourcesInfo().sort().join(',');
const resourcesBefore = resourcesNow();
const quiet = new Writable({ write: (_c, _e, cb) => cb() });
const server = await startServer(
  { host: '127.0.0.1', port: 0, heartbeatMs: HEARTBEAT_MS, maxPayloadBytes: 4096, shutdownGraceMs: 0 },
  { tokens: testTokenStore(), logger: createLogger({ level: 'silent', destination: quiet }) },
);
const wsUrl = server.url.replace(/^http/, 'ws');

// The HTTP listener is a shared emitter every connection passes; its listeners must not grow.
const listener = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().find(
  (h): h is Server => typeof (h as Server)?.address === 'function' && (h as Server).listening && ((h as Server).address() as { port: number })?.port === server.port,
);
if (!listener) throw new Error('listening server not found');
const listenerCounts = () => Object.fromEntries(listener.eventNames().map((n) => [String(n), listener.listenerCount(n)]));
const processListenerCounts = () => Object.fromEntries(process.eventNames().map((n) => [String(n), process.listenerCount(n)]));
const sharedBefore = { server: listenerCounts(), process: processListenerCounts() };

let created = 0;
const collectedByKind: Record<string, number> = {};
const kindOf = new Map<string, Kind | 'kept'>(); // worker id → kind; strings only, holds no session
const registry = new FinalizationRegistry<string>((workerId) => {
  const kind = kindOf.get(workerId) ?? 'unknown';
  collectedByKind[kind] = (collectedByKind[kind] ?? 0) + 1;
});
let kept: WorkerSession | null = null; // the negative control, held strongly on purpose
let keptRef: WeakRef<WorkerSession> | null = null;
const addWorker = server.workers.add.bind(server.workers);
server.workers.add = (session: WorkerSession) => {
  created += 1;
  registry.register(session, session.id);
  addWorker(session);
};

const gone = new Set<string>();
server.router.observe((e) => {
  if (e.kind === 'worker-down') gone.add(e.workerId);
});

const client = new HttpClient(server.url, 256);
const body = (pool: string) => ({ pool, timeoutMs: 10_000, request: { method: 'GET', url: 'http://127.0.0.1:9/hang' } });
let jobsAnswered = 0;

async function cycle(i: number): Promise<void> {
  const kind = KINDS[i % KINDS.length];
  // A pool of its own, so the jobs below go to this worker (pools come and go with it).
  const pool = `p${i}`;
  const agent = await ScriptedAgent.connect(wsUrl, { name: pool, concurrency: 2, autoPong: kind !== 'heartbeat', onJob: () => {} });
  kindOf.set(agent.workerId, kind);
  // Every third worker holds jobs when it goes, so its held map is not empty.
  const jobs = i % 3 === 0 ? [client.dispatch('acme', body(pool)), client.dispatch('acme', body(pool))] : [];
  // (A heartbeat-kind worker may be dropped before its jobs arrive.)
  if (jobs.length > 0) await waitUntil(() => agent.jobs === jobs.length || gone.has(agent.workerId), 5000, `jobs delivered to ${kind} worker`);
  if (kind === 'close') agent.ws.close(1000, 'bye');
  else if (kind === 'terminate') agent.ws.terminate();
  else if (kind === 'reset') agent.reset();
  else if (kind === 'bad-frame') agent.ws.send('not json');
  else if (kind === 'oversize') agent.ws.send('x'.repeat(8192));
  // heartbeat: it stopped answering pings; the server drops it within 2 × HEARTBEAT_MS.
  await waitUntil(() => gone.has(agent.workerId), 5000, `worker ${kind} removed`);
  for (const r of await Promise.all(jobs)) if (r.body?.error?.code === 'worker_disconnected') jobsAnswered += 1;
  if (kind !== 'heartbeat' && kind !== 'terminate' && kind !== 'reset') await agent.closed;
  agent.ws.terminate();
}

const started = Date.now();
await runPool(CYCLES, 96, cycle);

// The negative control: a session this script keeps a reference to.
{
  let control: WorkerSession | null = null;
  const take = server.workers.add;
  server.workers.add = (session: WorkerSession) => {
    control = session;
    take(session);
  };
  const agent = await ScriptedAgent.connect(wsUrl, { onJob: () => {} });
  kindOf.set(agent.workerId, 'kept');
  agent.ws.close();
  await waitUntil(() => gone.has(agent.workerId), 5000, 'control removed');
  await agent.closed;
  kept = control;
  keptRef = new WeakRef(control!);
}
const cyclesMs = Date.now() - started;

// Sockets still closing (close handshakes) hold their sessions until they finish.
client.destroy();
await waitUntil(() => !process.getActiveResourcesInfo().includes('TCPSocketWrap'), 10_000, 'all sockets closed');

const collected = () => Object.values(collectedByKind).reduce((a, b) => a + b, 0);
for (let round = 0; round < 100 && collected() < created - 1; round++) {
  gc();
  await new Promise((r) => setTimeout(r, 10));
}
gc();
await new Promise((r) => setTimeout(r, 50));

const report = {
  cycles: CYCLES,
  created,
  collected: collected(),
  collectedByKind,
  controlAlive: keptRef?.deref() === kept && kept !== null,
  controlCollected: (collectedByKind.kept ?? 0) > 0,
  jobsAnswered,
  stats: server.router.stats(),
  sharedBefore,
  sharedAfter: { server: listenerCounts(), process: processListenerCounts() },
  cyclesMs,
};
kept = null;
await server.close();
await waitUntil(() => resourcesNow() === resourcesBefore, 5000, 'active resources back to the baseline').catch(() => {});
process.stdout.write(`${JSON.stringify({ ...report, resourcesBefore, resourcesAfter: resourcesNow() })}\n`);
