import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { dispatch, DispatchError, endpoint, listWorkers } from '../../client/client.ts';
import type { DispatchRequest, WorkerInfo } from '../../shared/protocol.ts';
import { closedPort, json, startFakeServer, successBody, within } from './fake-flowtest-server.ts';

const body: DispatchRequest = { pool: 'staging', request: { method: 'GET', url: 'http://target.internal/x' } };

const worker: WorkerInfo = {
  id: 'w1',
  suite: 'acme',
  name: 'staging',
  state: 'ready',
  concurrency: 8,
  inFlight: 1,
  connectedAt: '2026-01-01T00:00:00.000Z',
  lastPongAt: null,
  rttMs: null,
  agentVersion: '0.1.0',
  remoteAddress: '127.0.0.1',
};

test('dispatch posts the body with the token and returns the validated result', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 200, successBody({ status: 503, body: 'down' })));
  t.after(() => fake.close());

  const result = await dispatch({ server: fake.url, token: 'tok', suite: 'acme', body });

  assert.equal(result.response.status, 503, 'a target 5xx is a successful dispatch');
  assert.equal(result.response.body, 'down');
  const [req] = fake.requests;
  assert.equal(req.method, 'POST');
  assert.equal(req.path, '/v1/suites/acme/dispatch');
  assert.equal(req.headers.authorization, 'Bearer tok');
  assert.match(String(req.headers['content-type']), /^application\/json/);
  assert.deepEqual(JSON.parse(req.body), body);
});

test('dispatch without a token sends no authorization header', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 200, successBody()));
  t.after(() => fake.close());
  await dispatch({ server: fake.url, suite: 'acme', body });
  assert.equal(fake.requests[0].headers.authorization, undefined);
});

test('an error body becomes a DispatchError with its code, status and message', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 503, { error: { code: 'no_worker', message: 'no open worker in pool staging' } }));
  t.after(() => fake.close());

  const err = await dispatch({ server: fake.url, token: 'tok', suite: 'acme', body }).then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof DispatchError);
  assert.equal(err.code, 'no_worker');
  assert.equal(err.status, 503);
  assert.equal(err.message, 'no open worker in pool staging');
});

test('an answer that is not a flowtest body is bad_response', async (t) => {
  const fake = await startFakeServer((req, res) => {
    if (req.path.endsWith('/dispatch')) {
      res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body>Bad Gateway</body></html>');
    } else json(res, 200, { workers: 'nope' });
  });
  t.after(() => fake.close());

  await assert.rejects(dispatch({ server: fake.url, suite: 'acme', body }), (e: unknown) => {
    assert.ok(e instanceof DispatchError);
    assert.equal(e.code, 'bad_response');
    assert.equal(e.status, 502);
    assert.match(e.message, /Bad Gateway/);
    return true;
  });
  await assert.rejects(listWorkers({ server: fake.url, suite: 'acme' }), { code: 'bad_response', status: 200 });
});

test('a 200 that is not a dispatch result is bad_response', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 200, { id: 'x' }));
  t.after(() => fake.close());
  await assert.rejects(dispatch({ server: fake.url, suite: 'acme', body }), { name: 'DispatchError', code: 'bad_response', status: 200 });
});

test('no server listening is network_error with status 0', async () => {
  const port = await closedPort();
  await assert.rejects(dispatch({ server: `http://127.0.0.1:${port}`, suite: 'acme', body }), (e: unknown) => {
    assert.ok(e instanceof DispatchError);
    assert.equal(e.code, 'network_error');
    assert.equal(e.status, 0);
    assert.match(e.message, /ECONNREFUSED/);
    return true;
  });
});

test('aborting drops the connection and rejects with the signal reason', async (t) => {
  // The fake never answers: like a job still running on a worker.
  const fake = await startFakeServer(() => {});
  t.after(() => fake.close());
  const controller = new AbortController();

  const pending = dispatch({ server: fake.url, suite: 'acme', body, signal: controller.signal });
  const req = await within(fake.nextRequest(), 5000, 'request at the fake server');
  const dropped = once(req.res, 'close');
  controller.abort();

  await assert.rejects(pending, { name: 'AbortError' });
  await within(dropped, 5000, 'connection closed at the server');
});

test('an already aborted signal sends nothing', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 200, successBody()));
  t.after(() => fake.close());
  await assert.rejects(dispatch({ server: fake.url, suite: 'acme', body, signal: AbortSignal.abort() }), { name: 'AbortError' });
  assert.equal(fake.requests.length, 0);
});

test('listWorkers reads one suite or every suite', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 200, { workers: [worker] }));
  t.after(() => fake.close());

  assert.deepEqual(await listWorkers({ server: fake.url, token: 'tok', suite: 'acme' }), [worker]);
  assert.deepEqual(await listWorkers({ server: fake.url, token: 'tok' }), [worker]);
  assert.deepEqual(
    fake.requests.map((r) => [r.method, r.path, r.headers.authorization]),
    [
      ['GET', '/v1/suites/acme/workers', 'Bearer tok'],
      ['GET', '/v1/workers', 'Bearer tok'],
    ],
  );
});

test('listWorkers turns a 401 into DispatchError unauthorized', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 401, { error: { code: 'unauthorized', message: 'missing or unknown token' } }));
  t.after(() => fake.close());
  await assert.rejects(listWorkers({ server: fake.url }), { code: 'unauthorized', status: 401 });
});

test('endpoint keeps a path prefix and maps ws schemes to http', () => {
  assert.equal(endpoint('http://h:1', 'v1/workers').href, 'http://h:1/v1/workers');
  assert.equal(endpoint('https://ci.example/flowtest', 'v1/workers').href, 'https://ci.example/flowtest/v1/workers');
  assert.equal(endpoint('ws://h:1/', 'v1/workers').href, 'http://h:1/v1/workers');
  assert.equal(endpoint('wss://h', 'v1/workers').href, 'https://h/v1/workers');
  assert.throws(() => endpoint('ftp://h', 'v1/workers'), { code: 'network_error' });
  assert.throws(() => endpoint('not a url', 'v1/workers'), { code: 'network_error' });
});
