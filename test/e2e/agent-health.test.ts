/**
 * An agent process with FLOWTEST_HEALTH_PORT behind a real server: readiness follows the
 * connection and the drain, and its metrics count the jobs the server routed to it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAgentProc, startServerProc } from '../helpers/cluster.ts';
import { dispatch } from '../helpers/server.ts';
import { startTarget } from '../helpers/target.ts';

const get = async (url: string): Promise<{ status: number; text: string }> => {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text() };
};

test('a real agent behind a real server: /readyz, /metrics and the drain', async (t) => {
  const target = await startTarget(t);
  target.route('/ok', (_q, res) => res.end('ok'));
  const server = await startServerProc(t);
  const agent = startAgentProc(t, server, ['--health-port', '0', '--allow-host', `127.0.0.1:${new URL(target.url).port}`]);
  const listening = JSON.parse(await agent.waitForLine(/"msg":"health server listening/)) as { url: string };
  assert.match(listening.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  await agent.connected(); // the welcome is logged after readiness is set
  assert.equal((await get(`${listening.url}/readyz`)).status, 200);

  for (const url of [`${target.url}/ok`, 'http://169.254.169.254/latest/meta-data/']) {
    await dispatch(server, 'acme', { pool: 'pool1', timeoutMs: 10_000, request: { method: 'GET', url } });
  }
  const metrics = (await get(`${listening.url}/metrics`)).text;
  assert.match(metrics, /^flowtest_agent_jobs_total\{outcome="ok"\} 1$/m);
  assert.match(metrics, /^flowtest_agent_jobs_total\{outcome="target_forbidden"\} 1$/m);
  assert.match(metrics, /^flowtest_agent_connected 1$/m);

  agent.child.kill('SIGTERM');
  assert.deepEqual(await agent.exited, { code: 0, signal: null });
  await assert.rejects(get(`${listening.url}/healthz`), 'the health server ends with the agent');
});
