/**
 * Measurement 1 — dispatch throughput, latency and CPU per job at concurrency 1, 16, 64
 * through one agent, interleaved run by run with three baselines:
 *   direct     the load generator calls the target itself;
 *   long-poll  the old design (bench/baselines/long-poll-*), same API, its own processes;
 *   ws echo    one message each way over a bare ws socket, the size of a result frame;
 * and a floor: a bare hand-written dispatcher (bench/baselines/bare-dispatcher.ts) that
 * drives the same real agent with no validation, auth, deadlines, metrics or logging.
 */
import { dispatch as clientDispatch } from '../client/client.ts';
import { encodeFrame } from '../shared/codec.ts';
import { procCpuUs, sleep, startChild, startCli, waitFor, type BenchChild } from './harness/processes.ts';
import { med, num, pairedRatio, ratio, summarize, table, verdict, type Summary } from './harness/stats.ts';
import { POOL, SUITE, TOKENS } from './harness/tokens.ts';
import type { ProcessStats } from './harness/child.ts';
import type { LoadResult, LoadSpec } from './procs/load-generator.ts';

export interface DispatchOptions {
  concurrencies: number[];
  reps: number;
  warmupMs: number;
  windowMs: number;
  /** Slots of the one agent (and of the long-poll agent's pollers). */
  agentConcurrency: number;
}

