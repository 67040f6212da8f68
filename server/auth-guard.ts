/**
 * The one door every authenticated entry goes through — HTTP API, `/console/auth`, worker
 * and console handshakes: back-off first (an address blocked for too many 401s gets 429
 * `rate_limited` without its token being looked at), then the token check, then the
 * bookkeeping of a refusal: counted for the back-off (401 only), counted and logged by the
 * refusal log (metrics, one line per address per interval), and told to observers.
 */
import type { Logger } from 'pino';
import { AuthBackoff } from './auth-backoff.ts';
import type { Access, TokenId, TokenStore } from './auth.ts';
import { backoffKey } from './client-address.ts';
import type { AuthFailureKind, AuthFailureTransport } from './metrics.ts';
import type { RefusalDetail, RefusalLog } from './refusal-log.ts';

export type { AuthFailureKind, AuthFailureTransport };

export interface AuthFailure {
  kind: AuthFailureKind;
  transport: AuthFailureTransport;
  /** The client's address (after --trust-proxy), or null when unknown. */
  address: string | null;
  detail: RefusalDetail;
}

export type AuthOutcome =
  | { ok: true; tokenId: TokenId }
  | { ok: false; kind: AuthFailureKind; status: 401 | 403 | 429; message: string; /** Seconds, for Retry-After (rate_limited only). */ retryAfterS?: number };

export class AuthGuard {
  // Owner: this guard; each added by onFailure, removed by the function it returns.
  readonly #observers = new Set<(f: AuthFailure) => void>();

  constructor(
    readonly tokens: TokenStore,
    readonly backoff: AuthBackoff,
    readonly refusals: RefusalLog | null,
    readonly log: Logger,
  ) {}

  /** Calls `observer` with every refused attempt (401, 403, 429); returns its remover. */
  onFailure(observer: (f: AuthFailure) => void): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  /** Checks `token` for `access` from `address` (null: unknown, never blocked). */
  authenticate(token: string | undefined, access: Access, address: string | null, transport: AuthFailureTransport, detail: RefusalDetail = {}): AuthOutcome {
    const key = address === null ? null : backoffKey(address);
    if (key !== null) {
      const blockedMs = this.backoff.blockedForMs(key);
      if (blockedMs > 0) {
        this.#refused({ kind: 'rate_limited', transport, address, detail });
        return { ok: false, kind: 'rate_limited', status: 429, message: 'too many failed authentications from this address; retry later', retryAfterS: Math.ceil(blockedMs / 1000) };
      }
    }
    const { decision, tokenId } = this.tokens.authenticate(token, access);
    if (decision === 'ok') return { ok: true, tokenId: tokenId! };
    this.#refused({ kind: decision, transport, address, detail });
    if (decision === 'unauthorized') {
      if (key !== null && this.backoff.fail(key).blocked) {
        this.log.warn({ remoteAddress: address, blockMs: this.backoff.options.blockMs }, 'address rate limited after repeated failed authentications');
      }
      return { ok: false, kind: 'unauthorized', status: 401, message: 'missing or unknown token' };
    }
    const message =
      access.role === 'admin' ? 'an admin token is required'
      : access.role === 'worker' && access.pool !== undefined ? `token not valid for suite ${access.suite} pool ${access.pool}`
      : `token not valid for suite ${access.suite}`;
    return { ok: false, kind: 'forbidden', status: 403, message };
  }

  #refused(failure: AuthFailure): void {
    this.refusals?.refused(failure.kind, failure.transport, failure.address, failure.detail);
    for (const o of this.#observers) o(failure);
  }
}
