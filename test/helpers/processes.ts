/**
 * Real flowtest processes for end-to-end tests: started through the CLI, their
 * output captured line by line, killed after the test whatever happens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'cli', 'flowtest.ts');
/** The package's bin: the compiled CLI (dist/) with plain node, as operators run it. */
export const BIN = join(ROOT, 'bin', 'flowtest.js');

export interface Proc {
  child: ChildProcess;
  pid: number;
  stdout: string[];
  stderr: string[];
  /** Resolves with the first stdout/stderr line matching `re` (seen already or to come). */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The CLI from its TypeScript sources (through tsx). */
export function startCli(t: TestContext, args: string[], env: Record<string, string> = {}): Proc {
  return startNode(t, ['--import', 'tsx', CLI, ...args], env, ROOT);
}

/** The CLI through `node bin/flowtest.js`, in `cwd`. */
export function startBin(t: TestContext, args: string[], env: Record<string, string> = {}, cwd = ROOT): Proc {
  return startNode(t, [BIN, ...args], env, cwd);
}

function startNode(t: TestContext, nodeArgs: string[], env: Record<string, string>, cwd: string): Proc {
  const child = spawn(process.execPath, nodeArgs, {
    cwd,
    env: { ...process.env, FLOWTEST_LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<{ re: RegExp; resolve: (l: string) => void }>();
  const onLine = (into: string[]) => {
    let rest = '';
    return (chunk: Buffer) => {
      const parts = (rest + chunk.toString('utf8')).split('\n');
      rest = parts.pop() ?? '';
      for (const line of parts) {
        into.push(line);
        for (const w of waiters) if (w.re.test(line)) {
          waiters.delete(w);
          w.resolve(line);
        }
      }
    };
  };
  child.stdout!.on('data', onLine(stdout));
  child.stderr!.on('data', onLine(stderr));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await exited;
    }
  });
  // Process start (tsx compiling the CLI) takes seconds on a loaded 2-core machine.
  const waitForLine = (re: RegExp, timeoutMs = 30_000): Promise<string> => {
    const seen = [...stdout, ...stderr].find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`no line matching ${re} within ${timeoutMs} ms; stderr: ${stderr.slice(-5).join(' | ')}`));
      }, timeoutMs);
      const w = {
        re,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.add(w);
      exited.then(() => {
        if (waiters.has(w)) {
          waiters.delete(w);
          clearTimeout(timer);
          reject(new Error(`process exited before a line matching ${re}; stderr: ${stderr.slice(-5).join(' | ')}`));
        }
      });
    });
  };
  return { child, pid: child.pid!, stdout, stderr, waitForLine, exited };
}
