/**
 * Metrics worth alerting on: pool and outcome labels, per-pool gauges, worker connects and
 * disconnects by reason, auth failures, bounded series, and text that `promtool check
 * metrics` accepts (run for real when promtool is installed; required in CI).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import WebSocket from 'ws';
import { PROTOCOL_VERSION, WORKER_CONNECT_PATH } from '../../shared/limits.ts';
import { disconnectReason, MAX_POOL_LABELS, Metrics, OTHER_LABEL, type MetricsSource } from '../../server/metrics.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { metricSum, samples } from '../helpers/metrics-text.ts';
import { dispatch, getJson, startTestServer, TOKENS } from '../helpers/server.ts';
import { waitUntil } from '../helpers/wait.ts';

const PROMTOOL = '/usr/bin/promtool';

function source(over: Partial<MetricsSource> = {}): MetricsSource {
  return { workerCounts: () => [], poolJobs: () => [], knowsSuite: (s) => s === 'acme' || s === 'other', ...over };
}

/**
 * The rules of `promtool check metrics` that prom-client output can break, for machines
 * without promtool: counters end in `_total`, nothing else does; every family has HELP
 * and TYPE; names are snake_case.
 */
function lintProblems(text: string): string[] {
  const problems: string[] = [];
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1], type[2]);
    const help = /^# HELP (\S+) \S/.exec(line);
    if (help) helps.add(help[1]);
  }
  for (const [name, type] of types) {
    if (!/^[a-z_:][a-z0-9_:]*$/.test(name)) problems.push(`${name}: not snake_case`);
    if (type === 'counter' && !name.endsWith('_total')) problems.push(`${name}: counter without _total`);
    if (type !== 'counter' && name.endsWith('_total')) problems.push(`${name}: non-counter metrics should not have "_total" suffix`);
    if (!helps.has(name)) problems.push(`${name}: no HELP`);
  }
  return problems;
}

test('jobs: pool and outcome labels on the counter and the histogram; child handles reused', async () => {
  const m = new Metrics(source());
  m.workerConnected('acme', 'staging');
  m.jobEnded('acme', 'staging', 'ok', 0.02);
  m.jobEnded('acme', 'staging', 'ok', 0.03);
  m.jobEnded('acme', 'staging', 'timeout', 1);
  // Hot path: a known label set is looked up once, then its children are reused.
  let lookups = 0;
  const labels = m.jobsTotal.labels.bind(m.jobsTotal);
  m.jobsTotal.labels = ((...args: Parameters<typeof labels>) => (lookups++, labels(...args))) as typeof m.jobsTotal.labels;
  for (let i = 0; i < 5; i++) m.jobEnded('acme', 'staging', 'ok', 0.5);
  assert.equal(lookups, 0);
  m.jobEnded('acme', 'staging', 'cancelled', 0.5);
  assert.equal(lookups, 1);
  const text = await m.registry.metrics();
  assert.equal(metricSum(text, 'flowtest_jobs_total', { suite: 'acme', pool: 'staging', outcome: 'ok' }), 7);
  assert.equal(metricSum(text, 'flowtest_jobs_total', { suite: 'acme', pool: 'staging', outcome: 'timeout' }), 1);
  // Timeouts have their own histogram series, so they do not drown the p99 of answers.
  assert.equal(metricSum(text, 'flowtest_job_duration_seconds_count', { suite: 'acme', pool: 'staging', outcome: 'ok' }), 7);
  assert.equal(metricSum(text, 'flowtest_job_duration_seconds_bucket', { suite: 'acme', pool: 'staging', outcome: 'ok', le: '0.025' }), 1);
  assert.equal(metricSum(text, 'flowtest_job_duration_seconds_count', { outcome: 'timeout' }), 1);
});

