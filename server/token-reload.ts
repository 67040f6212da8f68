/**
 * SIGHUP: re-read the tokens file without dropping sockets. Workers whose token no
 * longer grants their suite and pool are revoked — no new job is routed to them, and
 * once their jobs in flight end they are closed with 1008 `token revoked`. A file that
 * does not load leaves the old tokens in place.
 */
import type { Logger } from 'pino';
import type { TokenStore } from './auth.ts';
import { TokenStore as Store } from './auth.ts';
import type { WorkerSession } from './worker-session.ts';

export type ReloadResult = { ok: true; revoked: number } | { ok: false; error: string };

/** Open worker sessions and the tokens they authenticated with. */
export class TokenSessions {
  // Owner: this registry; each added by `add`, removed when its socket emits 'close'.
  readonly #sessions = new Set<WorkerSession>();

  get size(): number {
    return this.#sessions.size;
  }

  add(session: WorkerSession): void {
    this.#sessions.add(session);
    session.ws.once('close', () => this.#sessions.delete(session));
  }

  /** Revokes every open session whose token `store` no longer allows; returns how many. */
  recheck(store: TokenStore): number {
    let revoked = 0;
    for (const s of this.#sessions) {
      if (s.state === 'gone' || s.revoked) continue;
      const id = s.meta.tokenId;
      if (id !== undefined && store.allows(id, { role: 'worker', suite: s.suite, pool: s.name })) continue;
      s.revoke();
      revoked += 1;
    }
    return revoked;
  }
}

/** Reads `path` into `store` and revokes the sessions it no longer allows. Never throws. */
export function reloadTokens(store: TokenStore, path: string | undefined, sessions: TokenSessions, log: Logger): ReloadResult {
  if (!path) {
    log.warn('tokens reload asked for, but the server runs without --tokens-file: nothing to reload');
    return { ok: false, error: 'no tokens file' };
  }
  try {
    store.replace(Store.readFile(path));
  } catch (err) {
    const error = (err as Error).message;
    log.error({ error }, 'tokens reload failed: keeping the tokens in use');
    return { ok: false, error };
  }
  const revoked = sessions.recheck(store);
  log.info({ revoked, workers: sessions.size }, 'tokens reloaded');
  return { ok: true, revoked };
}
