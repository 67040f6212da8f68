import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { test, type TestContext } from 'node:test';
import type { HttpRequest } from '../../shared/protocol.ts';
import { parseAllowlist } from '../../worker-agent/allowlist.ts';
import { encodeBody, isTextualContentType, MAX_RESPONSE_HEADERS, runJob, TIMEOUT_GRACE_MS, type JobOutcome, type RunJobOptions } from '../../worker-agent/job-runner.ts';
import { createTargetPool } from '../../worker-agent/target-pool.ts';
import { closedPort, once, rawResponse, startRawTarget, startTarget, within } from './harness.ts';

/** A pool and options for jobs; the targets here live on loopback, which must be named. */
function setup(t: TestContext, overrides: Partial<RunJobOptions> = {}, patterns = ['127.0.0.1']): RunJobOptions {
  const allow = parseAllowlist(patterns);
  const targets = createTargetPool({ connections: 4, grant: allow });
  t.after(() => targets.destroy());
  return { signal: new AbortController().signal, timeoutMs: 5000, maxResponseBytes: 1024 * 1024, allow, targets, ...overrides };
}

function responseOf(outcome: JobOutcome) {
  if ('error' in outcome) assert.fail(`expected a response, got ${outcome.error.code}: ${outcome.error.message}`);
  return outcome.response;
}

function errorOf(outcome: JobOutcome) {
  if (!('error' in outcome)) assert.fail(`expected an error, got status ${outcome.response.status}`);
  return outcome.error;
}

const run = (request: HttpRequest, options: RunJobOptions) => within(runJob(request, options), 4000, 'runJob');

test('a UTF-8 text body comes back as utf8, byte-exact (BOM kept)', async (t) => {
  const text = '\uFEFF{"name":"ünïcødé ✓ 🚀"}';
  const target = await startTarget((_req, res) => res.setHeader('content-type', 'application/json; charset=utf-8').end(text));
  t.after(() => target.close());
  const options = setup(t);
  const response = responseOf(await run({ method: 'GET', url: `${target.origin}/x` }, options));
  assert.equal(getEventListeners(options.signal as AbortSignal, 'abort').length, 0, 'the abort listener is removed');
  assert.equal(response.status, 200);
  assert.equal(response.bodyEncoding, 'utf8');
  assert.equal(response.body, text);
  assert.equal(response.headers['content-type'], 'application/json; charset=utf-8');
});

test('binary bodies come back as base64, byte-exact', async (t) => {
  const bytes = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(4096)]);
  const target = await startTarget((req, res) => {
    res.setHeader('content-type', req.url === '/bin' ? 'application/octet-stream' : 'text/plain').end(bytes);
  });
  t.after(() => target.close());
  const options = setup(t);
  for (const path of ['/bin', '/text-but-not-utf8']) {
    const response = responseOf(await run({ method: 'GET', url: `${target.origin}${path}` }, options));
    assert.equal(response.bodyEncoding, 'base64', path);
    assert.deepEqual(Buffer.from(response.body, 'base64'), bytes, path);
  }
});

test('valid UTF-8 under a binary content type stays base64; textual types are recognised', () => {
  assert.equal(encodeBody(Buffer.from('hello'), 'image/png').bodyEncoding, 'base64');
  assert.equal(encodeBody(Buffer.from('hello'), undefined).bodyEncoding, 'utf8');
  for (const ct of ['text/html', 'application/json', 'application/problem+json', 'image/svg+xml', 'application/xml', 'text/javascript',
    'application/javascript', 'application/x-www-form-urlencoded', 'TEXT/PLAIN; charset=UTF-8']) {
    assert.ok(isTextualContentType(ct), ct);
  }
  assert.ok(!isTextualContentType('application/octet-stream'));
});

test('the request body is sent as given, utf8 or base64, with repeated headers as repeated lines', async (t) => {
  const target = await startTarget((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.setHeader('content-type', 'application/octet-stream').end(Buffer.concat(chunks)));
  });
  t.after(() => target.close());
  const options = setup(t);
  const bytes = randomBytes(3000);
  const pending = run({
    method: 'POST',
    url: `${target.origin}/echo`,
    headers: { 'X-Multi': ['a', 'b'], 'x-multi': 'c', 'content-length': '1', 'x-single': 'one' },
    body: bytes.toString('base64'),
    bodyEncoding: 'base64',
  }, options);
  const { req } = await target.requests.next(3000, 'the request');
  assert.deepEqual(req.headersDistinct['x-multi'], ['a', 'b', 'c']);
  assert.equal(req.headers['x-single'], 'one');
  assert.equal(req.headers['content-length'], String(bytes.length), 'the body decides the length');
  assert.deepEqual(Buffer.from(responseOf(await pending).body, 'base64'), bytes);

  const text = 'grüße';
  const echoed = responseOf(await run({ method: 'PUT', url: `${target.origin}/echo`, body: text }, options));
  assert.deepEqual(Buffer.from(echoed.body, 'base64'), Buffer.from(text, 'utf8'));
});

