/**
 * What every console sees: the router's events turned into one snapshot and a stream
 * of batched deltas, with a bounded log of ended jobs (masked) behind the feed.
 *
 * Cost to the router: the observer only records — an ended job is kept as reported (masked
 * and cut to a preview when a console reads it), a worker id is marked dirty — and never sends. Sending happens on the tick
 * (every `tickMs`, only while a console is open): one delta is built and encoded once,
 * then written to each console whose socket is not backed up. A backed-up console gets
 * no delta, a `resync` notice instead, and a fresh snapshot once its socket drains, so
 * neither dispatch nor server memory depends on how fast a browser reads.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { DispatchRequest, DispatchSuccess, WorkerInfo } from '../../shared/protocol.ts';
import type { JobSummary, RouterEvent, RouterObserver } from '../router-events.ts';
import type { ConsoleServerMessage, Counters, JobDetails, JobRow, WorkerGone } from './console-protocol.ts';
import type { ConsoleOptions } from './console-options.ts';
import { DEFAULT_PREVIEW_LIMITS, detailsOfKept, headerMask, keepJob, requestSize, rowOfKept, type KeptJob } from './job-record.ts';
import type { PoolStats } from '../router.ts';
import { counters, PoolMemory, RateWindow } from './pool-view.ts';

/** What the console needs of the router (LocalRouter has it all). */
export interface ConsoleRouter {
  observe(observer: RouterObserver): () => void;
  listWorkers(): WorkerInfo[];
  poolStats(): PoolStats[];
  stats(): { workers: number; inFlight: number; queued: number };
  dispatch(suite: string, body: DispatchRequest, signal: AbortSignal): Promise<DispatchSuccess>;
}

/** One open console as the feed sees it. */
export interface FeedSink {
  /** Bytes written to the socket and not yet sent. */
  readonly bufferedAmount: number;
  send(text: string): void;
  /** Cuts the console (it is far behind even the replies it asked for). */
  terminate(reason: string): void;
}

interface SinkState {
  /** `behind`: deltas are being dropped; a snapshot is sent once the socket drains. */
  state: 'live' | 'behind';
  droppedDeltas: number;
}

const RATE_WINDOW_SEC = 10;
/** Counters are sent at least this often, so jobs/s decays on an idle page. */
const COUNTERS_EVERY_MS = 1_000;

export class ConsoleFeed {
  readonly #router: ConsoleRouter;
  readonly #options: ConsoleOptions;
  /** Header names masked in every record. */
  readonly #mask: ReadonlySet<string>;
  readonly #log: Logger;
  /** Removes the router observer; called once by close(). */
  #unobserve: (() => void) | null;
  /** Owner: this feed; set while at least one console is open (#startTicking/#stopTicking). */
  #timer: NodeJS.Timeout | null = null;
  readonly #sinks = new Map<FeedSink, SinkState>();

  // Ended jobs: a ring of `feedSize` by sequence number, with an id index of the same entries.
  // Kept as the router reported them; masked when a console reads them (job-record.ts).
  #seq = 0;
  readonly #ring: (KeptJob | undefined)[];
  readonly #byId = new Map<string, KeptJob>();
  /** Original requests of the newest failed jobs (never sent to a console), for Replay. */
  readonly #replay = new Map<string, { suite: string; dispatch: DispatchRequest }>();

  // What the open consoles were last sent (maintained only while one is open).
  /** Workers by id with a key of their changing fields. */
  readonly #sent = new Map<string, { key: string; suite: string; pool: string }>();
  /** Workers touched by an event since the last tick. */
  readonly #dirty = new Set<string>();
  #gone: WorkerGone[] = [];
  #lastSeqSent = 0;
  #poolsKey = '';
  #countersKey = '';
  #lastSentAt = 0;
  #lastRefreshAt = 0;

  /** Time spent in ticks, for diagnostics (the load script reports it). */
  readonly #tickTime = { count: 0, totalMs: 0, maxMs: 0 };

  readonly #pools: PoolMemory;
  readonly #rates: RateWindow;

  constructor(router: ConsoleRouter, options: ConsoleOptions, log: Logger) {
    this.#router = router;
    this.#options = options;
    this.#mask = headerMask(options.maskHeaders);
    this.#log = log;
    this.#ring = new Array(options.feedSize);
    this.#pools = new PoolMemory(options.rememberPools);
    this.#rates = new RateWindow(RATE_WINDOW_SEC, Date.now());
    // Recording starts with the server, so a page opened after a failure still shows it.
    const observer: RouterObserver = (event) => {
      try {
        this.#onEvent(event);
      } catch (err) {
        this.#log.error({ err }, 'console feed: event not recorded');
      }
    };
    this.#unobserve = router.observe(observer);
  }

  // ---- consoles ----

