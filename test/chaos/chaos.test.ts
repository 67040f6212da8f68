/**
 * Chaos: dispatches through real server and agent processes while faults hit at random —
 * agents SIGKILLed and SIGSTOPped, worker sockets reset (a proxy sits between agents and
 * server), clients aborting, targets resetting connections, and one server restart (a
 * new server takes over, the old one gets SIGTERM). For every dispatch: exactly one
 * answer, a contract error code (with its HTTP status) or the job's own response, within
 * its deadline plus a small slack; the target sees no job id twice; afterwards the
 * server's tables are empty. Each kill takes down the agent holding a probe job (a
 * request that hangs at the target, with a long deadline): the probe must end
 * `worker_disconnected` within 2 × heartbeat (+ slack) of the kill — the fail-fast
 * promise — never by its deadline. The plan comes from a seeded PRNG: the seed is in the test
 * name, and FLOWTEST_CHAOS_SEED=N replays it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERROR_CODES, type ErrorCode } from '../../shared/errors.ts';
import { errorBodySchema } from '../../shared/protocol.ts';
import { writeTokensFile } from '../helpers/cluster.ts';
import { HttpClient } from '../helpers/http-client.ts';
import { metricSum } from '../helpers/metrics-text.ts';
import { rng, seedFrom } from '../helpers/prng.ts';
import { startCli, type Proc } from '../helpers/processes.ts';
import { TOKENS } from '../helpers/server.ts';
import { waitUntil, within } from '../helpers/wait.ts';
import { startFaultTarget } from './fault-target.ts';
import { ChaosProxy } from './proxy.ts';
import { localPortsOf } from './socket-owner.ts';

const seed = seedFrom('FLOWTEST_CHAOS_SEED');
const RUN_MS = 12_000;
const LANES = 16;
const AGENTS = 3;
const HEARTBEAT_MS = 300;
/** Answers may come this much after the deadline (timer lateness with six busy processes on two cores). */
const SLACK_MS = 1500;
const FAULTS = ['ok', 'ok', 'ok', 'slow', 'slow', 'hang', 'reset', 'reset-mid'] as const;
/** Deadline of a probe job: far beyond how soon it must fail when its agent is killed. */
const PROBE_TIMEOUT_MS = 8000;
const ALLOWED: readonly ErrorCode[] = ['timeout', 'worker_disconnected', 'target_unreachable', 'target_timeout', 'no_worker', 'shutting_down', 'overloaded'];

