/**
 * Audit finding 6: "stale workers pruned only when someone lists them". Here each
 * session's own heartbeat removes a frozen worker — nobody needs to call the API — and
 * the jobs it held fail at that moment.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlowtestError } from '../../shared/errors.ts';
import type { RouterEvent } from '../../server/router-events.ts';
import { resources, waitForResources } from '../helpers/resources.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';
import { startTestServer } from '../helpers/server.ts';
import { waitUntil, within } from '../helpers/wait.ts';

test('finding 6 (stale workers pruned only when listed): frozen workers are removed by the heartbeat with no API call, their jobs failing then', async (t) => {
  const baseline = resources();
  const heartbeatMs = 200;
  const s = await startTestServer(t, { heartbeatMs });
  let listings = 0;
  const listWorkers = s.router.listWorkers.bind(s.router);
  s.router.listWorkers = (suite?: string) => {
    listings += 1;
    return listWorkers(suite);
  };
  const down = new Map<string, { at: number; reason: string }>();
  s.router.observe((e: RouterEvent) => {
    if (e.kind === 'worker-down') down.set(e.workerId, { at: performance.now(), reason: e.reason });
  });

  const busy = await ScriptedAgent.connect(s.wsUrl, { onJob: () => {} });
  const idle = await ScriptedAgent.connect(s.wsUrl, { name: 'idle' });
  const alive = await ScriptedAgent.connect(s.wsUrl, { name: 'alive' });
  t.after(() => [busy, idle, alive].forEach((a) => a.ws.terminate()));
  const job = s.router
    .dispatch('acme', { pool: 'pool1', timeoutMs: 30_000, request: { method: 'GET', url: 'http://127.0.0.1:9/' } }, new AbortController().signal)
    .then(
      () => null,
      (err: FlowtestError) => ({ err, at: performance.now() }),
    );
  await waitUntil(() => busy.jobs === 1, 5000, 'job delivered');

  // Frozen: the processes still hold their sockets but read nothing and answer no ping.
  busy.socket.pause();
  idle.socket.pause();
  const frozenAt = performance.now();
  const failed = await job;
  assert.ok(failed);
  assert.equal(failed.err.code, 'worker_disconnected');
  assert.match(failed.err.message, /heartbeat/);
  const bound = 2 * heartbeatMs + 300; // contract: within 2 × heartbeatMs; the slack absorbs timer lateness on a busy machine
  assert.ok(failed.at - frozenAt <= bound, `job failed ${(failed.at - frozenAt).toFixed(0)} ms after the freeze`);
  await waitUntil(() => down.has(idle.workerId), bound, 'the idle frozen worker removed');
  assert.match(down.get(idle.workerId)!.reason, /heartbeat/);
  t.diagnostic(`frozen workers removed after ${(down.get(busy.workerId)!.at - frozenAt).toFixed(0)} and ${(down.get(idle.workerId)!.at - frozenAt).toFixed(0)} ms (heartbeat ${heartbeatMs} ms)`);

  // The live worker answered every ping meanwhile and stays.
  assert.equal(down.has(alive.workerId), false);
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 1, pools: 1 });
  assert.equal(listings, 0, 'nobody listed the workers');

  for (const a of [busy, idle, alive]) a.ws.terminate();
  await within(s.close(), 15_000, 'the server to close');
  await waitForResources(baseline);
});
