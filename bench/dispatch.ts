/**
 * Measurement 1 — dispatch throughput, latency and CPU per job at concurrency 1, 16, 64
 * through one worker with 64 slots, the product interleaved run by run with its baselines:
 *   flowtest         every contract feature on: auth, validation, deadlines, metrics, pino at
 *                    info, and a debug console open (its job record and feed);
 *   bare pipeline    bare dispatcher + bare worker (bench/baselines/bare-*.ts): hand-written,
 *                    no checks, undici Pool to the target — what the architecture allows;
 *   bare disp.+agent the bare dispatcher driving the real agent — the agent's own cost;
 *   lean long-poll   the old design written lean (bench/baselines/lean-long-poll-*.ts): no zod,
 *                    no auth, undici in its worker;
 *   long-poll        the old design built from the product's parts (token check, zod schemas,
 *                    job runner) — what those parts cost in that design;
 *   direct           the load generator calls the target itself;
 *   ws echo          one message each way over a bare ws socket, the size of a result frame.
 */
import { dispatch as clientDispatch } from '../client/client.ts';
import { encodeFrame } from '../shared/codec.ts';
import { procCpuUs, sleep, startChild, startCli, waitFor, type BenchChild } from './harness/processes.ts';
import { med, num, pairedRatio, ratio, summarize, table, type Summary } from './harness/stats.ts';
import { POOL, SUITE, TOKENS } from './harness/tokens.ts';
import type { ProcessStats } from './harness/child.ts';
import type { LoadResult, LoadSpec } from './procs/load-generator.ts';

export interface DispatchOptions {
  concurrencies: number[];
  reps: number;
  warmupMs: number;
  windowMs: number;
  /** Slots of the one agent (and of the long-poll agents' pollers). */
  agentConcurrency: number;
}

type Mode = 'flowtest' | 'bare-pipeline' | 'bare-dispatcher' | 'lean-long-poll' | 'long-poll' | 'direct' | 'ws-echo';
const MODES: Mode[] = ['flowtest', 'bare-pipeline', 'bare-dispatcher', 'lean-long-poll', 'long-poll', 'direct', 'ws-echo'];
const LABELS: Record<Mode, string> = {
  flowtest: 'flowtest (all features)',
  'bare-pipeline': 'bare pipeline',
  'bare-dispatcher': 'bare dispatcher + real agent',
  'lean-long-poll': 'lean long-poll',
  'long-poll': 'long-poll (product parts)',
  direct: 'direct',
  'ws-echo': 'ws echo (per msg)',
};
const HAS_AGENT: Record<Mode, boolean> = { flowtest: true, 'bare-pipeline': true, 'bare-dispatcher': true, 'lean-long-poll': true, 'long-poll': true, direct: false, 'ws-echo': false };

interface Cell {
  jobsPerS: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU µs per job of the process that plays the server. */
  serverUs: number;
  /** … of which in the kernel. */
  serverSysUs: number;
  agentUs: number;
  targetUs: number;
}

type CellSummary = { [K in keyof Cell]: Summary };

export interface DispatchReport {
  text: string;
  /** by concurrency, then mode */
  cells: Record<number, Record<Mode, CellSummary>>;
  frameBytes: { job: number; result: number };
}

/** CPU clocks (µs) per role; `null` where a mode has no such process. */
interface Clocks {
  server: BenchChild | null;
  agent: (() => Promise<number>) | null;
  target: BenchChild;
}

const cpuOf = async (c: BenchChild) => (await c.call<ProcessStats>('stats')).cpuUs;

