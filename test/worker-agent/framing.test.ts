/**
 * What the agent puts on the wire, read byte for byte by a raw-socket target: no
 * hop-by-hop headers, every body framed with content-length, and no way for one job's
 * body to become the next job's request on a shared keep-alive connection.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { HttpRequest } from '../../shared/protocol.ts';
import { parseAllowlist } from '../../worker-agent/allowlist.ts';
import { runJob, type JobOutcome, type RunJobOptions } from '../../worker-agent/job-runner.ts';
import { createTargetPool } from '../../worker-agent/target-pool.ts';
import { startRawTarget, within, type RawTarget } from './harness.ts';

async function setup(t: TestContext): Promise<{ target: RawTarget; options: RunJobOptions }> {
  const target = await startRawTarget();
  t.after(() => target.close());
  const allow = parseAllowlist([`127.0.0.1:${target.port}`]);
  // One connection: consecutive jobs share it, as jobs to one origin do under load.
  const targets = createTargetPool({ connections: 1, grant: allow });
  t.after(() => targets.destroy());
  return { target, options: { timeoutMs: 5000, maxResponseBytes: 1024 * 1024, allow, targets } };
}

async function run(request: HttpRequest, options: RunJobOptions): Promise<string> {
  const outcome: JobOutcome = await within(runJob(request, options), 6000, request.url);
  if ('error' in outcome) assert.fail(`${outcome.error.code}: ${outcome.error.message}`);
  // Jobs arrive on separate socket messages: give the pool its turn to free the connection.
  await new Promise((resolve) => setImmediate(resolve));
  return outcome.response.body;
}

const names = (head: string): string[] => head.split('\r\n').slice(1).map((l) => l.slice(0, l.indexOf(':')).toLowerCase());

test('hop-by-hop headers, and those named in connection, are not forwarded', async (t) => {
  const { target, options } = await setup(t);
  await run({
    method: 'GET',
    url: `${target.origin}/h`,
    headers: {
      Connection: 'close, X-Secret',
      'Keep-Alive': 'timeout=999',
      'Proxy-Authorization': 'Basic c2VjcmV0',
      'Proxy-Connection': 'keep-alive',
      TE: 'trailers',
      Trailer: 'x-t',
      'Transfer-Encoding': 'chunked',
      Upgrade: 'websocket',
      'X-Secret': 'named in connection',
      Expect: '100-continue',
      'X-Kept': ['a', 'b'],
    },
  }, options);
  const seen = await target.requests.next(3000, 'the request');
  const sent = names(seen.head);
  for (const name of ['keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'x-secret', 'expect']) {
    assert.ok(!sent.includes(name), `${name} was forwarded:\n${seen.head}`);
  }
  assert.deepEqual(seen.headers.filter(([n]) => n === 'x-kept'), [['x-kept', 'a'], ['x-kept', 'b']]);
  // The agent's own connection header (keep-alive) is the only one, never the job's.
  assert.ok(!seen.headers.some(([n, v]) => n === 'connection' && /secret|close/i.test(v)), seen.head);
});

test('every body is framed by the agent with content-length: the bytes on the wire are exact', async (t) => {
  const { target, options } = await setup(t);
  const cases: [HttpRequest, string][] = [
    [{ method: 'POST', url: `${target.origin}/a`, headers: { 'content-length': '1' }, body: 'hello' }, 'hello'],
    [{ method: 'PUT', url: `${target.origin}/b`, headers: { 'Transfer-Encoding': 'chunked' }, body: 'grüße' }, 'grüße'],
    [{ method: 'GET', url: `${target.origin}/c`, body: 'a body on GET' }, 'a body on GET'],
    [{ method: 'POST', url: `${target.origin}/d`, body: Buffer.from([0, 1, 2, 255]).toString('base64'), bodyEncoding: 'base64' }, '\u0000\u0001\u0002\u00ff'],
  ];
  // Per connection: undici closes a connection after a GET that carried a body (not reusable safely).
  const offsets: number[] = [];
  for (const [request, body] of cases) {
    await run(request, options);
    const seen = await target.requests.next(3000, 'the request');
    const bytes = Buffer.from(body, request.bodyEncoding === 'base64' ? 'latin1' : 'utf8');
    assert.deepEqual(seen.headers.filter(([n]) => n === 'content-length' || n === 'transfer-encoding'), [['content-length', String(bytes.length)]], seen.head);
    assert.deepEqual(seen.body, bytes);
    // Nothing but head and body went onto the connection.
    const offset = offsets[seen.connection] ?? 0;
    const wire = target.received[seen.connection].subarray(offset, offset + seen.head.length + 4 + bytes.length);
    assert.deepEqual(wire, Buffer.concat([Buffer.from(`${seen.head}\r\n\r\n`, 'latin1'), bytes]));
    offsets[seen.connection] = offset + wire.length;
  }
  assert.deepEqual(target.received.map((r) => r.length), offsets, 'no stray bytes on any connection');
});

test('smuggling: transfer-encoding identity with a body cannot swap or swallow the next job on a shared connection', async (t) => {
  const { target, options } = await setup(t);
  const smuggled = `GET /smuggled HTTP/1.1\r\nhost: 127.0.0.1:${target.port}\r\ncontent-length: 200\r\n\r\n`;
  const first = await run({ method: 'POST', url: `${target.origin}/first`, headers: { 'transfer-encoding': 'identity' }, body: smuggled }, options);
  const second = await run({ method: 'GET', url: `${target.origin}/victim`, headers: { authorization: 'Bearer victim-token' } }, options);
  assert.equal(first, '/first');
  assert.equal(second, '/victim', "the second job got its own response");
  const a = await target.requests.next(3000, 'the first request');
  const b = await target.requests.next(3000, 'the second request');
  assert.equal(a.path, '/first');
  assert.equal(a.body.toString('latin1'), smuggled, 'the body stayed a body');
  assert.equal(b.path, '/victim');
  assert.equal(b.connection, a.connection, 'both on one keep-alive connection');
  assert.deepEqual(b.headers.filter(([n]) => n === 'authorization'), [['authorization', 'Bearer victim-token']]);
  assert.equal(target.requests.size, 0, 'no third request was parsed');
});
