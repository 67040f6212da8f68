/**
 * The node-local worker registry: the open worker sessions of this process by id, and
 * the host of each (it hears their results, drains, writability and departures). It
 * passes each on to the router as `WorkerEvents` — a departure with the ids of the jobs
 * the worker held, so the router fails them at once — and owns closing the sockets.
 */
import type { ResultFrame, WorkerInfo } from '../shared/protocol.ts';
import type { Logger } from './logger.ts';
import type { WorkerEvents } from './router.ts';
import type { SessionHost, WorkerSession } from './worker-session.ts';

export class WorkerRegistry implements SessionHost {
  /** Open sessions by worker id; added by `add`, removed when the session reports itself gone. */
  readonly #sessions = new Map<string, WorkerSession>();

  constructor(
    readonly router: WorkerEvents,
    readonly log: Logger,
  ) {}

  get size(): number {
    return this.#sessions.size;
  }

  get(workerId: string): WorkerSession | undefined {
    return this.#sessions.get(workerId);
  }

  /** Takes a started session (the gateway's hand-over); the router can place jobs on it from now on. */
  add(session: WorkerSession): void {
    this.#sessions.set(session.id, session);
    this.router.workerUp(session);
  }

  list(suite?: string): WorkerInfo[] {
    const out: WorkerInfo[] = [];
    for (const s of this.#sessions.values()) if (suite === undefined || s.suite === suite) out.push(s.info());
    return out;
  }

  /** Closes every open socket (shutdown: after the router has failed what was left). */
  closeAll(code: number, reason: string): void {
    for (const session of [...this.#sessions.values()]) session.close(code, reason);
  }

  // ---- SessionHost ----

  onResult(session: WorkerSession, frame: ResultFrame): void {
    this.router.workerResult(session, frame);
  }

  onDrain(session: WorkerSession): void {
    this.log.info({ workerId: session.id, suite: session.suite, pool: session.name }, 'worker draining');
    this.router.workerDraining(session);
    session.closeIfDrained();
  }

  onWritable(session: WorkerSession): void {
    this.router.workerWritable(session);
  }

  onGone(session: WorkerSession, reason: string): void {
    this.#sessions.delete(session.id);
    const held = [...session.held];
    this.router.workerGone(session, held, reason);
    this.log.info({ workerId: session.id, suite: session.suite, pool: session.name, reason, failedJobs: held.length }, 'worker gone');
  }
}
