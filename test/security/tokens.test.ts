/**
 * Token rules (contract "Security (v1.1)", Tokens): at least 16 characters, worker tokens
 * limited to pools, --max-worker-concurrency, and SIGHUP reloading the tokens file without
 * dropping sockets — workers whose token was removed finish their jobs, then close 1008.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { TokenStore, type TokensFile } from '../../server/auth.ts';
import { createLogger } from '../../server/logger.ts';
import { runServerMain } from '../../server/main.ts';
import { startServer } from '../../server/server.ts';
import { PROTOCOL_VERSION } from '../../shared/limits.ts';
import { FakeAgent, handshakeStatus } from '../helpers/fake-agent.ts';
import { startCli } from '../helpers/processes.ts';
import { dispatch } from '../helpers/server.ts';
import { waitUntil, within } from '../helpers/wait.ts';

const T = {
  admin: 'admin-token-0123456789',
  client: 'client-token-0123456789',
  worker: 'worker-token-0123456789',
  staging: 'staging-only-token-0123',
  other: 'worker-token-second-0123',
};
const FILE: TokensFile = {
  admin: [T.admin],
  suites: { acme: { worker: [T.worker, { token: T.staging, pools: ['staging'] }, T.other], client: [T.client] } },
};

function tempFile(t: TestContext, name: string, content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'flowtest-tokens-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

async function serverWithFile(t: TestContext, file: string, options: Record<string, unknown> = {}) {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const s = await startServer({ host: '127.0.0.1', port: 0, shutdownGraceMs: 0, tokensFile: file, ...options }, { logger: createLogger({ level: 'debug', destination: sink }) });
  t.after(() => s.close());
  return Object.assign(s, { lines, wsUrl: s.url.replace(/^http/, 'ws') });
}

const connectUrl = (base: string, name: string, concurrency = 2) => `${base}/v1/workers/connect?${new URLSearchParams({ suite: 'acme', name, concurrency: String(concurrency) })}`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

test('tokens: fewer than 16 characters are refused when the file loads', (t) => {
  assert.throws(() => new TokenStore({ admin: ['fifteen-chars-x'] }), /at least 16 characters/);
  assert.doesNotThrow(() => new TokenStore({ admin: ['sixteen-chars-xx'] }));
  const file = tempFile(t, 'short.json', { suites: { acme: { worker: [{ token: 'short-token', pools: ['a'] }] } } });
  assert.throws(() => TokenStore.fromFile(file), /suites\.acme\.worker\.0/);
});

test('tokens: the server exits 2 with a one-line reason on a short token', async (t) => {
  const file = tempFile(t, 'short.json', { admin: ['too-short'] });
  const written: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => {
    written.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  let code: number;
  try {
    code = await within(runServerMain({ host: '127.0.0.1', port: 0, tokensFile: file, logLevel: 'silent' }), 5000, 'the server to refuse the short token and exit');
  } finally {
    process.stderr.write = write;
  }
  assert.equal(code, 2);
  assert.equal(written.join('').trim().split('\n').length, 1);
  assert.match(written.join(''), /at least 16 characters/);
  assert.doesNotMatch(written.join(''), /too-short/, 'the token itself is not echoed');
});

test('tokens: a malformed file is reported without quoting its text', (t) => {
  const file = tempFile(t, 'bad.json', '{"admin":["secret-token-value-123"');
  assert.throws(() => TokenStore.fromFile(file), (err: Error) => /not valid JSON/.test(err.message) && !err.message.includes('secret-token'));
});

test('pool-limited worker tokens: only the named pools; a plain entry for the same token widens it', () => {
  const store = new TokenStore(FILE);
  assert.equal(store.check(T.staging, { role: 'worker', suite: 'acme', pool: 'staging' }), 'ok');
  assert.equal(store.check(T.staging, { role: 'worker', suite: 'acme', pool: 'prod' }), 'forbidden');
  assert.equal(store.check(T.staging, { role: 'worker', suite: 'acme' }), 'forbidden', 'no pool named: only an unlimited token passes');
  assert.equal(store.check(T.worker, { role: 'worker', suite: 'acme', pool: 'prod' }), 'ok');
  const both = new TokenStore({ suites: { acme: { worker: [{ token: T.staging, pools: ['staging'] }, T.staging] } } });
  assert.equal(both.check(T.staging, { role: 'worker', suite: 'acme', pool: 'prod' }), 'ok');
  const two = new TokenStore({ suites: { acme: { worker: [{ token: T.staging, pools: ['a'] }, { token: T.staging, pools: ['b'] }] } } });
  assert.equal(two.check(T.staging, { role: 'worker', suite: 'acme', pool: 'b' }), 'ok');
  assert.equal(two.check(T.staging, { role: 'worker', suite: 'acme', pool: 'c' }), 'forbidden');
});

test('token cache: a replaced file takes effect at once, cached or not', () => {
  const store = new TokenStore(FILE);
  assert.equal(store.check(T.client, { role: 'client', suite: 'acme' }), 'ok');
  assert.equal(store.check(T.client, { role: 'client', suite: 'acme' }), 'ok', 'from the cache');
  const id = store.authenticate(T.client, { role: 'client', suite: 'acme' }).tokenId!;
  assert.ok(id && !id.includes(T.client));
  store.replace({ admin: [T.admin] });
  assert.equal(store.check(T.client, { role: 'client', suite: 'acme' }), 'unauthorized');
  assert.equal(store.allows(id, { role: 'client', suite: 'acme' }), false);
  assert.throws(() => store.replace({ admin: ['short'] }));
  assert.equal(store.check(T.admin, { role: 'admin' }), 'ok', 'a bad replacement changes nothing');
});

test('handshake: a pool-limited token gets 403 under another name; concurrency above --max-worker-concurrency gets 400', async (t) => {
  const s = await serverWithFile(t, tempFile(t, 'tokens.json', FILE));
  assert.equal(s.config.maxWorkerConcurrency, 256);
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, 'prod'), [PROTOCOL_VERSION], bearer(T.staging)), 403);
  const ok = await FakeAgent.connect(t, s.wsUrl, { token: T.staging, name: 'staging' });
  assert.ok(ok.welcome.workerId);
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, 'staging', 257), [PROTOCOL_VERSION], bearer(T.worker)), 400);
  await FakeAgent.connect(t, s.wsUrl, { token: T.worker, name: 'big', concurrency: 256 });
  assert.equal(s.router.stats().workers, 2);
});

test('reload: a removed token\'s worker takes no new job, finishes the one it holds, then closes 1008 token revoked', async (t) => {
  const file = tempFile(t, 'tokens.json', FILE);
  const s = await serverWithFile(t, file);
  const doomed = await FakeAgent.connect(t, s.wsUrl, { token: T.worker, name: 'p' });
  const kept = await FakeAgent.connect(t, s.wsUrl, { token: T.other, name: 'p', concurrency: 1 });
  const first = dispatch(s, 'acme', { pool: 'p', request: { method: 'GET', url: 'http://127.0.0.1:9/a' } }, { token: T.client });
  const held = await doomed.nextJob(); // the least-loaded choice prefers the worker with more free slots

  writeFileSync(file, JSON.stringify({ ...FILE, suites: { acme: { worker: [T.other], client: [T.client] } } }));
  assert.deepEqual(s.reloadTokens(), { ok: true, revoked: 1 });
  const listed = s.router.listWorkers('acme').find((w) => w.id === doomed.welcome.workerId);
  assert.equal(listed?.state, 'draining');

  // New jobs go to the worker whose token stays.
  const second = dispatch(s, 'acme', { pool: 'p', request: { method: 'GET', url: 'http://127.0.0.1:9/b' } }, { token: T.client });
  kept.reply((await kept.nextJob()).id);
  assert.equal((await second).status, 200);
  assert.equal(doomed.frames.filter((f) => f.type === 'job').length, 0, 'nothing new for the revoked worker');

  // The job in flight ends normally, then the socket closes.
  doomed.reply(held.id);
  assert.equal((await first).status, 200);
  const closed = await within(doomed.closed, 5000, "the revoked worker's socket to close once its job ended");
  assert.deepEqual(closed, { code: 1008, reason: 'token revoked' });
  assert.equal(kept.ws.readyState, kept.ws.OPEN, 'other sockets stay');
  assert.equal(await handshakeStatus(connectUrl(s.wsUrl, 'p'), [PROTOCOL_VERSION], bearer(T.worker)), 401);
  assert.ok(!s.lines.some((l) => l.includes(T.worker)), 'no token in the log');
});

test('reload: narrowing a token to other pools revokes its workers outside them; an idle one closes at once', async (t) => {
  const file = tempFile(t, 'tokens.json', FILE);
  const s = await serverWithFile(t, file);
  const a = await FakeAgent.connect(t, s.wsUrl, { token: T.worker, name: 'prod' });
  const b = await FakeAgent.connect(t, s.wsUrl, { token: T.worker, name: 'staging' });
  writeFileSync(file, JSON.stringify({ ...FILE, suites: { acme: { worker: [{ token: T.worker, pools: ['staging'] }], client: [T.client] } } }));
  assert.deepEqual(s.reloadTokens(), { ok: true, revoked: 1 });
  assert.deepEqual(await within(a.closed, 5000, 'the idle revoked worker to close at once'), { code: 1008, reason: 'token revoked' });
  assert.equal(b.ws.readyState, b.ws.OPEN);
});

test('reload: a bad file keeps the tokens in use and logs an error', async (t) => {
  const file = tempFile(t, 'tokens.json', FILE);
  const s = await serverWithFile(t, file);
  const a = await FakeAgent.connect(t, s.wsUrl, { token: T.worker, name: 'p' });
  for (const bad of ['{', JSON.stringify({ admin: ['short'] })]) {
    writeFileSync(file, bad);
    const r = s.reloadTokens();
    assert.equal(r.ok, false);
  }
  assert.ok(s.lines.some((l) => /"level":50/.test(l) && /tokens reload failed/.test(l)));
  assert.equal(a.ws.readyState, a.ws.OPEN);
  assert.equal((await dispatch(s, 'acme', { pool: 'none', request: { method: 'GET', url: 'http://127.0.0.1:9/' } }, { token: T.client })).body.error.code, 'no_worker');
});

test('SIGHUP re-reads the tokens file: the process stays up, a removed token\'s worker is closed 1008', async (t) => {
  const file = tempFile(t, 'tokens.json', FILE);
  const proc = startCli(t, ['server', '--host', '127.0.0.1', '--port', '0', '--tokens-file', file, '--shutdown-grace-ms', '0']);
  const url = JSON.parse(await proc.waitForLine(/"msg":"server listening"/)).url as string;
  const wsUrl = url.replace(/^http/, 'ws');
  const doomed = await FakeAgent.connect(t, wsUrl, { token: T.worker, name: 'p' });
  const kept = await FakeAgent.connect(t, wsUrl, { token: T.other, name: 'p' });
  writeFileSync(file, JSON.stringify({ ...FILE, suites: { acme: { worker: [T.other], client: [T.client] } } }));
  proc.child.kill('SIGHUP');
  assert.deepEqual(await within(doomed.closed, 5000, "SIGHUP to close the removed token's worker"), { code: 1008, reason: 'token revoked' });
  await proc.waitForLine(/"msg":"tokens reloaded"/);
  assert.equal(kept.ws.readyState, kept.ws.OPEN);
  const health = await fetch(`${url}/healthz`);
  assert.equal(health.status, 200);
  await waitUntil(() => proc.child.exitCode === null, 100, 'still running');
});
