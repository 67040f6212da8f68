/**
 * Chaos, cluster mode: three server nodes (processes) on one nats-server, agents on random
 * nodes, dispatches sent to random nodes, while faults hit at random — a node SIGKILLed (and
 * started again on its port under its id), a node frozen with SIGSTOP for a while, agents
 * SIGKILLed and frozen, NATS restarted once and frozen once. For every dispatch: one answer,
 * its own response or a contract error code, within its deadline + 100 ms (the issue's bound)
 * whatever happened to the other nodes or to NATS — the arrival node keeps the deadline itself;
 * a job failed for a node's death comes within 3 s of that node's fault; the target sees no
 * job id twice; afterwards every node's tables are empty.
 *
 * A dispatch whose own arrival node was frozen is timed from the later of its deadline and the
 * thaw (a stopped process answers nobody); one whose arrival node was killed cannot be answered
 * and is only counted. The only margin on these bounds is the box's scheduling delay, measured
 * while the test runs (see `marginMs`). The plan comes from a seeded PRNG (FLOWTEST_CHAOS_SEED=N).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { ERROR_CODES, type ErrorCode } from '../../shared/errors.ts';
import { errorBodySchema } from '../../shared/protocol.ts';
import { writeTokensFile } from '../helpers/cluster.ts';
import { HttpClient } from '../helpers/http-client.ts';
import { startNats } from '../helpers/nats.ts';
import { rng, seedFrom } from '../helpers/prng.ts';
import { startCli, type Proc } from '../helpers/processes.ts';
import { TOKENS } from '../helpers/server.ts';
import { metricSum } from '../helpers/metrics-text.ts';
import { waitUntil } from '../helpers/wait.ts';
import { startFaultTarget } from './fault-target.ts';

const seed = seedFrom('FLOWTEST_CHAOS_SEED');
const RUN_MS = 10_000;
const LANES = 12;
const NODES = 3;
const AGENTS = 4;
const HEARTBEAT_MS = 300;
/** The issue's bound: every dispatch answered within its deadline + this. */
const ANSWER_MS = 100;
/** The contract's bound for failing, at their arrival node, the jobs of a node that died. */
const NODE_DEATH_MS = 3000;
/** How often each node's event-loop delay and CPU time are read (the scheduling margin, `marginMs`). */
const SCRAPE_MS = 200;
const FAULTS = ['ok', 'ok', 'ok', 'slow', 'slow', 'hang'] as const;
const ALLOWED: readonly ErrorCode[] = ['timeout', 'worker_disconnected', 'target_unreachable', 'no_worker', 'shutting_down', 'overloaded'];

interface Node {
  id: string;
  port: number;
  url: string;
  proc: Proc;
  client: HttpClient;
  state: 'up' | 'stopped' | 'restarting';
}

type FaultMark = 'nodeKill' | 'nodeStop' | 'nodeThaw' | 'nodeRestarted' | 'natsKill' | 'natsUp' | 'natsFreeze' | 'natsThaw' | 'agentKill' | 'agentStop' | 'agentThaw';

