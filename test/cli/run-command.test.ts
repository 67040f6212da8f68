import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { parseCommand, type Env } from '../../cli/parse-command.ts';
import { formatHead, runCommand } from '../../cli/run-command.ts';
import type { WorkerInfo } from '../../shared/protocol.ts';
import { closedPort, json, startFakeServer, successBody, within } from '../client/fake-flowtest-server.ts';

/** Collects what a command writes. */
class Sink {
  readonly chunks: Buffer[] = [];
  write(chunk: string | Uint8Array): boolean {
    this.chunks.push(Buffer.from(chunk));
    return true;
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

async function run(argv: string[], env: Env = {}, signal?: AbortSignal) {
  const parsed = parseCommand(argv, env);
  if (!parsed.ok) assert.fail(parsed.message);
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await runCommand(parsed.command, { stdout, stderr, signal, now: () => Date.parse('2026-01-01T00:01:00.000Z') });
  return { code, stdout, stderr };
}

function dispatchArgv(server: string, ...rest: string[]): string[] {
  return ['dispatch', '--server', server, '--suite', 'acme', '--pool', 'staging', ...rest];
}

test('dispatch prints a text body as it is, exit 0 for any target status', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 200, successBody({ status: 500, body: 'boom\n' })));
  t.after(() => fake.close());
  const { code, stdout, stderr } = await run(dispatchArgv(fake.url, 'GET', 'http://t/'), { FLOWTEST_TOKEN: 'T' });
  assert.equal(code, 0);
  assert.equal(stdout.text, 'boom\n');
  assert.equal(stderr.text, '');
  assert.equal(fake.requests[0].headers.authorization, 'Bearer T');
});

test('dispatch writes a base64 body as raw bytes', async (t) => {
  const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
  const fake = await startFakeServer((_req, res) => json(res, 200, successBody({ body: bytes.toString('base64'), bodyEncoding: 'base64' })));
  t.after(() => fake.close());
  const { code, stdout } = await run(dispatchArgv(fake.url, 'GET', 'http://t/'));
  assert.equal(code, 0);
  assert.deepEqual(stdout.bytes, bytes);
});

test('--include prints the status line and headers first', async (t) => {
  const fake = await startFakeServer((_req, res) =>
    json(res, 200, successBody({ status: 404, body: 'nope', headers: { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] } })),
  );
  t.after(() => fake.close());
  const { stdout } = await run(dispatchArgv(fake.url, '-i', 'GET', 'http://t/'));
  assert.equal(stdout.text, 'HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n\r\nnope');
});

test('a failed dispatch prints "<code>: <message>" on stderr and exits 1', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 504, { error: { code: 'timeout', message: 'no answer within 100 ms' } }));
  t.after(() => fake.close());
  const { code, stdout, stderr } = await run(dispatchArgv(fake.url, 'GET', 'http://t/'));
  assert.equal(code, 1);
  assert.equal(stdout.text, '');
  assert.equal(stderr.text, 'timeout: no answer within 100 ms\n');
});

test('an unreachable server is network_error, exit 1', async () => {
  const port = await closedPort();
  const { code, stderr } = await run(dispatchArgv(`http://127.0.0.1:${port}`, 'GET', 'http://t/'));
  assert.equal(code, 1);
  assert.match(stderr.text, /^network_error: .*ECONNREFUSED.*\n$/);
});

test('an abort (Ctrl-C) drops the call and exits 130', async (t) => {
  const fake = await startFakeServer(() => {});
  t.after(() => fake.close());
  const controller = new AbortController();
  const pending = run(dispatchArgv(fake.url, 'GET', 'http://t/'), {}, controller.signal);
  await within(fake.nextRequest(), 5000, 'request at the fake server');
  controller.abort();
  const { code, stderr } = await within(pending, 5000, 'dispatch to end');
  assert.equal(code, 130);
  assert.equal(stderr.text, 'flowtest dispatch: interrupted\n');
});

test('a token on argv prints a warning on stderr and still works', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 200, successBody()));
  t.after(() => fake.close());
  const { code, stderr } = await run(dispatchArgv(fake.url, '--token', 'T', 'GET', 'http://t/'));
  assert.equal(code, 0);
  assert.match(stderr.text, /^flowtest dispatch: warning: .*FLOWTEST_TOKEN\n$/);
  assert.doesNotMatch(stderr.text, /\bT\b(?!OKEN)/);
});

