/**
 * Auth-failure back-off: an address with more than `maxFailures` failed
 * authentications (401) within `windowMs` is refused (429 `rate_limited`) for the next
 * `blockMs`, whatever token it presents. Pure bookkeeping on an injected clock.
 *
 * Memory is bounded: entries live in one Map kept in order of last change, so the oldest
 * are at its head; every call first drops the head entries that have expired, and a new
 * address past `maxEntries` pushes out the oldest one. No timer is needed.
 */

export interface AuthBackoffOptions {
  /** Failures allowed in one window; the one after it starts a block. */
  maxFailures: number;
  windowMs: number;
  blockMs: number;
  /** Addresses tracked at once. */
  maxEntries: number;
}

export const AUTH_BACKOFF_DEFAULTS: AuthBackoffOptions = { maxFailures: 20, windowMs: 10_000, blockMs: 10_000, maxEntries: 10_000 };

type Entry = { windowStart: number; failures: number; blockedUntil: number; touchedAt: number };

export class AuthBackoff {
  // Owner: this tracker; entries removed by #expire (oldest first) or by the cap.
  readonly #entries = new Map<string, Entry>();
  readonly #keepMs: number;

  constructor(
    readonly options: AuthBackoffOptions = AUTH_BACKOFF_DEFAULTS,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#keepMs = Math.max(options.windowMs, options.blockMs);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Milliseconds left of this address's block; 0 when it is not blocked. */
  blockedForMs(address: string): number {
    const now = this.now();
    this.#expire(now);
    const e = this.#entries.get(address);
    return e && e.blockedUntil > now ? Math.ceil(e.blockedUntil - now) : 0;
  }

  /**
   * Records a failed authentication. `first`: the first failure of this address's window
   * (log it); `blocked`: this failure started a block (log that too).
   */
  fail(address: string): { first: boolean; blocked: boolean } {
    const now = this.now();
    this.#expire(now);
    let e = this.#entries.get(address);
    let first = false;
    if (e) this.#entries.delete(address); // re-inserted below, at the tail
    if (!e || (now - e.windowStart >= this.options.windowMs && e.blockedUntil <= now)) {
      e = { windowStart: now, failures: 0, blockedUntil: 0, touchedAt: now };
      first = true;
    }
    e.failures += 1;
    e.touchedAt = now;
    let blocked = false;
    if (e.failures > this.options.maxFailures && e.blockedUntil <= now) {
      e.blockedUntil = now + this.options.blockMs;
      // The window after the block starts afresh.
      e.windowStart = e.blockedUntil;
      e.failures = 0;
      blocked = true;
    }
    if (this.#entries.size >= this.options.maxEntries) this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(address, e);
    return { first, blocked };
  }

  #expire(now: number): void {
    for (const [address, e] of this.#entries) {
      if (now - e.touchedAt < this.#keepMs || e.blockedUntil > now) return;
      this.#entries.delete(address);
    }
  }
}
