/**
 * The cluster router: one node's `Router` when several nodes share a NATS.
 *
 * Two roles meet here. As the **arrival node** it owns every dispatch that came in through
 * its HTTP API (the `#arrivals` table): it picks a node by free slots (placement.ts), runs
 * the job through its own `LocalRouter` or sends it to another node's inbox, answers the
 * caller exactly once, counts the job's metrics and keeps its deadline while the job is
 * remote. As the **holding node** it runs jobs other nodes sent it (held-jobs.ts) through
 * the same `LocalRouter` — concurrency, queue and fail-fast stay with the node holding the
 * worker sockets — and sends each outcome back.
 *
 * Failure rules: a worker closing on B fails B's job at once and the outcome reaches A in a
 * NATS hop. B dead (not heard for ~1.4 s) or restarted: A fails every job it had at B with
 * worker_disconnected, and B's workers leave A's directory; B, when it comes back, has seen
 * A dead too and dropped A's jobs without answering. A job queued (never held) on a node
 * whose last ready worker of the pool left goes back to its arrival node, which routes it
 * again. An answer for a job that already ended is dropped and counted as late.
 */
import { performance } from 'node:perf_hooks';
import type { Subscription } from '@nats-io/transport-node';
import { nanoid } from 'nanoid';
import { FlowtestError } from '../../shared/errors.ts';
import type { DispatchRequest, DispatchSuccess, HttpRequest, ResultFrame, WorkerInfo } from '../../shared/protocol.ts';
import type { LocalRouter } from '../local-router.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { poolKey } from '../pool.ts';
import type { JobSummary, RouterEvent, RouterObserver } from '../router-events.ts';
import { EmptyWait } from '../empty-wait.ts';
import { dispatchWithSignal, type JobCaller, type Outcome, type PoolStats, type Router, type RouterStats, type WorkerHandle } from '../router.ts';
import { SUBJECTS, workerEventSchema, type InboxMessage, type PoolAnnounce, type WorkerEvent } from './cluster-protocol.ts';
import { FreshListings } from './fresh-listings.ts';
import { HeldJobs, type Held } from './held-jobs.ts';
import { JobFeed } from './job-feed.ts';
import { LocalRuns, type LocalRun } from './local-runs.ts';
import { Membership, type LeaveReason, type Peer } from './membership.ts';
import type { NatsLink } from './nats-link.ts';
import { NodeBus } from './node-bus.ts';
import { chooseNode, type NodePoolView } from './placement.ts';
import { WorkerDirectory } from './worker-directory.ts';

/**
 * Extra time a holding node gives a remote job beyond the arrival node's deadline, so that
 * the arrival node's timeout (and its cancel) decides, as on one node.
 */
const REMOTE_DEADLINE_GRACE_MS = 250;

export interface ClusterRouterOptions {
  nodeId: string;
  nonce: string;
  defaultTimeoutMs: number;
  maxPayloadBytes: number;
  announceMs?: number;
  deadAfterMs?: number;
}

/** A dispatch that arrived at this node: owned here until answered. */
interface Arrival {
  readonly id: string;
  readonly suite: string;
  readonly pool: string;
  readonly workerId: string | undefined;
  readonly request: HttpRequest;
  readonly timeoutMs: number;
  readonly waitForWorkerMs: number;
  readonly acceptedAt: number;
  readonly acceptedAtEpoch: number;
  readonly caller: JobCaller;
  /** Where it is now: here (LocalRouter), at another node, or nowhere for a moment between two placements. */
  local: LocalRun | null;
  remoteNode: string | null;
  /** Our deadline while the job is at another node; owner: this entry, cleared by #finish or when it comes back. */
  deadline: NodeJS.Timeout | null;
  done: boolean;
}

