import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { AGENT_ERROR_CODES, ERROR_CODES } from '../../shared/errors.ts';
import { workerListSchema } from '../../shared/protocol.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { metricSum } from '../helpers/metrics-text.ts';
import { dispatch, getJson, startTestServer, TOKENS } from '../helpers/server.ts';
import { within } from '../helpers/wait.ts';

const body = { pool: 'pool1', request: { method: 'GET', url: 'http://127.0.0.1:9/' } };

test('dispatch auth: 401 without or with an unknown token, 403 for another suite or a worker token', async (t) => {
  const s = await startTestServer(t);
  const cases: [string, number, string][] = [
    ['', 401, 'unauthorized'],
    ['nope-nope-nope', 401, 'unauthorized'],
    [TOKENS.otherClient, 403, 'forbidden'],
    [TOKENS.worker, 403, 'forbidden'],
  ];
  for (const [token, status, code] of cases) {
    const r = await dispatch(s, 'acme', body, { token });
    assert.equal(r.status, status, `token ${token || '(none)'}`);
    assert.equal(r.body.error.code, code);
  }
  // Client and admin tokens pass auth (and then find no worker).
  assert.equal((await dispatch(s, 'acme', body, { token: TOKENS.client })).body.error.code, 'no_worker');
  assert.equal((await dispatch(s, 'acme', body, { token: TOKENS.admin })).body.error.code, 'no_worker');
});

test('listing auth: suite listing for its client or admin; /v1/workers for admin only', async (t) => {
  const s = await startTestServer(t);
  await FakeAgent.connect(t, s.wsUrl, { name: 'pa' });
  await FakeAgent.connect(t, s.wsUrl, { suite: 'other', name: 'pb', token: TOKENS.otherWorker });
  assert.equal((await getJson(s, '/v1/suites/acme/workers')).status, 401);
  assert.equal((await getJson(s, '/v1/suites/acme/workers', TOKENS.otherClient)).status, 403);
  const mine = await getJson(s, '/v1/suites/acme/workers', TOKENS.client);
  assert.equal(mine.status, 200);
  const parsed = workerListSchema.parse(mine.body);
  assert.deepEqual(parsed.workers.map((w) => [w.suite, w.name, w.state, w.concurrency, w.inFlight]), [['acme', 'pa', 'ready', 4, 0]]);
  assert.deepEqual(Object.keys(mine.body.workers[0]).sort(), ['agentVersion', 'concurrency', 'connectedAt', 'id', 'inFlight', 'lastPongAt', 'name', 'remoteAddress', 'rttMs', 'state', 'suite']);
  assert.equal((await getJson(s, '/v1/workers', TOKENS.client)).status, 403);
  const all = await getJson(s, '/v1/workers', TOKENS.admin);
  assert.deepEqual(all.body.workers.map((w: { suite: string }) => w.suite).sort(), ['acme', 'other']);
});

test('invalid_request names the field', async (t) => {
  const s = await startTestServer(t);
  const cases: [unknown, RegExp][] = [
    ['{not json', /JSON/],
    [{ request: body.request }, /^pool/],
    [{ ...body, pool: '../x' }, /^pool/],
    [{ ...body, request: { method: 'GET', url: 'ftp://x/' } }, /^request\.url/],
    [{ ...body, request: { method: 'GET', url: 'http://x/', headers: { 'bad name': 'v' } } }, /^request\.headers/],
    [{ ...body, request: { method: 'GET', url: 'http://x/', headers: { a: 'x\r\ny: z' } } }, /^request\.headers/],
    [{ ...body, request: { method: 'POST', url: 'http://x/', body: '***', bodyEncoding: 'base64' } }, /^request\.body/],
    [{ ...body, timeoutMs: -1 }, /^timeoutMs/],
    [{ ...body, extra: 1 }, /extra/],
  ];
  for (const [b, re] of cases) {
    const r = await dispatch(s, 'acme', b);
    assert.equal(r.status, 400, JSON.stringify(b));
    assert.equal(r.body.error.code, 'invalid_request');
    assert.match(r.body.error.message, re);
  }
  const badSuite = await dispatch(s, 'bad!suite', body);
  assert.equal(badSuite.status, 400);
});

test('payload_too_large (413) by declared length and by streamed size, connection closed', async (t) => {
  const s = await startTestServer(t, { maxPayloadBytes: 2048 });
  const big = JSON.stringify({ ...body, request: { ...body.request, method: 'POST', body: 'x'.repeat(4000) } });
  const r = await dispatch(s, 'acme', big);
  assert.equal(r.status, 413);
  assert.equal(r.body.error.code, 'payload_too_large');

  // Chunked, no content-length: the limit applies while reading.
  const status = await new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
    const rq = request(`${s.url}/v1/suites/acme/dispatch`, { method: 'POST', headers: { authorization: `Bearer ${TOKENS.client}`, 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
    });
    rq.on('error', reject);
    for (let i = 0; i < 4; i++) rq.write('x'.repeat(1000));
    rq.end();
  });
  assert.deepEqual(status, { status: 413, connection: 'close' });
});

