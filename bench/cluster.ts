/**
 * Measurement 5 — the cluster hop. Two nodes on one private nats-server (Debian's binary),
 * one real agent on node B; in the same run, dispatches sent to B (the worker is on that
 * node: the one-node path) and to A (every job crosses A → NATS → B → NATS → A):
 *   p50 overhead of the hop at c=1 (target ≤ 0.3 ms), throughput at c=16/64 (target ≥ 0.6×
 *   one node: the hop costs a NATS round trip and both nodes' CPU on the same 2 cores);
 *   worker-loss fail-fast across nodes: the agent on B killed with N jobs in flight from A,
 *   kill → last CI client at A answered (contract: 100 ms);
 *   node death: node B killed with N jobs in flight from A, kill → last answer at A
 *   (contract: 3 s) and kill → B's worker gone from A's listing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { nowMs, sleep, startChild, startCli, waitFor, type BenchChild, type CliProcess } from './harness/processes.ts';
import { med, num, pairedRatio, ratio, summarize, table, verdict, type Summary } from './harness/stats.ts';
import { POOL, SUITE, TOKENS } from './harness/tokens.ts';
import type { ProcessStats } from './harness/child.ts';
import type { BurstAnswer, LoadResult } from './procs/load-generator.ts';

export interface ClusterOptions {
  concurrencies: number[];
  reps: number;
  warmupMs: number;
  windowMs: number;
  agentConcurrency: number;
  jobsInFlight: number;
}

type Mode = 'one node' | 'cross-node';
const MODES: Mode[] = ['one node', 'cross-node'];

interface Cell {
  jobsPerS: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU µs per job of node A and node B together. */
  nodesUs: number;
}

const NATS_BIN = process.env.FLOWTEST_NATS_SERVER ?? '/usr/sbin/nats-server';

async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

