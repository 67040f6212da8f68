/**
 * The router seam without sockets: LocalRouter places jobs on plain WorkerHandle objects
 * (as a cluster's remote workers would be), hears them through WorkerEvents, and ends
 * every job once in the pending table.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlowtestError } from '../../shared/errors.ts';
import type { HttpRequest, WorkerInfo } from '../../shared/protocol.ts';
import { createLogger } from '../../server/logger.ts';
import { LocalRouter } from '../../server/local-router.ts';
import { PendingJobs } from '../../server/pending-jobs.ts';
import { Job } from '../../server/job.ts';
import type { JobCaller, Outcome, WorkerHandle } from '../../server/router.ts';
import { waitUntil } from '../helpers/wait.ts';

const request: HttpRequest = { method: 'GET', url: 'http://127.0.0.1:9/' };

/** A worker that only records what placement asks of it. */
class RecordingWorker implements WorkerHandle {
  readonly held = new Set<string>();
  readonly log: string[] = [];
  state: 'ready' | 'draining' | 'gone' = 'ready';
  writable = true;
  constructor(
    readonly id: string,
    readonly concurrency = 1,
    readonly suite = 'acme',
    readonly pool = 'pool1',
  ) {}
  get ready(): boolean {
    return this.state === 'ready';
  }
  get inFlight(): number {
    return this.held.size;
  }
  info(): WorkerInfo {
    return { id: this.id, suite: this.suite, name: this.pool, state: this.state === 'ready' ? 'ready' : 'draining', concurrency: this.concurrency, inFlight: this.held.size, connectedAt: new Date(0).toISOString(), lastPongAt: null, rttMs: null, agentVersion: null, remoteAddress: null };
  }
  sendJob(jobId: string): void {
    this.held.add(jobId);
    this.log.push(`job ${jobId}`);
  }
  release(jobId: string, cancelReason?: string): void {
    if (this.held.delete(jobId) && cancelReason) this.log.push(`cancel ${jobId} ${cancelReason}`);
  }
  close(code: number): void {
    this.state = 'gone';
    this.log.push(`close ${code}`);
  }
}

/** A caller that records its answers (there must be exactly one). */
function recorder(): JobCaller & { outcomes: Outcome[] } {
  const outcomes: Outcome[] = [];
  return { outcomes, settle: (o) => outcomes.push(o) };
}

const code = (o: Outcome | undefined) => (o === undefined ? 'none' : o.ok ? 'ok' : o.error.code);

function newRouter(): LocalRouter {
  return new LocalRouter({ defaultTimeoutMs: 30_000, maxQueue: 10 }, createLogger({ level: 'silent' }));
}

test('seam: jobs go to a WorkerHandle, its result answers the caller once, a late result is dropped', () => {
  const router = newRouter();
  const w = new RecordingWorker('w1');
  router.workerUp(w);
  const caller = recorder();
  const id = router.submit('acme', { pool: 'pool1', request }, caller);
  assert.ok(id);
  assert.deepEqual(w.log, [`job ${id}`]);
  assert.deepEqual(router.stats(), { pending: 1, queued: 0, inFlight: 1, workers: 1, pools: 1 });

  const response = { status: 200, headers: {}, body: 'hi' };
  router.workerResult(w, { type: 'result', id: id!, response } as never);
  router.workerResult(w, { type: 'result', id: id!, response } as never);
  assert.deepEqual(caller.outcomes.map(code), ['ok']);
  assert.equal(w.held.size, 0, 'released by the router');
  assert.deepEqual(router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 1, pools: 1 });
});

test('seam: a worker gone with jobs [ids] fails those jobs at once; queued jobs wait for another worker', () => {
  const router = newRouter();
  const a = new RecordingWorker('a');
  router.workerUp(a);
  const held = recorder();
  const queued = recorder();
  const heldId = router.submit('acme', { pool: 'pool1', request }, held)!;
  router.submit('acme', { pool: 'pool1', request, waitForWorkerMs: 5000 }, queued);
  assert.equal(router.stats().queued, 1);

  a.state = 'gone';
  router.workerGone(a, [heldId], 'socket closed (1006)');
  assert.deepEqual(held.outcomes.map(code), ['worker_disconnected']);
  assert.match((held.outcomes[0] as { error: FlowtestError }).error.message, /socket closed/);
  assert.deepEqual(queued.outcomes, [], 'the queued job still waits');

  const b = new RecordingWorker('b');
  router.workerUp(b);
  assert.equal(b.held.size, 1, 'the queued job goes to the new worker');
  router.cancel([...b.held][0]);
  assert.deepEqual(queued.outcomes.map(code), ['cancelled']);
  assert.deepEqual(b.log.slice(1).map((l) => l.replace(/ \S+ /, ' ')), ['cancel client_aborted'], 'the worker is told to cancel');
  assert.deepEqual(router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 1, pools: 1 });
});

test('seam: refusals answer inside submit and return no id', () => {
  const router = newRouter();
  const caller = recorder();
  assert.equal(router.submit('acme', { pool: 'nobody', request }, caller), null);
  assert.deepEqual(caller.outcomes.map(code), ['no_worker']);
  assert.deepEqual(router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 0, pools: 0 });
});

test('seam: shutdown fails what is left and closes no worker (sockets are the registry\'s)', async () => {
  const router = newRouter();
  const w = new RecordingWorker('w1');
  router.workerUp(w);
  const caller = recorder();
  const id = router.submit('acme', { pool: 'pool1', request }, caller)!;
  await router.shutdown(0);
  assert.deepEqual(caller.outcomes.map(code), ['shutting_down']);
  assert.deepEqual(w.log, [`job ${id}`, `cancel ${id} shutting_down`]);
  const late = recorder();
  assert.equal(router.submit('acme', { pool: 'pool1', request }, late), null);
  assert.deepEqual(late.outcomes.map(code), ['shutting_down']);
});

test('pending table: complete answers once, the deadline completes with timeout, idle resolves when empty', async () => {
  const ending: string[] = [];
  const table = new PendingJobs({ jobEnding: (job, o) => ending.push(`${job.id}:${code(o)}`) });
  const a = recorder();
  const jobA = new Job('acme', 'pool1', request, 30_000, 0, undefined, a);
  table.add(jobA);
  const idle = table.idle(10_000);
  assert.equal(table.complete(jobA.id, { ok: false, error: new FlowtestError('cancelled', 'gone') }), true);
  assert.equal(table.complete(jobA.id, { ok: false, error: new FlowtestError('timeout', 'late') }), false);
  assert.deepEqual(a.outcomes.map(code), ['cancelled']);
  await idle;

  const b = recorder();
  const jobB = new Job('acme', 'pool1', request, 20, 0, undefined, b);
  table.add(jobB);
  await waitUntil(() => b.outcomes.length === 1, 2000, 'deadline');
  assert.deepEqual(b.outcomes.map(code), ['timeout']);
  assert.equal((b.outcomes[0] as { cancelReason?: string }).cancelReason, 'timeout');
  assert.deepEqual(ending, [`${jobA.id}:cancelled`, `${jobB.id}:timeout`]);
  assert.equal(table.size, 0);
});
