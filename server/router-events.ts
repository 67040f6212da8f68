/**
 * What the router tells observers (the console): workers coming, changing and
 * going, and each job's end with what it sent and got. Observers are called
 * synchronously and must not throw or block; events are built only when someone
 * is listening.
 */
import type { ErrorCode } from '../shared/errors.ts';
import type { HttpRequest, HttpResponse, WorkerInfo } from '../shared/protocol.ts';

export interface JobSummary {
  id: string;
  suite: string;
  pool: string;
  workerId: string | null;
  /** Epoch milliseconds when the dispatch was accepted. */
  acceptedAt: number;
  durationMs: number;
  outcome: 'ok' | ErrorCode;
  request: HttpRequest;
  response: HttpResponse | null;
  error: { code: ErrorCode; message: string } | null;
  /** In a cluster: the node the dispatch arrived at (which answered it). */
  node?: string;
  /** In a cluster: recorded from another node's job feed, bodies cut to a preview (never replayed here). */
  remote?: true;
}

export type RouterEvent =
  | { kind: 'worker-up'; worker: WorkerInfo }
  | { kind: 'worker-draining'; worker: WorkerInfo }
  | { kind: 'worker-down'; workerId: string; suite: string; pool: string; reason: string }
  | { kind: 'job-start'; id: string; suite: string; pool: string; workerId: string }
  | { kind: 'job-end'; job: JobSummary };

export type RouterObserver = (event: RouterEvent) => void;
