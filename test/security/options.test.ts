/** The security options through the CLI: flags, FLOWTEST_* variables (comma lists) and bad values. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCommand } from '../../cli/parse-command.ts';

const server = (argv: string[], env: Record<string, string> = {}) => {
  const r = parseCommand(['server', ...argv], env);
  if (!r.ok) return r.message;
  assert.equal(r.command.kind, 'server');
  return r.command.kind === 'server' ? r.command.options : null;
};

test('security options: flags and variables, repeatable ones as comma lists', () => {
  const fromEnv = server([], {
    FLOWTEST_TRUST_PROXY: '10.0.0.0/8,::1',
    FLOWTEST_CONSOLE_MASK_HEADER: 'x-tenant-secret,x-other',
    FLOWTEST_MAX_WORKER_CONCURRENCY: '64',
    FLOWTEST_MAX_CONNECTIONS: '5000',
    FLOWTEST_HEADERS_TIMEOUT_MS: '5000',
    FLOWTEST_REQUEST_TIMEOUT_MS: '30000',
  });
  assert.ok(fromEnv && typeof fromEnv === 'object');
  assert.deepEqual(fromEnv.trustProxy, ['10.0.0.0/8', '::1']);
  assert.deepEqual(fromEnv.consoleMaskHeader, ['x-tenant-secret', 'x-other']);
  assert.equal(fromEnv.maxWorkerConcurrency, 64);
  assert.equal(fromEnv.maxConnections, 5000);
  assert.equal(fromEnv.headersTimeoutMs, 5000);
  assert.equal(fromEnv.requestTimeoutMs, 30000);
  const fromFlags = server(['--trust-proxy', '127.0.0.1', '--trust-proxy', 'fd00::/8']);
  assert.ok(fromFlags && typeof fromFlags === 'object');
  assert.deepEqual(fromFlags.trustProxy, ['127.0.0.1', 'fd00::/8']);
});

test('security options: bad values are one-line usage errors naming the option', () => {
  assert.match(String(server(['--trust-proxy', '10.0.0.0/40'])), /--trust-proxy.*IP address or CIDR/);
  assert.match(String(server([], { FLOWTEST_TRUST_PROXY: 'proxy.internal' })), /FLOWTEST_TRUST_PROXY/);
  assert.match(String(server(['--max-worker-concurrency', '2000'])), /--max-worker-concurrency/);
  assert.match(String(server(['--console-mask-header', 'bad header'])), /--console-mask-header/);
  assert.match(String(server(['--headers-timeout-ms', '90000'])), /--headers-timeout-ms: must not be above --request-timeout-ms/);
});