test('payload_too_large (413) for a declared content-length over the limit, answered before any of the body is sent', async (t) => {
  const s = await startTestServer(t, { maxPayloadBytes: 2048 });
  // Headers only: a server that waited for the declared body to count it would never answer.
  const answer = new Promise<{ status: number; body: any }>((resolve, reject) => {
    const rq = request(`${s.url}/v1/suites/acme/dispatch`, { method: 'POST', headers: { authorization: `Bearer ${TOKENS.client}`, 'content-type': 'application/json', 'content-length': '1000000' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      res.on('error', reject);
    });
    rq.on('error', reject);
    t.after(() => rq.destroy());
    rq.flushHeaders();
  });
  const r = await within(answer, 3000, 'the 413 to a declared length, with no body sent');
  assert.equal(r.status, 413);
  assert.equal(r.body.error.code, 'payload_too_large');
});

test('health, readiness, 404 and 405', async (t) => {
  const s = await startTestServer(t);
  assert.deepEqual(await getJson(s, '/healthz'), { status: 200, body: { status: 'ok' } });
  assert.equal((await getJson(s, '/readyz')).status, 200);
  const nf = await getJson(s, '/nope');
  assert.equal(nf.status, 404);
  assert.equal(nf.body.error.code, 'not_found');
  assert.equal((await getJson(s, '/v1/suites/acme/dispatch', TOKENS.client)).status, 405);
});

test('metrics: contract names, default metrics, gauges back to 0 after jobs end', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl);
  const p = dispatch(s, 'acme', body);
  const job = await a.nextJob();
  const during = (await getJson(s, '/metrics')).body as string;
  assert.equal(metricSum(during, 'flowtest_jobs_in_flight'), 1);
  assert.match(during, /^flowtest_jobs_in_flight\{suite="acme",pool="pool1"\} 1$/m);
  assert.match(during, /^flowtest_workers_connected\{suite="acme",pool="pool1"\} 1$/m);
  a.reply(job.id);
  await p;
  await dispatch(s, 'acme', { ...body, pool: 'empty' });
  const text = (await getJson(s, '/metrics')).body as string;
  for (const name of ['flowtest_workers_connected', 'flowtest_jobs_in_flight', 'flowtest_jobs_queued', 'flowtest_jobs_total', 'flowtest_job_duration_seconds', 'flowtest_late_results_total', 'process_cpu_user_seconds_total', 'nodejs_eventloop_lag_seconds']) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  // Labelled by suite and pool; summed over the labels they are the contract's totals.
  assert.equal(metricSum(text, 'flowtest_jobs_in_flight'), 0);
  assert.equal(metricSum(text, 'flowtest_jobs_queued'), 0);
  assert.match(text, /^flowtest_jobs_total\{suite="acme",pool="pool1",outcome="ok"\} 1$/m);
  // No worker ever connected as pool `empty`: its jobs count under `_other`, not a series of their own.
  assert.match(text, /^flowtest_jobs_total\{suite="acme",pool="_other",outcome="no_worker"\} 1$/m);
  assert.match(text, /^flowtest_job_duration_seconds_count\{suite="acme",pool="pool1",outcome="ok"\} 1$/m);
});

test('no token and no authorization header appears in any log line', async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl);
  const p = dispatch(s, 'acme', { ...body, request: { ...body.request, headers: { Authorization: `Bearer ${TOKENS.admin}` } } });
  a.reply((await a.nextJob()).id);
  await p;
  await dispatch(s, 'acme', body, { token: 'wrong-token-xyz-123' });
  await getJson(s, '/v1/workers', TOKENS.admin);
  a.ws.close();
  await within(a.closed, 3000, 'the worker socket to close');
  await within(s.close(), 15_000, 'the server to close');
  assert.ok(s.logLines.length > 3);
  for (const line of s.logLines) {
    for (const secret of [...Object.values(TOKENS), 'wrong-token-xyz-123']) assert.ok(!line.includes(secret), `token in log: ${line}`);
    assert.doesNotMatch(line, /authorization"\s*:\s*"Bearer/i);
  }
});

test("every error an agent reports reaches the client with the registry's HTTP status, code and the agent's message", async (t) => {
  const s = await startTestServer(t);
  const a = await FakeAgent.connect(t, s.wsUrl, { concurrency: 1 });
  for (const code of AGENT_ERROR_CODES) {
    const pending = dispatch(s, 'acme', body);
    const job = await a.nextJob();
    a.send({ type: 'result', id: job.id, error: { code, message: `agent says ${code}` } });
    const r = await within(pending, 3000, `the answer of a job failed with ${code}`);
    assert.equal(r.status, ERROR_CODES[code].status, code);
    assert.deepEqual(r.body, { error: { code, message: `agent says ${code}` } });
  }
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 1, pools: 1 });
});
