/**
 * Deliberate bugs that the test suite must catch, one per promise of the product.
 * `npm run mutate` applies each to a scratch copy of the tree and runs only the test
 * files listed with it; a mutation whose tests still pass has "survived".
 *
 * Each mutation replaces one exact text in one file. The text must occur exactly once:
 * when the code it points at is rewritten, `npm run mutate -- --list` names the stale
 * mutation and exits non-zero — re-target it by editing its `search` line (and the
 * `replace` line under it). Add a mutation with every new promise; list the fewest
 * test files that catch it, so that the whole run stays within about 12 minutes.
 */

export interface Mutation {
  /** Short, unique, kebab-case: `npm run mutate -- NAME` runs it alone. */
  name: string;
  /** The promise the mutation breaks, as a user would state it. */
  promise: string;
  /** Path from the repository root. */
  file: string;
  /** Exact text, found exactly once in `file`. */
  search: string;
  replace: string;
  /** Further edits the bug needs (an import, say), each applied like the first; `file` defaults to the mutation's. */
  also?: { file?: string; search: string; replace: string }[];
  /** Test files (from the root) of which at least one must fail. */
  tests: string[];
  /** Bound of the test run in ms (default 90 s); hitting it counts as caught, but slowly. */
  timeoutMs?: number;
  /** `--test-timeout` of each test in ms (default 30 s): a hung test is named before the run's bound. */
  testTimeoutMs?: number;
}

