/**
 * Measures the console page under load: N protocol-level agents (raw sockets in this
 * process, answering each job after 5–60 ms; 5% fail, 5% answer 500) and a paced
 * dispatch loop, with Chromium showing the console.
 *
 *   node --import tsx scripts/console-load.ts [--workers 1000] [--rate 300] [--seconds 15]
 *
 * Prints: time to first render of the snapshot, the page's main-thread busy share
 * (CDP Performance TaskDuration over wall time) idle and under load, render time per
 * delta, JS heap, and the server's dispatch latency and event-loop delay with and
 * without the console open. Headless Chromium here paints in software (--disable-gpu),
 * so paint costs more than in a desktop browser.
 */
import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { decodeServerFrame, encodeFrame } from '../shared/codec.ts';
import { PROTOCOL_VERSION } from '../shared/limits.ts';
import { TokenStore } from '../server/auth.ts';
import { createLogger } from '../server/logger.ts';
import { startServer, type FlowtestServer } from '../server/server.ts';
import { launchChromium } from '../test/console/chromium.ts';

const { values } = parseArgs({ options: { workers: { type: 'string', default: '1000' }, rate: { type: 'string', default: '300' }, seconds: { type: 'string', default: '15' } } });
const WORKERS = Number(values.workers);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const ADMIN = 'adm_load_0123456789';
const WORKER = 'wrk_load_0123456789';
const POOLS = ['checkout', 'search', 'payments', 'inventory', 'auth', 'reports', 'mobile-api', 'legacy-erp'];

function connectAgent(server: FlowtestServer, i: number): Promise<WebSocket> {
  const q = new URLSearchParams({ suite: i % 3 === 0 ? 'billing' : 'shop', name: POOLS[i % POOLS.length], concurrency: String(4 + (i % 5) * 4) });
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/v1/workers/connect?${q}`, PROTOCOL_VERSION, {
    headers: { authorization: `Bearer ${WORKER}`, 'user-agent': `flowtest-agent/0.1.${i % 4}` },
    perMessageDeflate: false,
  });
  ws.on('error', () => {});
  ws.on('message', (data) => {
    const d = decodeServerFrame(data);
    if (!d.ok || d.value.type !== 'job') return;
    const job = d.value;
    setTimeout(() => {
      if (ws.readyState !== ws.OPEN) return;
      if (job.request.url.includes('/fail')) ws.send(encodeFrame({ type: 'result', id: job.id, error: { code: 'target_unreachable', message: 'connect ECONNREFUSED' } }));
      else {
        const status = job.request.url.includes('/oops') ? 500 : 200;
        ws.send(encodeFrame({ type: 'result', id: job.id, response: { status, headers: { 'content-type': 'application/json' }, body: '{"ok":true}', bodyEncoding: 'utf8' } }));
      }
    }, 5 + Math.random() * 55);
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_r, res) => reject(new Error(`agent ${i}: ${res.statusCode}`)));
  });
}

/** Dispatches at RATE/s for `ms`; returns latencies (ms) of successful dispatches. */
async function load(server: FlowtestServer, ms: number): Promise<{ latencies: number[]; failed: number }> {
  const latencies: number[] = [];
  let failed = 0;
  let n = 0;
  const running = new Set<Promise<void>>();
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.floor(((performance.now() - start) / 1000) * RATE);
      while (n < due) {
        n += 1;
        const r = Math.random();
        const path = r < 0.05 ? '/fail' : r < 0.1 ? '/oops' : '/api/items';
        const t0 = performance.now();
        const p = server.router
          .dispatch(n % 3 === 0 ? 'billing' : 'shop', { pool: POOLS[n % POOLS.length], timeoutMs: 5000, request: { method: 'GET', url: `http://svc.internal${path}?n=${n}`, headers: { authorization: 'Bearer x' } } }, new AbortController().signal)
          .then(() => void latencies.push(performance.now() - t0), () => void (failed += 1))
          .finally(() => running.delete(p));
        running.add(p);
      }
      if (performance.now() - start >= ms) {
        clearInterval(tick);
        resolve();
      }
    }, 5);
  });
  await Promise.all(running);
  return { latencies, failed };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] * 100) / 100 : NaN;
}

