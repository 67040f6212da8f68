/**
 * The console socket's messages. Page → server messages are zod schemas decoded
 * through shared/codec.ts; server → page messages are plain types. The page's modules
 * import these types in JSDoc (`@import`) and are checked against them by
 * `npm run typecheck` (tsconfig.page.json), so the page cannot drift from them unseen.
 *
 * Handshake: `GET /v1/console`, subprotocols `flowtest.console.v1` and
 * `token.<base64url(admin token)>`; the server answers with `flowtest.console.v1` only.
 */
import { z } from 'zod';
import type { ErrorCode } from '../../shared/errors.ts';
import { dispatchRequestSchema, nameSchema, type WorkerInfo } from '../../shared/protocol.ts';
import type { PoolStats } from '../router.ts';

/** Path of the console socket. */
export const CONSOLE_PATH = '/v1/console';
/** The subprotocol a console must offer (and the only one the server selects). */
export const CONSOLE_SUBPROTOCOL = 'flowtest.console.v1';
/** Prefix of the subprotocol entry that carries the token, base64url-encoded. */
export const TOKEN_PROTOCOL_PREFIX = 'token.';

const refSchema = z.string().min(1).max(64);

// ---- page → server ----
export const consoleClientMessageSchema = z.discriminatedUnion('type', [
  /** Heartbeat: the page sends one every `heartbeatMs`; the server answers `pong`. */
  z.strictObject({ type: z.literal('ping'), t: z.number() }),
  /** Asks for a fresh snapshot (the page lost track). */
  z.strictObject({ type: z.literal('resync') }),
  /** Details of one job of the feed. */
  z.strictObject({ type: z.literal('job'), id: z.string().min(1).max(64) }),
  /** A test request, dispatched with the admin's authority. */
  z.strictObject({ type: z.literal('dispatch'), ref: refSchema, suite: nameSchema, dispatch: dispatchRequestSchema }),
  /** Re-sends a failed job's original request to the same pool. */
  z.strictObject({ type: z.literal('replay'), ref: refSchema, id: z.string().min(1).max(64) }),
]);
export type ConsoleClientMessage = z.infer<typeof consoleClientMessageSchema>;

// ---- server → page ----

/** A body as the console shows it: never the whole of a large one. */
export interface BodyPreview {
  kind: 'text' | 'json' | 'binary';
  /** Size of the whole body in bytes. */
  bytes: number;
  /** The first `previewBytes` of a text body; absent for binary. */
  text?: string;
  truncated: boolean;
}

/** Header maps with authorization, cookie, set-cookie and proxy-authorization masked. */
export type MaskedHeaders = Record<string, string | string[]>;

/** One line of the job feed. */
export interface JobRow {
  /** Position in the server's job log; rows with `seq` ≤ a snapshot's `lastSeq` are already in it. */
  seq: number;
  id: string;
  /** Epoch ms when the dispatch was accepted. */
  at: number;
  suite: string;
  pool: string;
  workerId: string | null;
  method: string;
  url: string;
  /** The target's status, when the dispatch succeeded. */
  status: number | null;
  outcome: 'ok' | ErrorCode;
  durationMs: number;
  /** The original request is kept, so Replay can re-send it. */
  replayable: boolean;
  /** In a cluster: the node the dispatch arrived at. */
  node?: string;
}

export interface JobDetails extends JobRow {
  request: { method: string; url: string; headers: MaskedHeaders; body: BodyPreview | null };
  response: { status: number; headers: MaskedHeaders; body: BodyPreview } | null;
  error: { code: ErrorCode; message: string } | null;
}

/** A pool as the "why not?" column sees it. */
export interface PoolView extends PoolStats {
  /** Why a dispatch would not run right now; null when it would. */
  whyNot: string | null;
}

export interface Counters {
  workers: number;
  inFlight: number;
  queued: number;
  /** Jobs ended per second over the last `windowSec`. */
  jobsPerSec: number;
  /** Share of those that failed (0..1), null when none ended. */
  errorRate: number | null;
  windowSec: number;
}

export interface WorkerGone {
  id: string;
  suite: string;
  pool: string;
  reason: string;
}

export type ConsoleServerMessage =
  | {
      type: 'snapshot';
      serverTime: number;
      /** The page sends `ping` this often and treats 2.5 × this without a message as a dead socket. */
      heartbeatMs: number;
      feedSize: number;
      lastSeq: number;
      workers: WorkerInfo[];
      pools: PoolView[];
      /** Oldest first. */
      jobs: JobRow[];
      counters: Counters;
    }
  | {
      type: 'delta';
      serverTime: number;
      /** Workers that appeared or changed (whole records: apply as upserts). */
      workers: WorkerInfo[];
      gone: WorkerGone[];
      /** Every pool, when any changed. */
      pools?: PoolView[];
      /** New jobs, oldest first. */
      jobs: JobRow[];
      counters: Counters;
    }
  /** Deltas were dropped for this console: a snapshot follows once its socket drains. */
  | { type: 'resync'; reason: string }
  | { type: 'pong'; t: number }
  | { type: 'job'; id: string; job: JobDetails | null }
  | { type: 'dispatch-result'; ref: string; ok: true; result: { id: string; workerId: string; durationMs: number; response: { status: number; headers: MaskedHeaders; body: BodyPreview } } }
  | { type: 'dispatch-result'; ref: string; ok: false; error: { code: ErrorCode; message: string } };
