/**
 * Chaos, cluster mode: three server nodes (processes) on one nats-server, agents on random
 * nodes, dispatches sent to random nodes, while faults hit at random — a node SIGKILLed (and
 * started again on its port under its id), a node frozen with SIGSTOP for a while, agents
 * SIGKILLed and frozen, NATS restarted once and frozen once. For every dispatch: one answer,
 * its own response or a contract error code, within its deadline plus a slack (plus 3 s when
 * a node died or froze meanwhile — the contract's bound for a node's death); the target sees
 * no job id twice; afterwards every node's tables are empty. Dispatches whose own arrival
 * node was killed or frozen while they waited are counted apart: that node is the one that
 * answers (or, killed, cannot). The plan comes from a seeded PRNG (FLOWTEST_CHAOS_SEED=N).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
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

const seed = seedFrom('FLOWTEST_CHAOS_SEED');
const RUN_MS = 10_000;
const LANES = 12;
const NODES = 3;
const AGENTS = 4;
const HEARTBEAT_MS = 300;
/** Timer lateness with eight busy processes on two cores (the single-node chaos uses the same). */
const SLACK_MS = 1500;
/** The contract's bound for failing the jobs of a node that died. */
const NODE_DEATH_MS = 3000;
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
  const seen = new Map<string, number>();
  const slowTimers = new Set<NodeJS.Timeout>(); // owned here, cleared when answered, dropped or closed
  const target = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const id = url.pathname.split('/')[2] ?? '';
    seen.set(id, (seen.get(id) ?? 0) + 1);
    req.resume();
    const fault = url.searchParams.get('fault');
    if (fault === 'ok') res.end(id);
    else if (fault === 'slow') {
      const timer = setTimeout(() => {
        slowTimers.delete(timer);
        res.end(id);
      }, Number(url.searchParams.get('ms')));
      slowTimers.add(timer);
      res.on('close', () => {
        clearTimeout(timer);
        slowTimers.delete(timer);
      });
    } // hang: never answers
  });
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const timer of slowTimers) clearTimeout(timer);
    target.closeAllConnections();
    await new Promise((resolve) => target.close(resolve));
  });
  const targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;

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
  /** Every fault with its time (performance.now()); `node` for a node's own kill, stop, restart or thaw, null for NATS. */
  const faultLog: { node: string | null; at: number }[] = [];
  const mark = (node: string | null) => faultLog.push({ node, at: performance.now() });
  const live = (n: Node) => n.state === 'up';
  const metric = async (n: Node, name: string) => metricSum((await n.client.get('/metrics')).body, name);
  await waitUntil(async () => (await Promise.all(nodes.map((n) => metric(n, 'flowtest_cluster_nodes')))).every((v) => v === NODES), 10_000, 'the cluster formed');

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
        mark(node.id);
        if (kind === 'nodeKill') {
          node.state = 'restarting';
          node.proc.child.kill('SIGKILL');
          // The same id on the same port, as a supervisor would restart it; its agents reconnect there.
          restarts.push(
            node.proc.exited.then(async () => {
              const again = await spawnNode(node.id, node.port);
              node.proc = again.proc;
              mark(node.id);
              node.state = 'up';
            }),
          );
        } else {
          node.state = 'stopped';
          node.proc.child.kill('SIGSTOP');
          later(random.int(500, 2000), () => {
            node.proc.child.kill('SIGCONT');
            mark(node.id);
            node.state = 'up';
          });
        }
        faults[kind] += 1;
      } else if (kind === 'agentKill' && agents.size > 0) {
        random.pick([...agents]).child.kill('SIGKILL');
        startAgentProc();
        faults.agentKill += 1;
      } else if (kind === 'agentStop' && agents.size > 1) {
        const agent = random.pick([...agents].filter((a) => !stoppedAgents.has(a)));
        if (!agent) continue;
        agent.child.kill('SIGSTOP');
        stoppedAgents.add(agent);
        later(random.int(300, 1200), () => {
          agent.child.kill('SIGCONT');
          stoppedAgents.delete(agent);
        });
        faults.agentStop += 1;
      } else if (kind === 'natsRestart' && faults.natsRestart === 0 && !natsDown) {
        natsDown = true;
        mark(null);
        await nats.kill();
        await pause(random.int(300, 1200));
        await nats.restart();
        mark(null);
        natsDown = false;
        faults.natsRestart += 1;
      } else if (kind === 'natsFreeze' && faults.natsFreeze === 0 && !natsDown) {
        natsDown = true;
        mark(null);
        nats.freeze();
        await pause(random.int(500, 1500));
        nats.thaw();
        mark(null);
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

  // ---- invariants ----
  const violations: string[] = [];
  const counts = new Map<string, number>();
  let arrivalFaulted = 0;
  let worstLateMs = -Infinity;
  for (const o of outcomes) {
    const key = o.error ? 'transport-error' : o.status === 200 ? 'ok' : String(o.body?.error?.code);
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if ((seen.get(o.id) ?? 0) > 1) violations.push(`${o.id}: the target saw it ${seen.get(o.id)} times`);
    const during = faultLog.filter((f) => f.at >= o.startedAt - 50 && f.at <= o.startedAt + o.elapsedMs);
    if (during.some((f) => f.node === o.node)) {
      arrivalFaulted += 1;
      continue; // its own node was killed or frozen: no bound on when (or whether) it answers
    }
    if (o.error) {
      violations.push(`${o.id} at ${o.node}: no answer (${o.error})`);
      continue;
    }
    const bound = o.timeoutMs + SLACK_MS + (during.length > 0 ? NODE_DEATH_MS : 0);
    worstLateMs = Math.max(worstLateMs, o.elapsedMs - o.timeoutMs);
    if (o.elapsedMs > bound) violations.push(`${o.id} at ${o.node}: answered after ${o.elapsedMs.toFixed(0)} ms, deadline ${o.timeoutMs} ms`);
    if (o.status === 200) {
      if (o.body.response?.body !== o.id) violations.push(`${o.id}: a response that is not its own: ${JSON.stringify(o.body).slice(0, 120)}`);
      if (seen.get(o.id) !== 1) violations.push(`${o.id}: answered ok but the target saw it ${seen.get(o.id) ?? 0} times`);
      continue;
    }
    const parsed = errorBodySchema.safeParse(o.body);
    if (!parsed.success) violations.push(`${o.id}: not a contract error body: ${JSON.stringify(o.body).slice(0, 120)}`);
    else if (!ALLOWED.includes(parsed.data.error.code) || ERROR_CODES[parsed.data.error.code].status !== o.status) {
      violations.push(`${o.id}: ${o.status} ${parsed.data.error.code}: ${parsed.data.error.message}`);
    }
  }
  t.diagnostic(`${outcomes.length} dispatches: ${JSON.stringify(Object.fromEntries(counts))}; ${arrivalFaulted} had their own arrival node faulted`);
  t.diagnostic(`faults: ${JSON.stringify(faults)}; latest answer ${worstLateMs.toFixed(0)} ms past its deadline`);
  assert.deepEqual(violations.slice(0, 10), [], `seed ${seed}: ${violations.length} violations`);
  assert.ok(outcomes.length > 150, `only ${outcomes.length} dispatches`);
  assert.ok(arrivalFaulted < outcomes.length / 2, `${arrivalFaulted} of ${outcomes.length} dispatches had their own node faulted: too few were checked`);
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