export async function measureDispatch(env: { target: BenchChild; loadgen: BenchChild }, opts: DispatchOptions): Promise<DispatchReport> {
  const { target, loadgen } = env;
  const targetUrl = `${target.info.url as string}/item`;

  const [server, lpServer, leanServer, bare, bareForAgent, echo] = await Promise.all([
    startChild('flowtest server', 'procs/flowtest-server.ts'),
    startChild('long-poll server', 'baselines/long-poll-server.ts'),
    startChild('lean long-poll server', 'baselines/lean-long-poll-server.ts'),
    startChild('bare dispatcher', 'baselines/bare-dispatcher.ts'),
    startChild('bare dispatcher (real agent)', 'baselines/bare-dispatcher.ts'),
    startChild('ws echo server', 'baselines/ws-echo-server.ts'),
  ]);
  const serverUrl = server.info.url as string;
  const startAgent = (url: string) =>
    startCli(['agent', '--server', url.replace(/^http/, 'ws'), '--suite', SUITE, '--name', POOL, '--concurrency', String(opts.agentConcurrency), '--allow-host', '127.0.0.1'], { FLOWTEST_TOKEN: TOKENS.worker });
  const agent = startAgent(serverUrl);
  const bareAgent = startAgent(bareForAgent.info.url as string);
  const workerConfig = (s: BenchChild) => ({ config: { server: s.info.url, concurrency: opts.agentConcurrency } });
  const [lpAgent, leanAgent, bareWorker, consoleObserver] = await Promise.all([
    startChild('long-poll agent', 'baselines/long-poll-agent.ts', workerConfig(lpServer)),
    startChild('lean long-poll agent', 'baselines/lean-long-poll-agent.ts', workerConfig(leanServer)),
    startChild('bare worker', 'baselines/bare-worker.ts', workerConfig(bare)),
    startChild('console observer', 'procs/console-observer.ts', { config: { server: serverUrl } }),
  ]);
  try {
    await waitFor('the flowtest agent to connect', async () => (await server.call<number>('workers')) === 1);
    await waitFor('the real agent to connect to the bare dispatcher', async () => (await bareForAgent.call<number>('workers')) === 1);
    await waitFor('the bare worker to connect', async () => (await bare.call<number>('workers')) === 1);

    // Frame sizes of a real job, so the echo baseline moves as many bytes.
    const request = { method: 'GET', url: targetUrl };
    const sample = await clientDispatch({ server: serverUrl, token: TOKENS.client, suite: SUITE, body: { pool: POOL, timeoutMs: 30_000, request } });
    const frameBytes = {
      job: Buffer.byteLength(encodeFrame({ type: 'job', id: sample.id, timeoutMs: 30_000, request })),
      result: Buffer.byteLength(encodeFrame({ type: 'result', id: sample.id, response: sample.response })),
    };

    const body = JSON.stringify({ pool: POOL, timeoutMs: 30_000, request });
    const auth = { authorization: `Bearer ${TOKENS.client}` };
    const dispatchAt = (s: BenchChild): string => `${s.info.url as string}/v1/suites/${SUITE}/dispatch`;
    const specOf = (mode: Mode, concurrency: number): LoadSpec => {
      switch (mode) {
        case 'flowtest':
          return { mode: 'http', method: 'POST', url: dispatchAt(server), headers: auth, body, concurrency };
        case 'long-poll':
          return { mode: 'http', method: 'POST', url: dispatchAt(lpServer), headers: auth, body, concurrency };
        case 'lean-long-poll':
          return { mode: 'http', method: 'POST', url: dispatchAt(leanServer), headers: auth, body, concurrency };
        case 'bare-pipeline':
          return { mode: 'http', method: 'POST', url: dispatchAt(bare), headers: auth, body, concurrency };
        case 'bare-dispatcher':
          return { mode: 'http', method: 'POST', url: dispatchAt(bareForAgent), headers: auth, body, concurrency };
        case 'direct':
          return { mode: 'http', method: 'GET', url: targetUrl, concurrency };
        case 'ws-echo':
          return { mode: 'ws-echo', url: echo.info.url as string, messageBytes: frameBytes.result, concurrency };
      }
    };
    const clocks: Record<Mode, Clocks> = {
      flowtest: { server, agent: async () => procCpuUs(agent.pid), target },
      'bare-pipeline': { server: bare, agent: () => cpuOf(bareWorker), target },
      'bare-dispatcher': { server: bareForAgent, agent: async () => procCpuUs(bareAgent.pid), target },
      'lean-long-poll': { server: leanServer, agent: () => cpuOf(leanAgent), target },
      'long-poll': { server: lpServer, agent: () => cpuOf(lpAgent), target },
      direct: { server: null, agent: null, target },
      'ws-echo': { server: echo, agent: null, target },
    };
    const noServer = { cpuUs: 0, cpuSysUs: 0 };
    const readAll = async (c: Clocks): Promise<number[]> => {
      const [s, a, t] = await Promise.all([c.server?.call<ProcessStats>('stats') ?? noServer, c.agent?.() ?? 0, cpuOf(c.target)]);
      return [s.cpuUs, s.cpuSysUs, a, t];
    };

    const problems: string[] = [];
    const runCell = async (mode: Mode, concurrency: number, warmupMs: number, windowMs: number): Promise<Cell> => {
      await loadgen.call('start', specOf(mode, concurrency));
      await sleep(warmupMs);
      const [before] = await Promise.all([readAll(clocks[mode]), loadgen.call('mark')]);
      await sleep(windowMs);
      const [after, load] = await Promise.all([readAll(clocks[mode]), loadgen.call<LoadResult>('finish')]);
      // A failed request is a finding, not a reason to stop: it is printed under the table.
      if (load.errors > 0) problems.push(`${LABELS[mode]} c=${concurrency}: ${load.errors} failed requests in the window, first: ${load.firstError}`);
      const per = (i: number) => (after[i] - before[i]) / load.count;
      return { jobsPerS: (load.count * 1000) / load.windowMs, p50Ms: load.p50Ms, p99Ms: load.p99Ms, serverUs: per(0), serverSysUs: per(1), agentUs: per(2), targetUs: per(3) };
    };

    // JIT warm-up of every path before anything is recorded.
    for (const mode of MODES) await runCell(mode, 16, 200, 400);

    const runs: Record<number, Record<Mode, Cell[]>> = {};
    for (const c of opts.concurrencies) runs[c] = Object.fromEntries(MODES.map((m) => [m, []])) as unknown as Record<Mode, Cell[]>;
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const c of opts.concurrencies) {
        // Rotate the order each repetition so no mode always runs first or last.
        for (let k = 0; k < MODES.length; k++) {
          const mode = MODES[(k + rep) % MODES.length];
          runs[c][mode].push(await runCell(mode, c, opts.warmupMs, opts.windowMs));
        }
      }
    }

    const cells: DispatchReport['cells'] = {};
    for (const c of opts.concurrencies) {
      cells[c] = {} as Record<Mode, CellSummary>;
      for (const mode of MODES) {
        const list = runs[c][mode];
        cells[c][mode] = Object.fromEntries((Object.keys(list[0]) as (keyof Cell)[]).map((k) => [k, summarize(list.map((x) => x[k]))])) as CellSummary;
      }
    }
    const seen = await consoleObserver.call<{ open: boolean; messages: number; jobRows: number }>('status');
    if (!seen.open || seen.jobRows === 0) problems.push(`the console observer ${seen.open ? 'saw no job rows' : 'was disconnected'} (${seen.messages} messages)`);
    const observer = `A debug console stayed open on the flowtest server throughout (bench/procs/console-observer.ts): it received ${seen.messages.toLocaleString('en-US')} messages carrying ${seen.jobRows.toLocaleString('en-US')} job rows.`;
    const failures = problems.length > 0 ? `\n\nProblems:\n${problems.map((p) => `- ${p}`).join('\n')}` : '';
    return { text: `${render(cells, opts, frameBytes)}\n\n${observer}${failures}`, cells, frameBytes };
  } finally {
    await Promise.all([agent.kill(), bareAgent.kill()]);
    await Promise.all([lpAgent.stop(), leanAgent.stop(), bareWorker.stop(), consoleObserver.stop()]);
    await Promise.all([server.stop(), lpServer.stop(), leanServer.stop(), bare.stop(), bareForAgent.stop(), echo.stop()]);
  }
}