test('series are bounded: unknown suites, never-seen pools and unknown outcomes count under _other', async () => {
  const m = new Metrics(source());
  m.workerConnected('acme', 'staging');
  for (let i = 0; i < 200; i++) m.jobEnded(`made-up-${i}`, `pool-${i}`, 'no_worker', 0.001);
  for (let i = 0; i < 200; i++) m.jobEnded('acme', `typo-${i}`, 'no_worker', 0.001);
  m.jobEnded('acme', 'staging', 'not-a-code', 0.001);
  const text = await m.registry.metrics();
  assert.deepEqual(
    samples(text, 'flowtest_jobs_total').map(([l, v]) => [l.suite, l.pool, l.outcome, v]),
    [
      [OTHER_LABEL, OTHER_LABEL, 'no_worker', 200],
      ['acme', OTHER_LABEL, 'no_worker', 200],
      ['acme', 'staging', OTHER_LABEL, 1],
    ],
  );
  // A worker may connect only with a token of a suite in the file; even so, pools are capped.
  const capped = new Metrics(source({ knowsSuite: () => true }));
  for (let i = 0; i < MAX_POOL_LABELS + 50; i++) capped.workerConnected('s', `p${i}`);
  const cappedText = await capped.registry.metrics();
  assert.equal(samples(cappedText, 'flowtest_worker_connections_total').length, MAX_POOL_LABELS + 1);
  assert.equal(metricSum(cappedText, 'flowtest_worker_connections_total', { pool: OTHER_LABEL }), 50);
});

test('in flight and queued by suite and pool, read at scrape time; an idle server still reads 0', async () => {
  let jobs = [
    { suite: 'acme', pool: 'staging', inFlight: 3, queued: 2 },
    { suite: 'acme', pool: 'prod', inFlight: 1, queued: 0 },
    { suite: 'made-up', pool: 'x', inFlight: 0, queued: 4 },
  ];
  const m = new Metrics(source({ poolJobs: () => jobs, workerCounts: () => [{ suite: 'acme', pool: 'staging', count: 2 }] }));
  m.workerConnected('acme', 'staging');
  m.workerConnected('acme', 'prod');
  let text = await m.registry.metrics();
  assert.equal(metricSum(text, 'flowtest_jobs_in_flight', { suite: 'acme', pool: 'staging' }), 3);
  assert.equal(metricSum(text, 'flowtest_jobs_in_flight', { suite: 'acme', pool: 'prod' }), 1);
  assert.equal(metricSum(text, 'flowtest_jobs_in_flight'), 4);
  assert.equal(metricSum(text, 'flowtest_jobs_queued', { suite: 'acme', pool: 'staging' }), 2);
  assert.equal(metricSum(text, 'flowtest_jobs_queued', { suite: OTHER_LABEL, pool: OTHER_LABEL }), 4);
  assert.equal(metricSum(text, 'flowtest_workers_connected', { suite: 'acme', pool: 'staging' }), 2);
  jobs = [];
  text = await m.registry.metrics();
  assert.equal(metricSum(text, 'flowtest_jobs_in_flight'), 0);
  assert.equal(metricSum(text, 'flowtest_jobs_queued'), 0);
  assert.equal(samples(text, 'flowtest_jobs_in_flight', { suite: 'acme' }).length, 0, 'a pool that emptied leaves no stale series');
});

test('disconnect reasons map to a fixed set', () => {
  const cases: [string, string][] = [
    ['drained', 'drained'],
    ['server shutting down', 'server_shutdown'],
    ['heartbeat: no pong since the previous ping', 'heartbeat_timeout'],
    ['backpressure: over 4 bytes unsent for 2 heartbeat intervals', 'backpressure'],
    ['bad frame: not valid UTF-8', 'protocol_error'],
    ['socket closed (1006)', 'connection_lost'],
    ['socket closed (1000)', 'closed_by_agent'],
    ['socket closed (1001)', 'closed_by_agent'],
    ['socket error: ECONNRESET', 'socket_error'],
    ['send failed: write EPIPE', 'socket_error'],
    ['anything else', 'other'],
  ];
  for (const [text, label] of cases) assert.equal(disconnectReason(text), label, text);
});

