/**
 * `npm run demo`: a whole dispatcher on this machine, ready to try.
 *
 * Starts, in this order: a demo target (in this process), a server (child process, with a
 * tokens file written to a temp dir), one agent (child process, suite `demo`, pool `staging`).
 * When the agent is listed, prints commands that work as printed. Ctrl-C (or SIGTERM) stops
 * everything it started, in reverse order, and removes the temp dir.
 *
 * `npm run demo -- --cluster`: a NATS (the `nats-server` binary on PATH, or Debian's in
 * /usr/sbin) and two server nodes on it; the agent connects to the first node and the printed
 * dispatch commands go to the second, so every job crosses nodes.
 *
 * The children run in their own process group, so a terminal's Ctrl-C reaches only this
 * process, which then sends each child exactly one SIGTERM (a second signal would make the
 * server and agent skip their graceful shutdown).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { listWorkers } from '../client/client.ts';
import { startDemoTarget, type DemoTarget } from './demo-target.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'cli', 'flowtest.ts');
const SUITE = 'demo';
const POOL = 'staging';
const READY_DEADLINE_MS = 30_000;
const STOP_DEADLINE_MS = 15_000;

/** Everything this script started; `stop` takes it apart in reverse order. */
interface Started {
  tempDir?: string;
  target?: DemoTarget;
  children: { name: string; child: ChildProcess }[];
}

const started: Started = { children: [] };
let stopping: Promise<void> | undefined;

function token(): string {
  return randomBytes(18).toString('base64url');
}

/** A free port on 127.0.0.1 (the server takes it a moment later; a race only on a busy host). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', resolve);
  });
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The environment without the user's FLOWTEST_* variables, so the demo runs as written here. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FLOWTEST_')) env[k] = v;
  return { ...env, ...extra };
}

function startChild(name: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return startProcess(name, process.execPath, ['--import', 'tsx', CLI, ...args], env);
}

/** `nats-server` on PATH, else Debian's binary; null when neither is there. */
function natsServerBinary(): string | null {
  const onPath = spawnSync('nats-server', ['--version'], { stdio: 'ignore' });
  if (!onPath.error && onPath.status === 0) return 'nats-server';
  return existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : null;
}

function startProcess(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(command, args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  started.children.push({ name, child });
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on('line', (line) => process.stdout.write(`[${name}] ${line}\n`));
  }
  child.once('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`demo: ${name} exited unexpectedly (${signal ?? `code ${code}`}); stopping\n`);
      void stop(1);
    }
  });
  return child;
}

