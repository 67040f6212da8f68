/**
 * The bench's processes: bench children (forked with an IPC channel that carries
 * commands, replies and events) and CLI processes (the real agent). Every process
 * started here is in `running` until it exits; `killAll` is the last-resort cleanup
 * that run.ts calls on every exit path.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'cli', 'flowtest.ts');

/** Every process the bench started and that has not exited yet. Owner: this module. */
const running = new Set<ChildProcess>();
/** Last CPU reading (µs) of each running child, refreshed by `sampleChildren`, for the noise meter. */
const lastCpuUs = new Map<ChildProcess, number>();
/** CPU µs of children that have exited, as last sampled. */
let exitedCpuUs = 0;

function track(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  running.add(child);
  return once(child, 'exit').then(([code, signal]) => {
    running.delete(child);
    exitedCpuUs += lastCpuUs.get(child) ?? 0;
    lastCpuUs.delete(child);
    return { code: code as number | null, signal: signal as NodeJS.Signals | null };
  });
}

function sampleChildren(): number {
  let total = 0;
  for (const child of running) {
    try {
      const us = procCpuUs(child.pid!);
      lastCpuUs.set(child, us);
      total += us;
    } catch {
      total += lastCpuUs.get(child) ?? 0; // exiting right now
    }
  }
  return total;
}

/** SIGKILLs whatever is still running (stopped ones included). Synchronous: safe in an 'exit' handler. */
export function killAll(): void {
  for (const child of running) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
}

interface Reply {
  kind: 'reply';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}
interface ChildEvent {
  kind: 'event';
  event: string;
  data: unknown;
}

/** A bench child: `call` sends a command and resolves with its reply. */
export interface BenchChild {
  readonly name: string;
  readonly pid: number;
  readonly process: ChildProcess;
  /** What the child sent with its `ready` message (its URL, …). */
  readonly info: Record<string, unknown>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  call<T = unknown>(cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  /** Calls `listener` with every event the child emits; returns its remover. */
  onEvent(listener: (event: string, data: any) => void): () => void;
  /** Asks the child to stop, waits for its exit, SIGKILLs it after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

export interface ChildOptions {
  /** Extra node flags (`--expose-gc`, `--cpu-prof`, …). */
  nodeFlags?: string[];
  /** Passed to the child as JSON in argv[2]. */
  config?: Record<string, unknown>;
  readyTimeoutMs?: number;
}

/** Forks `script` (a .ts file under bench/) and waits for its `ready` message. */
export async function startChild(name: string, script: string, options: ChildOptions = {}): Promise<BenchChild> {
  const child = fork(join(ROOT, 'bench', script), [JSON.stringify(options.config ?? {})], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx', ...(options.nodeFlags ?? [])],
    // A server's log lines go nowhere, as they would to a log shipper that keeps up.
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const exited = track(child);
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  const listeners = new Set<(event: string, data: unknown) => void>();
  let readyInfo: Record<string, unknown> | null = null;
  let onReady: ((info: Record<string, unknown>) => void) | null = null;

  child.on('message', (msg: Reply | ChildEvent | { kind: 'ready'; info: Record<string, unknown> }) => {
    if (msg.kind === 'ready') {
      readyInfo = msg.info;
      onReady?.(msg.info);
    } else if (msg.kind === 'reply') {
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(new Error(`${name}: ${msg.error}`));
    } else if (msg.kind === 'event') {
      for (const l of listeners) l(msg.event, msg.data);
    }
  });
  void exited.then(({ code, signal }) => {
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`${name} exited (code ${code}, signal ${signal}) before replying`));
    }
    pending.clear();
  });

  const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} sent no ready message within ${options.readyTimeoutMs ?? 20_000} ms`)), options.readyTimeoutMs ?? 20_000);
    onReady = (i) => {
      clearTimeout(timer);
      resolve(i);
    };
    if (readyInfo) onReady(readyInfo);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before it was ready (code ${code}, signal ${signal})`));
    });
  });

  const call = <T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (!child.connected) return reject(new Error(`${name} is not running`));
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${name}: no reply to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      child.send({ id, cmd, args });
    });

  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await exited;
  };
  const stop = async (graceMs = 5000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await call('stop', {}, graceMs).catch(() => {});
    const timer = setTimeout(() => void kill(), graceMs);
    await exited;
    clearTimeout(timer);
  };

  return {
    name,
    pid: child.pid!,
    process: child,
    info,
    exited,
    call,
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop,
    kill,
  };
}

/** A `flowtest` CLI process (the real agent), its output scanned line by line. */
export interface CliProcess {
  readonly pid: number;
  readonly process: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first output line matching `re`, seen already or to come. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  signal(sig: NodeJS.Signals): void;
  kill(): Promise<void>;
}

/** Starts `flowtest ARGS` through tsx; `nodeFlags` go before the script (`--cpu-prof`, …). */
export function startCli(args: string[], env: Record<string, string> = {}, nodeFlags: string[] = []): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ...nodeFlags, CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = track(child);
  const lines: string[] = [];
  const waiters = new Set<{ re: RegExp; resolve: (line: string) => void }>();
  let rest = '';
  const onData = (chunk: Buffer) => {
    const parts = (rest + chunk.toString('utf8')).split('\n');
    rest = parts.pop() ?? '';
    for (const line of parts) {
      if (lines.length < 200) lines.push(line); // enough to explain a failed start
      for (const w of waiters) if (w.re.test(line)) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const waitForLine = (re: RegExp, timeoutMs = 15_000): Promise<string> => {
    const seen = lines.find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        re,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`no line matching ${re} within ${timeoutMs} ms; last output: ${lines.slice(-3).join(' | ')}`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  };
  return {
    pid: child.pid!,
    process: child,
    exited,
    waitForLine,
    signal: (sig) => void child.kill(sig),
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
}

/** CPU time (user + system) of any process in µs, from /proc/PID/stat (clock-tick resolution: 10 ms). */
export function procCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields are counted after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1e6) / CLOCK_TICKS_PER_S;
}
/** sysconf(_SC_CLK_TCK) is 100 on Linux x86-64. */
const CLOCK_TICKS_PER_S = 100;

/** Monotonic time in ms, comparable across processes on this machine (CLOCK_MONOTONIC). */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every few ms until it holds; throws after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 15_000, everyMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Busy CPU time of the whole machine in µs (all cores), from /proc/stat. */
function machineBusyUs(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return ((user + nice + system + irq + softirq + steal) * 1e6) / CLOCK_TICKS_PER_S;
}

/** CPU µs of this process and of every process it started (exited ones as last sampled). */
function benchCpuUs(): number {
  const own = process.cpuUsage();
  return own.user + own.system + sampleChildren() + exitedCpuUs;
}

/**
 * Measures how busy the machine was with processes that are not the bench's over a
 * span, in cores on average. Others' work (a test run, a compiler) skews every
 * figure on a 2-core machine; the bench prints this beside each measurement.
 * Our children are sampled every 200 ms, so one that exits loses at most that much
 * of its CPU time to the "others" side.
 */
export function startNoiseMeter(): () => number {
  const t0 = nowMs();
  const machine0 = machineBusyUs();
  const bench0 = benchCpuUs();
  const sampler = setInterval(sampleChildren, 200);
  sampler.unref();
  return () => {
    clearInterval(sampler);
    const spanUs = (nowMs() - t0) * 1000;
    const others = machineBusyUs() - machine0 - (benchCpuUs() - bench0);
    return Math.max(0, others / spanUs);
  };
}
