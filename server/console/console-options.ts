/** The console's knobs: defaults with units in one object, validated once. */
import { z } from 'zod';
import { DEFAULTS } from '../../shared/limits.ts';

export const consoleOptionsSchema = z.strictObject({
  /** Changes are batched and sent to every console at most this often. */
  tickMs: z.number().int().min(10).max(10_000).default(250),
  /** Every worker is re-read this often (RTT and last pong change without an event). */
  refreshMs: z.number().int().min(100).max(60_000).default(2_000),
  /** Ended jobs kept for the feed and its details. */
  feedSize: z.number().int().min(1).max(10_000).default(500),
  /** Failed jobs whose original request is kept for Replay (the newest ones). */
  replayKeep: z.number().int().min(0).max(1_000).default(50),
  /** A request bigger than this (URL, headers and body) is not kept for Replay. */
  replayMaxBytes: z.number().int().min(0).default(64 * 1024),
  /** The page sends `ping` this often. */
  heartbeatMs: z.number().int().min(50).max(60_000).default(5_000),
  /** A console that sent nothing (not even a ping) for this long is cut. */
  idleTimeoutMs: z.number().int().min(100).max(10 * 60_000).default(20_000),
  /** Deltas are dropped for a console whose socket holds more than this, and it is told to resync. */
  highWaterBytes: z.number().int().min(1024).default(2 * 1024 * 1024),
  /** A behind console gets its fresh snapshot once its socket holds less than this. */
  lowWaterBytes: z.number().int().min(0).default(256 * 1024),
  /** A console whose socket holds more than this is cut (only replies can push it past the high-water mark). */
  hardLimitBytes: z.number().int().min(1024).default(16 * 1024 * 1024),
  /** Consoles open at once. */
  maxConsoles: z.number().int().min(1).max(10_000).default(32),
  /** Test requests one console may have running at once. */
  maxDispatchesPerConsole: z.number().int().min(1).max(100).default(4),
  /** Pools remembered after the router dropped them (shown with "no workers"). */
  rememberPools: z.number().int().min(0).max(10_000).default(200),
  /**
   * A test request whose message is bigger than this is refused with payload_too_large, as
   * the HTTP API refuses a dispatch body over --max-payload-bytes (the server passes it).
   * A page message over this plus 64 KiB closes the console with 1009.
   */
  maxRequestBytes: z.number().int().min(1024).default(DEFAULTS.maxPayloadBytes),
  /** Header names masked besides the credential headers (`--console-mask-header`). */
  maskHeaders: z.array(z.string().min(1)).default([]),
});

export type ConsoleOptionsInput = z.input<typeof consoleOptionsSchema>;
export type ConsoleOptions = z.output<typeof consoleOptionsSchema>;

export function parseConsoleOptions(input: ConsoleOptionsInput = {}): ConsoleOptions {
  return consoleOptionsSchema.parse(input);
}