test('a live server counts worker connects, disconnects by reason and auth failures, and logs refusals once per address', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl, { name: 'staging' });
  await waitUntil(async () => metricSum((await getJson(s, '/metrics')).body, 'flowtest_workers_connected') === 1, 5000, 'the worker to be counted');
  a.ws.terminate(); // no close frame: 1006 at the server
  await waitUntil(async () => (await getJson(s, '/v1/suites/acme/workers', TOKENS.client)).body.workers.length === 0, 5000, 'the worker to leave');

  for (let i = 0; i < 3; i++) assert.equal((await dispatch(s, 'acme', { pool: 'staging', request: { method: 'GET', url: 'http://127.0.0.1:9/' } }, { token: 'nope-nope-nope' })).status, 401);
  assert.equal((await getJson(s, '/v1/workers', TOKENS.client)).status, 403);
  const refused = new WebSocket(`${s.wsUrl}${WORKER_CONNECT_PATH}?suite=acme&name=x&concurrency=1`, PROTOCOL_VERSION, { headers: { authorization: 'Bearer nope-nope-nope' } });
  refused.on('error', () => {}); // ending a refused handshake reports "closed before established"
  const status = await new Promise<number>((resolve) => refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
  refused.terminate();
  assert.equal(status, 401);

  const text = (await getJson(s, '/metrics')).body as string;
  assert.equal(metricSum(text, 'flowtest_worker_connections_total', { suite: 'acme', pool: 'staging' }), 1);
  assert.equal(metricSum(text, 'flowtest_worker_disconnections_total', { suite: 'acme', pool: 'staging', reason: 'connection_lost' }), 1);
  assert.equal(metricSum(text, 'flowtest_auth_failures_total', { kind: 'unauthorized', transport: 'http' }), 3);
  assert.equal(metricSum(text, 'flowtest_auth_failures_total', { kind: 'forbidden', transport: 'http' }), 1);
  assert.equal(metricSum(text, 'flowtest_auth_failures_total', { kind: 'unauthorized', transport: 'socket' }), 1);

  // Five refusals from 127.0.0.1 within the interval: one info line.
  const lines = s.logLines.map((l) => JSON.parse(l) as { msg: string; level: number; kind?: string; remoteAddress?: string });
  const refusals = lines.filter((l) => l.msg === 'refused');
  assert.equal(refusals.length, 1, JSON.stringify(refusals));
  assert.equal(refusals[0].level, 30);
  assert.equal(refusals[0].kind, 'unauthorized');
  assert.match(refusals[0].remoteAddress ?? '', /127\.0\.0\.1/);
  // Connects and disconnects at info.
  assert.ok(lines.some((l) => l.msg === 'worker connected' && l.level === 30));
  assert.ok(lines.some((l) => l.msg === 'worker gone' && l.level === 30));
});

test('the scrape passes promtool check metrics (and its rules, where promtool is missing)', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl, { name: 'staging' });
  const p = dispatch(s, 'acme', { pool: 'staging', request: { method: 'GET', url: 'http://127.0.0.1:9/' } });
  a.reply((await a.nextJob()).id);
  assert.equal((await p).status, 200);
  await dispatch(s, 'acme', { pool: 'nobody', request: { method: 'GET', url: 'http://127.0.0.1:9/' } }, { token: 'nope-nope-nope' });
  // An admin token may dispatch to any suite name: one not in the tokens file gets no series.
  assert.equal((await dispatch(s, 'made-up', { pool: 'x', request: { method: 'GET', url: 'http://127.0.0.1:9/' } }, { token: TOKENS.admin })).status, 503);
  const text = (await getJson(s, '/metrics')).body as string;
  assert.equal(metricSum(text, 'flowtest_jobs_total', { suite: OTHER_LABEL, pool: OTHER_LABEL, outcome: 'no_worker' }), 1);
  assert.equal(samples(text, 'flowtest_jobs_total', { suite: 'made-up' }).length, 0);

  assert.deepEqual(lintProblems(text), []);
  assert.doesNotMatch(text, /^nodejs_active_\w+_total/m);
  assert.match(text, /^nodejs_active_handles\{/m, 'the per-type figures stay');

  if (!existsSync(PROMTOOL)) {
    assert.ok(!process.env.CI, `${PROMTOOL} is required in CI (Debian package prometheus)`);
    t.diagnostic('promtool not installed: checked its rules only');
    return;
  }
  const run = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 0, `promtool check metrics: ${run.stdout}${run.stderr}`);
});