interface Outcome {
  id: string;
  fault: (typeof FAULTS)[number];
  timeoutMs: number;
  elapsedMs: number;
  aborted: boolean;
  status?: number;
  body?: any;
  error?: string;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test(`chaos: random faults while dispatching (seed ${seed}; replay with FLOWTEST_CHAOS_SEED=${seed})`, async (t) => {
  t.diagnostic(`seed ${seed}`);
  const tokensFile = writeTokensFile(t);

  // The target: answers by the fault named in the query, counts every job id it sees.
  const { url: targetUrl, seen, requestPorts } = await startFaultTarget(t);

  const startServerProc = async () => {
    const proc = startCli(t, ['server', '--host', '127.0.0.1', '--port', '0', '--tokens-file', tokensFile, '--heartbeat-ms', String(HEARTBEAT_MS), '--shutdown-grace-ms', '500'], { FLOWTEST_LOG_LEVEL: 'info' });
    const url = JSON.parse(await proc.waitForLine(/"msg":"server listening"/)).url as string;
    return { proc, url, port: Number(new URL(url).port), client: new HttpClient(url, 64) };
  };
  let server = await startServerProc();
  const clients = [server.client];
  t.after(() => clients.forEach((c) => c.destroy()));
  const proxy = await ChaosProxy.start(server.port);
  t.after(() => proxy.close());

  const agents = new Set<Proc>();
  const stopped = new Set<Proc>();
  const contTimers = new Set<NodeJS.Timeout>();
  t.after(() => contTimers.forEach((timer) => clearTimeout(timer)));
  const startAgentProc = () => {
    const proc = startCli(t, ['agent', '--server', `ws://127.0.0.1:${proxy.port}`, '--suite', 'acme', '--name', 'pool1', '--concurrency', '6', '--allow-host', '127.0.0.1'], {
      FLOWTEST_TOKEN: TOKENS.worker,
      FLOWTEST_LOG_LEVEL: 'warn',
    });
    agents.add(proc);
    void proc.exited.then(() => agents.delete(proc));
  };
  for (let i = 0; i < AGENTS; i++) startAgentProc();
  const workers = async () => (await server.client.get('/v1/workers', { token: TOKENS.admin })).body.workers as { id: string; inFlight: number }[];
  await waitUntil(async () => (await workers()).length === AGENTS, 45_000, 'agents connected'); // process start is slow on a loaded machine

  // ---- probes: a job whose holder is known, for each kill ----
  interface Probe {
    id: string;
    killedAt: number | null;
    answer: Promise<{ at: number; status?: number; code?: string; error?: string }>;
  }
  const probes: Probe[] = [];
  /** Sends a probe and returns the running agent that holds it, or null when none does within a bound. */
  const probeHolder = async (): Promise<{ probe: Probe; holder: Proc | null }> => {
    const id = `p${probes.length}`;
    const answer = server.client
      .dispatch('acme', { pool: 'pool1', timeoutMs: PROBE_TIMEOUT_MS, waitForWorkerMs: 2000, request: { method: 'GET', url: `${targetUrl}/job/${id}?fault=hang` } })
      .then(
        (r) => ({ at: performance.now(), status: r.status, code: r.body?.error?.code as string | undefined }),
        (err: unknown) => ({ at: performance.now(), error: String(err) }),
      );
    const probe: Probe = { id, killedAt: null, answer };
    probes.push(probe);
    const arrived = await waitUntil(() => requestPorts.has(id), 3000, 'the probe at the target').then(
      () => true,
      () => false, // queued, or sent to a stopped agent: this kill picks its victim at random
    );
    if (!arrived) return { probe, holder: null };
    const port = requestPorts.get(id)!;
    const holder = [...agents].find((a) => !stopped.has(a) && localPortsOf(a.pid).has(port)) ?? null;
    return { probe, holder };
  };

  // ---- faults ----
  const random = rng(seed);
  const faults = { kill: 0, stop: 0, reset: 0, restart: 0 };
  const started = performance.now();
  const stopAt = started + RUN_MS;
  let oldServerExit: Promise<{ code: number | null }> | null = null;
  const firstKinds = (['kill', 'stop', 'reset'] as const).map((k) => ({ k, r: random.next() })).sort((a, b) => a.r - b.r).map(({ k }) => k);
  const injectFaults = async () => {
    while (performance.now() < stopAt - 1500) {
      await pause(random.int(250, 800)); // pacing of the fault plan, not a wait for a condition
      if (faults.restart === 0 && performance.now() > started + RUN_MS * 0.4) {
        // A new server takes over: agents reconnect to it through the proxy, clients send to it,
        // and the old one shuts down gracefully, answering what it still holds.
        faults.restart += 1;
        const next = await startServerProc();
        clients.push(next.client);
        proxy.setUpstream(next.port);
        const old = server;
        server = next;
        old.proc.child.kill('SIGTERM');
        oldServerExit = old.proc.exited;
        continue;
      }
      const running = [...agents].filter((a) => !stopped.has(a));
      // The first three faults are each kind once, in a random order (retried until it applies); then any.
      const kind = firstKinds[0] ?? random.pick(['kill', 'stop', 'reset', 'reset'] as const);
      let applied = false;
      if (kind === 'kill' && running.length > 0) {
        const { probe, holder } = await probeHolder();
        const victim = holder && !stopped.has(holder) && holder.child.exitCode === null ? holder : random.pick(running);
        if (victim === holder) probe.killedAt = performance.now();
        victim.child.kill('SIGKILL');
        startAgentProc();
        applied = true;
      } else if (kind === 'stop' && running.length > 1) {
        const agent = random.pick(running);
        agent.child.kill('SIGSTOP');
        stopped.add(agent);
        const timer = setTimeout(() => {
          contTimers.delete(timer);
          agent.child.kill('SIGCONT');
          stopped.delete(agent);
        }, random.int(300, 1500));
        contTimers.add(timer);
        applied = true;
      } else if (kind === 'reset') applied = proxy.resetOne(random);
      if (applied) {
        faults[kind] += 1;
        if (firstKinds[0] === kind) firstKinds.shift();
      }
    }
  };

  // ---- dispatches ----
  const outcomes: Outcome[] = [];
  let seq = 0;
  const lane = async () => {
    while (performance.now() < stopAt) {
      const n = seq++;
      const id = `c${n}`;
      const plan = rng((seed ^ Math.imul(n + 1, 2654435761)) >>> 0); // per dispatch, so its plan does not depend on timing
      const fault = plan.pick(FAULTS);
      const timeoutMs = plan.int(300, 2500);
      const abortAfterMs = plan.chance(0.12) ? plan.int(0, 400) : null;
      const query = fault === 'slow' ? `fault=slow&ms=${plan.int(20, 400)}` : `fault=${fault}`;
      const ac = new AbortController();
      const abortTimer = abortAfterMs === null ? undefined : setTimeout(() => ac.abort(), abortAfterMs);
      const t0 = performance.now();
      const outcome: Outcome = { id, fault, timeoutMs, elapsedMs: 0, aborted: false };
      try {
        const r = await server.client.dispatch(
          'acme',
          { pool: 'pool1', timeoutMs, waitForWorkerMs: Math.min(2000, timeoutMs), request: { method: 'GET', url: `${targetUrl}/job/${id}?${query}` } },
          { signal: ac.signal },
        );
        outcome.status = r.status;
        outcome.body = r.body;
      } catch (err) {
        if (ac.signal.aborted) outcome.aborted = true;
        else outcome.error = String(err);
      } finally {
        clearTimeout(abortTimer);
      }
      outcome.elapsedMs = performance.now() - t0;
      outcomes.push(outcome);
    }
  };
  await Promise.all([injectFaults(), ...Array.from({ length: LANES }, lane)]);

  // ---- invariants of every dispatch ----
  const violations: string[] = [];
  const counts = new Map<string, number>();
  let worstLateMs = -Infinity;
  for (const o of outcomes) {
    const key = o.aborted ? 'client-aborted' : o.error ? 'transport-error' : o.status === 200 ? 'ok' : String(o.body?.error?.code);
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if ((seen.get(o.id) ?? 0) > 1) violations.push(`${o.id}: the target saw it ${seen.get(o.id)} times`);
    if (o.aborted) continue;
    if (o.error) {
      violations.push(`${o.id}: no answer (${o.error})`);
      continue;
    }
    worstLateMs = Math.max(worstLateMs, o.elapsedMs - o.timeoutMs);
    if (o.elapsedMs > o.timeoutMs + SLACK_MS) violations.push(`${o.id}: answered after ${o.elapsedMs.toFixed(0)} ms, deadline ${o.timeoutMs} ms`);
    if (o.status === 200) {
      if (o.body.response?.body !== o.id || o.body.response?.status !== 200) violations.push(`${o.id} (${o.fault}): a response that is not its own: ${JSON.stringify(o.body).slice(0, 120)}`);
      if (seen.get(o.id) !== 1) violations.push(`${o.id}: answered ok but the target saw it ${seen.get(o.id) ?? 0} times`);
      continue;
    }
    const parsed = errorBodySchema.safeParse(o.body);
    if (!parsed.success) violations.push(`${o.id}: not a contract error body: ${JSON.stringify(o.body).slice(0, 120)}`);
    else if (!ALLOWED.includes(parsed.data.error.code) || ERROR_CODES[parsed.data.error.code].status !== o.status) {
      violations.push(`${o.id} (${o.fault}): ${o.status} ${parsed.data.error.code}: ${parsed.data.error.message}`);
    }
  }
  // ---- the fail-fast promise: a killed agent's jobs end worker_disconnected, promptly ----
  const promptMs = 2 * HEARTBEAT_MS + SLACK_MS;
  const probed: string[] = [];
  const failFastViolations: string[] = [];
  for (const probe of probes) {
    const a = await within(probe.answer, PROBE_TIMEOUT_MS + SLACK_MS, `the answer to probe ${probe.id}`);
    if (probe.killedAt === null) continue; // its holder was not found: only the general invariants apply
    const after = a.at - probe.killedAt;
    // Negative: it had ended before the kill, its worker already cut (by the heartbeat on a loaded machine, say).
    probed.push(`${probe.id}: ${a.code ?? a.status ?? a.error} ${after >= 0 ? `${after.toFixed(0)} ms after the kill` : `${(-after).toFixed(0)} ms before the kill`}`);
    if (a.code !== 'worker_disconnected' || after > promptMs) {
      failFastViolations.push(`${probe.id} (held by a killed agent): ${a.code ?? a.status ?? a.error} ${after.toFixed(0)} ms after the kill; the promise is worker_disconnected within ${promptMs} ms`);
    }
  }
  t.diagnostic(`probes held by killed agents: ${probed.join('; ') || 'none'}`);
  t.diagnostic(`${outcomes.length} dispatches: ${JSON.stringify(Object.fromEntries(counts))}`);
  t.diagnostic(`faults: ${JSON.stringify(faults)}; target saw ${seen.size} job ids; latest answer ${worstLateMs.toFixed(0)} ms past its deadline`);
  assert.deepEqual(failFastViolations, [], `seed ${seed}: jobs of killed agents not failed fast`);
  assert.deepEqual(violations.slice(0, 10), [], `seed ${seed}: ${violations.length} violations, the first: ${violations[0]}`);
  // Enough traffic for every fault to meet jobs: ~700 on an idle 2-core machine, ~300 when other work loads it (the kinds are checked below).
  assert.ok(outcomes.length > 200, `only ${outcomes.length} dispatches`);
  assert.equal(faults.restart, 1);
  assert.ok(faults.kill > 0 && faults.stop > 0 && faults.reset > 0, JSON.stringify(faults));
  assert.ok(probed.length > 0, `no kill hit the holder of a probe (${probes.length} probes)`);
  for (const k of ['ok', 'timeout', 'client-aborted', 'target_unreachable']) assert.ok((counts.get(k) ?? 0) > 0, `no ${k} (seed ${seed})`);

  // ---- afterwards: everything settles and every table is empty ----
  for (const timer of contTimers) clearTimeout(timer);
  contTimers.clear();
  for (const agent of stopped) agent.child.kill('SIGCONT');
  stopped.clear();
  assert.deepEqual(await within(oldServerExit ?? Promise.resolve(null), 15_000, 'the old server to exit after SIGTERM'), { code: 0, signal: null }, 'the old server shut down by itself');
  // Summed over the suite and pool labels: the whole server's figure.
  const gauge = async (name: string) => metricSum((await server.client.get('/metrics')).body, name);
  await waitUntil(async () => (await gauge('flowtest_jobs_in_flight')) === 0 && (await gauge('flowtest_jobs_queued')) === 0, 5000, 'no job in flight or queued');
  assert.ok((await workers()).every((w) => w.inFlight === 0));
  for (const agent of agents) agent.child.kill('SIGTERM');
  await within(Promise.all([...agents].map((a) => a.exited)), 15_000, 'the agents to exit on SIGTERM');
  await waitUntil(async () => (await workers()).length === 0, 5000, 'no worker listed');
  server.proc.child.kill('SIGTERM');
  assert.deepEqual(await within(server.proc.exited, 15_000, 'the server to exit on SIGTERM'), { code: 0, signal: null });
});
