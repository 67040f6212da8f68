/**
 * Test-only access to the server's WorkerSession objects. The router's public
 * `addWorker` is the one seam every session passes through, so wrapping it on the
 * instance sees each session without a hook in the server.
 */
import type { LocalRouter } from '../../server/local-router.ts';
import type { WorkerSession } from '../../server/worker-session.ts';

/** Calls `onSession` with every session the router takes from now on. */
export function onSessions(router: LocalRouter, onSession: (session: WorkerSession) => void): void {
  const addWorker = router.addWorker.bind(router);
  router.addWorker = (session: WorkerSession) => {
    onSession(session);
    addWorker(session);
  };
}

/** Open sessions by worker id (removed when they go), kept strongly: for tests that inspect sockets, not for GC proofs. */
export function trackSessions(router: LocalRouter): Map<string, WorkerSession> {
  const sessions = new Map<string, WorkerSession>();
  onSessions(router, (s) => sessions.set(s.id, s));
  router.observe((e) => {
    if (e.kind === 'worker-down') sessions.delete(e.workerId);
  });
  return sessions;
}
