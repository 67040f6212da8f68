/**
 * CPU per job of the agent's job runner, measured in this process against a target in a
 * child process (so the target's CPU is not counted): the undici runner (TargetJob, as
 * the agent drives it) against a node:http runner given as a module path (the previous
 * worker-agent/job-runner.ts, e.g. extracted with `git show`). Interleaved repetitions,
 * medians printed.
 *
 *   git show 92c3c03:worker-agent/job-runner.ts > worker-agent/legacy-job-runner.tmp.ts
 *   node --import tsx scripts/agent-runner-cpu.ts --legacy ./worker-agent/legacy-job-runner.tmp.ts
 *
 * Options: --jobs N (per repetition, default 20000), --concurrency C (default 16),
 * --reps R (default 3).
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { HttpRequest } from '../shared/protocol.ts';
import { parseAllowlist } from '../worker-agent/allowlist.ts';
import { TargetJob, type JobContext, type JobOutcome } from '../worker-agent/job-runner.ts';
import { createTargetPool } from '../worker-agent/target-pool.ts';

const BODY = JSON.stringify({ ok: true, id: 'item-0001', tags: ['a', 'b'], n: 42 }); // 55 bytes

if (process.argv[2] === '--child-target') {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(BODY));
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as { port: number }).port }));
} else {
  await main();
}

type RunOne = (request: HttpRequest) => Promise<JobOutcome>;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { legacy: { type: 'string' }, jobs: { type: 'string', default: '20000' }, concurrency: { type: 'string', default: '16' }, reps: { type: 'string', default: '3' } },
  });
  const jobs = Number(values.jobs);
  const concurrency = Number(values.concurrency);
  const reps = Number(values.reps);

  const child = fork(new URL(import.meta.url).pathname, ['--child-target'], { execArgv: ['--import', 'tsx'] });
  const port = await new Promise<number>((res) => child.once('message', (m: { port: number }) => res(m.port)));
  const url = `http://127.0.0.1:${port}/item`;

  const runners: Record<string, { run: RunOne; close: () => Promise<void> }> = {};

  // undici: TargetJob with a listener, exactly as the agent drives it.
  const allow = parseAllowlist([`127.0.0.1:${port}`]);
  const targets = createTargetPool({ connections: concurrency, grant: allow });
  const context: JobContext = { maxResponseBytes: 10 * 1024 * 1024, allow, targets };
  runners.undici = {
    run: (request) => new Promise((res) => new TargetJob(request, 30_000, context, { jobEnded: (_job, outcome) => res(outcome) }, null).trustValidated().start()),
    close: () => targets.destroy(),
  };

  if (values.legacy) {
    // The previous runner's API: runJob(request, { signal, timeoutMs, maxResponseBytes, allow, agents }), one AbortController per job as the agent made.
    const legacy = (await import(resolve(values.legacy))) as {
      createTargetAgents(n: number): { destroy(): void };
      runJob(request: HttpRequest, options: unknown): Promise<JobOutcome>;
    };
    const agents = legacy.createTargetAgents(concurrency);
    const legacyAllow = parseAllowlist([]);
    runners['node:http'] = {
      run: (request) => legacy.runJob(request, { signal: new AbortController().signal, timeoutMs: 30_000, maxResponseBytes: 10 * 1024 * 1024, allow: legacyAllow, agents }),
      close: async () => agents.destroy(),
    };
  }

  const request: HttpRequest = { method: 'GET', url, headers: { accept: 'application/json', 'x-request-id': 'bench' } };
  const measure = async (run: RunOne, n: number): Promise<{ cpuUsPerJob: number; jobsPerSec: number }> => {
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < n) {
        next += 1;
        const outcome = await run(request);
        if ('error' in outcome) throw new Error(`${outcome.error.code}: ${outcome.error.message}`);
      }
    };
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, lane));
    const cpu = process.cpuUsage(cpu0);
    return { cpuUsPerJob: (cpu.user + cpu.system) / n, jobsPerSec: n / ((performance.now() - t0) / 1000) };
  };

  const results: Record<string, { cpu: number[]; rate: number[] }> = {};
  for (const name of Object.keys(runners)) {
    results[name] = { cpu: [], rate: [] };
    await measure(runners[name].run, Math.min(2000, jobs)); // warm-up: JIT, pools
  }
  for (let rep = 0; rep < reps; rep += 1) {
    for (const name of Object.keys(runners)) {
      const r = await measure(runners[name].run, jobs);
      results[name].cpu.push(r.cpuUsPerJob);
      results[name].rate.push(r.jobsPerSec);
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  process.stdout.write(`jobs/rep ${jobs}, concurrency ${concurrency}, reps ${reps} (interleaved), Node ${process.version}\n`);
  for (const [name, r] of Object.entries(results)) {
    process.stdout.write(
      `${name.padEnd(10)} CPU µs/job median ${median(r.cpu).toFixed(1)} [${r.cpu.map((x) => x.toFixed(1)).join(', ')}]  jobs/s median ${median(r.rate).toFixed(0)}\n`,
    );
  }
  for (const r of Object.values(runners)) await r.close();
  child.kill();
}