  /** Adds an open console and sends it a snapshot. */
  add(sink: FeedSink): void {
    if (!this.#unobserve) return; // closed
    if (this.#sinks.size === 0) this.#resetSent();
    this.#sinks.set(sink, { state: 'live', droppedDeltas: 0 });
    sink.send(this.#snapshot());
    if (!this.#timer) this.#timer = setInterval(() => this.#timedTick(), this.#options.tickMs);
  }

  remove(sink: FeedSink): void {
    this.#sinks.delete(sink);
    if (this.#sinks.size === 0) this.#stopTicking();
  }

  /** The page asked for a snapshot; a backed-up console gets it once it drains. */
  requestSnapshot(sink: FeedSink): void {
    const s = this.#sinks.get(sink);
    if (!s) return;
    if (sink.bufferedAmount > this.#options.lowWaterBytes) s.state = 'behind';
    else {
      s.state = 'live';
      sink.send(this.#snapshot());
    }
  }

  /** Details of a job still in the log (masked), or null. */
  details(id: string): JobDetails | null {
    const k = this.#byId.get(id);
    return k ? { ...detailsOfKept(k, DEFAULT_PREVIEW_LIMITS, this.#mask), replayable: this.#replay.has(id) } : null;
  }

  /** The original request of a failed job still kept for Replay. */
  replayRequest(id: string): { suite: string; dispatch: DispatchRequest } | null {
    return this.#replay.get(id) ?? null;
  }

  /** For tests and diagnostics. */
  stats(): {
    observing: boolean;
    ticking: boolean;
    jobsKept: number;
    replayKept: number;
    ticks: { count: number; totalMs: number; maxMs: number };
    consoles: { state: SinkState['state']; droppedDeltas: number; bufferedAmount: number }[];
  } {
    return {
      ticks: { ...this.#tickTime },
      observing: this.#unobserve !== null,
      ticking: this.#timer !== null,
      jobsKept: this.#byId.size,
      replayKept: this.#replay.size,
      consoles: [...this.#sinks].map(([sink, s]) => ({ state: s.state, droppedDeltas: s.droppedDeltas, bufferedAmount: sink.bufferedAmount })),
    };
  }

  /** Stops ticking and removes the router observer. Idempotent. The sockets belong to the gateway. */
  close(): void {
    this.#stopTicking();
    this.#sinks.clear();
    this.#unobserve?.();
    this.#unobserve = null;
  }

  // ---- recording ----

  #onEvent(event: RouterEvent): void {
    const watching = this.#sinks.size > 0;
    switch (event.kind) {
      case 'job-end':
        this.#record(event.job);
        if (watching && event.job.workerId) this.#dirty.add(event.job.workerId);
        return;
      case 'job-start':
        if (watching) this.#dirty.add(event.workerId);
        return;
      case 'worker-up':
      case 'worker-draining':
        this.#pools.see(event.worker.suite, event.worker.name);
        if (watching) this.#dirty.add(event.worker.id);
        return;
      case 'worker-down':
        this.#pools.see(event.suite, event.pool);
        if (watching) {
          this.#dirty.delete(event.workerId);
          // Bounded by the tick: the list is emptied every tickMs while a console is open.
          this.#gone.push({ id: event.workerId, suite: event.suite, pool: event.pool, reason: event.reason });
        }
        return;
    }
  }

  #record(job: JobSummary): void {
    const seq = ++this.#seq;
    const failed = job.outcome !== 'ok';
    this.#rates.record(Date.now(), failed);
    this.#pools.see(job.suite, job.pool);
    const replayable = failed && !job.remote && this.#options.replayKeep > 0 && requestSize(job) <= this.#options.replayMaxBytes;
    const kept = keepJob(seq, job, replayable, DEFAULT_PREVIEW_LIMITS);
    const slot = seq % this.#ring.length;
    const evicted = this.#ring[slot];
    if (evicted) {
      this.#byId.delete(evicted.job.id);
      this.#replay.delete(evicted.job.id);
    }
    this.#ring[slot] = kept;
    this.#byId.set(job.id, kept);
    if (replayable) {
      this.#replay.set(job.id, { suite: job.suite, dispatch: { pool: job.pool, request: job.request } });
      if (this.#replay.size > this.#options.replayKeep) this.#replay.delete(this.#replay.keys().next().value as string);
    }
  }

  /** Rows of the log with seq > `after`, oldest first. */
  #rowsAfter(after: number): JobRow[] {
    const from = Math.max(after + 1, this.#seq - this.#ring.length + 1, 1);
    const rows: JobRow[] = [];
    for (let seq = from; seq <= this.#seq; seq++) {
      const k = this.#ring[seq % this.#ring.length];
      if (k && k.seq === seq) rows.push(rowOfKept(k, DEFAULT_PREVIEW_LIMITS));
    }
    return rows;
  }

  // ---- sending ----

  #counters(now: number): Counters {
    return counters(this.#router.stats(), this.#rates.read(now), RATE_WINDOW_SEC);
  }

  #snapshot(): string {
    const now = Date.now();
    const message: ConsoleServerMessage = {
      type: 'snapshot',
      serverTime: now,
      heartbeatMs: this.#options.heartbeatMs,
      feedSize: this.#options.feedSize,
      lastSeq: this.#seq,
      workers: this.#router.listWorkers(),
      pools: this.#pools.views(this.#router.poolStats()),
      jobs: this.#rowsAfter(0),
      counters: this.#counters(now),
    };
    return JSON.stringify(message);
  }

  /** The first console after none: what it is about to be sent becomes the baseline. */
  #resetSent(): void {
    this.#sent.clear();
    this.#dirty.clear();
    this.#gone = [];
    for (const w of this.#router.listWorkers()) this.#sent.set(w.id, { key: workerKey(w), suite: w.suite, pool: w.name });
    this.#lastSeqSent = this.#seq;
    this.#poolsKey = JSON.stringify(this.#pools.views(this.#router.poolStats()));
    this.#countersKey = '';
    this.#lastRefreshAt = Date.now();
  }

  #stopTicking(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#dirty.clear();
    this.#gone = [];
  }

  /** Workers that changed since the last tick; a full re-read when due or when events touched any. */
  #changedWorkers(now: number): { workers: WorkerInfo[]; gone: WorkerGone[] } {
    const gone = this.#gone;
    this.#gone = [];
    for (const g of gone) this.#sent.delete(g.id);
    const workers: WorkerInfo[] = [];
    if (this.#dirty.size === 0 && gone.length === 0 && now - this.#lastRefreshAt < this.#options.refreshMs) return { workers, gone };
    this.#dirty.clear();
    this.#lastRefreshAt = now;
    const present = new Set<string>();
    for (const w of this.#router.listWorkers()) {
      present.add(w.id);
      const key = workerKey(w);
      if (this.#sent.get(w.id)?.key !== key) {
        this.#sent.set(w.id, { key, suite: w.suite, pool: w.name });
        workers.push(w);
      }
    }
    // A worker that left without an event (should not happen) still leaves the page.
    for (const [id, w] of this.#sent) {
      if (!present.has(id)) {
        this.#sent.delete(id);
        gone.push({ id, suite: w.suite, pool: w.pool, reason: 'no longer listed' });
      }
    }
    return { workers, gone };
  }

  #timedTick(): void {
    const t0 = performance.now();
    this.#tick();
    const ms = performance.now() - t0;
    this.#tickTime.count += 1;
    this.#tickTime.totalMs += ms;
    this.#tickTime.maxMs = Math.max(this.#tickTime.maxMs, ms);
  }

  #tick(): void {
    const now = Date.now();
    const { workers, gone } = this.#changedWorkers(now);
    const pools = this.#pools.views(this.#router.poolStats());
    const poolsKey = JSON.stringify(pools);
    const poolsChanged = poolsKey !== this.#poolsKey;
    this.#poolsKey = poolsKey;
    const jobs = this.#rowsAfter(this.#lastSeqSent);
    this.#lastSeqSent = this.#seq;
    const c = this.#counters(now);
    const countersKey = JSON.stringify(c);
    const changed = workers.length > 0 || gone.length > 0 || poolsChanged || jobs.length > 0 || countersKey !== this.#countersKey;
    if (!changed && now - this.#lastSentAt < COUNTERS_EVERY_MS) return;
    this.#countersKey = countersKey;
    this.#lastSentAt = now;

    let text: string | null = null; // encoded once, for every live console
    for (const [sink, s] of this.#sinks) {
      const buffered = sink.bufferedAmount;
      if (buffered > this.#options.hardLimitBytes) {
        sink.terminate('console too far behind');
        continue;
      }
      if (s.state === 'behind') {
        // The snapshot supersedes every delta dropped meanwhile, this one included.
        if (buffered <= this.#options.lowWaterBytes) {
          s.state = 'live';
          sink.send(this.#snapshot());
        } else s.droppedDeltas += 1;
        continue;
      }
      if (buffered > this.#options.highWaterBytes) {
        s.state = 'behind';
        s.droppedDeltas += 1;
        sink.send(JSON.stringify({ type: 'resync', reason: 'backpressure' } satisfies ConsoleServerMessage));
        continue;
      }
      text ??= JSON.stringify({
        type: 'delta',
        serverTime: now,
        workers,
        gone,
        ...(poolsChanged ? { pools } : {}),
        jobs,
        counters: c,
      } satisfies ConsoleServerMessage);
      sink.send(text);
    }
  }
}

/** The fields of a worker that change while it is connected. */
function workerKey(w: WorkerInfo): string {
  return `${w.state}|${w.inFlight}|${w.concurrency}|${w.rttMs}|${w.lastPongAt}`;
}
