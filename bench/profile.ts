/**
 * Measurement 4 — where the CPU goes: `--cpu-prof` profiles of the flowtest server and
 * of the real agent, both under dispatch load (concurrency 16, one agent with 64 slots,
 * a debug console open as in measurement 1), each reduced to the functions with the
 * most self time and to self time by owner (our code, zod, ws, undici, pino, …).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nowMs, ROOT, sleep, startChild, startCli, waitFor, type BenchChild } from './harness/processes.ts';
import { num, table } from './harness/stats.ts';
import { POOL, SUITE, TOKENS } from './harness/tokens.ts';
import type { LoadResult } from './procs/load-generator.ts';

export interface ProfileOptions {
  concurrency: number;
  warmupMs: number;
  windowMs: number;
  outDir: string;
  /** Rows of each "top functions" table. */
  top?: number;
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileReport {
  text: string;
  /** The server's profile, then the agent's. */
  files: string[];
}

const readProfile = (dir: string, name: string): CpuProfile => {
  if (!readdirSync(dir).includes(name)) throw new Error(`no profile written to ${join(dir, name)}`);
  return JSON.parse(readFileSync(join(dir, name), 'utf8')) as CpuProfile;
};

export async function measureProfile(env: { target: BenchChild; loadgen: BenchChild }, opts: ProfileOptions): Promise<ProfileReport> {
  const server = await startChild('flowtest server (profiled)', 'procs/flowtest-server.ts', {
    nodeFlags: ['--cpu-prof', '--cpu-prof-dir', opts.outDir, '--cpu-prof-name', 'server.cpuprofile'],
  });
  const serverUrl = server.info.url as string;
  const agent = startCli(
    ['agent', '--server', serverUrl.replace(/^http/, 'ws'), '--suite', SUITE, '--name', POOL, '--concurrency', '64', '--allow-host', '127.0.0.1'],
    { FLOWTEST_TOKEN: TOKENS.worker },
    ['--cpu-prof', '--cpu-prof-dir', opts.outDir, '--cpu-prof-name', 'agent.cpuprofile'],
  );
  const observer = await startChild('console observer', 'procs/console-observer.ts', { config: { server: serverUrl } });
  let load: LoadResult;
  let windowStartMs = 0;
  let windowEndMs = 0;
  try {
    await waitFor('the agent to connect', async () => (await server.call<number>('workers')) === 1);
    const body = JSON.stringify({ pool: POOL, timeoutMs: 30_000, request: { method: 'GET', url: `${env.target.info.url as string}/item` } });
    await env.loadgen.call('start', {
      mode: 'http',
      method: 'POST',
      url: `${serverUrl}/v1/suites/${SUITE}/dispatch`,
      headers: { authorization: `Bearer ${TOKENS.client}` },
      body,
      concurrency: opts.concurrency,
    });
    await sleep(opts.warmupMs);
    await env.loadgen.call('mark');
    windowStartMs = nowMs();
    await sleep(opts.windowMs);
    windowEndMs = nowMs();
    load = await env.loadgen.call<LoadResult>('finish');
  } finally {
    // Profiles are written as the processes exit normally: SIGTERM for the agent (it drains
    // nothing — the load has stopped), SIGKILL only if it hangs.
    agent.signal('SIGTERM');
    const hung = setTimeout(() => void agent.kill(), 10_000);
    await agent.exited;
    clearTimeout(hung);
    await observer.stop();
    await server.stop();
  }
  const window = [windowStartMs * 1000, windowEndMs * 1000] as const;
  const serverText = render('Server', readProfile(opts.outDir, 'server.cpuprofile'), load, opts, ...window);
  const agentText = render('Agent', readProfile(opts.outDir, 'agent.cpuprofile'), load, opts, ...window);
  return {
    text: `### Server\n\n${serverText}\n\n### Agent\n\n${agentText}`,
    files: [join(opts.outDir, 'server.cpuprofile'), join(opts.outDir, 'agent.cpuprofile')],
  };
}

