/** The real `bin/flowtest.js` as a child process: exit codes and streams as a shell sees them. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { json, startFakeServer, successBody, within } from '../client/fake-flowtest-server.ts';

const BIN = fileURLToPath(new URL('../../bin/flowtest.js', import.meta.url));
const DEADLINE_MS = 20_000;

async function flowtest(args: string[], env: Record<string, string> = {}) {
  // Without the caller's FLOWTEST_* variables, so the test sees only what it sets.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FLOWTEST_')));
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  try {
    const [code] = (await within(once(child, 'close'), DEADLINE_MS, `flowtest ${args.join(' ')}`)) as [number | null];
    // In a checkout without a fresh build the bin runs the sources and says so first (test/cli/build.test.ts covers the build).
    const stderr = Buffer.concat(err).toString('utf8').replace(/^flowtest: .*running the TypeScript sources through tsx\n/, '');
    return { code, stdout: Buffer.concat(out).toString('utf8'), stderr };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

test('a bad option exits 2 with one line on stderr', async () => {
  const { code, stdout, stderr } = await flowtest(['dispatch', '--bogus']);
  assert.equal(code, 2);
  assert.equal(stdout, '');
  assert.equal(stderr, 'flowtest dispatch: unknown option --bogus\n');
});

test('--help exits 0 with usage on stdout', async () => {
  const { code, stdout, stderr } = await flowtest(['--help']);
  assert.equal(code, 0);
  assert.match(stdout, /Usage:/);
  assert.equal(stderr, '');
});

test('dispatch through the shim prints the body; a failure exits 1 with the code', async (t) => {
  let fail = false;
  const fake = await startFakeServer((_req, res) => {
    if (fail) json(res, 503, { error: { code: 'no_worker', message: 'no open worker in pool staging' } });
    else json(res, 200, successBody({ body: 'hi from the target' }));
  });
  t.after(() => fake.close());
  const env = { FLOWTEST_SERVER: fake.url, FLOWTEST_SUITE: 'acme', FLOWTEST_POOL: 'staging', FLOWTEST_TOKEN: 'T' };

  const ok = await flowtest(['dispatch', 'GET', 'http://target/'], env);
  assert.deepEqual(ok, { code: 0, stdout: 'hi from the target', stderr: '' });
  assert.equal(fake.requests[0].headers.authorization, 'Bearer T');

  fail = true;
  const failed = await flowtest(['dispatch', 'GET', 'http://target/'], env);
  assert.deepEqual(failed, { code: 1, stdout: '', stderr: 'no_worker: no open worker in pool staging\n' });
});