async function main(): Promise<void> {
  const tokens = new TokenStore({ admin: [ADMIN], suites: { shop: { worker: [WORKER] }, billing: { worker: [WORKER] } } });
  const server = await startServer({ host: '127.0.0.1', port: 0, shutdownGraceMs: 0, maxQueue: 100_000 }, { tokens, logger: createLogger({ level: 'silent' }) });
  const agents: WebSocket[] = [];
  try {
    for (let i = 0; i < WORKERS; i += 100) agents.push(...(await Promise.all(Array.from({ length: Math.min(100, WORKERS - i) }, (_, k) => connectAgent(server, i + k)))));
    process.stdout.write(`${server.router.stats().workers} workers connected\n`);

    // Baseline: the server under load with no console open.
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const base = await load(server, SECONDS * 1000);
    loop.disable();
    process.stdout.write(`no console:   ${base.latencies.length + base.failed} jobs, dispatch p50 ${pct(base.latencies, 50)} ms p99 ${pct(base.latencies, 99)} ms, event-loop delay p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms\n`);

    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1480, height: 1000 } });
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Performance.enable');
      const t0 = performance.now();
      await page.goto(`${server.url}/console#token=${ADMIN}`);
      await page.waitForFunction(
        (n) => {
          const c = (globalThis as any).__flowtestConsole;
          return c?.workerCount() === n && c.stats.lastSnapshotRenderMs > 0;
        },
        WORKERS,
        { timeout: 30_000 },
      );
      await page.waitForSelector(`tr[data-worker-id]`, { state: 'attached' });
      const firstRenderMs = performance.now() - t0;
      const snap: any = await page.evaluate('window.__flowtestConsole.stats');
      process.stdout.write(`page: navigation → ${WORKERS} workers rendered in ${Math.round(firstRenderMs)} ms (snapshot render itself ${snap.lastSnapshotRenderMs.toFixed(0)} ms)\n`);

      const metrics = async () => Object.fromEntries(((await cdp.send('Performance.getMetrics')).metrics as { name: string; value: number }[]).map((m) => [m.name, m.value]));
      // Idle: 1,000 workers on screen, heartbeats and counters only.
      const idleBefore = await metrics();
      const idleStart = performance.now();
      await new Promise((r) => setTimeout(r, 5000));
      const idleAfter = await metrics();
      const idleBusy = (idleAfter.TaskDuration - idleBefore.TaskDuration) / ((performance.now() - idleStart) / 1000);
      process.stdout.write(`page idle (no jobs) over 5 s: main thread busy ${(idleBusy * 100).toFixed(1)}%\n`);
      const before = await metrics();
      const statsBefore: any = await page.evaluate('({...window.__flowtestConsole.stats})');
      const ticksBefore = server.console.feed.stats().ticks;
      const loop2 = monitorEventLoopDelay({ resolution: 10 });
      loop2.enable();
      const wallStart = performance.now();
      const withConsole = await load(server, SECONDS * 1000);
      const wall = (performance.now() - wallStart) / 1000;
      loop2.disable();
      const after = await metrics();
      const s: any = await page.evaluate('({...window.__flowtestConsole.stats})');
      const deltas = s.deltas - statsBefore.deltas;
      const busy = (k: string) => (after[k] - before[k]) / wall;
      process.stdout.write(
        [
          `console open: ${withConsole.latencies.length + withConsole.failed} jobs, dispatch p50 ${pct(withConsole.latencies, 50)} ms p99 ${pct(withConsole.latencies, 99)} ms, event-loop delay p99 ${(loop2.percentile(99) / 1e6).toFixed(1)} ms`,
          `page over ${wall.toFixed(1)} s: main thread busy ${(busy('TaskDuration') * 100).toFixed(1)}% (script ${(busy('ScriptDuration') * 100).toFixed(1)}%, layout ${(busy('LayoutDuration') * 100).toFixed(1)}%, style ${(busy('RecalcStyleDuration') * 100).toFixed(1)}%)`,
          `page: ${deltas} deltas (${(deltas / wall).toFixed(1)}/s), render per delta avg ${((s.totalDeltaRenderMs - statsBefore.totalDeltaRenderMs) / Math.max(1, deltas)).toFixed(1)} ms, max ${s.maxDeltaRenderMs.toFixed(1)} ms; resyncs ${s.resyncs}; JS heap ${(after.JSHeapUsedSize / 1048576).toFixed(1)} MiB; DOM nodes ${after.Nodes}`,
          (() => {
            const f = server.console.feed.stats();
            const n = f.ticks.count - ticksBefore.count;
            return `server feed: ${n} ticks, avg ${((f.ticks.totalMs - ticksBefore.totalMs) / Math.max(1, n)).toFixed(2)} ms, max ${f.ticks.maxMs.toFixed(1)} ms; console ${JSON.stringify(f.consoles)}`;
          })(),
        ].join('\n') + '\n',
      );
    } finally {
      await browser.close();
    }
  } finally {
    for (const ws of agents) ws.terminate();
    await server.close();
  }
}

await main();
