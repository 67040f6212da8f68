/**
 * The worker agent: a reconnect loop around {@link Connection} and the table of jobs
 * in flight. Close order (close()): stop the loop → abort every job → terminate the
 * socket → wait for the loop and the running jobs to settle → destroy the target pools.
 */
import type { Logger } from 'pino';
import { encodeFrame } from '../shared/codec.ts';
import { CLOSE_CODES, type AgentErrorCode } from '../shared/errors.ts';
import { DEFAULTS } from '../shared/limits.ts';
import type { CancelFrame, JobFrame, ResultFrame, WelcomeFrame } from '../shared/protocol.ts';
import { Backoff } from './backoff.ts';
import { Connection, type ConnectionEnd } from './connection.ts';
import { TargetJob, type JobContext, type JobListener, type JobOutcome } from './job-runner.ts';
import { AgentOptionsError, readTokenFile, type AgentConfig } from './options.ts';
import { createTargetPool, type LookupFn, type TargetPool } from './target-pool.ts';
import { USER_AGENT } from './version.ts';

/** Knobs tests turn; production uses the defaults. */
export interface AgentTuning {
  /** Random source of the backoff jitter (tests pass `() => 0` to reconnect at once). */
  random?: () => number;
  /** Slack past 2 × heartbeatMs before the ping watchdog fires (default 1000). */
  watchdogSlackMs?: number;
  /** Slack past a job's timeoutMs before the agent's own timeout (default 1000). */
  timeoutGraceMs?: number;
  /** Wait for the server's close frame before terminating (default 2000). */
  closeGraceMs?: number;
  /** How long the opening handshake may take (default 10 000). */
  handshakeTimeoutMs?: number;
  /** Resolver of target names (tests make names resolve without /etc/hosts). */
  lookup?: LookupFn;
}

/** How a job ended, as counted: `ok`, an agent error code, or `abandoned` (socket lost or agent closed: no result sent). */
export type JobOutcomeLabel = 'ok' | AgentErrorCode | 'abandoned';

/** Told about the agent's life (the health server's metrics); every method must be cheap. */
export interface AgentObserver {
  jobEnded(outcome: JobOutcomeLabel): void;
  /** The socket was welcomed (true) or lost (false). */
  connectionChanged(connected: boolean): void;
  /** A lost connection is being retried. */
  reconnecting(): void;
}

/** Why the agent stopped. */
export type AgentStop =
  | { kind: 'drained' }
  | { kind: 'closed' }
  /** The server refused the token for good: 401/403 → exit 3. */
  | { kind: 'fatal'; exitCode: 3; reason: string };

/** What the agent keeps with each job; the table entry is removed by whoever ends the job (result, cancel, socket loss, drain). */
interface JobTag {
  id: string;
  connection: Connection;
  startedAt: number;
}

type RunningJob = TargetJob<JobTag>;

/**
 * Handshake statuses that retrying cannot fix (exit code 3). Only a refused token is
 * final: a 400 may come from a proxy or a server mid-upgrade, so it is retried with
 * backoff like any other loss.
 */
const FINAL_STATUSES: ReadonlySet<number> = new Set([401, 403]);

function failure(code: AgentErrorCode, message: string): JobOutcome {
  return { error: { code, message } };
}

/** Logs the target without its query string, which may carry secrets. */
function describeTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

/** A worker agent. Call {@link WorkerAgent.start}; await {@link WorkerAgent.stopped}. */
export class WorkerAgent implements JobListener {
  /** Resolves once, when the agent has stopped and released everything. */
  readonly stopped: Promise<AgentStop>;
  readonly #config: AgentConfig;
  readonly #logger: Logger;
  readonly #tuning: AgentTuning;
  readonly #backoff: Backoff;
  /** Keep-alive pools to targets; owned here, destroyed when the loop ends. */
  readonly #targets: TargetPool;
  /** What every job shares, built once. */
  readonly #jobContext: JobContext;
  readonly #jobs = new Map<string, RunningJob>();
  #observer: AgentObserver | null = null;
  #state: 'new' | 'running' | 'draining' | 'closing' = 'new';
  #connection: Connection | null = null;
  #resolveStopped!: (stop: AgentStop) => void;
  /** Backoff sleep between connections; owned by #sleep, cleared by #wakeRetry (drain/close call it to skip the wait). */
  #retryTimer: NodeJS.Timeout | undefined;
  #wakeRetry: (() => void) | null = null;
  /** Wakes drain's wait for the server's close (socket lost or closed, close()). */
  #wakeDrain: (() => void) | null = null;
  #drainDone: Promise<void> | null = null;
  /** The token sent at the next handshake; from --token-file, re-read before each one. */
  #token: string | undefined;

