/**
 * Test-only access to the server's WorkerSession objects. The registry's public `add`
 * is the one seam every session passes through, so wrapping it on the instance sees
 * each session without a hook in the server.
 */
import type { WorkerRegistry } from '../../server/worker-registry.ts';
import type { WorkerSession } from '../../server/worker-session.ts';
import type { RouterObserver } from '../../server/router-events.ts';

/** Calls `onSession` with every session the registry takes from now on. */
export function onSessions(registry: WorkerRegistry, onSession: (session: WorkerSession) => void): void {
  const add = registry.add.bind(registry);
  registry.add = (session: WorkerSession) => {
    onSession(session);
    add(session);
  };
}

/** Open sessions by worker id (removed when they go), kept strongly: for tests that inspect sockets, not for GC proofs. */
export function trackSessions(s: { workers: WorkerRegistry; router: { observe(o: RouterObserver): () => void } }): Map<string, WorkerSession> {
  const sessions = new Map<string, WorkerSession>();
  onSessions(s.workers, (session) => sessions.set(session.id, session));
  s.router.observe((e) => {
    if (e.kind === 'worker-down') sessions.delete(e.workerId);
  });
  return sessions;
}
