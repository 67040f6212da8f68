/**
 * Measurement 2 — idle workers at scale: memory per worker, CPU spent on heartbeats and
 * event-loop delay while they run, at rising worker counts, against a bare ws server
 * that holds and pings as many sockets (interleaved run by run).
 *
 * The workers are plain ws clients (they answer pings by themselves), spread over a few
 * processes, each from its own 127.x.y.z source address: one address has ~28k ephemeral
 * ports and one process at most 20,000 open files. The server under test has the same
 * 20,000-file limit, so the top level is what fits under it; per-worker figures are
 * extrapolated to 20k.
 */
import { readFileSync } from 'node:fs';
import type { LoopDelay, ProcessStats } from './harness/child.ts';
import { sleep, startChild, waitFor, type BenchChild } from './harness/processes.ts';
import { med, num, pairedRatio, ratio, summarize, table, verdict, type Summary } from './harness/stats.ts';

export interface ScaleOptions {
  levels: number[];
  reps: number;
  /** Heartbeat interval both servers run with; CPU is scaled from it to the default. */
  heartbeatMs: number;
  defaultHeartbeatMs: number;
  /** CPU and loop-delay window; one heartbeat interval, so every worker is pinged once in it. */
  windowMs: number;
  workerProcesses: number;
  /** Handshakes in flight per worker process. */
  parallel: number;
}

const LOOP_RESOLUTION_MS = 10;

type Kind = 'ours' | 'bare';

interface Level {
  rssPerWorker: number;
  heapPerWorker: number;
  /** Fraction of one core spent above the idle server, at opts.heartbeatMs. */
  cpuFraction: number;
  usPerPing: number;
  loopP99Ms: number;
  loopMaxMs: number;
  gcMaxMs: number;
  dropped: number;
}

export interface ScaleReport {
  text: string;
}

/** The soft open-files limit of this process (children inherit it). */
export function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : Infinity;
}

