/**
 * A private nats-server for one test: Debian's binary on 127.0.0.1 and a free port, default
 * settings (max_payload 1 MiB). It can be killed, frozen, thawed and restarted on the same
 * port; whatever state it is left in, it is killed after the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import type { TestContext } from 'node:test';

export const NATS_SERVER_BIN = process.env.FLOWTEST_NATS_SERVER ?? '/usr/sbin/nats-server';

export interface NatsServerProc {
  readonly port: number;
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  readonly pid: number | null;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** SIGSTOP: the port stays open but nothing answers. */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** Starts a new process on the same port (after `kill`), waits until it accepts. */
  restart(): Promise<void>;
}

import { freePort } from './free-port.ts';

/** Resolves once a TCP connection to the port succeeds and the server sends its INFO line. */
async function waitAccepting(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nats-server exited (${child.exitCode ?? child.signalCode}) before accepting on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      const done = (v: boolean) => {
        s.destroy();
        resolve(v);
      };
      s.once('data', (d) => done(d.toString().startsWith('INFO')));
      s.once('error', () => done(false));
      s.setTimeout(500, () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nats-server not accepting on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts nats-server; kills it (thawed first) after the test. */
export async function startNats(t: TestContext, extraArgs: string[] = []): Promise<NatsServerProc> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  let exited: Promise<unknown> = Promise.resolve();

  const spawnOne = async (): Promise<void> => {
    const c = spawn(NATS_SERVER_BIN, ['-a', '127.0.0.1', '-p', String(port), ...extraArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.resume();
    child = c;
    exited = once(c, 'exit');
    await waitAccepting(port, c);
  };
  const kill = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await exited;
  };
  t.after(kill);
  await spawnOne();

  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    get pid() {
      return child?.pid ?? null;
    },
    kill,
    freeze: () => child?.kill('SIGSTOP'),
    thaw: () => child?.kill('SIGCONT'),
    restart: async () => {
      await kill();
      // The old socket may linger briefly in the kernel; retry the bind for a moment.
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          await spawnOne();
          return;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
  };
}