/** Polls `check` until it is true; gives up at the deadline or when `stopping`. */
async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + READY_DEADLINE_MS;
  while (!stopping) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${READY_DEADLINE_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('stopped');
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Stops children (agent first, then server), the target, removes the temp dir. Idempotent. */
function stop(exitCode: number): Promise<void> {
  stopping ??= (async () => {
    process.exitCode = exitCode;
    for (const { child } of [...started.children].reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        exited(child),
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            child.kill('SIGKILL');
            resolve();
          }, STOP_DEADLINE_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    await started.target?.close();
    if (started.tempDir) await rm(started.tempDir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.stdout.write('demo: stopped\n');
  })();
  return stopping;
}

function onSignal(): void {
  void stop(0);
}

async function main(): Promise<void> {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  started.tempDir = await mkdtemp(join(tmpdir(), 'flowtest-demo-'));
  const tokens = { admin: token(), worker: token(), client: token() };
  const tokensFile = join(started.tempDir, 'tokens.json');
  await writeFile(
    tokensFile,
    JSON.stringify({ admin: [tokens.admin], suites: { [SUITE]: { worker: [tokens.worker], client: [tokens.client] } } }, null, 2),
    { mode: 0o600 },
  );

  started.target = await startDemoTarget({ host: '127.0.0.1', port: 0 });
  const target = started.target.url;
  // The agent reaches loopback only when named: name the demo target's address and port, nothing more.
  const allowed = new URL(target).host;

  const cluster = process.argv.slice(2).includes('--cluster');
  const serverArgs = ['--host', '127.0.0.1', '--tokens-file', tokensFile, '--shutdown-grace-ms', '5000'];
  let natsUrl = '';
  if (cluster) {
    const bin = natsServerBinary();
    if (!bin) throw new Error('--cluster needs nats-server on PATH or in /usr/sbin (Debian: apt-get install nats-server)');
    const natsPort = await freePort();
    natsUrl = `nats://127.0.0.1:${natsPort}`;
    startProcess('nats', bin, ['-a', '127.0.0.1', '-p', String(natsPort)], cleanEnv({}));
  }

  const port = await freePort();
  const server = `http://127.0.0.1:${port}`;
  const clusterArgs = (id: string) => (cluster ? ['--nats', natsUrl, '--node-id', id] : []);
  // With NATS just started, a node may find it not yet listening: it exits 1, and the demo stops with a clear line.
  if (cluster) await waitFor('nats', async () => portOpen(Number(new URL(natsUrl.replace('nats:', 'http:')).port)));
  startChild(cluster ? 'node-1' : 'server', ['server', '--port', String(port), ...serverArgs, ...clusterArgs('demo-1')], cleanEnv({}));
  await waitFor('server', async () => (await fetch(`${server}/healthz`)).ok);
  let dispatchServer = server;
  if (cluster) {
    const port2 = await freePort();
    dispatchServer = `http://127.0.0.1:${port2}`;
    startChild('node-2', ['server', '--port', String(port2), ...serverArgs, ...clusterArgs('demo-2')], cleanEnv({}));
    await waitFor('node-2', async () => (await fetch(`${dispatchServer}/readyz`)).ok);
  }

  startChild(
    'agent',
    ['agent', '--server', `ws://127.0.0.1:${port}`, '--suite', SUITE, '--name', POOL, '--allow-host', allowed, '--drain-timeout-ms', '5000'],
    cleanEnv({ FLOWTEST_TOKEN: tokens.worker }),
  );
  // In a cluster, wait until the second node lists the agent: then dispatches there find it.
  await waitFor('agent', async () => (await listWorkers({ server: dispatchServer, token: tokens.client, suite: SUITE })).length > 0);

  const cmd = `FLOWTEST_TOKEN=${tokens.client} node bin/flowtest.js`;
  const opts = `--server ${dispatchServer} --suite ${SUITE} --pool ${POOL}`;
  process.stdout.write(
    [
      '',
      'flowtest demo is running (commands below work from this checkout):',
      `  target  ${target}  routes /hello /echo /status/NNN /bytes /slow?ms=N`,
      ...(cluster
        ? [
            `  nats    ${natsUrl}`,
            `  node-1  ${server}  (node id demo-1; the agent is connected here)`,
            `  node-2  ${dispatchServer}  (node id demo-2; the commands below dispatch here, so jobs cross nodes)`,
            `  tokens  ${tokensFile}`,
          ]
        : [`  server  ${server}  (tokens in ${tokensFile})`]),
      `  agent   suite ${SUITE}, pool ${POOL}, allowed host ${allowed} only`,
      '',
      'Send a request through the agent:',
      `  ${cmd} dispatch ${opts} GET ${target}/hello`,
      `  ${cmd} dispatch ${opts} -i POST ${target}/echo -H 'content-type: application/json' --data '{"hi":1}'`,
      `  ${cmd} dispatch ${opts} --timeout-ms 1000 GET '${target}/slow?ms=5000'   # → timeout, exit 1`,
      'List workers:',
      `  ${cmd} workers --server ${dispatchServer} --suite ${SUITE}`,
      'Console:',
      `  ${dispatchServer}/console#token=${tokens.admin}`,
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
}

main().catch(async (err: unknown) => {
  if (!stopping) process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  await stop(1);
});
