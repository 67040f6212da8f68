/**
 * Debian's nginx on loopback for the reverse-proxy tests: started in its own process group
 * (so cleanup takes its workers too), killed after the test, awaited until it listens.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { waitUntil } from './wait.ts';

export const NGINX = '/usr/sbin/nginx';

/** Runs nginx with the config at `confPath` (prefix `dir`) until the test ends; resolves once `port` accepts. */
export async function startNginxProcess(t: TestContext, dir: string, confPath: string, port: number, extraGlobals = ''): Promise<void> {
  const child = spawn(NGINX, ['-p', dir, '-c', confPath, '-g', `daemon off; pid ${join(dir, 'nginx.pid')};${extraGlobals}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  const stderr: string[] = [];
  child.stderr!.on('data', (c: Buffer) => stderr.push(c.toString('utf8')));
  const exited = once(child, 'exit');
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    }
  });
  await waitUntil(
    () =>
      new Promise<boolean>((resolve) => {
        if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr.join('')}`);
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => (socket.destroy(), resolve(true)));
        socket.once('error', () => resolve(false));
      }),
    15_000,
    'nginx to listen',
  );
}