test('workers prints a table', async (t) => {
  const worker: WorkerInfo = {
    id: 'w1',
    suite: 'acme',
    name: 'staging',
    state: 'ready',
    concurrency: 8,
    inFlight: 3,
    connectedAt: '2026-01-01T00:00:00.000Z',
    lastPongAt: '2026-01-01T00:00:55.000Z',
    rttMs: 2.25,
    agentVersion: '0.1.0',
    remoteAddress: '10.1.2.3',
  };
  const fake = await startFakeServer((_req, res) => json(res, 200, { workers: [worker] }));
  t.after(() => fake.close());
  const { code, stdout } = await run(['workers', '--server', fake.url, '--suite', 'acme']);
  assert.equal(code, 0);
  const lines = stdout.text.trimEnd().split('\n');
  assert.match(lines[0], /^ID\s+SUITE\s+NAME\s+STATE\s+IN FLIGHT\s+RTT\s+LAST PONG\s+ADDRESS$/);
  assert.match(lines[1], /^w1\s+acme\s+staging\s+ready\s+3\/8\s+2\.3ms\s+5s ago\s+10\.1\.2\.3$/);
  assert.equal(fake.requests[0].path, '/v1/suites/acme/workers');
});

test('help goes to stdout with exit 0', async () => {
  const { code, stdout, stderr } = await run(['workers', '--help']);
  assert.equal(code, 0);
  assert.match(stdout.text, /^Usage: flowtest workers/);
  assert.equal(stderr.text, '');
});

test('--version prints the package version', async () => {
  const { code, stdout } = await run(['--version']);
  assert.equal(code, 0);
  assert.match(stdout.text, /^\d+\.\d+\.\d+\S*\n$/);
});

test('formatHead leaves out an unknown reason phrase', () => {
  assert.equal(formatHead({ status: 799, headers: {}, body: '', bodyEncoding: 'utf8' }), 'HTTP/1.1 799\r\n\r\n');
});

test('--data @FILE sends the file as it is; bytes that are not UTF-8 go as base64', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 200, successBody({ body: 'ok' })));
  t.after(() => fake.close());
  const dir = mkdtempSync(join(tmpdir(), 'flowtest-data-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const text = join(dir, 'body.json');
  // Larger than an argument list may hold (about 128 KiB per argument on Linux).
  const big = `{"items":"${'x'.repeat(300 * 1024)}"}\r\n`;
  writeFileSync(text, big);
  const binary = join(dir, 'body.bin');
  writeFileSync(binary, Buffer.from([0xff, 0x00, 0xfe]));

  assert.equal((await run(dispatchArgv(fake.url, 'POST', 'http://t/', '--data', `@${text}`))).code, 0);
  assert.deepEqual(JSON.parse(fake.requests[0].body).request, { method: 'POST', url: 'http://t/', body: big, bodyEncoding: 'utf8' });
  assert.equal((await run(dispatchArgv(fake.url, 'POST', 'http://t/', '--data', `@${binary}`))).code, 0);
  assert.deepEqual(JSON.parse(fake.requests[1].body).request, { method: 'POST', url: 'http://t/', body: '/wD+', bodyEncoding: 'base64' });

  const missing = await run(dispatchArgv(fake.url, 'POST', 'http://t/', '--data', `@${join(dir, 'nope')}`));
  assert.equal(missing.code, 2);
  assert.match(missing.stderr.text, /^flowtest dispatch: --data @.*nope: cannot read \(ENOENT\)\n$/);
  assert.equal(fake.requests.length, 2);
});

test('--data @- reads the body from stdin', async (t) => {
  const fake = await startFakeServer((_req, res) => json(res, 200, successBody({ body: 'ok' })));
  t.after(() => fake.close());
  const parsed = parseCommand(dispatchArgv(fake.url, 'PUT', 'http://t/', '--data', '@-'), {});
  if (!parsed.ok) assert.fail(parsed.message);
  const stdin = Readable.from([Buffer.from('line one\n'), Buffer.from('line two\n')]);
  const code = await runCommand(parsed.command, { stdout: new Sink(), stderr: new Sink(), stdin });
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(fake.requests[0].body).request.body, 'line one\nline two\n');
});

test('--data @ without a name is a usage error; a literal body keeps its text', () => {
  const bad = parseCommand(dispatchArgv('http://127.0.0.1:1', 'POST', 'http://t/', '--data', '@'), {});
  assert.deepEqual(bad, { ok: false, message: 'flowtest dispatch: --data @: name a file, or - for stdin' });
  const literal = parseCommand(dispatchArgv('http://127.0.0.1:1', 'POST', 'http://t/', '--data', 'a@b'), {});
  assert.ok(literal.ok && literal.command.kind === 'dispatch' && literal.command.body.request.body === 'a@b');
});