test('repeated response headers come back as string[], single ones as string', async (t) => {
  const target = await startTarget((_req, res) => {
    res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.setHeader('x-dup', ['1', '2']);
    res.setHeader('X-Once', 'yes');
    res.end();
  });
  t.after(() => target.close());
  const response = responseOf(await run({ method: 'GET', url: target.origin }, setup(t)));
  assert.deepEqual(response.headers['set-cookie'], ['a=1', 'b=2']);
  assert.deepEqual(response.headers['x-dup'], ['1', '2']);
  assert.equal(response.headers['x-once'], 'yes');
  assert.equal(response.body, '');
});

test('redirects are not followed', async (t) => {
  const target = await startTarget((req, res) => {
    if (req.url === '/old') res.writeHead(302, { location: '/new' }).end('moved');
    else res.end('new');
  });
  t.after(() => target.close());
  const response = responseOf(await run({ method: 'GET', url: `${target.origin}/old` }, setup(t)));
  assert.equal(response.status, 302);
  assert.equal(response.headers.location, '/new');
  assert.equal(response.body, 'moved');
  assert.equal(target.requests.size, 1, 'only /old was requested');
});

test('a response over the limit fails with response_too_large and the target sees its socket closed', async (t) => {
  const target = await startTarget((_req, res) => {
    // Streams without a content-length until the agent hangs up.
    const chunk = Buffer.alloc(16 * 1024, 'x');
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  });
  t.after(() => target.close());
  const pending = run({ method: 'GET', url: target.origin }, setup(t, { maxResponseBytes: 100_000 }));
  const { res } = await target.requests.next(3000, 'the request');
  const closed = res.closed ? Promise.resolve([]) : once(res, 'close');
  const error = errorOf(await pending);
  assert.equal(error.code, 'response_too_large');
  await closed;
  assert.equal(res.writableFinished, false);
});

test('a declared content-length over the limit fails from the headers alone: no body byte is awaited or read', async (t) => {
  // The target sends the head only; a runner that read towards the limit would wait for body bytes until its deadline.
  const target = await startRawTarget(() => 'HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n');
  t.after(() => target.close());
  const started = Date.now();
  const error = errorOf(await run({ method: 'GET', url: target.origin }, setup(t, { maxResponseBytes: 4999, timeoutMs: 30_000 })));
  assert.equal(error.code, 'response_too_large');
  assert.match(error.message, /declares 5000 bytes/);
  assert.ok(Date.now() - started < 3000, 'refused at the headers, not at a timeout');
  // The agent hung up: the target sees its socket closed.
  await within(new Promise<void>((resolve) => {
    const check = (): void => (target.open.size === 0 ? resolve() : void setTimeout(check, 10));
    check();
  }), 3000, 'the target to see the connection closed');
});

test('a body of exactly the limit is accepted; one byte more is not', async (t) => {
  const target = await startTarget((req, res) => res.end(Buffer.alloc(req.url === '/more' ? 1001 : 1000, 'a')));
  t.after(() => target.close());
  const options = setup(t, { maxResponseBytes: 1000 });
  assert.equal(responseOf(await run({ method: 'GET', url: `${target.origin}/exact` }, options)).body.length, 1000);
  assert.equal(errorOf(await run({ method: 'GET', url: `${target.origin}/more` }, options)).code, 'response_too_large');
});

test(`more than ${MAX_RESPONSE_HEADERS} response headers: response_too_large; ${MAX_RESPONSE_HEADERS} pass`, async (t) => {
  const target = await startRawTarget((r) => {
    // content-type and content-length are two of the entries.
    const count = r.path === '/over' ? MAX_RESPONSE_HEADERS - 1 : MAX_RESPONSE_HEADERS - 2;
    return rawResponse(200, 'ok', Array.from({ length: count }, (_, i) => `x-h${i}: ${i}`));
  });
  t.after(() => target.close());
  const options = setup(t);
  const response = responseOf(await run({ method: 'GET', url: `${target.origin}/exact` }, options));
  assert.equal(Object.keys(response.headers).length, MAX_RESPONSE_HEADERS);
  const error = errorOf(await run({ method: 'GET', url: `${target.origin}/over` }, options));
  assert.equal(error.code, 'response_too_large');
  assert.match(error.message, /257 headers/);
});

test('response headers over 16 KiB in bytes: response_too_large', async (t) => {
  const target = await startRawTarget(() => rawResponse(200, 'ok', [`x-big: ${'a'.repeat(20_000)}`]));
  t.after(() => target.close());
  const error = errorOf(await run({ method: 'GET', url: target.origin }, setup(t)));
  assert.equal(error.code, 'response_too_large');
});