export async function measureCluster(env: { target: BenchChild; loadgen: BenchChild }, opts: ClusterOptions): Promise<{ text: string }> {
  const { target, loadgen } = env;
  const port = await freePort();
  const nats: ChildProcess = spawn(NATS_BIN, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const killNats = () => void nats.kill('SIGKILL');
  process.once('exit', killNats);
  const natsUrl = `nats://127.0.0.1:${port}`;
  const startNode = (id: string) => startChild(`cluster node ${id}`, 'procs/flowtest-server.ts', { config: { nats: natsUrl, nodeId: id } });
  let a: BenchChild | null = null;
  let b: BenchChild | null = null;
  let agent: CliProcess | null = null;
  const startAgent = (node: BenchChild, concurrency: number) =>
    startCli(['agent', '--server', (node.info.url as string).replace(/^http/, 'ws'), '--suite', SUITE, '--name', POOL, '--concurrency', String(concurrency), '--allow-host', '127.0.0.1'], {
      FLOWTEST_TOKEN: TOKENS.worker,
    });
  const listedAt = async (node: BenchChild): Promise<number> => {
    const res = await fetch(`${node.info.url as string}/v1/suites/${SUITE}/workers`, { headers: { authorization: `Bearer ${TOKENS.client}` } });
    return ((await res.json()) as { workers: unknown[] }).workers.length;
  };
  try {
    await waitFor('nats-server', async () => {
      try {
        await fetch(`http://127.0.0.1:${port}`);
      } catch (err) {
        return !/ECONNREFUSED/.test(String((err as { cause?: unknown }).cause ?? err));
      }
      return true;
    });
    a = await startNode('bench-a');
    b = await startNode('bench-b');
    agent = startAgent(b, opts.agentConcurrency);
    const nodeA = a;
    // Replaced by a fresh process after each node-death run; every closure reads the current one.
    let nodeB = b;
    await waitFor('the agent listed at node A', async () => (await listedAt(nodeA)) === 1, 20_000, 50);

    const request = { method: 'GET', url: `${target.info.url as string}/item` };
    const body = JSON.stringify({ pool: POOL, timeoutMs: 30_000, request });
    const auth = { authorization: `Bearer ${TOKENS.client}` };
    const urlOf = (mode: Mode) => `${(mode === 'one node' ? nodeB : nodeA).info.url as string}/v1/suites/${SUITE}/dispatch`;
    // Until A has heard B's pool, a dispatch at A is no_worker: wait for one that works.
    await waitFor('a cross-node dispatch', async () => (await fetch(urlOf('cross-node'), { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body })).ok, 10_000, 50);

    const cpu = async () => (await Promise.all([nodeA.call<ProcessStats>('stats'), nodeB.call<ProcessStats>('stats')])).reduce((s, x) => s + x.cpuUs, 0);
    const problems: string[] = [];
    const runCell = async (mode: Mode, concurrency: number, warmupMs: number, windowMs: number): Promise<Cell> => {
      await loadgen.call('start', { mode: 'http', method: 'POST', url: urlOf(mode), headers: auth, body, concurrency });
      await sleep(warmupMs);
      const [before] = await Promise.all([cpu(), loadgen.call('mark')]);
      await sleep(windowMs);
      const [after, load] = await Promise.all([cpu(), loadgen.call<LoadResult>('finish')]);
      if (load.errors > 0) problems.push(`${mode} c=${concurrency}: ${load.errors} failed requests, first: ${load.firstError}`);
      return { jobsPerS: (load.count * 1000) / load.windowMs, p50Ms: load.p50Ms, p99Ms: load.p99Ms, nodesUs: (after - before) / load.count };
    };
    for (const mode of MODES) await runCell(mode, 16, 200, 400);
    const runs: Record<number, Record<Mode, Cell[]>> = {};
    for (const c of opts.concurrencies) runs[c] = { 'one node': [], 'cross-node': [] };
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const c of opts.concurrencies) {
        for (let k = 0; k < MODES.length; k++) {
          const mode = MODES[(k + rep) % MODES.length];
          runs[c][mode].push(await runCell(mode, c, opts.warmupMs, opts.windowMs));
        }
      }
    }
    const cells: Record<number, Record<Mode, Record<keyof Cell, Summary>>> = {};
    for (const c of opts.concurrencies) {
      cells[c] = {} as Record<Mode, Record<keyof Cell, Summary>>;
      for (const mode of MODES) {
        const list = runs[c][mode];
        cells[c][mode] = Object.fromEntries((Object.keys(list[0]) as (keyof Cell)[]).map((k) => [k, summarize(list.map((x) => x[k]))])) as Record<keyof Cell, Summary>;
      }
    }

    // ---- failures ----
    const burstAtA = (n: number) =>
      loadgen.call<BurstAnswer[]>('burst', {
        url: urlOf('cross-node'),
        headers: auth,
        body: JSON.stringify({ pool: POOL, timeoutMs: 60_000, request: { method: 'GET', url: `${target.info.url as string}/hang` } }),
        n,
      });
    /** Waits until every job of a burst is held at the target; fails with their answers if they came back instead. */
    const atTarget = async (answers: Promise<BurstAnswer[]>) => {
      let early: BurstAnswer[] | null = null;
      void answers.then((x) => (early = x));
      await waitFor('jobs at the target', async () => {
        if (early) throw new Error(`the burst was answered before reaching the target: ${[...new Set(early.map((x) => `${x.status} ${x.code}`))].join(', ')}`);
        return (await target.call<number>('held')) === opts.jobsInFlight;
      }, 10_000, 2);
    };
    const workerLoss: number[] = [];
    /** Kill → node B decides the worker is gone (its registry's onGone, stamped inside B). */
    const bNotices: number[] = [];
    const goneAt: number[] = [];
    const watchGone = (node: BenchChild) => node.onEvent((event, data: { atMs: number }) => {
      if (event === 'gone') goneAt.push(data.atMs);
    });
    watchGone(nodeB);
    const nodeDeath: number[] = [];
    const listingGone: number[] = [];
    const codes = new Set<string>();
    for (let rep = 0; rep < opts.reps; rep++) {
      // The agent on B killed while A waits on its jobs.
      {
        const answers = burstAtA(opts.jobsInFlight);
        await atTarget(answers);
        await sleep(50);
        const killedAt = nowMs();
        agent!.signal('SIGKILL');
        const answered = await answers;
        workerLoss.push(Math.max(...answered.map((x) => x.atMs)) - killedAt);
        const noticed = goneAt.find((g) => g >= killedAt);
        if (noticed !== undefined) bNotices.push(noticed - killedAt);
        for (const x of answered) codes.add(`worker killed: ${x.status} ${x.code}`);
        await agent!.exited;
        await target.call('release');
      }
      // Node B killed while A waits on jobs B holds; then a fresh B (same id) and agent.
      {
        agent = startAgent(nodeB, opts.agentConcurrency);
        await waitFor('the agent listed at node A', async () => (await listedAt(nodeA)) === 1, 20_000, 20);
        await waitFor('a cross-node dispatch', async () => (await fetch(urlOf('cross-node'), { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body })).ok, 10_000, 50);
        const answers = burstAtA(opts.jobsInFlight);
        await atTarget(answers);
        await sleep(50);
        const killedAt = nowMs();
        nodeB.process.kill('SIGKILL');
        const gone = waitFor('B worker gone at A', async () => (await listedAt(nodeA)) === 0, 10_000, 10).then(() => nowMs());
        const answered = await answers;
        nodeDeath.push(Math.max(...answered.map((x) => x.atMs)) - killedAt);
        listingGone.push((await gone) - killedAt);
        for (const x of answered) codes.add(`node killed: ${x.status} ${x.code}`);
        await agent.kill();
        await nodeB.exited;
        await target.call('release');
        b = await startNode('bench-b');
        nodeB = b;
        watchGone(nodeB);
        agent = startAgent(nodeB, opts.agentConcurrency);
        await waitFor('the agent listed at node A', async () => (await listedAt(nodeA)) === 1, 20_000, 20);
        await waitFor('a cross-node dispatch', async () => (await fetch(urlOf('cross-node'), { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body })).ok, 10_000, 50);
      }
    }

    const rows: string[][] = [];
    for (const c of opts.concurrencies) {
      for (const mode of MODES) {
        const s = cells[c][mode];
        rows.push([String(c), mode, med(s.jobsPerS, 0), med(s.p50Ms, 2), med(s.p99Ms, 2), med(s.nodesUs, 0)]);
      }
    }
    const c1 = opts.concurrencies.includes(1) ? cells[1] : null;
    const overhead = c1 ? summarize(c1['cross-node'].p50Ms.runs.map((x, i) => x - (c1['one node'].p50Ms.runs[i] ?? x))) : null;
    const targets: string[][] = [];
    if (overhead) targets.push(['p50 overhead of the hop at c=1', med(overhead, 3, ' ms'), `≤ 0.3 ms: ${verdict(overhead.median <= 0.3)}`]);
    for (const c of opts.concurrencies.filter((x) => x >= 16)) {
      const r = pairedRatio(cells[c]['cross-node'].jobsPerS, cells[c]['one node'].jobsPerS);
      targets.push([`throughput cross-node / one node, c=${c}`, ratio(r), `≥ 0.6×: ${verdict(r.median >= 0.6)}`]);
    }
    const wl = summarize(workerLoss);
    const nd = summarize(nodeDeath);
    const lg = summarize(listingGone);
    targets.push([`agent on B killed, ${opts.jobsInFlight} jobs from A in flight: kill → last answer at A`, med(wl, 1, ' ms'), `≤ 100 ms: ${verdict(wl.max <= 100)}`]);
    if (bNotices.length > 0) targets.push(['… of which kill → node B notices the worker gone', med(summarize(bNotices), 1, ' ms'), '']);
    targets.push([`node B killed, ${opts.jobsInFlight} jobs from A in flight: kill → last answer at A`, med(nd, 0, ' ms'), `≤ 3 s: ${verdict(nd.max <= 3000)}`]);
    targets.push(['node B killed: kill → its worker gone from A\'s listing', med(lg, 0, ' ms'), `≤ 3 s: ${verdict(lg.max <= 3000)}`]);
    const failures = problems.length > 0 ? `\n\nFailed requests:\n${problems.map((p) => `- ${p}`).join('\n')}` : '';
    return {
      text: [
        `Two nodes on one nats-server (${NATS_BIN}, default settings), one agent (concurrency ${opts.agentConcurrency}) on node B. "one node": dispatches sent to B; "cross-node": sent to A, so each job crosses A → NATS → B and back. Median (min–max) of ${opts.reps} interleaved runs of ${opts.windowMs} ms; "nodes CPU" is A and B together.`,
        '',
        table(['c', 'mode', 'jobs/s', 'p50 ms', 'p99 ms', 'nodes CPU µs/job'], rows),
        '',
        table(['what', 'value', 'target'], targets),
        '',
        `Answers seen: ${[...codes].join(', ')}.${failures}`,
      ].join('\n'),
    };
  } finally {
    await agent?.kill();
    await Promise.all([a?.stop(), b?.stop()]);
    nats.kill('SIGKILL');
    process.off('exit', killNats);
  }
}
