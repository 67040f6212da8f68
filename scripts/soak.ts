/**
 * `npm run soak`: a bounded soak of the dispatcher on loopback (at most 3 minutes).
 *
 * The server runs in this process (startServer), so its heap and tables can be read
 * directly after a forced GC; agents are real `flowtest agent` processes and the target
 * is the demo target in a child process. Load: SOAK_DISPATCHES (default 100,000)
 * dispatches, about 30% ending by deadline or client abort; SOAK_CHURN (default 2,000)
 * worker connects/disconnects by raw sockets that leave every way a worker can (clean
 * close, terminate, bad frame, heartbeat kill), some holding jobs; agents SIGKILLed
 * (and replaced) and SIGSTOPped (and continued) now and then.
 *
 * At the start and after each third of the dispatches the load pauses until every
 * dispatch is answered; then it prints heap after forced GC, RSS (this process and the
 * agents), active resources and table sizes. Exit 1 when the heap grew by more than 5%
 * from the second third to the end, or any table is non-empty once everything stopped.
 *
 *   node --import tsx --expose-gc scripts/soak.ts
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { TokenStore } from '../server/auth.ts';
import { createLogger } from '../server/logger.ts';
import { startServer } from '../server/server.ts';
import { decodeServerFrame, encodeFrame } from '../shared/codec.ts';
import { PROTOCOL_VERSION, WORKER_CONNECT_PATH } from '../shared/limits.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'cli', 'flowtest.ts');
const DISPATCHES = Number(process.env.SOAK_DISPATCHES ?? 100_000);
const CHURN = Number(process.env.SOAK_CHURN ?? 2_000);
const AGENTS = 4;
const AGENT_CONCURRENCY = 64;
const LANES = Number(process.env.SOAK_LANES ?? 256);
const CHURN_LANES = 16;
const HEARTBEAT_MS = 1000;
const DEADLINE_MS = 180_000;
const MAX_HEAP_GROWTH = 0.05;
const TOKENS = { worker: 'soak-worker-token-0123456789', client: 'soak-client-token-0123456789', admin: 'soak-admin-token-0123456789' };

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('soak: run with --expose-gc (npm run soak)\n');
  process.exit(2);
}

const startedAt = performance.now();
// Event-loop delay of this process (the server's), reset at each checkpoint.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const elapsedS = () => ((performance.now() - startedAt) / 1000).toFixed(1);
const log = (line: string) => process.stdout.write(`[${elapsedS().padStart(5)} s] ${line}\n`);

// ---- everything started here, stopped in `stopAll` (children first) ----
const children = new Set<ChildProcess>();
let stopping = false;
function spawnChild(args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
async function stopChildren(signal: NodeJS.Signals): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGCONT');
      child.kill(signal);
      await once(child, 'exit');
    }),
  );
}
const watchdog = setTimeout(() => {
  log(`FAIL: the soak did not finish within ${DEADLINE_MS / 1000} s`);
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
}, DEADLINE_MS);

// ---- target (child), server (here), agents (children) ----
const targetProc = spawnChild([join(ROOT, 'scripts', 'demo-target.ts')], { DEMO_TARGET_HOST: '127.0.0.1', DEMO_TARGET_PORT: '0' });
const targetUrl = await new Promise<string>((resolve, reject) => {
  const lines = createInterface({ input: targetProc.stdout! });
  lines.on('line', (line) => {
    const m = /listening on (http:\S+)/.exec(line);
    if (m) resolve(m[1]);
  });
  targetProc.once('exit', () => reject(new Error('the target exited')));
});

const server = await startServer(
  { host: '127.0.0.1', port: 0, heartbeatMs: HEARTBEAT_MS, shutdownGraceMs: 2000, maxQueue: 2000 },
  { tokens: new TokenStore({ admin: [TOKENS.admin], suites: { soak: { worker: [TOKENS.worker], client: [TOKENS.client] } } }), logger: createLogger({ level: 'error' }) },
);
const wsUrl = server.url.replace(/^http/, 'ws');
// Server-side duration of each job by outcome (accepted → answered), to tell server time from client time.
const serverMs = new Map<string, { n: number; sum: number }>();
const stopObserving = server.router.observe((e) => {
  if (e.kind !== 'job-end') return;
  const m = serverMs.get(e.job.outcome) ?? { n: 0, sum: 0 };
  m.n += 1;
  m.sum += e.job.durationMs;
  serverMs.set(e.job.outcome, m);
});

const agents = new Set<ChildProcess>();
const frozen = new Set<ChildProcess>();
function startAgent(): void {
  const child = spawnChild(
    [CLI, 'agent', '--server', wsUrl, '--suite', 'soak', '--name', 'main', '--concurrency', String(AGENT_CONCURRENCY), '--allow-host', '127.0.0.1'],
    { FLOWTEST_TOKEN: TOKENS.worker, FLOWTEST_LOG_LEVEL: 'error' },
  );
  child.stdout!.resume();
  agents.add(child);
  child.once('exit', () => {
    agents.delete(child);
    frozen.delete(child);
  });
}
for (let i = 0; i < AGENTS; i++) startAgent();
const mainWorkers = () => server.router.listWorkers('soak').filter((w) => w.name === 'main').length;
await waitFor(() => mainWorkers() === AGENTS, 30_000, 'agents connected');

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`soak: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---- load: dispatches over HTTP ----
const client = new http.Agent({ keepAlive: true, maxSockets: LANES });
const outcomes = new Map<string, number>();
const latencyMs = new Map<string, number>(); // summed per outcome, for the mean
const count = (k: string, ms: number) => {
  outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  latencyMs.set(k, (latencyMs.get(k) ?? 0) + ms);
};
const meanLatencies = () => Object.fromEntries([...outcomes].map(([k, n]) => [k, Math.round((latencyMs.get(k) ?? 0) / n)]));
let rand = 0x2545f491;
/** xorshift: a fixed sequence, so every soak run sends the same mix. */
const random = () => {
  rand ^= rand << 13;
  rand ^= rand >>> 17;
  rand ^= rand << 5;
  return (rand >>> 0) / 4294967296;
};
const between = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));