/** Who a function belongs to, from its script URL. */
function ownerOf(url: string): string {
  if (url === '') return 'V8/native';
  if (url.startsWith('node:')) return 'node core';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (m) {
    const pkg = m[1];
    if (pkg === 'pino' || pkg === 'sonic-boom' || pkg.startsWith('@pinojs') || pkg === 'quick-format-unescaped' || pkg === 'fast-redact') return 'pino (logging)';
    if (pkg === 'prom-client' || pkg === 'tdigest' || pkg === 'bintrees') return 'prom-client (metrics)';
    return pkg;
  }
  const rel = relative(ROOT, path);
  if (rel.startsWith('server/') || rel.startsWith('shared/') || rel.startsWith('worker-agent/') || rel.startsWith('cli/')) return `ours: ${rel}`;
  if (rel.startsWith('bench/')) return 'bench instrumentation';
  return rel;
}

function render(role: string, profile: CpuProfile, load: LoadResult, opts: ProfileOptions, fromUs: number, toUs: number): string {
  // Self time: the time to the next sample goes to the function on top of the stack.
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    if (t < fromUs || t > toUs) continue;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dt);
  }
  const jobs = (load.count * (toUs - fromUs)) / 1000 / load.windowMs; // jobs answered in the sampled span
  const fns = new Map<string, { name: string; where: string; owner: string; us: number }>();
  const owners = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byNode.get(id)!.callFrame;
    if (functionName === '(idle)') continue;
    busyUs += us;
    const owner = functionName === '(garbage collector)' ? 'GC' : functionName === '(program)' ? '(program: native, unattributed)' : ownerOf(url);
    const path = url.startsWith('file://') ? relative(ROOT, fileURLToPath(url)) : url;
    // tsx hands V8 one-line modules: a line number in a .ts file says nothing.
    const where = !url ? '' : path.endsWith('.ts') ? path : `${path.replace(/^.*node_modules\//, '')}:${lineNumber + 1}`;
    const key = `${functionName}|${where}`;
    const f = fns.get(key) ?? { name: functionName || '(anonymous)', where, owner, us: 0 };
    f.us += us;
    fns.set(key, f);
    const ownerKey = owner.startsWith('ours: ') ? `ours: ${owner.slice(6).split('/')[0]}/${owner.slice(6).split('/')[1]}` : owner;
    owners.set(ownerKey, (owners.get(ownerKey) ?? 0) + us);
  }
  const share = (us: number) => `${num((100 * us) / busyUs, 1)}%`;
  const perJob = (us: number) => num(us / jobs, 1);
  const topN = opts.top ?? 12;
  const top = [...fns.values()].sort((a, b) => b.us - a.us).slice(0, topN);
  const byOwner = [...owners.entries()].sort((a, b) => b[1] - a[1]);
  return [
    `${role} under dispatch load at c=${opts.concurrency}, one agent with 64 slots, a console open; samples of the ${opts.windowMs} ms load window only (after ${opts.warmupMs} ms warm-up), idle excluded. ` +
      `${load.count} jobs, ${num((load.count * 1000) / load.windowMs, 0)} jobs/s with the profiler on; busy ${num(busyUs / 1000, 0)} ms = ${perJob(busyUs)} µs per job.`,
    '',
    'Self time by owner:',
    '',
    table(['owner', 'self time', 'share of busy', 'µs per job'], byOwner.map(([o, us]) => [o, `${num(us / 1000, 0)} ms`, share(us), perJob(us)])),
    '',
    `Top ${topN} functions by self time:`,
    '',
    table(['function', 'where', 'owner', 'share of busy', 'µs per job'], top.map((f) => [f.name, f.where, f.owner.replace(/^ours: .*/, 'ours'), share(f.us), perJob(f.us)])),
  ].join('\n');
}