interface Outcome {
  id: string;
  node: string;
  timeoutMs: number;
  startedAt: number;
  elapsedMs: number;
  status?: number;
  body?: any;
  error?: string;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test(`cluster chaos: nodes, agents and NATS killed and frozen while dispatching (seed ${seed}; replay with FLOWTEST_CHAOS_SEED=${seed})`, async (t) => {
  t.diagnostic(`seed ${seed}`);
  const tokensFile = writeTokensFile(t);
  const { url: targetUrl, seen } = await startFaultTarget(t);

  const nats = await startNats(t);
  const clients: HttpClient[] = [];
  t.after(() => clients.forEach((c) => c.destroy()));
  /** Starts a node; a start that fails (NATS down at that moment: exit 1) is tried again, as a supervisor would. */
  const spawnNode = async (id: string, port: number): Promise<{ proc: Proc; port: number; url: string }> => {
    for (let attempt = 1; ; attempt++) {
      const proc = startCli(
        t,
        ['server', '--host', '127.0.0.1', '--port', String(port), '--tokens-file', tokensFile, '--heartbeat-ms', String(HEARTBEAT_MS), '--shutdown-grace-ms', '500', '--nats', nats.url, '--node-id', id],
        { FLOWTEST_LOG_LEVEL: 'info' },
      );
      try {
        const url = JSON.parse(await proc.waitForLine(/"msg":"server listening"/, 30_000)).url as string;
        return { proc, port: Number(new URL(url).port), url };
      } catch (err) {
        if (attempt >= 5) throw err;
        await proc.exited;
      }
    }
  };
  const nodes: Node[] = await Promise.all(
    Array.from({ length: NODES }, async (_, i) => {
      const { proc, port, url } = await spawnNode(`c${i + 1}`, 0);
      const client = new HttpClient(url, 64);
      clients.push(client);
      return { id: `c${i + 1}`, port, url, proc, client, state: 'up' as const };
    }),
  );
  /** Every fault with its time (performance.now()); `node` null for NATS and agents. */
  const faultLog: { node: string | null; at: number; kind: FaultMark }[] = [];
  const mark = (node: string | null, kind: FaultMark) => faultLog.push({ node, at: performance.now(), kind });
  const live = (n: Node) => n.state === 'up';
  const metric = async (n: Node, name: string) => metricSum((await n.client.get('/metrics')).body, name);
  await waitUntil(async () => (await Promise.all(nodes.map((n) => metric(n, 'flowtest_cluster_nodes')))).every((v) => v === NODES), 10_000, 'the cluster formed');

  // ---- scheduling delay, measured while the test runs ----
  // Each node's: every SCRAPE_MS its /metrics gives its longest event-loop delay since the last
  // scrape (prom-client resets it) and its CPU time. Of a stall longer than the CPU the node used
  // in that window, at least (delay - CPU) was spent not running: descheduled, not busy with its
  // own work. A stall of the product's own making (the loop busy) earns no margin.
  const windows: { node: string; from: number; to: number; descheduledMs: number }[] = [];
  let measuring = true;
  const scrapeNode = async (n: Node) => {
    let prev: { at: number; cpuMs: number } | null = null;
    // One scrape after the run too: the last answers' windows close there.
    for (let last = false; !last; ) {
      last = !measuring;
      if (n.state !== 'up') {
        prev = null; // frozen or restarting: its next window would hold the fault, not scheduling
      } else {
        try {
          const text = (await n.client.get('/metrics')).body as string;
          const at = performance.now();
          const cpuMs = metricSum(text, 'process_cpu_seconds_total') * 1000;
          const lagMs = metricSum(text, 'nodejs_eventloop_lag_max_seconds') * 1000;
          if (prev && cpuMs >= prev.cpuMs && n.state === 'up') windows.push({ node: n.id, from: prev.at, to: at, descheduledMs: Math.max(0, lagMs - (cpuMs - prev.cpuMs)) });
          prev = { at, cpuMs };
        } catch {
          prev = null;
        }
      }
      if (measuring) await pause(SCRAPE_MS); // scrape pacing, not a wait for a condition
    }
  };
  // This process's (it reads the answers): round trips to a process that does no work.
  const echo = spawn(process.execPath, ['-e', "const s=require('http').createServer((q,r)=>r.end()).listen(0,'127.0.0.1',()=>console.log(s.address().port))"], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const echoExited = once(echo, 'exit');
  t.after(async () => {
    if (echo.exitCode === null && echo.signalCode === null) {
      echo.kill('SIGKILL');
      await echoExited;
    }
  });
  const [echoPort] = (await once(echo.stdout!, 'data')) as [Buffer];
  const echoClient = new HttpClient(`http://127.0.0.1:${echoPort.toString().trim()}`, 1);
  clients.push(echoClient);
  const echoes: { from: number; to: number }[] = [];
  const probeEcho = async () => {
    while (measuring) {
      const from = performance.now();
      await echoClient.get('/');
      echoes.push({ from, to: performance.now() });
      await pause(20); // probe pacing, not a wait for a condition
    }
  };
  const measurers = [probeEcho(), ...nodes.map(scrapeNode)];
  /**
   * The scheduling margin of an answer from `node` that was due at `dueAt`: the node's time off
   * the CPU in the window where the request arrived (a late read shifts its deadline) and in
   * every window from `dueAt` to the answer (its timer, its write), plus this process's longest
   * echo round trip meanwhile. Windows that overlap a freeze of the node are left out.
   */
  const marginMs = (node: string, startedAt: number, dueAt: number, answeredAt: number) => {
    const frozen = (w: { from: number; to: number }) =>
      faultLog.some((f) => f.node === node && f.kind === 'nodeStop' && f.at <= w.to && (faultLog.find((g) => g.node === node && g.kind === 'nodeThaw' && g.at >= f.at)?.at ?? Infinity) >= w.from);
    const own = windows.filter((w) => w.node === node && !frozen(w));
    const atStart = Math.max(0, ...own.filter((w) => w.from <= startedAt && w.to >= startedAt).map((w) => w.descheduledMs));
    let tail = 0;
    for (const w of own) if (w.to >= dueAt && w.from <= answeredAt) tail += w.descheduledMs;
    let reader = 0;
    for (const e of echoes) if (e.to >= startedAt && e.from <= answeredAt) reader = Math.max(reader, e.to - e.from);
    return atStart + tail + reader;
  };

  const random = rng(seed);
  const agents = new Set<Proc>();
  const stoppedAgents = new Set<Proc>();
  const timers = new Set<NodeJS.Timeout>(); // SIGCONT timers; owned here, cleared below and after
  t.after(() => timers.forEach((timer) => clearTimeout(timer)));
  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };
  const startAgentProc = () => {
    const node = random.pick(nodes);
    const proc = startCli(t, ['agent', '--server', `ws://127.0.0.1:${node.port}`, '--suite', 'acme', '--name', 'pool1', '--concurrency', '4', '--allow-host', '127.0.0.1'], {
      FLOWTEST_TOKEN: TOKENS.worker,
      FLOWTEST_LOG_LEVEL: 'warn',
    });
    agents.add(proc);
    void proc.exited.then(() => agents.delete(proc));
  };
  for (let i = 0; i < AGENTS; i++) startAgentProc();
  const listed = async (n: Node) => ((await n.client.get('/v1/workers', { token: TOKENS.admin })).body.workers as unknown[]).length;
  await waitUntil(async () => (await Promise.all(nodes.map(listed))).every((c) => c === AGENTS), 20_000, 'every agent listed at every node');

  // ---- faults ----
  const faults = { nodeKill: 0, nodeStop: 0, agentKill: 0, agentStop: 0, natsRestart: 0, natsFreeze: 0 };
  let natsDown = false;
  const started = performance.now();
  const stopAt = started + RUN_MS;
  const restarts: Promise<void>[] = [];
  const injectFaults = async () => {
    while (performance.now() < stopAt - 2000) {
      await pause(random.int(400, 900)); // pacing of the fault plan, not a wait for a condition
      const up = nodes.filter(live);
      const kind = random.pick(['nodeKill', 'nodeStop', 'agentKill', 'agentStop', 'agentKill', 'natsRestart', 'natsFreeze'] as const);
      if ((kind === 'nodeKill' || kind === 'nodeStop') && up.length >= 2 && faults.nodeKill + faults.nodeStop < 3) {
        const node = random.pick(up);
        mark(node.id, kind);
        if (kind === 'nodeKill') {
          node.state = 'restarting';
          node.proc.child.kill('SIGKILL');
          // The same id on the same port, as a supervisor would restart it; its agents reconnect there.
          restarts.push(
            node.proc.exited.then(async () => {
              const again = await spawnNode(node.id, node.port);
              node.proc = again.proc;
              mark(node.id, 'nodeRestarted');
              node.state = 'up';
            }),
          );
        } else {
          node.state = 'stopped';
          node.proc.child.kill('SIGSTOP');
          later(random.int(500, 2000), () => {
            node.proc.child.kill('SIGCONT');
            mark(node.id, 'nodeThaw');
            node.state = 'up';
          });
        }
        faults[kind] += 1;
      } else if (kind === 'agentKill' && agents.size > 0) {
        random.pick([...agents]).child.kill('SIGKILL');
        mark(null, 'agentKill');
        startAgentProc();
        faults.agentKill += 1;
      } else if (kind === 'agentStop' && agents.size > 1) {
        const agent = random.pick([...agents].filter((a) => !stoppedAgents.has(a)));
        if (!agent) continue;
        agent.child.kill('SIGSTOP');
        mark(null, 'agentStop');
        stoppedAgents.add(agent);
        later(random.int(300, 1200), () => {
          agent.child.kill('SIGCONT');
          mark(null, 'agentThaw');
          stoppedAgents.delete(agent);
        });
        faults.agentStop += 1;
      } else if (kind === 'natsRestart' && faults.natsRestart === 0 && !natsDown) {
        natsDown = true;
        mark(null, 'natsKill');
        await nats.kill();
        await pause(random.int(300, 1200));
        await nats.restart();
        mark(null, 'natsUp');
        natsDown = false;
        faults.natsRestart += 1;
      } else if (kind === 'natsFreeze' && faults.natsFreeze === 0 && !natsDown) {
        natsDown = true;
        mark(null, 'natsFreeze');
        nats.freeze();
        await pause(random.int(500, 1500));
        nats.thaw();
        mark(null, 'natsThaw');
        natsDown = false;
        faults.natsFreeze += 1;
      }
    }
  };

  // ---- dispatches ----
  const outcomes: Outcome[] = [];
  let seq = 0;
  const lane = async () => {
    while (performance.now() < stopAt) {
      const up = nodes.filter(live);
      if (up.length === 0) {
        await pause(20); // every node faulted at once: wait for one (bounded by the run)
        continue;
      }
      const n = seq++;
      const id = `k${n}`;
      const plan = rng((seed ^ Math.imul(n + 1, 2654435761)) >>> 0);
      const fault = plan.pick(FAULTS);
      const timeoutMs = plan.int(300, 2500);
      const query = fault === 'slow' ? `fault=slow&ms=${plan.int(20, 400)}` : `fault=${fault}`;
      const node = plan.pick(up);
      const outcome: Outcome = { id, node: node.id, timeoutMs, startedAt: performance.now(), elapsedMs: 0 };
      try {
        const r = await node.client.dispatch('acme', { pool: 'pool1', timeoutMs, waitForWorkerMs: Math.min(1000, timeoutMs), request: { method: 'GET', url: `${targetUrl}/job/${id}?${query}` } });
        outcome.status = r.status;
        outcome.body = r.body;
      } catch (err) {
        outcome.error = String(err);
      }
      outcome.elapsedMs = performance.now() - outcome.startedAt;
      outcomes.push(outcome);
    }
  };
  await Promise.all([injectFaults(), ...Array.from({ length: LANES }, lane)]);
  measuring = false;
  await Promise.all(measurers);

  // ---- invariants ----
  const violations: string[] = [];
  const counts = new Map<string, number>();
  let arrivalKilled = 0;
  let arrivalFrozen = 0;
  /** Per dispatch checked for time: how far past its bound without the scheduling margin, and the margin. */
  const timed: { o: Outcome; overMs: number; sched: number; faults: string }[] = [];
  for (const o of outcomes) {
    const key = o.error ? 'transport-error' : o.status === 200 ? 'ok' : String(o.body?.error?.code);
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if ((seen.get(o.id) ?? 0) > 1) violations.push(`${o.id}: the target saw it ${seen.get(o.id)} times`);
    const answeredAt = o.startedAt + o.elapsedMs;
    const during = faultLog.filter((f) => f.at >= o.startedAt - 50 && f.at <= answeredAt);
    const own = during.filter((f) => f.node === o.node);
    let dueMs = o.timeoutMs;
    if (own.some((f) => f.kind === 'nodeKill')) {
      arrivalKilled += 1; // its caller's connection died with the node; an answer it did get is still checked below
    } else if (o.error) {
      violations.push(`${o.id} at ${o.node}: no answer (${o.error})`);
      continue;
    } else {
      const thaw = own.findLast((f) => f.kind === 'nodeThaw');
      if (own.some((f) => f.kind === 'nodeStop')) {
        arrivalFrozen += 1;
        // A stopped process answers nobody: its bound runs from the thaw when that came after the deadline.
        if (thaw) dueMs = Math.max(dueMs, thaw.at - o.startedAt);
      }
      const overMs = o.elapsedMs - (dueMs + ANSWER_MS);
      const sched = marginMs(o.node, o.startedAt, o.startedAt + dueMs, answeredAt);
      timed.push({ o, overMs, sched, faults: during.map((f) => `${f.node ? `${f.node}:` : ''}${f.kind}@${Math.round(f.at - o.startedAt)}`).join(' ') });
      if (overMs > sched) violations.push(`${o.id} at ${o.node}: answered after ${o.elapsedMs.toFixed(0)} ms, due by ${dueMs.toFixed(0)} + ${ANSWER_MS} ms (scheduling margin ${sched.toFixed(0)} ms)`);
    }
    if (o.error) continue;
    if (o.status === 200) {
      if (o.body.response?.body !== o.id) violations.push(`${o.id}: a response that is not its own: ${JSON.stringify(o.body).slice(0, 120)}`);
      if (seen.get(o.id) !== 1) violations.push(`${o.id}: answered ok but the target saw it ${seen.get(o.id) ?? 0} times`);
      continue;
    }
    const parsed = errorBodySchema.safeParse(o.body);
    if (!parsed.success) {
      violations.push(`${o.id}: not a contract error body: ${JSON.stringify(o.body).slice(0, 120)}`);
      continue;
    }
    const { code, message } = parsed.data.error;
    if (!ALLOWED.includes(code) || ERROR_CODES[code].status !== o.status) violations.push(`${o.id}: ${o.status} ${code}: ${message}`);
    // The caller's own deadline, wherever the job was when it ran out (re-placed, or at another node).
    if (code === 'timeout' && message !== `no answer within ${o.timeoutMs} ms`) violations.push(`${o.id}: deadline ${o.timeoutMs} ms answered "${message}"`);
    // Failed for a node's death: within 3 s of a fault that could make a node look dead (its own
    // kill or freeze, NATS lost, or this arrival node's freeze, after which every other node looks dead).
    if (code === 'worker_disconnected' && / stopped answering$/.test(message)) {
      const cause = faultLog.findLast((f) => f.at <= answeredAt && (f.kind === 'nodeKill' || f.kind === 'nodeStop' || f.kind === 'natsKill' || f.kind === 'natsFreeze'));
      const sinceMs = cause ? answeredAt - cause.at : Infinity;
      const sched = cause ? marginMs(o.node, o.startedAt, cause.at + NODE_DEATH_MS, answeredAt) : 0;
      if (sinceMs > NODE_DEATH_MS + ANSWER_MS + sched) violations.push(`${o.id} at ${o.node}: "${message}" ${sinceMs.toFixed(0)} ms after the last node or NATS fault`);
    }
  }
  timed.sort((x, y) => y.overMs - y.sched - (x.overMs - x.sched));
  const worst = timed[0];
  const over = timed.filter((x) => x.overMs > 0).length;
  t.diagnostic(`${outcomes.length} dispatches: ${JSON.stringify(Object.fromEntries(counts))}; arrival node killed ${arrivalKilled}, frozen ${arrivalFrozen}`);
  const echoMax = Math.max(0, ...echoes.map((e) => e.to - e.from));
  const offCpuMax = Math.max(0, ...windows.map((w) => w.descheduledMs));
  t.diagnostic(`faults: ${JSON.stringify(faults)}; scheduling: a node off the CPU up to ${offCpuMax.toFixed(0)} ms in one window (${windows.length} windows), echo round trip up to ${echoMax.toFixed(0)} ms`);
  t.diagnostic(`${over} of ${timed.length} timed dispatches past deadline + ${ANSWER_MS} ms before the scheduling margin; closest to its bound: ${worst ? `${worst.o.id} ${worst.overMs.toFixed(0)} ms over with margin ${worst.sched.toFixed(0)} ms` : '-'}`);
  for (const x of timed.slice(0, 5)) {
    t.diagnostic(`  ${x.o.id} at ${x.o.node}: ${x.o.elapsedMs.toFixed(0)} ms for a ${x.o.timeoutMs} ms deadline (${x.o.status} ${x.o.body?.error?.code ?? 'ok'}: ${x.o.body?.error?.message ?? ''}), over by ${x.overMs.toFixed(0)} ms, margin ${x.sched.toFixed(0)} ms; faults ${x.faults || 'none'}`);
  }
  assert.deepEqual(violations.slice(0, 10), [], `seed ${seed}: ${violations.length} violations`);
  assert.ok(outcomes.length > 150, `only ${outcomes.length} dispatches`);
  assert.ok(arrivalKilled + arrivalFrozen < outcomes.length / 2, `${arrivalKilled + arrivalFrozen} of ${outcomes.length} dispatches had their own node faulted: too few were checked`);
  assert.ok(Object.values(faults).reduce((a, b) => a + b, 0) >= 5, JSON.stringify(faults));
  assert.ok((counts.get('ok') ?? 0) > 0, `no ok (seed ${seed})`);

  // ---- afterwards: everything settles; every node's tables are empty ----
  for (const timer of timers) clearTimeout(timer);
  timers.clear();
  for (const n of nodes) if (n.state === 'stopped') n.proc.child.kill('SIGCONT');
  for (const a of stoppedAgents) a.child.kill('SIGCONT');
  stoppedAgents.clear();
  await Promise.all(restarts);
  for (const n of nodes) n.state = 'up';
  await waitUntil(async () => (await Promise.all(nodes.map((n) => metric(n, 'flowtest_cluster_nodes')))).every((v) => v === NODES), 10_000, 'the cluster formed again');
  for (const n of nodes) {
    await waitUntil(async () => (await metric(n, 'flowtest_jobs_in_flight')) === 0 && (await metric(n, 'flowtest_jobs_queued')) === 0, 10_000, `nothing in flight or queued at ${n.id}`);
  }
  for (const agent of agents) agent.child.kill('SIGTERM');
  await Promise.all([...agents].map((a) => a.exited));
  for (const n of nodes) await waitUntil(async () => (await listed(n)) === 0, 5000, `no worker listed at ${n.id}`);
  for (const n of nodes) n.proc.child.kill('SIGTERM');
  for (const n of nodes) assert.deepEqual(await n.proc.exited, { code: 0, signal: null }, `${n.id} shut down by itself`);
});