type Mode = 'flowtest' | 'long-poll' | 'bare' | 'direct' | 'ws-echo';
const MODES: Mode[] = ['flowtest', 'long-poll', 'bare', 'direct', 'ws-echo'];
const LABELS: Record<Mode, string> = { flowtest: 'flowtest', 'long-poll': 'long-poll', bare: 'bare ws dispatcher', direct: 'direct', 'ws-echo': 'ws echo (per msg)' };

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

  const [server, lpServer, bare, echo] = await Promise.all([
    startChild('flowtest server', 'procs/flowtest-server.ts'),
    startChild('long-poll server', 'baselines/long-poll-server.ts'),
    startChild('bare dispatcher', 'baselines/bare-dispatcher.ts'),
    startChild('ws echo server', 'baselines/ws-echo-server.ts'),
  ]);
  const serverUrl = server.info.url as string;
  const startAgent = (url: string) =>
    startCli(['agent', '--server', url.replace(/^http/, 'ws'), '--suite', SUITE, '--name', POOL, '--concurrency', String(opts.agentConcurrency)], { FLOWTEST_TOKEN: TOKENS.worker });
  const agent = startAgent(serverUrl);
  const bareAgent = startAgent(bare.info.url as string);
  const lpAgent = await startChild('long-poll agent', 'baselines/long-poll-agent.ts', { config: { server: lpServer.info.url, concurrency: opts.agentConcurrency } });
  try {
    await waitFor('the flowtest agent to connect', async () => (await server.call<number>('workers')) === 1);
    await waitFor('the bare dispatcher agent to connect', async () => (await bare.call<number>('workers')) === 1);

    // Frame sizes of a real job, so the echo baseline moves as many bytes.
    const request = { method: 'GET', url: targetUrl };
    const sample = await clientDispatch({ server: serverUrl, token: TOKENS.client, suite: SUITE, body: { pool: POOL, timeoutMs: 30_000, request } });
    const frameBytes = {
      job: Buffer.byteLength(encodeFrame({ type: 'job', id: sample.id, timeoutMs: 30_000, request })),
      result: Buffer.byteLength(encodeFrame({ type: 'result', id: sample.id, response: sample.response })),
    };

    const body = JSON.stringify({ pool: POOL, timeoutMs: 30_000, request });
    const auth = { authorization: `Bearer ${TOKENS.client}` };
    const specOf = (mode: Mode, concurrency: number): LoadSpec => {
      switch (mode) {
        case 'flowtest':
          return { mode: 'http', method: 'POST', url: `${serverUrl}/v1/suites/${SUITE}/dispatch`, headers: auth, body, concurrency };
        case 'long-poll':
          return { mode: 'http', method: 'POST', url: `${lpServer.info.url as string}/v1/suites/${SUITE}/dispatch`, headers: auth, body, concurrency };
        case 'bare':
          return { mode: 'http', method: 'POST', url: `${bare.info.url as string}/v1/suites/${SUITE}/dispatch`, headers: auth, body, concurrency };
        case 'direct':
          return { mode: 'http', method: 'GET', url: targetUrl, concurrency };
        case 'ws-echo':
          return { mode: 'ws-echo', url: echo.info.url as string, messageBytes: frameBytes.result, concurrency };
      }
    };
    const clocks: Record<Mode, Clocks> = {
      flowtest: { server, agent: async () => procCpuUs(agent.pid), target },
      'long-poll': { server: lpServer, agent: () => cpuOf(lpAgent), target },
      bare: { server: bare, agent: async () => procCpuUs(bareAgent.pid), target },
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
    for (const c of opts.concurrencies) runs[c] = { flowtest: [], 'long-poll': [], bare: [], direct: [], 'ws-echo': [] };
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
    const failures = problems.length > 0 ? `\n\nFailed requests:\n${problems.map((p) => `- ${p}`).join('\n')}` : '';
    return { text: render(cells, opts, frameBytes) + failures, cells, frameBytes };
  } finally {
    await Promise.all([agent.kill(), bareAgent.kill()]);
    await Promise.all([lpAgent.stop(), server.stop(), lpServer.stop(), bare.stop(), echo.stop()]);
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
        mode === 'direct' || mode === 'ws-echo' ? '–' : med(s.agentUs, 0),
        mode === 'ws-echo' ? '–' : med(s.targetUs, 0),
      ]);
    }
  }
  const main = table(['c', 'mode', 'jobs/s', 'p50 ms', 'p99 ms', 'server CPU µs/job', '… in kernel', 'agent CPU µs/job', 'target CPU µs/req'], rows);

  const ratioRows: string[][] = [];
  for (const c of opts.concurrencies) {
    const ft = cells[c].flowtest;
    const lp = cells[c]['long-poll'];
    ratioRows.push([
      String(c),
      ratio(pairedRatio(ft.jobsPerS, lp.jobsPerS)),
      ratio(pairedRatio(ft.serverUs, lp.serverUs)),
      ratio(pairedRatio(ft.p50Ms, lp.p50Ms)),
      ratio(pairedRatio(ft.jobsPerS, cells[c].direct.jobsPerS)),
      ratio(pairedRatio(ft.serverUs, cells[c].bare.serverUs)),
      ratio(pairedRatio(ft.serverUs, cells[c]['ws-echo'].serverUs)),
    ]);
  }
  const ratios = table(
    ['c', 'jobs/s vs long-poll', 'server CPU/job vs long-poll', 'p50 vs long-poll', 'jobs/s vs direct', 'server CPU/job vs bare dispatcher', 'server CPU/job vs echo CPU/msg'],
    ratioRows,
  );

  const at = (c: number) => cells[c] ?? null;
  const targets: string[][] = [];
  for (const c of [16, 64]) {
    if (!at(c)) continue;
    const r = pairedRatio(at(c).flowtest.jobsPerS, at(c)['long-poll'].jobsPerS);
    targets.push([`throughput ≥ 1.5× long-poll at c=${c}`, `${num(r.median, 2)}×`, verdict(r.median >= 1.5)]);
  }
  for (const c of [16, 64]) {
    if (!at(c)) continue;
    const r = pairedRatio(at(c).flowtest.serverUs, at(c)['long-poll'].serverUs);
    targets.push([`server CPU/job ≤ 0.6× long-poll at c=${c}`, `${num(r.median, 2)}×`, verdict(r.median <= 0.6)]);
  }
  if (at(1)) {
    const ft = at(1).flowtest.p50Ms.median;
    const lp = at(1)['long-poll'].p50Ms.median;
    targets.push(['p50 at c=1 below long-poll', `${num(ft, 3)} ms vs ${num(lp, 3)} ms`, verdict(ft < lp)]);
  }
  if (at(16)) {
    const us = at(16).flowtest.serverUs.median;
    const x = at(16);
    targets.push([
      'server CPU/job at c=16 ≤ 80 µs',
      `${num(us, 0)} µs (bare dispatcher ${num(x.bare.serverUs.median, 0)} µs, echo ${num(x['ws-echo'].serverUs.median, 0)} µs/msg, target ${num(x.flowtest.targetUs.median, 0)} µs/req)`,
      verdict(us <= 80),
    ]);
  }

  return [
    `Median (min–max) of ${opts.reps} interleaved runs of ${opts.windowMs} ms each after ${opts.warmupMs} ms warm-up; one agent with ${opts.agentConcurrency} slots.`,
    `Job frame ${frameBytes.job} B, result frame ${frameBytes.result} B; the echo baseline sends ${frameBytes.result} B each way.`,
    '',
    main,
    '',
    'Ratios (per run, then median and range):',
    '',
    ratios,
    '',
    table(['target', 'measured', 'verdict'], targets),
  ].join('\n');
}
