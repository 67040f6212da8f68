/** Bodies beyond NATS's max_payload and concurrency held across nodes under load. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { startCluster, waitAllEmpty, waitAnnounced } from '../helpers/cluster-nodes.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';
import { dispatch } from '../helpers/server.ts';
import { waitUntil } from '../helpers/wait.ts';

test('cluster: a 5 MiB request body and a 5 MiB response cross nodes through a default nats-server', async (t) => {
  const { nodes } = await startCluster(t, 2);
  const [a, b] = nodes;
  const w = await FakeAgent.connect(t, b.wsUrl);
  await waitAnnounced(a, b);
  const body = randomBytes((5 * 1024 * 1024 * 3) / 4).toString('base64');
  const p = dispatch(a, 'acme', { pool: 'pool1', request: { method: 'POST', url: 'http://127.0.0.1:9/up', body, bodyEncoding: 'base64' } });
  const job = await w.nextJob(20_000);
  assert.equal(job.request.body, body);
  w.send({ type: 'result', id: job.id, response: { status: 200, headers: {}, body, bodyEncoding: 'base64' } });
  const r = await p;
  assert.equal(r.status, 200);
  assert.equal(r.body.response.body.length, body.length);
  assert.equal(r.body.response.body, body);
  await waitAllEmpty(nodes);
});

test('cluster: under load from every node, no worker ever holds more than its concurrency; every dispatch answered once', async (t) => {
  const { nodes } = await startCluster(t, 3);
  const [a, b, c] = nodes;
  let maxSeen = 0;
  const agents: ScriptedAgent[] = [];
  const inFlight = new Map<ScriptedAgent, number>();
  for (const [node, concurrency] of [[b, 2], [c, 3], [a, 1]] as const) {
    const agent = await ScriptedAgent.connect(node.wsUrl, {
      concurrency,
      onJob: (job, ag) => {
        const n = (inFlight.get(ag) ?? 0) + 1;
        inFlight.set(ag, n);
        if (n > concurrency) maxSeen = Math.max(maxSeen, n - concurrency);
        setTimeout(() => {
          inFlight.set(ag, (inFlight.get(ag) ?? 1) - 1);
          ag.reply(job.id, 200, job.id);
        }, 5 + Math.floor(Math.random() * 10));
      },
    });
    t.after(() => agent.ws.terminate());
    agents.push(agent);
  }
  for (const n of [a, b, c]) await waitUntil(() => n.router.listWorkers().length === 3, 2000, 'every worker listed everywhere');
  await waitAnnounced(a, b, 'pool1', 1, 2);
  await waitAnnounced(a, c, 'pool1', 1, 3);

  const total = 150;
  const results = await Promise.all(
    Array.from({ length: total }, (_, i) => dispatch(nodes[i % 3], 'acme', { pool: 'pool1', timeoutMs: 20_000, request: { method: 'GET', url: `http://127.0.0.1:9/${i}` } })),
  );
  assert.equal(maxSeen, 0, 'a worker held more than its concurrency');
  const codes = new Map<string, number>();
  for (const r of results) codes.set(r.status === 200 ? 'ok' : r.body.error.code, (codes.get(r.status === 200 ? 'ok' : r.body.error.code) ?? 0) + 1);
  assert.deepEqual([...codes], [['ok', total]]);
  assert.equal(agents.reduce((s, ag) => s + ag.jobs, 0), total, 'each job sent to exactly one worker');
  assert.ok(agents.every((ag) => ag.jobs > 0), 'every node took part');
  await waitAllEmpty(nodes);
});