function dispatchOnce(): Promise<void> {
  const p = random();
  let body: object;
  let abortAfterMs: number | null = null;
  if (p < 0.15) body = { pool: 'main', timeoutMs: between(50, 200), request: { method: 'GET', url: `${targetUrl}/slow?ms=60000` } };
  else if (p < 0.3) {
    body = { pool: 'main', timeoutMs: 10_000, request: { method: 'GET', url: `${targetUrl}/slow?ms=60000` } };
    abortAfterMs = between(10, 100);
  } else if (p < 0.33) body = { pool: 'flap', timeoutMs: 1000, waitForWorkerMs: 300, request: { method: 'GET', url: `${targetUrl}/hello` } };
  else if (p < 0.36) body = { pool: 'main', timeoutMs: 5000, request: { method: 'GET', url: `${targetUrl}/slow?ms=${between(5, 50)}` } };
  else body = { pool: 'main', timeoutMs: 5000, request: { method: 'GET', url: `${targetUrl}/hello` } };
  const text = JSON.stringify(body);
  return new Promise((resolve) => {
    const ac = new AbortController();
    const abortTimer = abortAfterMs === null ? undefined : setTimeout(() => ac.abort(), abortAfterMs);
    const t0 = performance.now();
    let answered = false;
    const done = (key: string) => {
      if (answered) return;
      answered = true;
      clearTimeout(abortTimer);
      count(key, performance.now() - t0);
      resolve();
    };
    const req = http.request(`${server.url}/v1/suites/soak/dispatch`, {
      method: 'POST',
      agent: client,
      signal: ac.signal,
      headers: { authorization: `Bearer ${TOKENS.client}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode === 200) return done('ok');
        try {
          done(JSON.parse(Buffer.concat(chunks).toString('utf8')).error.code as string);
        } catch {
          done(`http ${res.statusCode}`);
        }
      });
      res.on('error', () => done(ac.signal.aborted ? 'client-aborted' : 'transport-error'));
    });
    req.on('error', () => done(ac.signal.aborted ? 'client-aborted' : 'transport-error'));
    req.end(text);
  });
}

async function dispatchMany(n: number): Promise<void> {
  let left = n;
  const lane = async () => {
    while (left > 0) {
      left -= 1;
      await dispatchOnce();
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
}

// ---- load: workers that connect and leave ----
const CHURN_KINDS = ['close', 'close', 'terminate', 'terminate', 'bad-frame', 'bad-frame', 'close', 'terminate', 'bad-frame', 'heartbeat'] as const;
const churned = new Map<string, number>();
let churnIndex = 0;

async function churnOnce(): Promise<void> {
  const kind = CHURN_KINDS[churnIndex++ % CHURN_KINDS.length];
  const ws = new WebSocket(`${wsUrl}${WORKER_CONNECT_PATH}?suite=soak&name=flap&concurrency=2`, PROTOCOL_VERSION, {
    headers: { authorization: `Bearer ${TOKENS.worker}` },
    perMessageDeflate: false,
    autoPong: kind !== 'heartbeat',
  });
  ws.on('error', () => {});
  const closed = once(ws, 'close').catch(() => {});
  let welcomed = false;
  ws.on('message', (data) => {
    const frame = decodeServerFrame(data);
    if (!frame.ok) return;
    if (frame.value.type === 'welcome') welcomed = true;
    // Answer about half of the jobs; the rest are held when the worker leaves.
    else if (frame.value.type === 'job' && random() < 0.5) {
      ws.send(encodeFrame({ type: 'result', id: frame.value.id, response: { status: 200, headers: {}, body: 'flap', bodyEncoding: 'utf8' } }));
    }
  });
  await waitFor(() => welcomed || ws.readyState === WebSocket.CLOSED, 10_000, 'a churn worker welcome');
  await new Promise((r) => setTimeout(r, between(20, 200))); // its working life
  if (kind === 'close') ws.close(1000, 'bye');
  else if (kind === 'terminate') ws.terminate();
  else if (kind === 'bad-frame') ws.send('{"type":"nonsense"}');
  // heartbeat: it stopped answering pings; the server drops it within 2 × HEARTBEAT_MS.
  let bound: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((r) => (bound = setTimeout(r, 4 * HEARTBEAT_MS)))]);
  clearTimeout(bound);
  ws.terminate();
  churned.set(kind, (churned.get(kind) ?? 0) + 1);
}

async function churnMany(n: number): Promise<void> {
  let left = n;
  const lane = async () => {
    while (left > 0) {
      left -= 1;
      await churnOnce();
    }
  };
  await Promise.all(Array.from({ length: CHURN_LANES }, lane));
}

// ---- faults: agents killed and frozen now and then ----
const FAULT_EVERY_MS = 5000;
const faults = { killed: 0, frozen: 0 };
// Owned here: the fault tick and the timers that continue frozen agents; all cleared by stopFaults.
let faultTick: NodeJS.Timeout | undefined;
const contTimers = new Set<NodeJS.Timeout>();
function startFaults(): void {
  let next: 'kill' | 'freeze' = 'kill';
  faultTick = setInterval(() => {
    const victim = [...agents].find((a) => !frozen.has(a));
    if (stopping || !victim) return;
    if (next === 'kill') {
      victim.kill('SIGKILL');
      faults.killed += 1;
      startAgent();
    } else {
      // Frozen for 3 heartbeats: the server drops it after 2, then it wakes up and reconnects.
      victim.kill('SIGSTOP');
      frozen.add(victim);
      faults.frozen += 1;
      const timer = setTimeout(() => {
        contTimers.delete(timer);
        victim.kill('SIGCONT');
        frozen.delete(victim);
      }, 3 * HEARTBEAT_MS);
      contTimers.add(timer);
    }
    next = next === 'kill' ? 'freeze' : 'kill';
  }, FAULT_EVERY_MS);
}
function stopFaults(): void {
  clearInterval(faultTick);
  for (const timer of contTimers) clearTimeout(timer);
  contTimers.clear();
  for (const a of frozen) a.kill('SIGCONT');
  frozen.clear();
}

// ---- measurements ----
interface Checkpoint {
  label: string;
  atS: string;
  heapMB: number;
  rssMB: number;
  agentsRssMB: number;
  resources: Record<string, number>;
  stats: ReturnType<typeof server.router.stats>;
}
const checkpoints: Checkpoint[] = [];

function rssOf(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

async function checkpoint(label: string): Promise<Checkpoint> {
  // Every dispatch of this part has its answer; give cancels and closes a moment to land.
  await waitFor(() => server.router.stats().pending === 0, 10_000, 'an idle job table');
  for (let i = 0; i < 4; i++) {
    gc!();
    await new Promise((r) => setImmediate(r));
  }
  const resources: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) resources[kind] = (resources[kind] ?? 0) + 1;
  const cp: Checkpoint = {
    label,
    atS: elapsedS(),
    heapMB: process.memoryUsage().heapUsed / 2 ** 20,
    rssMB: process.memoryUsage().rss / 2 ** 20,
    agentsRssMB: [...agents].reduce((sum, a) => sum + rssOf(a.pid), 0),
    resources,
    stats: server.router.stats(),
  };
  checkpoints.push(cp);
  log(
    `${label.padEnd(12)} heap ${cp.heapMB.toFixed(2)} MB  rss ${cp.rssMB.toFixed(1)} MB  agents rss ${cp.agentsRssMB.toFixed(1)} MB  ` +
      `tables ${JSON.stringify(cp.stats)}  resources ${JSON.stringify(resources)}`,
  );
  return cp;
}

// ---- the run ----
log(`soak: ${DISPATCHES} dispatches, ${CHURN} worker connects/disconnects, ${AGENTS} agents × ${AGENT_CONCURRENCY}; server ${server.url}, target ${targetUrl}`);
let failed = false;
try {
  await checkpoint('start');
  const thirds = [Math.ceil(DISPATCHES / 3), Math.ceil(DISPATCHES / 3), DISPATCHES - 2 * Math.ceil(DISPATCHES / 3)];
  const churnThirds = [Math.ceil(CHURN / 3), Math.ceil(CHURN / 3), CHURN - 2 * Math.ceil(CHURN / 3)];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    startFaults();
    await Promise.all([dispatchMany(thirds[i]), churnMany(churnThirds[i])]);
    stopFaults();
    const rate = thirds[i] / ((performance.now() - t0) / 1000);
    log(`third ${i + 1}: ${thirds[i]} dispatches (${rate.toFixed(0)}/s); event-loop delay p50 ${(loopDelay.percentile(50) / 1e6).toFixed(0)} ms, p99 ${(loopDelay.percentile(99) / 1e6).toFixed(0)} ms; outcomes so far ${JSON.stringify(Object.fromEntries(outcomes))}`);
    loopDelay.reset();
    await checkpoint(`third ${i + 1}`);
  }
  const [second, end] = [checkpoints[2], checkpoints[3]];
  const growth = (end.heapMB - second.heapMB) / second.heapMB;
  log(`heap from the second third to the end: ${second.heapMB.toFixed(2)} → ${end.heapMB.toFixed(2)} MB (${(growth * 100).toFixed(2)}%, limit ${MAX_HEAP_GROWTH * 100}%)`);
  if (growth > MAX_HEAP_GROWTH) {
    log('FAIL: the heap kept growing');
    failed = true;
  }
  const total = [...outcomes.values()].reduce((a, b) => a + b, 0);
  const givenUp = (outcomes.get('timeout') ?? 0) + (outcomes.get('client-aborted') ?? 0);
  log(`outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}; ${((givenUp / total) * 100).toFixed(1)}% ended by deadline or client abort`);
  log(`mean latency by outcome (ms), client side: ${JSON.stringify(meanLatencies())}`);
  log(`mean job duration by outcome (ms), server side: ${JSON.stringify(Object.fromEntries([...serverMs].map(([k, m]) => [k, Math.round(m.sum / m.n)])))}`);
  log(`workers churned: ${JSON.stringify(Object.fromEntries(churned))}; agents killed ${faults.killed}, frozen ${faults.frozen}`);
  if ((outcomes.get('transport-error') ?? 0) > 0 || (outcomes.get('internal') ?? 0) > 0) {
    log('FAIL: dispatches without a contract answer');
    failed = true;
  }
} catch (err) {
  log(`FAIL: ${(err as Error).stack ?? String(err)}`);
  failed = true;
}

// ---- stop: agents drain and leave, then every table must be empty ----
stopping = true;
stopFaults();
await stopChildren('SIGTERM').catch(() => {});
client.destroy();
await waitFor(() => server.router.stats().workers === 0, 10_000, 'workers gone').catch(() => {});
const finalStats = server.router.stats();
log(`tables once everything stopped: ${JSON.stringify(finalStats)}`);
if (Object.values(finalStats).some((n) => n !== 0)) {
  log('FAIL: a table is not empty');
  failed = true;
}
stopObserving();
await server.close();
loopDelay.disable();
clearTimeout(watchdog);
log(failed ? 'soak FAILED' : 'soak passed');
process.exitCode = failed ? 1 : 0;
