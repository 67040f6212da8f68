/**
 * The flowtest server as the bench runs it: `startServer` in its own process, logging
 * at info to stdout (the bench points stdout at /dev/null), plus what the bench reads
 * from inside — CPU, memory, loop delay (built-ins of serveBench), the number of open
 * workers, and a `gone` event stamped with the monotonic clock the moment the server
 * decides a worker is gone (the entry of the registry's onGone, before the router fails the jobs)
 * and when onGone returned (every job failed; the answers are written right after).
 */
import { createLogger } from '../../server/logger.ts';
import { startServer } from '../../server/server.ts';
import { childConfig, serveBench } from '../harness/child.ts';
import { benchTokenStore } from '../harness/token-store.ts';

const config = childConfig<{ heartbeatMs?: number; maxQueue?: number; nats?: string; nodeId?: string }>();
const server = await startServer(
  {
    host: '127.0.0.1',
    port: 0,
    shutdownGraceMs: 0,
    maxQueue: config.maxQueue ?? 10_000,
    ...(config.heartbeatMs ? { heartbeatMs: config.heartbeatMs } : {}),
    // A cluster node (bench/cluster.ts).
    ...(config.nats ? { nats: config.nats, nodeId: config.nodeId } : {}),
  },
  { tokens: benchTokenStore(), logger: createLogger({ level: 'info' }) },
);

const io = serveBench({ workers: () => server.router.stats().workers, router: () => server.router.stats() }, () => server.close());

// Instrument, not change: the worker registry is the session host, so its onGone is looked up per call.
const registry = server.workers;
const onGone = registry.onGone.bind(registry);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
registry.onGone = (session, reason) => {
  const atMs = nowMs();
  const failedJobs = session.held.size;
  onGone(session, reason);
  io.emit('gone', { atMs, returnedMs: nowMs(), reason, failedJobs });
};

io.ready({ url: server.url });