export class ClusterRouter implements Router {
  /** Dispatches that arrived here, by id; removed by #finish. */
  readonly #arrivals = new Map<string, Arrival>();
  /** Arrivals at each remote node, for failing them when that node goes. */
  readonly #atNode = new Map<string, Set<Arrival>>();
  /** Jobs in this node's LocalRouter (arrivals placed here and held jobs), by pool. */
  readonly #runs: LocalRuns<Arrival | Held>;
  /** Jobs other nodes sent here. */
  readonly #heldJobs: HeldJobs;
  readonly #directory = new WorkerDirectory();
  readonly #observers = new Set<RouterObserver>();
  readonly membership: Membership;
  readonly bus: NodeBus;
  /** Worker events and job feed of other nodes; owner: this router, unsubscribed by stop. */
  #workerSub: Subscription | null = null;
  readonly #feed: JobFeed;
  #unobserveInner: (() => void) | null = null;
  #unlinkWatch: (() => void) | null = null;
  /**
   * Jobs sent to each node's pool since its last announcement (`node` → `suite/pool` → count):
   * subtracted from the free slots it announced, so a burst does not pile onto the node that
   * looked freest up to 450 ms ago. Reset by each announcement of that node; dropped with it.
   */
  readonly #sentSince = new Map<string, Map<string, number>>();
  /** Announced worker counts that disagreed with the directory, by node (two in a row: list again). */
  readonly #mismatch = new Map<string, number>();
  #shuttingDown = false;
  #stopped = false;
  /** HTTP listings waiting for other nodes' rows. */
  readonly #listings: FreshListings;
  /** Consoles open on this node (set by the server once its console gateway exists). */
  #openConsoles: () => number = () => 0;
  /** Shutdown's wait for the remote arrivals to end. */
  readonly #arrivalsWait = new EmptyWait();

