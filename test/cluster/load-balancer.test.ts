/**
 * deploy/nginx-cluster.conf for real: Debian's nginx in front of two cluster nodes, the
 * shipped file with only its upstream addresses and port replaced. An agent connects through
 * it (WebSocket upgrade), dispatches go through it, whichever node each lands on.
 * Skipped only outside CI when nginx is missing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startCluster } from '../helpers/cluster-nodes.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { freePort } from '../helpers/free-port.ts';
import { ROOT } from '../helpers/processes.ts';
import { dispatch, getJson, TOKENS } from '../helpers/server.ts';
import { metricSum } from '../helpers/metrics-text.ts';
import { NGINX, startNginxProcess } from '../helpers/nginx.ts';
import { waitUntil } from '../helpers/wait.ts';

const skip = !existsSync(NGINX) && !process.env.CI ? 'nginx not installed (required when CI is set)' : false;

test('cluster behind nginx: an agent through the upgrade, dispatches through the balancer reach it from either node', { skip }, async (t) => {
  const { nodes } = await startCluster(t, 2);
  const [a, b] = nodes;
  const dir = mkdtempSync(join(tmpdir(), 'flowtest-lb-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  let conf = readFileSync(join(ROOT, 'deploy', 'nginx-cluster.conf'), 'utf8');
  for (const [from, to] of [
    ['node-1:8080', `127.0.0.1:${a.port}`],
    ['node-2:8080', `127.0.0.1:${b.port}`],
    ['listen 8080', `listen 127.0.0.1:${port}`],
  ] as const) {
    assert.ok(conf.includes(from), `the shipped config has no ${from}`);
    conf = conf.replaceAll(from, to);
  }
  conf = conf.replace('http {', `http {\n  access_log off;\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;`);
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  await startNginxProcess(t, dir, confPath, port, ` error_log ${join(dir, 'error.log')};`);
  const lb = { url: `http://127.0.0.1:${port}` };

  const w = await FakeAgent.connect(t, `ws://127.0.0.1:${port}`, { concurrency: 2 });
  for (const n of nodes) await waitUntil(() => n.router.listWorkers().some((x) => x.id === w.welcome.workerId), 2000, 'the agent listed at both nodes');
  const holder = a.router.listWorkers().find((x) => x.id === w.welcome.workerId)!.node;
  const other = holder === 'n1' ? b : a;
  await waitUntil(() => (other.cluster!.membership.peer(holder!)?.pools.get('acme/pool1')?.ready ?? 0) > 0, 2000, 'the other node to hear the pool');

  for (let i = 0; i < 6; i++) {
    const p = dispatch(lb, 'acme', { pool: 'pool1', request: { method: 'GET', url: `http://127.0.0.1:9/${i}` } });
    const job = await w.nextJob();
    w.reply(job.id, 200, `r${i}`);
    const r = await p;
    assert.equal(r.status, 200);
    assert.equal(r.body.response.body, `r${i}`);
  }
  // Round robin: both nodes answered callers (each counts the jobs it answered).
  for (const n of nodes) assert.ok(metricSum((await getJson(n, '/metrics')).body, 'flowtest_jobs_total') >= 1, `${n.cluster!.nodeId} answered none`);
  const listing = await getJson(lb, '/v1/workers', TOKENS.admin);
  assert.deepEqual(listing.body.workers.map((x: { node: string }) => x.node), [holder]);
  assert.equal((await getJson(lb, '/readyz')).status, 200);
});
