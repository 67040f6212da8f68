/**
 * Refused requests and socket handshakes (401, 403, rate limited): each one is counted in
 * `flowtest_auth_failures_total`, and logged at info once per client address per interval,
 * with how many more that address had since — a scanner or a misconfigured agent retrying
 * every second gives one line a minute, not one a second.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from './logger.ts';
import type { AuthFailureKind, AuthFailureTransport, Metrics } from './metrics.ts';

/** Default: one line per address per minute. */
export const REFUSAL_LOG_INTERVAL_MS = 60_000;
/** Addresses remembered at once; past it the oldest is forgotten (and may log again). */
export const MAX_REFUSAL_ADDRESSES = 10_000;

interface AddressEntry {
  /** When this address may be logged again (performance.now() time). */
  quietUntil: number;
  /** Refusals since its last line. */
  suppressed: number;
}

export interface RefusalDetail {
  /** Route or socket path, for the log line. */
  path?: string;
  suite?: string;
}

export class RefusalLog {
  /**
   * By address, oldest first (an entry is re-inserted when it logs). Owner: `refused`,
   * the only writer; entries leave when their quiet time is over or the map is full.
   */
  readonly #addresses = new Map<string, AddressEntry>();

  constructor(
    readonly metrics: Pick<Metrics, 'authFailed'> | null,
    readonly log: Pick<Logger, 'info'>,
    readonly intervalMs = REFUSAL_LOG_INTERVAL_MS,
    readonly now: () => number = () => performance.now(),
  ) {}

  /** Counts one refusal and logs it unless its address was logged within the interval. */
  refused(kind: AuthFailureKind, transport: AuthFailureTransport, remoteAddress: string | undefined | null, detail: RefusalDetail = {}): void {
    this.metrics?.authFailed(kind, transport);
    const address = remoteAddress ?? 'unknown';
    const now = this.now();
    const entry = this.#addresses.get(address);
    if (entry && now < entry.quietUntil) {
      entry.suppressed += 1;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.#addresses.delete(address);
    this.#forgetQuietOnes(now);
    this.#addresses.set(address, { quietUntil: now + this.intervalMs, suppressed: 0 });
    this.log.info({ kind, transport, remoteAddress: address, ...detail, ...(suppressed > 0 ? { suppressedSinceLast: suppressed } : {}) }, 'refused');
  }

  /** Addresses remembered (for tests: the map stays bounded). */
  get size(): number {
    return this.#addresses.size;
  }

  /** Drops entries whose quiet time is over (oldest first), and the oldest past the cap. */
  #forgetQuietOnes(now: number): void {
    for (const [address, entry] of this.#addresses) {
      if (entry.quietUntil > now && this.#addresses.size < MAX_REFUSAL_ADDRESSES) break;
      this.#addresses.delete(address);
    }
  }
}
