/** `--token-file FILE` (and FLOWTEST_TOKEN_FILE): the token read from a file, trimmed. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { parseCommand } from '../../cli/parse-command.ts';
import { DEFAULTS } from '../../shared/limits.ts';
import { runAgentMain, startAgent, type AgentOptions } from '../../worker-agent/main.ts';
import { AgentOptionsError, resolveAgentConfig } from '../../worker-agent/options.ts';
import { FakeServer, within } from './harness.ts';

function tokenFile(t: TestContext, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'flowtest-token-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'token');
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

function options(overrides: Partial<AgentOptions>): AgentOptions {
  return { server: 'ws://127.0.0.1:9', suite: 'acme', name: 'p', concurrency: 1, allowHost: [], maxResponseBytes: DEFAULTS.maxResponseBytes, drainTimeoutMs: 1000, ...overrides };
}

test('the token is the file content, trimmed', (t) => {
  const path = tokenFile(t, '  worker-token-from-file-123\n');
  assert.equal(resolveAgentConfig(options({ tokenFile: path })).token, 'worker-token-from-file-123');
});

test('a missing, empty or multi-line file, or both --token and --token-file: a one-line option error', (t) => {
  const cases: [Partial<AgentOptions>, RegExp][] = [
    [{ tokenFile: '/nonexistent/flowtest/token' }, /^--token-file \/nonexistent\/flowtest\/token: cannot read it \(ENOENT\)$/],
    [{ tokenFile: tokenFile(t, ' \n\n') }, /--token-file .*: the file is empty$/],
    [{ tokenFile: tokenFile(t, 'one\ntwo\n') }, /--token-file .*: the token must be a single line$/],
    [{ tokenFile: tokenFile(t, 'x'), token: 'y' }, /^give --token or --token-file, not both$/],
  ];
  for (const [bad, message] of cases) {
    assert.throws(() => resolveAgentConfig(options(bad)), (e: unknown) => e instanceof AgentOptionsError && message.test(e.message), String(message));
  }
});

test('FLOWTEST_TOKEN_FILE reaches the agent through the CLI; a bad file is exit-2 material', (t) => {
  const path = tokenFile(t, 'tok-123\n');
  const argv = ['agent', '--server', 'ws://127.0.0.1:9', '--suite', 'acme', '--name', 'p'];
  const parsed = parseCommand(argv, { FLOWTEST_TOKEN_FILE: path });
  assert.ok(parsed.ok && parsed.command.kind === 'agent');
  assert.equal(parsed.command.options.tokenFile, path);
  assert.deepEqual(parsed.command.warnings, []);
  const bad = parseCommand([...argv, '--token-file', '/nonexistent/x'], {});
  assert.ok(!bad.ok);
  assert.match(bad.message, /^flowtest agent: --token-file \/nonexistent\/x: cannot read it/);
});

test('the handshake carries the token read from the file', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.close());
  const path = tokenFile(t, 'worker-token-from-file-123\r\n');
  const main = runAgentMain(options({ server: server.url, tokenFile: path }), { logger: pino({ level: 'silent' }) });
  const socket = await server.nextConnection();
  assert.equal(socket.request.headers.authorization, 'Bearer worker-token-from-file-123');
  socket.welcome();
  // A round trip proves the agent has seen the socket open (a forbidden target answers at once).
  socket.send({ type: 'job', id: 'probe', timeoutMs: 1000, request: { method: 'GET', url: 'http://127.0.0.1:9/' } });
  assert.equal((await socket.nextFrame()).type, 'result');
  process.emit('SIGTERM', 'SIGTERM');
  assert.deepEqual(await socket.nextFrame(), { type: 'drain' });
  socket.ws.close(1000, 'drained');
  assert.equal(await within(main, 3000, 'main'), 0);
});

test('a rotated token file is read again before the next connection; an unreadable one keeps the last token', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.close());
  const path = tokenFile(t, 'first-token-0123456789\n');
  const agent = startAgent(options({ server: server.url, tokenFile: path }), pino({ level: 'silent' }), { random: () => 0 });
  t.after(() => agent.close());
  const first = await server.nextConnection();
  assert.equal(first.request.headers.authorization, 'Bearer first-token-0123456789');
  writeFileSync(path, 'second-token-0123456789\n');
  first.ws.close(1008, 'token revoked');
  const second = await server.nextConnection();
  assert.equal(second.request.headers.authorization, 'Bearer second-token-0123456789');
  rmSync(path);
  second.ws.terminate();
  const third = await server.nextConnection();
  assert.equal(third.request.headers.authorization, 'Bearer second-token-0123456789');
});
