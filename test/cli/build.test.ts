/**
 * The compiled CLI as operators run it (`node bin/flowtest.js`, dist/ made by `npm run build`,
 * which `npm ci` runs through `prepare`): no TypeScript at run time, nothing written to
 * $TMPDIR or $HOME (a read-only root), and the started PID itself drains on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { BIN, ROOT, startBin } from '../helpers/processes.ts';

const COMPILED = join(ROOT, 'dist', 'cli', 'flowtest.js');

/**
 * Whether the bin would run a fresh build: it says on stderr when it falls back to the
 * sources (build missing or older than them). Outside CI such a checkout skips these tests
 * (run `npm run build`); in CI, where `npm ci` built it, they must run.
 */
function buildState(): string | null {
  const probe = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8', timeout: 30_000 });
  return /running the TypeScript sources/.test(probe.stderr) ? probe.stderr.trim() : null;
}
const stale = buildState();
const skip = stale !== null && !process.env.CI ? stale : false;

/**
 * An environment whose $TMPDIR and $HOME cannot be written, not even by root: they lie
 * under a regular file, so every mkdir or open there fails with ENOTDIR.
 */
function unwritableEnv(t: TestContext): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'flowtest-ro-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'not-a-directory');
  writeFileSync(file, '');
  return { TMPDIR: join(file, 'tmp'), HOME: join(file, 'home'), XDG_CACHE_HOME: join(file, 'cache') };
}

function emptyWorkDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'flowtest-cwd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('the build exists and is fresh (npm run build; npm ci runs it through prepare)', { skip }, () => {
  assert.ok(existsSync(COMPILED), `${COMPILED} is missing: run npm run build`);
  assert.equal(stale, null);
});

test('--version runs the build with a read-only $TMPDIR and $HOME and prints the package version', { skip }, (t) => {
  assert.ok(existsSync(COMPILED), 'run npm run build first');
  const cwd = emptyWorkDir(t);
  const run = spawnSync(process.execPath, [BIN, '--version'], { cwd, env: { ...process.env, ...unwritableEnv(t) }, encoding: 'utf8', timeout: 20_000 });
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(run.stderr, '');
  assert.equal(run.stdout, `${version}\n`);
  assert.equal(run.status, 0);
  assert.deepEqual(readdirSync(cwd), []);
});

test('the compiled server and agent run on a read-only root, the console is served, and each PID drains on SIGTERM', { skip }, async (t) => {
  assert.ok(existsSync(COMPILED), 'run npm run build first');
  const cwd = emptyWorkDir(t);
  const server = startBin(t, ['server', '--host', '127.0.0.1', '--port', '0'], unwritableEnv(t), cwd);
  const listening = await server.waitForLine(/"server listening"/, 20_000);
  const url = (JSON.parse(listening) as { url: string }).url;

  assert.equal((await get(`${url}/healthz`)).status, 200);
  // The console's static files were copied next to the compiled module that serves them.
  const page = await get(`${url}/console`);
  assert.equal(page.status, 200);
  assert.match(page.body, /<script/);
  assert.match(readFileSync(`/proc/${server.pid}/cmdline`, 'utf8'), /^[^\0]*node[^\0]*\0[^\0]*bin\/flowtest\.js\0server\0/);

  // The agent from the banner's dev worker token, just as read-only.
  const workerToken = /worker token \(default\):\s+(\S+)/.exec(await server.waitForLine(/worker token/))![1];
  const agent = startBin(t, ['agent', '--server', url, '--suite', 'default', '--name', 'ro', '--allow-host', '127.0.0.1'], { ...unwritableEnv(t), FLOWTEST_TOKEN: workerToken }, cwd);
  await agent.waitForLine(/"msg":"connected"/, 20_000);
  agent.child.kill('SIGTERM');
  assert.deepEqual(await agent.exited, { code: 0, signal: null });
  assert.ok(agent.stdout.some((l) => l.includes('signal received: draining')), 'the agent drained');

  server.child.kill('SIGTERM');
  assert.deepEqual(await server.exited, { code: 0, signal: null });
  assert.ok(server.stdout.some((l) => l.includes('"server closed"')), 'the server drained and closed');
  assert.deepEqual(readdirSync(cwd), []);
});
