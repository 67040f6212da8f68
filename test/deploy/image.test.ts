/**
 * The Dockerfile and compose file as far as they can be checked without building an image:
 * a pinned Node LTS, compiled code under plain node, and a HEALTHCHECK whose one-liner really
 * tells a serving server from a missing one. `docker-compose config -q` where it is installed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/processes.ts';
import { startTestServer } from '../helpers/server.ts';

const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const COMPOSE = join(ROOT, 'docker-compose.yml');

/** The `node -e` script of the HEALTHCHECK's exec-form CMD. */
function healthcheckScript(): string {
  const m = /^HEALTHCHECK [^\n]*\\\n\s+CMD (\[.*\])$/m.exec(DOCKERFILE);
  assert.ok(m, 'no HEALTHCHECK … CMD [exec form] in the Dockerfile');
  const argv = JSON.parse(m[1]) as string[];
  assert.deepEqual(argv.slice(0, 2), ['node', '-e'], 'the probe is a node one-liner (slim images have no curl)');
  return argv[2];
}

async function probe(env: Record<string, string>): Promise<number | null> {
  const child = spawn(process.execPath, ['-e', healthcheckScript()], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore' });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return code;
}

test('the image: an exact Node 24 LTS tag, the build run by node itself, no tsx', () => {
  assert.match(DOCKERFILE, /^ARG NODE_IMAGE=node:24\.\d+\.\d+-[a-z]+-slim$/m, 'pinned to an exact release');
  assert.match(DOCKERFILE, /^ENTRYPOINT \["node", "bin\/flowtest\.js"\]$/m);
  assert.match(DOCKERFILE, /^RUN npm run build$/m);
  assert.match(DOCKERFILE, /^COPY --from=build \/app\/dist dist$/m);
  assert.match(DOCKERFILE, /^USER node$/m);
  assert.doesNotMatch(DOCKERFILE, /tsx|npx|npm start/);
});

test('the HEALTHCHECK one-liner: 0 against a serving server, 1 when nothing listens', async (t) => {
  const server = await startTestServer(t);
  assert.equal(await probe({ FLOWTEST_PORT: String(server.port) }), 0);
  // An agent's health port wins over the server port.
  assert.equal(await probe({ FLOWTEST_PORT: '1', FLOWTEST_HEALTH_PORT: String(server.port) }), 0);

  const closed = createServer();
  closed.listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const { port } = closed.address() as AddressInfo;
  await new Promise((r) => closed.close(r));
  assert.equal(await probe({ FLOWTEST_PORT: String(port) }), 1);
});

test('docker-compose config -q accepts the compose file', { skip: existsSync('/usr/bin/docker-compose') ? false : 'docker-compose not installed' }, () => {
  const run = spawnSync('/usr/bin/docker-compose', ['-f', COMPOSE, 'config', '-q'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 0, run.stderr);
  const text = readFileSync(COMPOSE, 'utf8');
  assert.doesNotMatch(text, /tsx/);
  assert.match(text, /read_only: true/);
});