  constructor(
    readonly inner: LocalRouter,
    readonly link: NatsLink,
    readonly metrics: Metrics,
    readonly options: ClusterRouterOptions,
    readonly log: Logger,
  ) {
    this.bus = new NodeBus(
      link,
      {
        nodeId: options.nodeId,
        nonce: options.nonce,
        // Room for a few bodies at the largest size at once; beyond it a transfer is dropped.
        maxReassemblyBytes: 4 * options.maxPayloadBytes + 16 * 1024 * 1024,
        transferIdleMs: 10_000,
      },
      log,
    );
    this.#runs = new LocalRuns<Arrival | Held>(inner);
    this.#heldJobs = new HeldJobs({ inner, bus: this.bus, runs: this.#runs, nodeId: options.nodeId, shuttingDown: () => this.#shuttingDown });
    this.#feed = new JobFeed(link, options.nodeId, log);
    this.#listings = new FreshListings({
      local: (suite) => this.#localRows(suite),
      known: (node) => this.#directory.ofNode(node),
      ask: (node, reqId) => this.bus.send(node, { type: 'list', reqId }),
    });
    this.membership = new Membership(
      link,
      {
        nodeId: options.nodeId,
        nonce: options.nonce,
        localPools: () => this.#localPools(),
        localWorkers: () => inner.stats().workers,
        localConsoles: () => this.#openConsoles() > 0,
        announceMs: options.announceMs,
        deadAfterMs: options.deadAfterMs,
      },
      { joined: (p) => this.#peerJoined(p), left: (p, r) => this.#peerLeft(p, r), updated: (p) => this.#peerUpdated(p) },
      log,
    );
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** How many consoles are open here: the job feed is sent and read only while someone watches. */
  watchConsoles(count: () => number): void {
    this.#openConsoles = count;
  }

  /** Starts listening and announcing. */
  start(): void {
    this.bus.start((m) => this.#onMessage(m));
    this.#workerSub = this.link.subscribeJson(SUBJECTS.workers, workerEventSchema, (e) => this.#onWorkerEvent(e));
    this.#feed.start(
      () => this.#observers.size > 0 && this.#openConsoles() > 0,
      (job) => this.#emit({ kind: 'job-end', job }),
    );
    this.#unobserveInner = this.inner.observe((e) => this.#onInnerEvent(e));
    this.#unlinkWatch = this.link.onChange((connected) => {
      if (connected) this.membership.announceNow();
    });
    this.membership.start();
  }

  // ---- Router: callers ----

  dispatch(suite: string, body: DispatchRequest, signal: AbortSignal): Promise<DispatchSuccess> {
    return dispatchWithSignal(this, suite, body, signal);
  }

  submit(suite: string, body: DispatchRequest, caller: JobCaller): string | null {
    if (this.#shuttingDown) {
      caller.settle({ ok: false, error: new FlowtestError('shutting_down', 'the server is shutting down') });
      return null;
    }
    const timeoutMs = body.timeoutMs ?? this.options.defaultTimeoutMs;
    const a: Arrival = {
      id: nanoid(),
      suite,
      pool: body.pool,
      workerId: body.workerId,
      request: body.request,
      timeoutMs,
      waitForWorkerMs: Math.min(body.waitForWorkerMs ?? 0, timeoutMs),
      acceptedAt: performance.now(),
      acceptedAtEpoch: Date.now(),
      caller,
      local: null,
      remoteNode: null,
      deadline: null,
      done: false,
    };
    this.#arrivals.set(a.id, a);
    this.#route(a, null);
    return a.done ? null : a.id;
  }

  cancel(jobId: string): void {
    const a = this.#arrivals.get(jobId);
    if (!a) return;
    if (a.local?.innerId) {
      // The LocalRouter ends it (cancel frame to a worker holding it) and settles through #localSettled.
      this.inner.cancel(a.local.innerId);
      return;
    }
    this.#finish(a, { ok: false, error: new FlowtestError('cancelled', 'the client went away'), cancelReason: 'client_aborted' });
  }

  // ---- Router: worker events from this node's registry ----

  workerUp(worker: WorkerHandle): void {
    this.inner.workerUp(worker);
    this.#publishWorker('up', worker.id, worker.info());
    // Other nodes route by announced pools: tell them now, not at the next period.
    this.membership.announceSoon();
  }

  workerResult(worker: WorkerHandle, frame: ResultFrame): void {
    this.inner.workerResult(worker, frame);
  }

  workerDraining(worker: WorkerHandle): void {
    this.inner.workerDraining(worker);
    this.#publishWorker('draining', worker.id, worker.info());
    this.#handBackStranded(worker.suite, worker.pool);
  }

  workerWritable(worker: WorkerHandle): void {
    this.inner.workerWritable(worker);
  }

  workerGone(worker: WorkerHandle, jobIds: readonly string[], reason: string): void {
    this.inner.workerGone(worker, jobIds, reason);
    this.#publishWorker('down', worker.id);
    this.#handBackStranded(worker.suite, worker.pool);
  }

  // ---- Router: listings and stats ----

  observe(observer: RouterObserver): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  /** Every node's workers, each with its `node`. */
  listWorkers(suite?: string): WorkerInfo[] {
    const out = this.#localRows(suite);
    if (this.#directory.size > 0) out.push(...this.#directory.list(suite));
    return out;
  }

  /**
   * The HTTP listing: this node's rows and every other live node's, asked for now (at most
   * LIST_WAIT_MS; a node that does not answer in time is listed as the directory knows it).
   * The answers also refresh the directory the console reads.
   */
  listWorkersFresh(suite?: string): Promise<WorkerInfo[]> {
    const peers = this.link.connected && !this.#stopped ? [...this.membership.peers()].map((p) => p.node) : [];
    return this.#listings.list(peers, suite);
  }

  #localRows(suite?: string): WorkerInfo[] {
    const out = this.inner.listWorkers(suite);
    for (const w of out) w.node = this.options.nodeId;
    return out;
  }

  /** This node's workers (the gauge counts where the sockets are). */
  workerCounts(): Iterable<{ suite: string; pool: string; count: number }> {
    return this.inner.workerCounts();
  }

  poolStats(): PoolStats[] {
    return this.inner.poolStats();
  }

  /** Jobs held and queued here, by pool (the gauges count where the sockets and queues are). */
  poolJobs(): Iterable<{ suite: string; pool: string; inFlight: number; queued: number }> {
    return this.inner.poolJobs();
  }

  /** Queued and in flight as held here; pending counts this node's arrivals and held jobs. */
  stats(): RouterStats {
    const s = this.inner.stats();
    return { ...s, pending: this.#arrivals.size + this.#heldJobs.size };
  }

  /** Sizes of every cluster table (tests: all zero once every job ended). */
  clusterStats(): { arrivals: number; atNodes: number; held: number; heldFrom: number; runsByPool: number; listings: number; transfers: number; outbox: number; remoteWorkers: number; liveNodes: number } {
    return {
      arrivals: this.#arrivals.size,
      atNodes: this.#atNode.size,
      held: this.#heldJobs.size,
      heldFrom: this.#heldJobs.nodes,
      runsByPool: this.#runs.pools,
      listings: this.#listings.size,
      transfers: this.bus.pendingTransfers,
      outbox: this.bus.outboxSize,
      remoteWorkers: this.#directory.size,
      liveNodes: this.membership.liveNodes,
    };
  }

  /** Live nodes this node sees, itself included. */
  get liveNodes(): number {
    return this.membership.liveNodes;
  }

  /** Whether the node has its NATS connection (readiness). */
  get connected(): boolean {
    return this.link.connected;
  }

  // ---- shutdown ----

  /**
   * Tells the cluster at once that this node leaves (no new jobs come), stops taking
   * dispatches, lets jobs here and at other nodes end within the grace, fails the rest with
   * shutting_down, then says goodbye and closes the NATS connection.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    this.membership.beginLeave();
    const remoteIdle = this.#arrivalsWait.until(this.#atNode.size === 0, graceMs);
    await this.inner.shutdown(graceMs);
    await remoteIdle;
    for (const a of [...this.#arrivals.values()]) {
      this.#finish(a, { ok: false, error: new FlowtestError('shutting_down', 'the server shut down before the job ended'), cancelReason: 'shutting_down' });
    }
    await this.stop();
  }

  /** Leaves the cluster and closes NATS (after shutdown, or when start fails midway); idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unobserveInner?.();
    this.#unlinkWatch?.();
    this.#workerSub?.unsubscribe();
    this.#workerSub = null;
    this.#feed.stop();
    this.membership.close();
    this.bus.close();
    this.#directory.clear();
    this.#mismatch.clear();
    this.#listings.close();
    this.#sentSince.clear();
    await this.link.close();
  }

  // ---- routing (arrival node) ----

  /**
   * Places an arrival: at the node with the most free slots (this one on ties), at a node
   * with ready workers when all are full, or here to wait for a worker (waitForWorkerMs).
   * `exclude`: a node that just gave the job back.
   */
  #route(a: Arrival, exclude: string | null): void {
    const now = performance.now();
    const remainingMs = a.acceptedAt + a.timeoutMs - now;
    if (remainingMs <= 0) {
      this.#finish(a, { ok: false, error: new FlowtestError('timeout', `no answer within ${a.timeoutMs} ms`) });
      return;
    }
    const reachable = this.link.connected;
    if (a.workerId !== undefined) {
      const holder = this.#directory.nodeOf(a.workerId);
      if (holder !== undefined && holder !== exclude && !this.membership.peer(holder)?.leaving) {
        if (!reachable) return this.#unreachable(a);
        return this.#placeRemote(a, holder);
      }
      return this.#placeLocal(a);
    }
    const self = this.inner.poolStat(a.suite, a.pool);
    const key = poolKey(a.suite, a.pool);
    const others: NodePoolView[] = [];
    if (reachable) {
      for (const p of this.membership.peers()) {
        if (p.leaving || p.node === exclude) continue;
        const pa = p.pools.get(key);
        if (!pa || pa.ready === 0) continue;
        const sent = this.#sentSince.get(p.node)?.get(key) ?? 0;
        const freeSlots = Math.max(0, pa.freeSlots - sent);
        others.push({ node: p.node, ready: pa.ready, freeSlots, queued: pa.queued + Math.max(0, sent - pa.freeSlots) });
      }
    }
    const chosen = chooseNode(self ? { node: this.options.nodeId, ...self } : null, others);
    if (chosen === null) {
      if (!reachable) return this.#unreachable(a);
      // No ready worker anywhere: wait here (the LocalRouter's waitForWorkerMs rule, then
      // no_worker); an announcement of ready workers elsewhere moves it there.
      return this.#placeLocal(a);
    }
    if (chosen === this.options.nodeId) return this.#placeLocal(a);
    this.#placeRemote(a, chosen);
  }

  #unreachable(a: Arrival): void {
    this.#finish(a, { ok: false, error: new FlowtestError('no_worker', `no open worker in pool ${a.pool} on this node, and the cluster is unreachable (no NATS connection)`) });
  }

  #placeLocal(a: Arrival): void {
    const now = performance.now();
    const remainingMs = Math.max(1, Math.floor(a.acceptedAt + a.timeoutMs - now));
    const waitMs = Math.max(0, Math.min(remainingMs, Math.floor(a.acceptedAt + a.waitForWorkerMs - now)));
    const run: LocalRun = { suite: a.suite, pool: a.pool, pinned: a.workerId !== undefined, innerId: null, withdrawing: false };
    a.local = run;
    this.#runs.add(run, a);
    const innerId = this.inner.submit(
      a.suite,
      { pool: a.pool, workerId: a.workerId, timeoutMs: remainingMs, waitForWorkerMs: waitMs, request: a.request },
      { settle: (o) => this.#localSettled(a, run, o) },
    );
    if (a.local === run) run.innerId = innerId;
  }

  #localSettled(a: Arrival, run: LocalRun, outcome: Outcome): void {
    this.#runs.remove(run);
    if (run.withdrawing || a.local !== run) return;
    a.local = null;
    if (outcome.ok) this.#finish(a, { ok: true, value: { ...outcome.value, id: a.id } });
    else this.#finish(a, outcome);
  }

  #placeRemote(a: Arrival, node: string): void {
    const now = performance.now();
    const remainingMs = Math.max(1, Math.floor(a.acceptedAt + a.timeoutMs - now));
    const waitMs = Math.max(0, Math.min(remainingMs, Math.floor(a.acceptedAt + a.waitForWorkerMs - now)));
    const sent = this.bus.send(node, {
      type: 'job',
      id: a.id,
      suite: a.suite,
      pool: a.pool,
      workerId: a.workerId,
      timeoutMs: remainingMs + REMOTE_DEADLINE_GRACE_MS,
      waitForWorkerMs: waitMs,
      request: a.request,
    });
    if (!sent) return this.#unreachable(a);
    let sentTo = this.#sentSince.get(node);
    if (!sentTo) {
      sentTo = new Map();
      this.#sentSince.set(node, sentTo);
    }
    const key = poolKey(a.suite, a.pool);
    sentTo.set(key, (sentTo.get(key) ?? 0) + 1);
    a.remoteNode = node;
    let set = this.#atNode.get(node);
    if (!set) {
      set = new Set();
      this.#atNode.set(node, set);
    }
    set.add(a);
    a.deadline = setTimeout(this.#onRemoteDeadline, remainingMs, a);
  }

  readonly #onRemoteDeadline = (a: Arrival): void => {
    a.deadline = null;
    this.#finish(a, { ok: false, error: new FlowtestError('timeout', `no answer within ${a.timeoutMs} ms`), cancelReason: 'timeout' });
  };

  /** Takes an arrival off the node it was at (it came back, or it ended). */
  #unplaceRemote(a: Arrival): void {
    if (a.deadline) clearTimeout(a.deadline);
    a.deadline = null;
    const node = a.remoteNode;
    a.remoteNode = null;
    if (node === null) return;
    const set = this.#atNode.get(node);
    set?.delete(a);
    if (set?.size === 0) this.#atNode.delete(node);
    if (this.#atNode.size === 0) this.#arrivalsWait.emptied();
  }

  /** The one way an arrival ends: answered once, counted once, every table left. */
  #finish(a: Arrival, outcome: Outcome): void {
    if (a.done) return;
    a.done = true;
    // A timeout speaks of the caller's deadline, not of what was left of it where the job last ran.
    if (!outcome.ok && outcome.error.code === 'timeout') outcome = { ...outcome, error: new FlowtestError('timeout', `no answer within ${a.timeoutMs} ms`) };
    this.#arrivals.delete(a.id);
    const node = a.remoteNode;
    this.#unplaceRemote(a);
    if (node !== null && !outcome.ok && outcome.cancelReason) this.bus.deliver(node, { type: 'cancel', id: a.id, reason: outcome.cancelReason });
    const seconds = (performance.now() - a.acceptedAt) / 1000;
    const code = outcome.ok ? 'ok' : outcome.error.code;
    this.metrics.jobEnded(a.suite, a.pool, code, seconds);
    const job: JobSummary = {
      id: a.id,
      suite: a.suite,
      pool: a.pool,
      workerId: outcome.ok ? outcome.value.workerId : null,
      acceptedAt: a.acceptedAtEpoch,
      durationMs: Math.round(seconds * 100_000) / 100,
      outcome: code,
      request: a.request,
      response: outcome.ok ? outcome.value.response : null,
      error: outcome.ok ? null : { code: outcome.error.code, message: outcome.error.message },
      node: this.options.nodeId,
    };
    if (this.#observers.size > 0) this.#emit({ kind: 'job-end', job });
    if (this.#someoneWatches()) this.#feed.publish(job);
    a.caller.settle(outcome);
  }

  // ---- local runs and the hand-back ----

  /**
   * The pool lost a ready worker here. With none left, its queued jobs leave: jobs of other
   * nodes go back to their arrival node, our own go to a node with ready workers if any
   * (otherwise they stay, under the waitForWorkerMs rule). Pinned jobs stay: only that worker could take them.
   */
  #handBackStranded(suite: string, pool: string): void {
    this.membership.announceSoon();
    const runs = this.#runs.inPool(poolKey(suite, pool));
    if (runs.length === 0 || (this.inner.poolStat(suite, pool)?.ready ?? 0) > 0) return;
    const elsewhere = this.#readyElsewhere(suite, pool);
    for (const [run, owner] of runs) {
      if (run.pinned) continue;
      if ('caller' in owner) {
        if (!elsewhere || !this.#runs.withdraw(run)) continue;
        owner.local = null;
        this.#route(owner, null);
      } else this.#heldJobs.handBack(owner, `no ready worker left in pool ${pool} on node ${this.options.nodeId}`);
    }
  }

  #readyElsewhere(suite: string, pool: string): boolean {
    if (!this.link.connected) return false;
    const key = poolKey(suite, pool);
    for (const p of this.membership.peers()) if (!p.leaving && (p.pools.get(key)?.ready ?? 0) > 0) return true;
    return false;
  }

  // ---- messages ----

  #onMessage(m: InboxMessage): void {
    if (this.#stopped) return;
    switch (m.type) {
      case 'job':
        return this.#heldJobs.receive(m);
      case 'outcome': {
        const a = this.#arrivals.get(m.id);
        if (!a || a.remoteNode !== m.from) {
          this.metrics.lateResult();
          return;
        }
        if (m.response) {
          const durationMs = Math.round((performance.now() - a.acceptedAt) * 100) / 100;
          this.#finish(a, { ok: true, value: { id: a.id, workerId: m.workerId ?? '', durationMs, response: m.response } });
        } else if (m.error) {
          this.#finish(a, { ok: false, error: new FlowtestError(m.error.code, m.error.message) });
        }
        return;
      }
      case 'handback': {
        const a = this.#arrivals.get(m.id);
        if (!a || a.remoteNode !== m.from) return;
        this.#unplaceRemote(a);
        this.log.debug({ jobId: a.id, node: m.from, reason: m.reason }, 'queued job handed back');
        this.#route(a, m.from);
        return;
      }
      case 'cancel': {
        this.#heldJobs.cancel(m.from, m.id);
        return;
      }
      case 'list': {
        this.bus.send(m.from, { type: 'listed', reqId: m.reqId, workers: this.#localRows(m.suite) });
        return;
      }
      case 'listed': {
        const peer = this.membership.peer(m.from);
        if (peer && peer.nonce === m.nonce) {
          this.#directory.replace(m.from, m.workers);
          for (const w of m.workers) this.metrics.notePool(w.suite, w.name);
        }
        this.#listings.answered(m.reqId, m.from, m.workers);
        return;
      }
    }
  }

  #someoneWatches(): boolean {
    for (const p of this.membership.peers()) if (p.consoles) return true;
    return false;
  }

  #publishWorker(kind: WorkerEvent['kind'], workerId: string, worker?: WorkerInfo): void {
    if (!this.link.connected || this.#stopped) return;
    const e: WorkerEvent = { node: this.options.nodeId, nonce: this.options.nonce, kind, workerId, ...(worker ? { worker: { ...worker, node: this.options.nodeId } } : {}) };
    try {
      this.link.nc.publish(SUBJECTS.workers, JSON.stringify(e));
    } catch (err) {
      this.log.warn({ err }, 'worker event not published');
    }
  }

  #onWorkerEvent(e: WorkerEvent): void {
    if (e.node === this.options.nodeId || this.#stopped) return;
    const peer = this.membership.peer(e.node);
    // Before a node's first announcement its listing (asked for on join) brings these.
    if (!peer || peer.nonce !== e.nonce) return;
    if (e.kind === 'down') {
      const w = this.#directory.get(e.node, e.workerId);
      this.#directory.remove(e.node, e.workerId);
      if (w && this.#observers.size > 0) this.#emit({ kind: 'worker-down', workerId: w.id, suite: w.suite, pool: w.name, reason: `gone from node ${e.node}` });
    } else if (e.worker) {
      this.#directory.upsert(e.node, e.worker);
      // Jobs for this pool are counted here (the arrival node) under the pool's own label.
      this.metrics.notePool(e.worker.suite, e.worker.name);
      if (this.#observers.size > 0) this.#emit({ kind: e.kind === 'up' ? 'worker-up' : 'worker-draining', worker: { ...e.worker, node: e.node } });
    }
  }

  /** Worker events of this node's LocalRouter go to the console; job ends are ours (#finish). */
  #onInnerEvent(e: RouterEvent): void {
    if (e.kind === 'job-end' || this.#observers.size === 0) return;
    this.#emit(e);
  }

  #emit(e: RouterEvent): void {
    for (const o of this.#observers) o(e);
  }

  // ---- membership ----

  #localPools(): PoolAnnounce[] {
    const out: PoolAnnounce[] = [];
    for (const p of this.inner.poolStats()) out.push({ suite: p.suite, pool: p.pool, ready: p.ready, freeSlots: p.freeSlots, queued: p.queued });
    return out;
  }

  #peerJoined(p: Peer): void {
    this.bus.flushFor(p.node);
    this.bus.send(p.node, { type: 'list', reqId: nanoid() });
    this.#moveWaiting(p);
  }

  #peerUpdated(p: Peer): void {
    this.#sentSince.delete(p.node);
    this.bus.flushFor(p.node);
    // The directory is kept by events; a count that disagrees twice in a row means some were lost.
    if (p.workers !== this.#directory.count(p.node)) {
      const n = (this.#mismatch.get(p.node) ?? 0) + 1;
      if (n >= 2) {
        this.#mismatch.delete(p.node);
        this.bus.send(p.node, { type: 'list', reqId: nanoid() });
      } else this.#mismatch.set(p.node, n);
    } else this.#mismatch.delete(p.node);
    this.#moveWaiting(p);
  }

  /** Arrivals waiting here for a worker (none ready here) go to a node that now has ready workers. */
  #moveWaiting(p: Peer): void {
    if (p.leaving || this.#runs.pools === 0) return;
    for (const [key, pa] of p.pools) {
      if (pa.ready === 0) continue;
      const runs = this.#runs.inPool(key);
      if (runs.length === 0 || (this.inner.poolStat(pa.suite, pa.pool)?.ready ?? 0) > 0) continue;
      for (const [run, owner] of runs) {
        if (run.pinned || !('caller' in owner)) continue;
        if (!this.#runs.withdraw(run)) continue;
        owner.local = null;
        this.#route(owner, null);
      }
    }
  }

  #peerLeft(p: Peer, reason: LeaveReason): void {
    this.#mismatch.delete(p.node);
    this.#sentSince.delete(p.node);
    if (this.#observers.size > 0) {
      for (const w of this.#directory.ofNode(p.node)) this.#emit({ kind: 'worker-down', workerId: w.id, suite: w.suite, pool: w.name, reason: `node ${p.node} ${reason}` });
    }
    this.#directory.dropNode(p.node);
    this.bus.dropSender(p.nonce);
    const at = this.#atNode.get(p.node);
    if (at) {
      const what = reason === 'dead' ? 'stopped answering' : reason === 'restarted' ? 'restarted' : 'left the cluster';
      for (const a of [...at]) {
        this.#finish(a, { ok: false, error: new FlowtestError('worker_disconnected', `node ${p.node}, which held the job, ${what}`), cancelReason: 'node_gone' });
      }
    }
    this.#heldJobs.nodeGone(p.node);
    this.#listings.nodeGone(p.node);
    // Last: the cancels just written for its jobs would wait for nobody.
    this.bus.forget(p.node);
  }
}
