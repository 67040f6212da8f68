/**
 * Reconnect delays for the agent: exponential backoff with full jitter
 * (AWS architecture blog, "Exponential Backoff And Jitter"). Pure: no timers here,
 * the caller owns the timer; randomness is injectable so tests are deterministic.
 */
import { BACKOFF } from '../shared/limits.ts';

/** Tuning of {@link Backoff}; defaults are {@link BACKOFF} from shared/limits.ts. */
export interface BackoffOptions {
  /** Ceiling of the first delay. */
  baseMs: number;
  /** The ceiling never grows past this. */
  maxMs: number;
  /** A connection that lived at least this long resets the sequence. */
  resetAfterMs: number;
  /** Uniform random in [0, 1); `Math.random` by default. */
  random: () => number;
}

/**
 * The delay before attempt number `attempt` (0-based): uniform in
 * [0, min(maxMs, baseMs × 2^attempt)). Full jitter spreads a fleet of agents that lost
 * the same server, so they do not reconnect in lockstep.
 */
export function fullJitterDelayMs(attempt: number, options: Pick<BackoffOptions, 'baseMs' | 'maxMs' | 'random'>): number {
  // Cap the exponent: 2^31 already dwarfs any sane maxMs, and it keeps the product finite.
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(Math.max(attempt, 0), 31));
  return Math.floor(options.random() * ceiling);
}

/** The backoff state of one reconnect loop: how many attempts failed in a row. */
export class Backoff {
  readonly #options: BackoffOptions;
  /** Failed connections since the last reset; the exponent of the next ceiling. */
  #attempt = 0;

  constructor(options: Partial<BackoffOptions> = {}) {
    this.#options = { ...BACKOFF, random: Math.random, ...options };
  }

  /** Attempts counted since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  nextDelayMs(): number {
    const delay = fullJitterDelayMs(this.#attempt, this.#options);
    this.#attempt += 1;
    return delay;
  }

  /**
   * Records that a connection ended after living `livedMs` (0 when it never opened).
   * A long-lived one proves the server is healthy, so the next retry starts small again.
   */
  connectionEnded(livedMs: number): void {
    if (livedMs >= this.#options.resetAfterMs) this.reset();
  }

  /** Starts the sequence over. */
  reset(): void {
    this.#attempt = 0;
  }
}
