/** Worker loss with real agent processes: kill -9, a frozen agent, drains of agent and server. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAgentProc, startServerProc } from '../helpers/cluster.ts';
import { dispatch, getJson, TOKENS } from '../helpers/server.ts';
import { startTarget } from '../helpers/target.ts';
import { waitUntil, within } from '../helpers/wait.ts';

const workers = async (server: { url: string }) => (await getJson(server, '/v1/suites/acme/workers', TOKENS.client)).body.workers as { id: string; state: string; inFlight: number }[];

test('kill -9 of an agent holding 20 jobs: every one fails with worker_disconnected at once', async (t) => {
  const target = await startTarget(t);
  target.route('/hang', () => {});
  const server = await startServerProc(t);
  const agent = startAgentProc(t, server, ['--concurrency', '20']);
  await agent.connected();
  const jobs = Array.from({ length: 20 }, () => dispatch(server, 'acme', { pool: 'pool1', timeoutMs: 30_000, request: { method: 'GET', url: `${target.url}/hang` } }));
  await waitUntil(() => target.seen.length === 20, 10_000, 'all 20 requests at the target');
  const killedAt = performance.now();
  agent.child.kill('SIGKILL');
  const answered = await Promise.all(jobs.map((j) => j.then((r) => ({ r, at: performance.now() }))));
  const lastMs = Math.max(...answered.map((a) => a.at)) - killedAt;
  for (const { r } of answered) assert.equal(r.body.error.code, 'worker_disconnected');
  // Far below the 30 s deadline: nobody waited for a timeout.
  assert.ok(lastMs < 2000, `last answer ${lastMs.toFixed(1)} ms after kill -9`);
  t.diagnostic(`kill -9 → last of 20 answered after ${lastMs.toFixed(1)} ms`);
  assert.deepEqual(await workers(server), []);
});

test('a frozen agent (SIGSTOP) is dropped by the heartbeat within 2 × heartbeatMs and reconnects after SIGCONT', async (t) => {
  const heartbeatMs = 400;
  const target = await startTarget(t);
  target.route('/hang', () => {});
  const server = await startServerProc(t, ['--heartbeat-ms', String(heartbeatMs)]);
  const agent = startAgentProc(t, server);
  const firstWelcome = await agent.connected();
  const job = dispatch(server, 'acme', { pool: 'pool1', timeoutMs: 30_000, request: { method: 'GET', url: `${target.url}/hang` } });
  await waitUntil(() => target.seen.length === 1, 5000);
  const stoppedAt = performance.now();
  agent.child.kill('SIGSTOP');
  const r = await job;
  const detectedMs = performance.now() - stoppedAt;
  assert.equal(r.body.error.code, 'worker_disconnected');
  assert.match(r.body.error.message, /heartbeat/);
  // Contract bound 2 × heartbeatMs; the slack covers timer lateness on a busy machine.
  assert.ok(detectedMs <= 2 * heartbeatMs + 300, `detected after ${detectedMs.toFixed(0)} ms`);
  t.diagnostic(`SIGSTOP → detected after ${detectedMs.toFixed(0)} ms (heartbeat ${heartbeatMs} ms)`);
  assert.deepEqual(await workers(server), []);

  agent.child.kill('SIGCONT');
  await agent.waitForLine(new RegExp(`"workerId":"(?!${JSON.parse(firstWelcome).workerId})`), 15_000);
  await waitUntil(async () => (await workers(server)).length === 1, 5000, 'the agent back in the listing');
});

test('agent SIGTERM: sends drain, finishes the job in flight, is closed with 1000 once it holds nothing, exits 0', async (t) => {
  const target = await startTarget(t);
  let release: () => void = () => {};
  target.route('/hold', (_q, res) => {
    release = () => res.end('released');
  });
  const server = await startServerProc(t);
  const agent = startAgentProc(t, server);
  await agent.connected();
  const job = dispatch(server, 'acme', { pool: 'pool1', timeoutMs: 30_000, request: { method: 'GET', url: `${target.url}/hold` } });
  await waitUntil(() => target.seen.length === 1, 5000);
  agent.child.kill('SIGTERM');
  await waitUntil(async () => (await workers(server))[0]?.state === 'draining', 5000, 'worker listed as draining');
  const refused = await dispatch(server, 'acme', { pool: 'pool1', request: { method: 'GET', url: `${target.url}/hold` } });
  assert.equal(refused.body.error.code, 'no_worker', 'a draining worker takes nothing new');
  release();
  const r = await job;
  assert.equal(r.status, 200);
  assert.equal(r.body.response.body, 'released');
  assert.deepEqual(await within(agent.exited, 15_000, 'the agent process to exit'), { code: 0, signal: null });
  await server.waitForLine(/"reason":"drained".*"msg":"worker gone"/, 5000);
});

test('server SIGTERM: the job in flight finishes, agents get 1001 and retry, the server exits 0 by itself', async (t) => {
  const target = await startTarget(t);
  let release: () => void = () => {};
  target.route('/hold', (_q, res) => {
    release = () => res.end('done');
  });
  const server = await startServerProc(t, ['--shutdown-grace-ms', '10000']);
  const agent = startAgentProc(t, server);
  await agent.connected();
  const job = dispatch(server, 'acme', { pool: 'pool1', timeoutMs: 30_000, request: { method: 'GET', url: `${target.url}/hold` } });
  await waitUntil(() => target.seen.length === 1, 5000);
  server.child.kill('SIGTERM');
  await server.waitForLine(/"msg":"shutting down"/);
  release();
  const r = await job;
  assert.equal(r.status, 200);
  assert.deepEqual(await within(server.exited, 15_000, 'the server process to exit'), { code: 0, signal: null });
  await agent.waitForLine(/"code":1001/, 5000);
  await agent.waitForLine(/reconnecting/, 5000);
});
