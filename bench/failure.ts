/**
 * Measurement 3 — failure timing with a real agent process:
 *   kill -9 with 50 jobs in flight: from the server noticing the socket is gone (the entry
 *     of its onGone, stamped inside the server) to the last of the 50 CI clients answered,
 *     and from the kill itself;
 *   SIGSTOP with one job in flight: from the stop to the server's heartbeat giving up,
 *     against the heartbeat interval (the contract allows up to 2×).
 * All stamps are CLOCK_MONOTONIC, shared by every process on the machine.
 */
import { nowMs, sleep, startChild, startCli, waitFor, type BenchChild, type CliProcess } from './harness/processes.ts';
import { med, num, summarize, table, verdict } from './harness/stats.ts';
import { POOL, SUITE, TOKENS } from './harness/tokens.ts';
import type { BurstAnswer } from './procs/load-generator.ts';

export interface FailureOptions {
  reps: number;
  jobsInFlight: number;
  heartbeatMs: number;
}

interface Gone {
  atMs: number;
  returnedMs: number;
  reason: string;
  failedJobs: number;
}

export interface FailureReport {
  text: string;
}

export async function measureFailure(env: { target: BenchChild; loadgen: BenchChild }, opts: FailureOptions): Promise<FailureReport> {
  const { target, loadgen } = env;
  const server = await startChild('flowtest server (failure)', 'procs/flowtest-server.ts', { config: { heartbeatMs: opts.heartbeatMs } });
  const gone: Gone[] = [];
  server.onEvent((event, data: Gone) => {
    if (event === 'gone') gone.push(data);
  });
  const serverUrl = server.info.url as string;
  const burst = (n: number) =>
    loadgen.call<BurstAnswer[]>('burst', {
      url: `${serverUrl}/v1/suites/${SUITE}/dispatch`,
      headers: { authorization: `Bearer ${TOKENS.client}` },
      body: JSON.stringify({ pool: POOL, timeoutMs: 60_000, request: { method: 'GET', url: `${target.info.url as string}/hang` } }),
      n,
    });
  const startAgent = async (): Promise<CliProcess> => {
    const agent = startCli(['agent', '--server', serverUrl.replace(/^http/, 'ws'), '--suite', SUITE, '--name', POOL, '--concurrency', String(opts.jobsInFlight), '--allow-host', '127.0.0.1'], {
      FLOWTEST_TOKEN: TOKENS.worker,
    });
    await waitFor('the agent to connect', async () => (await server.call<number>('workers')) === 1);
    return agent;
  };
  const goneAfter = async (t: number): Promise<Gone> => {
    await waitFor('the server to drop the worker', () => gone.some((g) => g.atMs >= t), 10_000, 1);
    return gone.find((g) => g.atMs >= t)!;
  };

  const kill = {
    noticeToLast: [] as number[],
    noticeToFirst: [] as number[],
    noticeToReturned: [] as number[],
    killToNotice: [] as number[],
    killToLast: [] as number[],
    codes: new Set<string>(),
  };
  const stop = { detect: [] as number[], answer: [] as number[], reasons: new Set<string>() };
  try {
    for (let rep = 0; rep < opts.reps; rep++) {
      // kill -9 with N jobs held by the agent (each waiting at the target).
      {
        const agent = await startAgent();
        const answers = burst(opts.jobsInFlight);
        await waitFor(`${opts.jobsInFlight} requests at the target`, async () => (await target.call<number>('held')) === opts.jobsInFlight, 10_000, 2);
        await sleep(50); // let the agent's sockets settle: nothing else in flight
        const killedAt = nowMs();
        agent.signal('SIGKILL');
        const answered = await answers;
        const g = await goneAfter(killedAt);
        const last = Math.max(...answered.map((a) => a.atMs));
        kill.noticeToLast.push(last - g.atMs);
        kill.noticeToFirst.push(Math.min(...answered.map((a) => a.atMs)) - g.atMs);
        kill.noticeToReturned.push(g.returnedMs - g.atMs);
        kill.killToNotice.push(g.atMs - killedAt);
        kill.killToLast.push(last - killedAt);
        for (const a of answered) kill.codes.add(`${a.status} ${a.code}`);
        await agent.exited;
        await target.call('release');
      }
      // SIGSTOP with one job held: only the heartbeat can tell.
      {
        const agent = await startAgent();
        const answer = burst(1);
        await waitFor('the request at the target', async () => (await target.call<number>('held')) === 1, 10_000, 2);
        // Stop at a random point of the heartbeat cycle: detection then spans (1×, 2×] of the interval.
        await sleep(Math.random() * opts.heartbeatMs);
        const stoppedAt = nowMs();
        agent.signal('SIGSTOP');
        const [answered] = await answer;
        const g = await goneAfter(stoppedAt);
        stop.detect.push(g.atMs - stoppedAt);
        stop.answer.push(answered.atMs - stoppedAt);
        stop.reasons.add(`${answered.status} ${answered.code}: ${g.reason}`);
        await agent.kill();
        await target.call('release');
      }
    }
  } finally {
    await server.stop();
  }

  const noticeToLast = summarize(kill.noticeToLast);
  const detect = summarize(stop.detect);
  const worstDetect = detect.max / opts.heartbeatMs;
  const rows = [
    [`kill -9, ${opts.jobsInFlight} jobs in flight: server notices → last CI client answered`, med(noticeToLast, 2, ' ms'), `≤ 10 ms: ${verdict(noticeToLast.median <= 10)}`],
    ['… of which the server failing all 50 jobs (onGone returns)', med(summarize(kill.noticeToReturned), 2, ' ms'), ''],
    ['… server notices → first CI client answered', med(summarize(kill.noticeToFirst), 2, ' ms'), ''],
    ['kill -9: kill → server notices', med(summarize(kill.killToNotice), 2, ' ms'), ''],
    ['kill -9: kill → last CI client answered', med(summarize(kill.killToLast), 2, ' ms'), ''],
    [`SIGSTOP: stop → server drops the worker (heartbeat ${opts.heartbeatMs} ms)`, med(detect, 0, ' ms'), `≤ 2× interval: ${verdict(worstDetect <= 2)} (worst ${num(worstDetect, 2)}×)`],
    ['SIGSTOP: stop → the CI client answered', med(summarize(stop.answer), 0, ' ms'), ''],
  ];
  return {
    text: [
      `Median (min–max) of ${opts.reps} runs each, kill and stop runs interleaved, a fresh agent process each run; heartbeat ${opts.heartbeatMs} ms (the default 15 s scales the SIGSTOP figures, not the kill ones).`,
      '',
      table(['what', 'time', 'target'], rows),
      '',
      `Answers seen: kill -9 → ${[...kill.codes].join(', ')}; SIGSTOP → ${[...stop.reasons].join('; ')}.`,
    ].join('\n'),
  };
}
