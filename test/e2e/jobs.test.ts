/** A job's whole path with real processes: CI client → server → agent → target and back. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { startAgentProc, startServerProc } from '../helpers/cluster.ts';
import { dispatch, TOKENS } from '../helpers/server.ts';
import { startTarget } from '../helpers/target.ts';
import { waitUntil, within } from '../helpers/wait.ts';

test('bodies, headers, redirects, allowlist and response limit through a real agent', async (t) => {
  const target = await startTarget(t);
  const server = await startServerProc(t);
  const port = new URL(target.url).port;
  const agent = startAgentProc(t, server, ['--allow-host', `127.0.0.1:${port}`, '--max-response-bytes', '4096']);
  await agent.connected();
  const binary = randomBytes(3000);
  target.route('/bin', (_q, res) => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(binary));
  target.route('/utf8', (_q, res) => res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('héllo ✓ 🚀'));
  target.route('/echo', (q, res, body) => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body));
  target.route('/redir', (_q, res) => res.writeHead(302, { location: '/elsewhere' }).end());
  target.route('/multi', (_q, res) => res.writeHead(200, [['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['x-one', 'v']]).end());
  target.route('/big', (_q, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('x'.repeat(10_000)));
  const run = (request: Record<string, unknown>) => dispatch(server, 'acme', { pool: 'pool1', timeoutMs: 10_000, request: { method: 'GET', ...request } });

  const bin = await run({ url: `${target.url}/bin` });
  assert.equal(bin.status, 200);
  assert.equal(bin.body.response.bodyEncoding, 'base64');
  assert.ok(Buffer.from(bin.body.response.body, 'base64').equals(binary), 'binary body byte-exact');

  const utf8 = await run({ url: `${target.url}/utf8` });
  assert.deepEqual([utf8.body.response.bodyEncoding, utf8.body.response.body], ['utf8', 'héllo ✓ 🚀']);

  const sent = randomBytes(1000);
  const echo = await run({ method: 'POST', url: `${target.url}/echo`, body: sent.toString('base64'), bodyEncoding: 'base64' });
  assert.ok(Buffer.from(echo.body.response.body, 'base64').equals(sent), 'request body byte-exact');

  const redir = await run({ url: `${target.url}/redir` });
  assert.equal(redir.status, 200, 'a 3xx is a successful dispatch');
  assert.equal(redir.body.response.status, 302);
  assert.equal(redir.body.response.headers.location, '/elsewhere');
  assert.ok(!target.seen.some((s) => s.path === '/elsewhere'), 'redirect not followed');

  const multi = await run({ url: `${target.url}/multi`, headers: { 'x-req': ['1', '2'], 'x-single': 'yes' } });
  assert.deepEqual(multi.body.response.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(multi.body.response.headers['x-one'], 'v');
  const seen = target.seen.find((s) => s.path === '/multi')!;
  const reqValues = seen.rawHeaders.filter((_, i) => i % 2 === 0 && seen.rawHeaders[i].toLowerCase() === 'x-req').length;
  assert.equal(reqValues, 2, 'repeated request header sent as two lines');

  const big = await run({ url: `${target.url}/big` });
  assert.equal(big.status, 502);
  assert.equal(big.body.error.code, 'response_too_large');

  const forbidden = await run({ url: `http://localhost:${port}/utf8` });
  assert.equal(forbidden.body.error.code, 'target_forbidden');
  const status5xx = await run({ url: `${target.url}/nothing-here` });
  assert.deepEqual([status5xx.status, status5xx.body.response.status], [200, 404]);
});

test('timeout and client abort both abort the request at the target', async (t) => {
  const target = await startTarget(t);
  target.route('/hang', () => {}); // never answers
  const server = await startServerProc(t);
  const agent = startAgentProc(t, server);
  await agent.connected();

  const timedOut = await dispatch(server, 'acme', { pool: 'pool1', timeoutMs: 300, request: { method: 'GET', url: `${target.url}/hang` } });
  assert.equal(timedOut.status, 504);
  assert.equal(timedOut.body.error.code, 'timeout');
  await waitUntil(() => target.aborted.length === 1, 5000, 'the target to see the timed-out request aborted');

  const ac = new AbortController();
  const aborted = dispatch(server, 'acme', { pool: 'pool1', timeoutMs: 30_000, request: { method: 'GET', url: `${target.url}/hang` } }, { signal: ac.signal });
  await waitUntil(() => target.seen.length === 2, 5000, 'the second request to reach the target');
  ac.abort();
  await assert.rejects(aborted);
  await waitUntil(() => target.aborted.length === 2, 5000, 'the target to see the abandoned request aborted');
});

test('no token and no authorization header in any log line of server or agent', async (t) => {
  const target = await startTarget(t);
  target.route('/x', (_q, res) => res.end('ok'));
  const server = await startServerProc(t);
  const agent = startAgentProc(t, server);
  await agent.connected();
  const r = await dispatch(server, 'acme', { pool: 'pool1', request: { method: 'GET', url: `${target.url}/x`, headers: { authorization: `Bearer ${TOKENS.admin}` } } });
  assert.equal(r.status, 200);
  await dispatch(server, 'acme', { pool: 'pool1', request: { method: 'GET', url: `${target.url}/x` } }, { token: 'a-wrong-token-123456' });
  agent.child.kill('SIGTERM');
  await within(agent.exited, 15_000, 'the agent process to exit on SIGTERM');
  server.child.kill('SIGTERM');
  await within(server.exited, 15_000, 'the server process to exit on SIGTERM');
  const lines = [...server.stdout, ...server.stderr, ...agent.stdout, ...agent.stderr];
  assert.ok(lines.length > 5);
  for (const line of lines) {
    for (const secret of [...Object.values(TOKENS), 'a-wrong-token-123456']) assert.ok(!line.includes(secret), `secret in log: ${line}`);
  }
});

test('an agent refused with 401 or 403 exits 3 with a one-line reason', async (t) => {
  const server = await startServerProc(t);
  for (const token of ['unknown-token-1234567', TOKENS.otherWorker]) {
    const agent = startAgentProc(t, server, [], token);
    const { code } = await within(agent.exited, 15_000, 'the refused agent process to exit');
    assert.equal(code, 3);
    assert.equal(agent.stderr.filter(Boolean).length, 1, agent.stderr.join('\n'));
    assert.match(agent.stderr[0], /^flowtest agent: .*(401|403)/);
  }
});

test('a dispatch body exactly at --max-payload-bytes goes through; one byte more is 413', async (t) => {
  const limit = 4096;
  const target = await startTarget(t);
  target.route('/size', (_q, res, body) => res.writeHead(200, { 'content-type': 'text/plain' }).end(String(body.length)));
  const server = await startServerProc(t, ['--max-payload-bytes', String(limit)]);
  const agent = startAgentProc(t, server);
  await agent.connected();
  const bodyOf = (n: number) => JSON.stringify({ pool: 'pool1', timeoutMs: 10_000, request: { method: 'POST', url: `${target.url}/size`, body: 'a'.repeat(n) } });
  const n = limit - bodyOf(0).length;
  assert.equal(Buffer.byteLength(bodyOf(n)), limit);
  const atLimit = await dispatch(server, 'acme', bodyOf(n));
  assert.equal(atLimit.status, 200, JSON.stringify(atLimit.body).slice(0, 200));
  // The job frame carrying it is a little over the limit (its envelope); the agent takes it.
  assert.equal(atLimit.body.response.body, String(n));
  const over = await dispatch(server, 'acme', bodyOf(n + 1));
  assert.equal(over.status, 413);
});