test("undici's header and body timeouts come from the job's deadline, not its 300 s defaults", async (t) => {
  const options = setup(t, { timeoutMs: 1234 });
  const seen: { headersTimeout?: number | null; bodyTimeout?: number | null }[] = [];
  const real = options.targets.dispatcher;
  const spy = Object.create(real) as typeof real;
  spy.dispatch = (opts, handler) => {
    seen.push({ headersTimeout: opts.headersTimeout, bodyTimeout: opts.bodyTimeout });
    return real.dispatch(opts, handler);
  };
  const target = await startTarget((_req, res) => res.end('ok'));
  t.after(() => target.close());
  responseOf(await run({ method: 'GET', url: target.origin }, { ...options, targets: { ...options.targets, dispatcher: spy } }));
  assert.deepEqual(seen, [{ headersTimeout: 1234 + TIMEOUT_GRACE_MS, bodyTimeout: 1234 + TIMEOUT_GRACE_MS }]);
});

test('the agent gives up on its own shortly after timeoutMs: target_timeout', async (t) => {
  const target = await startTarget(); // never answers
  t.after(() => target.close());
  const started = Date.now();
  const pending = run({ method: 'GET', url: target.origin }, setup(t, { timeoutMs: 50, timeoutGraceMs: 50 }));
  const { req } = await target.requests.next(3000, 'the request');
  const closed = once(req, 'close');
  assert.equal(errorOf(await pending).code, 'target_timeout');
  assert.ok(Date.now() - started >= 100);
  await closed;
});

test('aborting the signal aborts the request at the target: cancelled', async (t) => {
  const target = await startTarget();
  t.after(() => target.close());
  const controller = new AbortController();
  const pending = run({ method: 'POST', url: target.origin, body: 'x' }, setup(t, { signal: controller.signal }));
  const { req } = await target.requests.next(3000, 'the request');
  assert.equal(getEventListeners(controller.signal, 'abort').length, 1);
  const closed = once(req, 'close');
  controller.abort();
  assert.equal(errorOf(await pending).code, 'cancelled');
  await closed;
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
});

test('an already aborted signal does not connect at all', async (t) => {
  const controller = new AbortController();
  controller.abort();
  const error = errorOf(await run({ method: 'GET', url: 'http://127.0.0.1:9/' }, setup(t, { signal: controller.signal })));
  assert.equal(error.code, 'cancelled');
});

test('a closed port is target_unreachable', async (t) => {
  const port = await closedPort();
  const error = errorOf(await run({ method: 'GET', url: `http://127.0.0.1:${port}/` }, setup(t)));
  assert.equal(error.code, 'target_unreachable');
  assert.match(error.message, /ECONNREFUSED/);
});

test('a target that drops the connection mid-response is target_unreachable', async (t) => {
  const target = await startTarget((_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('partial', () => res.socket?.destroy());
  });
  t.after(() => target.close());
  assert.equal(errorOf(await run({ method: 'GET', url: target.origin }, setup(t))).code, 'target_unreachable');
});

test('a host outside the allow list is target_forbidden and no connection is attempted', async (t) => {
  const target = await startTarget((_req, res) => res.end('ok'));
  t.after(() => target.close());
  let connections = 0;
  target.server.on('connection', () => {
    connections += 1;
  });
  const options = setup(t, {}, ['api.internal', 'localhost']);
  const error = errorOf(await run({ method: 'GET', url: `${target.origin}/` }, options));
  assert.equal(error.code, 'target_forbidden');
  assert.equal(connections, 0);
  const ok = setup(t, {}, [`127.0.0.1:${target.port}`]);
  assert.equal(responseOf(await run({ method: 'GET', url: `${target.origin}/` }, ok)).body, 'ok');
});

test('malformed jobs are invalid_job', async (t) => {
  const options = setup(t);
  const bad: HttpRequest[] = [
    { method: 'GET', url: 'ftp://example.com/' },
    { method: 'GE T', url: 'http://127.0.0.1:9/' },
    { method: 'POST', url: 'http://127.0.0.1:9/', body: 'not base64!', bodyEncoding: 'base64' },
    { method: 'GET', url: 'http://127.0.0.1:9/', headers: { 'x-a': 'line\r\nbreak' } },
    { method: 'CONNECT', url: 'http://127.0.0.1:9/' },
  ];
  for (const request of bad) assert.equal(errorOf(await run(request, options)).code, 'invalid_job', JSON.stringify(request));
});

test('keep-alive: sequential jobs to one target reuse one socket, also after an error status', async (t) => {
  const target = await startTarget((req, res) => res.writeHead(req.url === '/missing' ? 404 : 200).end('ok'));
  t.after(() => target.close());
  let connections = 0;
  target.server.on('connection', () => {
    connections += 1;
  });
  const options = setup(t);
  for (const path of ['/a', '/missing', '/b']) {
    responseOf(await run({ method: 'GET', url: `${target.origin}${path}` }, options));
    // Jobs arrive on separate socket messages; the pool marks a connection free within the same turn.
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.equal(connections, 1);
});
