/**
 * The child side of the bench's IPC: answers commands from run.ts and reports what
 * only the process itself can see — its CPU time (process.cpuUsage, µs), its memory,
 * and its event-loop delay. Every bench child calls `serveBench` once.
 */
import { monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from 'node:perf_hooks';

export type Handlers = Record<string, (args: any) => unknown>;

export interface ProcessStats {
  /** user + system */
  cpuUs: number;
  /** of which in the kernel (syscalls: socket reads and writes, epoll) */
  cpuSysUs: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export interface LoopDelay {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Longest and total GC pause over the same span: tells a GC stall from a descheduled process. */
  gcMaxMs: number;
  gcTotalMs: number;
}

export interface BenchChildIo {
  ready(info?: Record<string, unknown>): void;
  emit(event: string, data?: unknown): void;
}

/** The JSON config run.ts passed in argv[2]. */
export function childConfig<T>(): T {
  return JSON.parse(process.argv[2] ?? '{}') as T;
}

function stats(): ProcessStats {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return { cpuUs: cpu.user + cpu.system, cpuSysUs: cpu.system, rss: mem.rss, heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, external: mem.external, arrayBuffers: mem.arrayBuffers };
}

/**
 * Serves `handlers` plus the built-ins: `stats`, `gc` (needs --expose-gc), `loop-delay-start`,
 * `loop-delay` (percentiles since the last read, then reset) and `stop` (runs `onStop`, then
 * lets the process end on its own; a stuck handle gets process.exit after 3 s).
 */
export function serveBench(handlers: Handlers, onStop: () => unknown = () => {}): BenchChildIo {
  // Owner: this function; enabled on request only (its timer costs CPU), disabled on stop.
  let loopDelay: IntervalHistogram | null = null;
  // Owner: this function, like loopDelay; observes GC pauses while loop delay is measured.
  let gcObserver: PerformanceObserver | null = null;
  let gc = { maxMs: 0, totalMs: 0 };
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      loopDelay?.disable();
      gcObserver?.disconnect();
      await onStop();
      // Do not let a leftover handle keep a bench process alive; --cpu-prof still writes on exit().
      setTimeout(() => process.exit(0), 3000).unref();
    })();
    return stopping;
  };
  const builtins: Handlers = {
    stats,
    gc: () => {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (!gc) throw new Error('run with --expose-gc');
      gc();
      gc();
      return stats();
    },
    'loop-delay-start': ({ resolutionMs }: { resolutionMs?: number }) => {
      loopDelay ??= monitorEventLoopDelay({ resolution: resolutionMs ?? 5 });
      loopDelay.enable();
      loopDelay.reset();
      if (!gcObserver) {
        gcObserver = new PerformanceObserver((list) => {
          for (const e of list.getEntries()) {
            gc.maxMs = Math.max(gc.maxMs, e.duration);
            gc.totalMs += e.duration;
          }
        });
        gcObserver.observe({ entryTypes: ['gc'] });
      }
      gc = { maxMs: 0, totalMs: 0 };
    },
    'loop-delay': (): LoopDelay => {
      if (!loopDelay) throw new Error('loop-delay-start first');
      const out = { p50Ms: loopDelay.percentile(50) / 1e6, p99Ms: loopDelay.percentile(99) / 1e6, maxMs: loopDelay.max / 1e6, gcMaxMs: gc.maxMs, gcTotalMs: gc.totalMs };
      loopDelay.reset();
      gc = { maxMs: 0, totalMs: 0 };
      return out;
    },
  };
  process.on('message', (msg: { id: number; cmd: string; args: unknown }) => {
    void (async () => {
      try {
        if (msg.cmd === 'stop') {
          await stop();
          process.send?.({ kind: 'reply', id: msg.id, ok: true });
          process.disconnect();
          return;
        }
        const handler = handlers[msg.cmd] ?? builtins[msg.cmd];
        if (!handler) throw new Error(`unknown command ${msg.cmd}`);
        const value = await handler(msg.args);
        process.send?.({ kind: 'reply', id: msg.id, ok: true, value });
      } catch (err) {
        if (process.connected) process.send?.({ kind: 'reply', id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) });
      }
    })();
  });
  // The bench went away (crashed or killed): nobody will stop us, so stop now.
  process.on('disconnect', () => void stop());
  return {
    ready: (info = {}) => process.send?.({ kind: 'ready', info }),
    emit: (event, data) => {
      if (process.connected) process.send?.({ kind: 'event', event, data });
    },
  };
}