  constructor(config: AgentConfig, logger: Logger, tuning: AgentTuning = {}) {
    this.#config = config;
    this.#logger = logger;
    this.#tuning = tuning;
    this.#backoff = new Backoff(tuning.random ? { random: tuning.random } : {});
    this.#token = config.token;
    this.#targets = createTargetPool({
      connections: config.concurrency,
      grant: config.allow,
      ...(tuning.lookup ? { lookup: tuning.lookup } : {}),
    });
    this.#jobContext = {
      maxResponseBytes: config.maxResponseBytes,
      allow: config.allow,
      targets: this.#targets,
      ...(tuning.timeoutGraceMs !== undefined ? { timeoutGraceMs: tuning.timeoutGraceMs } : {}),
    };
    this.stopped = new Promise((resolve) => {
      this.#resolveStopped = resolve;
    });
  }

  /** Jobs in flight. */
  get inFlight(): number {
    return this.#jobs.size;
  }

  /** The id the server gave the current connection, if any. */
  get workerId(): string | null {
    return this.#connection?.welcome?.workerId ?? null;
  }

  /** Connected (welcomed, socket open) and taking jobs: not draining or closing. */
  get ready(): boolean {
    return this.#state === 'running' && this.#connection?.welcome != null && this.#connection.isOpen;
  }

  /** Sets the one observer (the health server); call before start(). */
  observe(observer: AgentObserver): void {
    this.#observer = observer;
  }

  /** Starts connecting; reconnects after every loss until drained, closed or refused for good. */
  start(): void {
    if (this.#state !== 'new') return;
    this.#state = 'running';
    if (this.#config.allow.allowsAll) {
      this.#logger.warn('no --allow-host given: jobs may reach every host this agent can reach, except loopback, link-local and cloud-metadata addresses');
    }
    void this.#run().then(
      (stop) => this.#finish(stop),
      (error: unknown) => {
        this.#logger.error({ err: error }, 'agent loop failed');
        return this.#finish({ kind: 'closed' });
      },
    );
  }

  /**
   * Graceful stop: sends `drain`, performs what the server still sends, waits up to
   * drainTimeoutMs for the server to close once nothing is held, else answers the rest
   * `cancelled` and closes with 1000. Never reconnects.
   * Resolves when the agent has stopped.
   */
  async drain(): Promise<void> {
    if (this.#state === 'new') return this.close();
    if (this.#state === 'running') {
      this.#state = 'draining';
      this.#wakeRetry?.();
      const connection = this.#connection;
      if (connection?.isOpen) this.#drainDone = this.#drainConnection(connection);
      else connection?.terminate(); // still connecting: nothing is held, just stop
    }
    await this.stopped;
  }

  /** Immediate stop: aborts every job without results and drops the socket. Idempotent. */
  async close(): Promise<void> {
    const wasNew = this.#state === 'new';
    this.#state = 'closing';
    this.#wakeRetry?.();
    this.#wakeDrain?.();
    this.#abortAll();
    this.#connection?.terminate();
    // An agent closed before start() has no loop to end it.
    if (wasNew) void this.#finish({ kind: 'closed' });
    await this.stopped;
  }

  async #finish(stop: AgentStop): Promise<void> {
    this.#abortAll();
    await this.#drainDone;
    // Every job was cancelled synchronously above: nothing of theirs is left to settle.
    await this.#targets.destroy();
    this.#resolveStopped(stop);
  }

  async #run(): Promise<AgentStop> {
    let first = true;
    while (this.#state === 'running') {
      if (!first) this.#rereadToken();
      first = false;
      const connection = new Connection(
        {
          url: this.#config.url,
          ...(this.#token !== undefined ? { token: this.#token } : {}),
          userAgent: USER_AGENT,
          logger: this.#logger,
          ...(this.#tuning.watchdogSlackMs !== undefined ? { watchdogSlackMs: this.#tuning.watchdogSlackMs } : {}),
          ...(this.#tuning.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: this.#tuning.handshakeTimeoutMs } : {}),
          ...(this.#tuning.closeGraceMs !== undefined ? { closeGraceMs: this.#tuning.closeGraceMs } : {}),
        },
        {
          onWelcome: (frame) => this.#onWelcome(frame),
          onJob: (frame) => this.#onJob(connection, frame),
          onCancel: (frame) => this.#onCancel(frame),
        },
      );
      this.#connection = connection;
      this.#logger.info({ url: this.#config.url.href }, 'connecting');
      const end = await connection.ended;
      this.#connection = null;
      if (connection.welcome) this.#observer?.connectionChanged(false);
      // The server failed these jobs the moment the socket closed; their results cannot be delivered.
      this.#abortAll();
      this.#wakeDrain?.();

      if (end.kind === 'rejected' && FINAL_STATUSES.has(end.status)) {
        this.#logger.error({ status: end.status, reason: end.reason }, 'the server refused this agent; not retrying');
        return { kind: 'fatal', exitCode: 3, reason: end.reason };
      }
      if (this.#state !== 'running') break;
      this.#backoff.connectionEnded(end.kind === 'closed' ? end.livedMs : 0);
      const delayMs = this.#backoff.nextDelayMs();
      this.#observer?.reconnecting();
      this.#logger.warn({ ...this.#describeEnd(end), retryInMs: delayMs }, 'disconnected; reconnecting');
      await this.#sleep(delayMs);
    }
    return { kind: this.#state === 'draining' ? 'drained' : 'closed' };
  }

  /**
   * Picks up a rotated token file (a mounted secret) before reconnecting. A file that
   * cannot be read now keeps the last good token: the outage is not the agent's to widen.
   */
  #rereadToken(): void {
    const file = this.#config.tokenFile;
    if (file === undefined) return;
    try {
      const token = readTokenFile(file);
      if (token !== this.#token) this.#logger.info({ file }, 'token file changed; using the new token');
      this.#token = token;
    } catch (error) {
      if (!(error instanceof AgentOptionsError)) throw error;
      this.#logger.warn({ reason: error.message }, 'token file unreadable; keeping the last token');
    }
  }

  #describeEnd(end: ConnectionEnd): Record<string, unknown> {
    if (end.kind === 'closed') return { code: end.code, reason: end.reason, livedMs: end.livedMs };
    if (end.kind === 'rejected') return { status: end.status, reason: end.reason };
    return { reason: end.reason };
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeRetry = () => {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = undefined;
        this.#wakeRetry = null;
        resolve();
      };
      this.#retryTimer = setTimeout(this.#wakeRetry, ms);
    });
  }

  #onWelcome(frame: WelcomeFrame): void {
    this.#observer?.connectionChanged(true);
    this.#logger.info({ workerId: frame.workerId, heartbeatMs: frame.heartbeatMs, maxPayloadBytes: frame.maxPayloadBytes }, 'connected');
  }

  #onJob(connection: Connection, frame: JobFrame): void {
    const { id } = frame;
    // A job arriving while draining was sent before the server read our drain frame: run it
    // within the drain grace rather than fail a request the server already routed here.
    if (this.#state !== 'running' && this.#state !== 'draining') return this.#refuse(connection, id, 'the agent is closing');
    // A duplicate id is a server bug; the job already running under it keeps running.
    if (this.#jobs.has(id)) return this.#refuse(connection, id, 'a job with this id is already running');
    if (this.#jobs.size >= this.#config.concurrency) return this.#refuse(connection, id, `the agent already holds ${this.#config.concurrency} jobs (its concurrency)`);
    const job: RunningJob = new TargetJob(frame.request, frame.timeoutMs, this.#jobContext, this, { id, connection, startedAt: Date.now() });
    this.#jobs.set(id, job);
    if (this.#logger.isLevelEnabled('debug')) this.#logger.debug({ jobId: id, method: frame.request.method, target: describeTarget(frame.request.url) }, 'job started');
    // The frame decode validated the request already.
    job.trustValidated().start();
  }

  #refuse(connection: Connection, id: string, message: string): void {
    this.#observer?.jobEnded('invalid_job');
    this.#reply(connection, id, failure('invalid_job', message));
  }

  /**
   * A job ended by itself (JobListener): answer it unless someone removed it from the table
   * (and answered, or must not). Called from undici's callbacks, which would swallow a throw.
   */
  jobEnded(job: TargetJob, outcome: JobOutcome): void {
    try {
      this.#answer(job as RunningJob, outcome);
    } catch (error) {
      this.#logger.error({ err: error, jobId: (job as RunningJob).tag.id }, 'answering a job failed');
    }
  }

  #answer(job: RunningJob, outcome: JobOutcome): void {
    const { id, connection, startedAt } = job.tag;
    if (this.#jobs.get(id) !== job) return;
    this.#jobs.delete(id);
    this.#observer?.jobEnded('error' in outcome ? outcome.error.code : 'ok');
    if (this.#logger.isLevelEnabled('debug')) {
      const durationMs = Date.now() - startedAt;
      if ('error' in outcome) this.#logger.debug({ jobId: id, code: outcome.error.code, message: outcome.error.message, durationMs }, 'job failed');
      else this.#logger.debug({ jobId: id, status: outcome.response.status, durationMs }, 'job done');
    }
    this.#reply(connection, id, outcome);
  }

  #onCancel(frame: CancelFrame): void {
    const job = this.#jobs.get(frame.id);
    // The server already forgot the job: abort it and answer nothing.
    if (!job) return this.#logger.debug({ jobId: frame.id }, 'cancel for a job not held; ignored');
    this.#jobs.delete(frame.id);
    job.cancel();
    this.#observer?.jobEnded('cancelled');
    this.#logger.debug({ jobId: frame.id, reason: frame.reason }, 'job cancelled by the server');
  }

  /** Sends a result, replaced by `response_too_large` when it would exceed the server's frame limit (1009). */
  #reply(connection: Connection, id: string, outcome: JobOutcome): void {
    const limit = connection.welcome?.maxPayloadBytes ?? DEFAULTS.maxPayloadBytes;
    let text = encodeFrame({ type: 'result', id, ...outcome } satisfies ResultFrame);
    // UTF-8 takes at most 3 bytes per UTF-16 unit: only a long frame needs counting.
    const bytes = text.length * 3 <= limit ? 0 : Buffer.byteLength(text);
    if (bytes > limit) {
      this.#logger.info({ jobId: id, bytes, limit }, "result over the server's maxPayloadBytes; sending response_too_large");
      const error = { code: 'response_too_large', message: `the result frame is ${bytes} bytes, over the server's limit of ${limit}` } as const;
      text = encodeFrame({ type: 'result', id, error });
    }
    if (!connection.sendText(text)) this.#logger.debug({ jobId: id }, 'socket closed; result dropped');
  }

  /** Aborts every job in flight without answering. */
  #abortAll(): void {
    for (const [id, job] of this.#jobs) {
      this.#jobs.delete(id);
      job.cancel();
      this.#observer?.jobEnded('abandoned');
    }
  }

  /**
   * Sends `drain` and waits — up to drainTimeoutMs — for the server to close the socket.
   * Only the server knows whether a job it routed here before reading our drain frame is
   * still on its way, so it closes (1000) once this worker holds none of its jobs; jobs
   * arriving meanwhile are performed. When the grace runs out the rest is answered
   * `cancelled` and the agent closes with 1000 itself.
   */
  async #drainConnection(connection: Connection): Promise<void> {
    connection.sendText(encodeFrame({ type: 'drain' }));
    this.#logger.info({ inFlight: this.#jobs.size, drainTimeoutMs: this.#config.drainTimeoutMs }, 'draining');
    await new Promise<void>((resolve) => {
      // Timer and waker owned by this wait; both cleared by wake (socket end, close(), grace over).
      const timer = setTimeout(() => wake(), this.#config.drainTimeoutMs);
      const wake = (): void => {
        clearTimeout(timer);
        this.#wakeDrain = null;
        resolve();
      };
      this.#wakeDrain = wake;
    });
    if (this.#state !== 'draining' || !connection.isOpen) return; // the server closed, or close(): nothing to answer
    for (const [id, job] of this.#jobs) {
      this.#jobs.delete(id);
      job.cancel();
      this.#observer?.jobEnded('cancelled');
      this.#reply(connection, id, failure('cancelled', `the agent is shutting down and its drain grace of ${this.#config.drainTimeoutMs} ms ran out`));
    }
    connection.close(CLOSE_CODES.normal, 'drained');
  }
}