export async function measureScale(opts: ScaleOptions): Promise<ScaleReport> {
  const workers = await Promise.all(Array.from({ length: opts.workerProcesses }, (_, i) => startChild(`idle workers ${i}`, 'procs/idle-workers.ts')));
  const runs: Record<Kind, Level[][]> = { ours: opts.levels.map(() => []), bare: opts.levels.map(() => []) };
  try {
    for (let rep = 0; rep < opts.reps; rep++) {
      const order: Kind[] = rep % 2 === 0 ? ['ours', 'bare'] : ['bare', 'ours'];
      for (const kind of order) {
        // Fresh source addresses each run: sockets closed by the last run may still sit in TIME_WAIT.
        const addresses = workers.map((_, i) => `127.${1 + rep}.${kind === 'ours' ? 1 : 2}.${10 + i}`);
        const levels = await runServer(kind, workers, addresses, opts);
        levels.forEach((l, i) => runs[kind][i].push(l));
      }
    }
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
  return { text: render(runs, opts) };
}

/** Opens `to - from` more sockets, spread over the worker processes. */
async function connectUpTo(workers: BenchChild[], addresses: string[], url: string, from: number, to: number, opts: ScaleOptions): Promise<void> {
  const add = to - from;
  const results = await Promise.all(
    workers.map((w, i) => {
      const count = Math.floor(add / workers.length) + (i < add % workers.length ? 1 : 0);
      return w.call<{ failed: number; firstError: string | null }>('connect', { url, localAddress: addresses[i], count, parallel: opts.parallel, pools: 200, firstIndex: i * 100_000 + from }, 180_000);
    }),
  );
  const failed = results.reduce((n, r) => n + r.failed, 0);
  if (failed > 0) throw new Error(`${failed} worker sockets failed to open; first: ${results.find((r) => r.firstError)?.firstError}`);
}

const statusOf = async (workers: BenchChild[]) => {
  const all = await Promise.all(workers.map((w) => w.call<{ pings: number; open: number }>('status')));
  return { pings: all.reduce((n, s) => n + s.pings, 0), open: all.reduce((n, s) => n + s.open, 0) };
};

async function runServer(kind: Kind, workers: BenchChild[], addresses: string[], opts: ScaleOptions): Promise<Level[]> {
  const server =
    kind === 'ours'
      ? await startChild('flowtest server (scale)', 'procs/flowtest-server.ts', { nodeFlags: ['--expose-gc'], config: { heartbeatMs: opts.heartbeatMs } })
      : await startChild('bare ws server (scale)', 'baselines/bare-ws-server.ts', { nodeFlags: ['--expose-gc'], config: { heartbeatMs: opts.heartbeatMs } });
  const url = (server.info.url as string).replace(/^http/, 'ws');
  try {
    const base = await server.call<ProcessStats>('gc');
    // What the idle server spends (the loop-delay timer included), to subtract from each window;
    // measured once start-up work has settled.
    await server.call('loop-delay-start', { resolutionMs: LOOP_RESOLUTION_MS });
    await sleep(300);
    const idle0 = await server.call<ProcessStats>('stats');
    await sleep(700);
    const idle1 = await server.call<ProcessStats>('stats');
    const idleFraction = (idle1.cpuUs - idle0.cpuUs) / 700e3;

    const out: Level[] = [];
    let current = 0;
    for (const level of opts.levels) {
      const t0 = Date.now();
      await connectUpTo(workers, addresses, url, current, level, opts);
      process.stderr.write(`bench: scale: ${kind}: ${current} → ${level} workers in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      current = level;
      await waitFor(`${level} workers at the ${kind} server`, async () => (await server.call<number>('workers')) === level, 30_000, 50);
      const mem = await server.call<ProcessStats>('gc');
      await server.call('loop-delay'); // reset: only the window counts
      const [cpu0, status0] = await Promise.all([server.call<ProcessStats>('stats'), statusOf(workers)]);
      await sleep(opts.windowMs);
      const [cpu1, status1, loop] = await Promise.all([server.call<ProcessStats>('stats'), statusOf(workers), server.call<LoopDelay>('loop-delay')]);
      const busyUs = cpu1.cpuUs - cpu0.cpuUs - idleFraction * opts.windowMs * 1000;
      out.push({
        rssPerWorker: (mem.rss - base.rss) / level,
        heapPerWorker: (mem.heapUsed - base.heapUsed) / level,
        cpuFraction: busyUs / (opts.windowMs * 1000),
        usPerPing: busyUs / Math.max(1, status1.pings - status0.pings),
        // The histogram holds whole timer intervals; the delay is what exceeds the resolution.
        loopP99Ms: Math.max(0, loop.p99Ms - LOOP_RESOLUTION_MS),
        loopMaxMs: Math.max(0, loop.maxMs - LOOP_RESOLUTION_MS),
        gcMaxMs: loop.gcMaxMs,
        dropped: level - status1.open,
      });
    }
    return out;
  } finally {
    await server.kill(); // 19k close handshakes would only cost time
    await Promise.all(workers.map((w) => w.call('reset')));
  }
}

function render(runs: Record<Kind, Level[][]>, opts: ScaleOptions): string {
  const scale = opts.heartbeatMs / opts.defaultHeartbeatMs;
  const times = (s: Summary, k: number): Summary => ({ median: s.median * k, min: s.min * k, max: s.max * k, runs: s.runs.map((x) => x * k) });
  const rows: string[][] = [];
  const tops: Record<Kind, Record<keyof Level, Summary>> = {} as never;
  opts.levels.forEach((level, i) => {
    const get = (kind: Kind) =>
      Object.fromEntries((Object.keys(runs[kind][i][0]) as (keyof Level)[]).map((k) => [k, summarize(runs[kind][i].map((l) => l[k]))])) as Record<keyof Level, Summary>;
    const ours = get('ours');
    const bare = get('bare');
    rows.push([
      num(level, 0),
      med(times(ours.rssPerWorker, 1 / 1024), 2),
      num(bare.rssPerWorker.median / 1024, 2),
      med(times(ours.heapPerWorker, 1 / 1024), 2),
      num(bare.heapPerWorker.median / 1024, 2),
      med(ours.usPerPing, 1),
      num(bare.usPerPing.median, 1),
      ratio(pairedRatio(ours.usPerPing, bare.usPerPing)),
      med(times(ours.cpuFraction, 100 * scale), 2, ' %'),
      `${med(ours.loopP99Ms, 1)} (max ${num(ours.loopMaxMs.max, 0)}, GC ${num(ours.gcMaxMs.max, 0)})`,
      `${num(bare.loopP99Ms.median, 1)} (max ${num(bare.loopMaxMs.max, 0)})`,
      num(ours.dropped.max, 0),
    ]);
    tops.ours = ours;
    tops.bare = bare;
  });
  const last = opts.levels[opts.levels.length - 1];
  const t = tops.ours;
  const cpuAt20k = (t.usPerPing.median * 20_000) / (opts.defaultHeartbeatMs / 1000) / 1e6;
  const bareAt20k = (tops.bare.usPerPing.median * 20_000) / (opts.defaultHeartbeatMs / 1000) / 1e6;
  const targets = [
    ['RSS per worker ≤ 10 KB', `${num(t.rssPerWorker.median / 1024, 2)} KB (slope 0 → ${num(last, 0)}; bare ws ${num(tops.bare.rssPerWorker.median / 1024, 2)} KB)`, verdict(t.rssPerWorker.median <= 10 * 1024)],
    [
      `heartbeat CPU ≤ 5 % of a core at 20k, ${opts.defaultHeartbeatMs / 1000} s`,
      `${num(cpuAt20k * 100, 2)} % (${num(t.usPerPing.median, 1)} µs per ping × 20,000 / ${opts.defaultHeartbeatMs / 1000} s; bare ws ${num(bareAt20k * 100, 2)} %)`,
      verdict(cpuAt20k <= 0.05),
    ],
    [
      'event-loop delay p99 ≤ 20 ms',
      `${num(t.loopP99Ms.median, 1)} ms at ${num(last, 0)} workers pinged ${num(opts.defaultHeartbeatMs / opts.heartbeatMs, 0)}× as often as by default (worst run ${num(t.loopP99Ms.max, 1)} ms)`,
      verdict(t.loopP99Ms.median <= 20),
    ],
  ];
  return [
    `Open-files limit per process here: ${openFilesLimit()} (soft = hard, cannot be raised), so one server holds at most ${num(last, 0)} workers in this bench; 20k figures are per-worker extrapolations.`,
    `${opts.workerProcesses} client processes, each from its own 127.x.y.z address. Both servers ping every ${opts.heartbeatMs} ms (the default is ${opts.defaultHeartbeatMs} ms: CPU scaled by ${num(scale, 3)}).`,
    `Memory after two forced GCs, minus the empty server, per worker. CPU over a ${opts.windowMs} ms window with every worker idle but answering pings, minus the idle server, per ping answered.`,
    `Loop delay: monitorEventLoopDelay (${LOOP_RESOLUTION_MS} ms resolution) inside the server over the same window, minus the resolution; "max" is the worst single delay of any run and "GC" the longest GC pause seen (a max far above it means the process was descheduled). Median (min–max) of ${opts.reps} runs, flowtest and bare ws interleaved.`,
    '',
    table(
      ['workers', 'RSS KB/worker', 'bare', 'heap KB/worker', 'bare', 'µs/ping', 'bare', 'µs/ping vs bare', `heartbeat CPU at ${opts.defaultHeartbeatMs / 1000} s`, 'loop delay p99 ms', 'bare', 'dropped'],
      rows,
    ),
    '',
    table(['target at 20k workers', 'measured', 'verdict'], targets),
  ].join('\n');
}
