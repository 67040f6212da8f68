/** The console at any node shows every node's workers (with their node) and the whole cluster's job feed. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startCluster, waitAllEmpty } from '../helpers/cluster-nodes.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { dispatch } from '../helpers/server.ts';
import { ConsoleClient } from '../console/console-harness.ts';
import { waitUntil } from '../helpers/wait.ts';

test('console at A: B worker with its node at once, and a job that arrived at B in the feed', async (t) => {
  const { nodes } = await startCluster(t, 2);
  const [a, b] = nodes;
  const consoleA = await ConsoleClient.connect(t, a.wsUrl);
  await consoleA.next('snapshot');
  const w = await FakeAgent.connect(t, b.wsUrl);
  const up = await consoleA.next('delta', (m) => m.workers.some((x) => x.id === w.welcome.workerId), 2000);
  assert.equal(up.workers.find((x) => x.id === w.welcome.workerId)?.node, 'n2');

  await waitUntil(() => b.cluster!.membership.peer('n1')?.consoles === true, 2000, 'B to hear that A has a console open');
  const p = dispatch(b, 'acme', { pool: 'pool1', request: { method: 'GET', url: 'http://127.0.0.1:9/feed' } });
  const job = await w.nextJob();
  w.reply(job.id, 200, 'x'.repeat(20_000));
  assert.equal((await p).status, 200);
  const d = await consoleA.next('delta', (m) => m.jobs.some((j) => j.url === 'http://127.0.0.1:9/feed'), 3000);
  const row = d.jobs.find((j) => j.url === 'http://127.0.0.1:9/feed')!;
  assert.equal(row.node, 'n2');
  assert.equal(row.outcome, 'ok');
  assert.equal(row.replayable, false);

  w.ws.close();
  await consoleA.next('delta', (m) => m.gone.some((g) => g.id === w.welcome.workerId), 2000);
  await waitAllEmpty(nodes);
});