export const MUTATIONS: Mutation[] = [
  {
    name: 'fail-fast-held-jobs',
    promise: "jobs held by a worker whose socket is gone fail at once with worker_disconnected",
    file: 'server/local-router.ts',
    search: 'if (this.#pending.get(id)?.worker !== worker) continue;',
    replace: 'continue;',
    tests: ['test/server/fail-fast.test.ts'],
  },
  {
    name: 'fail-fast-held-jobs-chaos',
    promise: 'under chaos, the jobs of a SIGKILLed agent end worker_disconnected within 2 × heartbeat, not by their deadline',
    file: 'server/local-router.ts',
    search: 'if (this.#pending.get(id)?.worker !== worker) continue;',
    replace: 'continue;',
    tests: ['test/chaos/chaos.test.ts'],
    timeoutMs: 150_000,
    testTimeoutMs: 120_000,
  },
  {
    name: 'deadline-timer-kept',
    promise: "a job's deadline timer is cleared when the job ends",
    file: 'server/pending-jobs.ts',
    search: 'if (job.deadlineTimer) clearTimeout(job.deadlineTimer);',
    replace: 'if (job.deadlineTimer) void 0;',
    tests: ['test/server/fail-fast.test.ts'],
  },
  {
    name: 'concurrency-plus-one',
    promise: 'a worker never holds more jobs than its concurrency',
    file: 'server/pool.ts',
    search: 'if (!w.ready || !w.writable || w.inFlight >= w.concurrency) continue;',
    replace: 'if (!w.ready || !w.writable || w.inFlight >= w.concurrency + 1) continue;',
    tests: ['test/server/pool.test.ts'],
  },
  {
    name: 'heartbeat-never-cuts',
    promise: 'a worker that answers no ping is cut within 2 × heartbeat',
    file: 'server/worker-session.ts',
    search: 'if (this.#awaitingPong) {',
    replace: 'if (false) {',
    tests: ['test/server/worker-gateway.test.ts'],
  },
  {
    name: 'heartbeat-cuts-a-tick-late',
    promise: 'a frozen worker is cut within 2 × heartbeat of its last pong, not 3',
    file: 'server/worker-session.ts',
    search: 'if (this.#awaitingPong) {',
    replace: 'if (this.#awaitingPong && ((this as any).missedTicks = ((this as any).missedTicks ?? 0) + 1) > 1) {',
    tests: ['test/server/worker-gateway.test.ts'],
  },
  {
    name: 'heartbeat-interval-late',
    promise: 'pings go out every heartbeatMs, so the cut falls within 2 × heartbeat',
    file: 'server/worker-session.ts',
    search: 'this.#nextTickAt = Math.max(this.#nextTickAt + hb, performance.now() + hb / 2);',
    replace: 'this.#nextTickAt = Math.max(this.#nextTickAt + hb * 1.5, performance.now() + hb / 2);',
    tests: ['test/server/worker-gateway.test.ts'],
  },
  {
    name: 'heartbeat-timer-not-cleared',
    promise: "a session's heartbeat timer is cleared when the session ends",
    file: 'server/worker-session.ts',
    search: 'if (this.#heartbeat) clearTimeout(this.#heartbeat);',
    replace: 'if (this.#heartbeat) void 0;',
    tests: ['test/server/worker-gateway.test.ts'],
  },
  {
    name: 'cross-suite-token',
    promise: "a client token is valid only for its own suites",
    file: 'server/auth.ts',
    search: "if (access.role === 'client') return g.client.has(access.suite) ? 'ok' : 'forbidden';",
    replace: "if (access.role === 'client') return g.client.size > 0 ? 'ok' : 'forbidden';",
    tests: ['test/server/auth.test.ts'],
  },
  {
    name: 'cross-suite-worker-token',
    promise: "a worker token connects only workers of its own suites",
    file: 'server/auth.ts',
    search: "if (pools === undefined) return 'forbidden';",
    replace: "if (pools === undefined) return g.worker.size > 0 ? 'ok' : 'forbidden';",
    tests: ['test/server/auth.test.ts'],
  },
  {
    name: 'cidr-always-matches',
    promise: '--allow-host CIDR patterns admit only addresses inside the prefix',
    file: 'worker-agent/allowlist.ts',
    search: 'const net = new Cidr(ip, bits);',
    replace: 'const net = new Cidr(ip, 0);',
    tests: ['test/worker-agent/allowlist.test.ts'],
  },
  {
    name: 'origin-null-accepted',
    promise: 'the console socket refuses the Origin `null` unless it is listed',
    file: 'server/console/origin.ts',
    search: 'if (o === ownOrigin(ctx)) return true;',
    replace: "if (o === ownOrigin(ctx) || o === 'null') return true;",
    tests: ['test/console/console-logic.test.ts'],
  },
  {
    name: 'request-declared-size-ignored',
    promise: 'a dispatch declaring a body over --max-payload-bytes is refused (413) before it is read',
    file: 'server/http-api.ts',
    search: 'if (declared > deps.maxPayloadBytes) return sendError(res, tooLarge(deps.maxPayloadBytes), true);',
    replace: 'if (false) return sendError(res, tooLarge(deps.maxPayloadBytes), true);',
    tests: ['test/server/http-api.test.ts'],
  },
  {
    name: 'request-streamed-size-ignored',
    promise: 'a dispatch body streaming past --max-payload-bytes is refused (413) without being kept',
    file: 'server/http-api.ts',
    search: 'if (this.#size <= this.deps.maxPayloadBytes) {',
    replace: 'if (true) {',
    tests: ['test/server/http-api.test.ts'],
  },
  {
    name: 'response-declared-size-ignored',
    promise: "a target response declaring more than the agent's limit fails at its headers, unread",
    file: 'worker-agent/job-runner.ts',
    search: 'if (declared > max) {',
    replace: 'if (false) {',
    tests: ['test/worker-agent/job-runner.test.ts'],
  },
  {
    name: 'response-streamed-size-ignored',
    promise: "a target response streaming past the agent's limit fails with response_too_large",
    file: 'worker-agent/job-runner.ts',
    search: 'if (this.#received > this.#context.maxResponseBytes) {',
    replace: 'if (false) {',
    tests: ['test/worker-agent/job-runner.test.ts'],
  },
  {
    name: 'redirects-followed',
    promise: 'the agent returns a redirect as it is and never follows it',
    file: 'worker-agent/target-pool.ts',
    search: '    dispatcher,\n    lookup,',
    replace: '    dispatcher: dispatcher.compose(interceptors.redirect({ maxRedirections: 5 })),\n    lookup,',
    also: [
      {
        search: "import { Agent, buildConnector, type Dispatcher } from 'undici';",
        replace: "import { Agent, buildConnector, interceptors, type Dispatcher } from 'undici';",
      },
    ],
    tests: ['test/worker-agent/job-runner.test.ts'],
  },
  {
    name: 'client-abort-ignored',
    promise: 'a CI client that drops its connection cancels its job',
    file: 'server/http-api.ts',
    search: 'if (this.#jobId !== null) this.deps.router.cancel(this.#jobId);',
    replace: 'if (this.#jobId !== null) void 0;',
    tests: ['test/server/fail-fast.test.ts'],
  },
  {
    name: 'shutdown-grace-skipped',
    promise: 'shutdown lets jobs in flight finish within the grace',
    file: 'server/local-router.ts',
    search: 'await this.#pending.idle(graceMs);',
    replace: 'await this.#pending.idle(0);',
    tests: ['test/server/shutdown.test.ts'],
  },
  {
    name: 'agent-cancel-ignored',
    promise: 'a cancel from the server aborts the request at the target',
    file: 'worker-agent/agent.ts',
    search: "    job.cancel();\n    this.#observer?.jobEnded('cancelled');",
    replace: "    this.#observer?.jobEnded('cancelled');",
    tests: ['test/worker-agent/agent.test.ts'],
  },
  {
    name: 'draining-worker-never-closed',
    promise: 'the server closes a draining worker (1000) once it holds nothing',
    file: 'server/worker-session.ts',
    search: "else this.close(CLOSE_CODES.normal, 'drained');",
    replace: 'else void 0;',
    tests: ['test/server/routing.test.ts'],
  },
];
