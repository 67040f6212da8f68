/**
 * Joining the cluster at start: the NATS connection, the node id (default or given, and
 * refused when it is already live), then the cluster router over this node's LocalRouter.
 */
import { nanoid } from 'nanoid';
import type { LocalRouter } from '../local-router.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { ClusterRouter } from './cluster-router.ts';
import { defaultNodeId, isNodeIdLive, isValidNodeId } from './membership.ts';
import { NatsLink } from './nats-link.ts';

/** A start that must not go on; `exitCode` 2 for a bad option or a taken node id, 1 for an unreachable NATS. */
export class ClusterStartError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
    this.name = 'ClusterStartError';
  }
}

export interface JoinOptions {
  nats: string;
  nodeId?: string;
  defaultTimeoutMs: number;
  maxPayloadBytes: number;
}

export async function joinCluster(options: JoinOptions, inner: LocalRouter, metrics: Metrics, log: Logger): Promise<ClusterRouter> {
  const nodeId = options.nodeId ?? defaultNodeId();
  if (!isValidNodeId(nodeId)) throw new ClusterStartError(`--node-id ${JSON.stringify(nodeId)}: must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`, 2);
  let link: NatsLink;
  try {
    link = await NatsLink.open({ urls: options.nats, name: `flowtest-${nodeId}` }, log);
  } catch (err) {
    throw new ClusterStartError((err as Error).message, /^--nats/.test((err as Error).message) ? 2 : 1);
  }
  try {
    if (await isNodeIdLive(link, nodeId)) throw new ClusterStartError(`node id ${nodeId} is already live in the cluster; give this node another --node-id`, 2);
  } catch (err) {
    await link.close();
    throw err instanceof ClusterStartError ? err : new ClusterStartError(`cluster join failed: ${(err as Error).message}`, 1);
  }
  const router = new ClusterRouter(
    inner,
    link,
    metrics,
    { nodeId, nonce: nanoid(12), defaultTimeoutMs: options.defaultTimeoutMs, maxPayloadBytes: options.maxPayloadBytes },
    log,
  );
  router.start();
  log.info({ nodeId }, 'joined the cluster');
  return router;
}
