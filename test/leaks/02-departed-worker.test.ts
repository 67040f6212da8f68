/**
 * Audit finding 2: "a departed worker's job queue stays allocated". Here a worker's jobs
 * live in its WorkerSession (`held`), so the proof is that no session outlives its
 * socket: the child (session-gc-child.ts, run with --expose-gc) cycles 2,000 workers
 * through every way of leaving and shows with a FinalizationRegistry and forced GCs that
 * all their sessions were collected while the server kept running.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/processes.ts';

test('finding 2 (departed worker stays allocated): 2,000 connect/leave cycles leave no WorkerSession reachable and no listener behind', async (t) => {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', join(ROOT, 'test', 'leaks', 'session-gc-child.ts')], {
    cwd: ROOT,
    env: { ...process.env, CYCLES: '2000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c));
  child.stderr.on('data', (c: Buffer) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  assert.equal(code, 0, `child failed: ${stderr}`);
  const report = JSON.parse(stdout.trim().split('\n').at(-1)!);
  t.diagnostic(`sessions created ${report.created}, collected ${report.collected} ${JSON.stringify(report.collectedByKind)}; cycles took ${report.cyclesMs} ms`);

  assert.equal(report.created, 2001);
  // Every departed session was collected; the one the child kept on purpose was not,
  // which shows the registry would have seen a retained session.
  assert.equal(report.collected, 2000, JSON.stringify(report.collectedByKind));
  assert.equal(report.controlAlive, true);
  assert.equal(report.controlCollected, false);
  for (const kind of ['close', 'terminate', 'reset', 'heartbeat', 'bad-frame', 'oversize']) assert.ok(report.collectedByKind[kind] >= 333, kind);
  assert.ok(report.jobsAnswered > 1000, 'workers held jobs when they left');
  assert.deepEqual(report.stats, { pending: 0, queued: 0, inFlight: 0, workers: 0, pools: 0 });
  assert.deepEqual(report.sharedAfter, report.sharedBefore, 'listeners on the HTTP server or process');
  assert.equal(report.resourcesAfter, report.resourcesBefore, 'active resources after the server closed');
});