function render(cells: DispatchReport['cells'], opts: DispatchOptions, frameBytes: { job: number; result: number }): string {
  const rows: string[][] = [];
  for (const c of opts.concurrencies) {
    for (const mode of MODES) {
      const s = cells[c][mode];
      rows.push([
        String(c),
        LABELS[mode],
        med(s.jobsPerS, 0),
        med(s.p50Ms, 2),
        med(s.p99Ms, 2),
        mode === 'direct' ? '–' : med(s.serverUs, 0),
        mode === 'direct' ? '–' : num(s.serverSysUs.median, 0),
        HAS_AGENT[mode] ? med(s.agentUs, 0) : '–',
        mode === 'ws-echo' ? '–' : med(s.targetUs, 0),
      ]);
    }
  }
  const main = table(['c', 'mode', 'jobs/s', 'p50 ms', 'p99 ms', 'server CPU µs/job', '… in kernel', 'agent CPU µs/job', 'target CPU µs/req'], rows);

  // Per-run ratios of interleaved runs, then median and range.
  const r = (c: number, a: Mode, b: Mode, k: keyof Cell) => pairedRatio(cells[c][a][k], cells[c][b][k]);
  // Server + agent CPU per job: on 2 shared cores it bounds throughput, and it moves less with outside load than jobs/s.
  const pipeUs = (c: number, m: Mode) => cells[c][m].serverUs.runs.map((x, i) => x + cells[c][m].agentUs.runs[i]);
  const pipeRatio = (c: number, a: Mode, b: Mode) => summarize(pipeUs(c, a).map((x, i) => x / pipeUs(c, b)[i]));
  const ratioRows = opts.concurrencies.map((c) => [
    String(c),
    ratio(r(c, 'flowtest', 'bare-pipeline', 'jobsPerS')),
    ratio(r(c, 'flowtest', 'lean-long-poll', 'jobsPerS')),
    ratio(r(c, 'flowtest', 'bare-pipeline', 'p50Ms')),
    ratio(r(c, 'flowtest', 'bare-pipeline', 'serverUs')),
    ratio(r(c, 'flowtest', 'bare-pipeline', 'agentUs')),
    ratio(pipeRatio(c, 'flowtest', 'bare-pipeline')),
    ratio(pipeRatio(c, 'flowtest', 'lean-long-poll')),
    ratio(r(c, 'bare-dispatcher', 'bare-pipeline', 'jobsPerS')),
    ratio(r(c, 'long-poll', 'lean-long-poll', 'jobsPerS')),
    ratio(r(c, 'flowtest', 'long-poll', 'jobsPerS')),
  ]);
  const ratios = table(
    [
      'c',
      'jobs/s vs bare pipeline',
      'jobs/s vs lean long-poll',
      'p50 vs bare pipeline',
      'server CPU/job vs bare dispatcher',
      'agent CPU/job vs bare worker',
      'server+agent CPU/job vs bare pipeline',
      'server+agent CPU/job vs lean long-poll',
      'real agent: bare disp.+agent vs bare pipeline jobs/s',
      'product parts: long-poll vs lean long-poll jobs/s',
      'jobs/s vs long-poll (product parts)',
    ],
    ratioRows,
  );

  // The targets of issue 8, each from the medians of the per-run ratios.
  const targets: string[][] = [];
  const atLeast = (what: string, s: Summary, goal: number) =>
    targets.push([what, ratio(s), s.median >= goal ? 'met' : `NOT met: must rise ${num(100 * (goal / s.median - 1), 1)}% to reach it`]);
  const atMost = (what: string, s: Summary, goal: number) =>
    targets.push([what, ratio(s), s.median <= goal ? 'met' : `NOT met: must fall ${num(100 * (1 - goal / s.median), 1)}% to reach it`]);
  const has = (c: number) => opts.concurrencies.includes(c);
  for (const c of [16, 64].filter(has)) atLeast(`throughput ≥ 0.8× bare pipeline at c=${c}`, r(c, 'flowtest', 'bare-pipeline', 'jobsPerS'), 0.8);
  for (const c of [16, 64].filter(has)) atLeast(`throughput ≥ 1.3× lean long-poll at c=${c}`, r(c, 'flowtest', 'lean-long-poll', 'jobsPerS'), 1.3);
  if (has(1)) atMost('p50 at c=1 ≤ 1.3× bare pipeline', r(1, 'flowtest', 'bare-pipeline', 'p50Ms'), 1.3);
  for (const c of opts.concurrencies) atMost(`server CPU/job ≤ 1.3× bare dispatcher at c=${c}`, r(c, 'flowtest', 'bare-pipeline', 'serverUs'), 1.3);
  for (const c of opts.concurrencies) atMost(`agent CPU/job ≤ 1.3× bare worker at c=${c}`, r(c, 'flowtest', 'bare-pipeline', 'agentUs'), 1.3);

  return [
    `Median (min–max) of ${opts.reps} interleaved runs of ${opts.windowMs} ms each after ${opts.warmupMs} ms warm-up; one worker with ${opts.agentConcurrency} slots; a 55-byte JSON target.`,
    `Job frame ${frameBytes.job} B, result frame ${frameBytes.result} B; the echo baseline sends ${frameBytes.result} B each way.`,
    'Server CPU of "bare pipeline" is the bare dispatcher\'s, its agent CPU the bare worker\'s; of the long-poll modes, their server\'s and their worker\'s.',
    '',
    main,
    '',
    'Ratios (per run, then median and range):',
    '',
    ratios,
    '',
    'Targets (issue 8: every contract feature on, against the baselines of the same run):',
    '',
    table(['target', 'measured', 'verdict'], targets),
  ].join('\n');
}
