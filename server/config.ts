/** Server options: defaults with units in one object, validated once by a strict schema. */
import { z } from 'zod';
import { BOUNDS, DEFAULTS, LOG_LEVELS } from '../shared/limits.ts';
import { parseCidr } from './client-address.ts';

export const serverConfigSchema = z
  .strictObject({
    host: z.string().min(1).default(DEFAULTS.host),
    /** 0 picks a free port (tests). */
    port: z.number().int().min(0).max(65535).default(DEFAULTS.port),
    /** JSON tokens file; without one, dev tokens are generated and printed once. */
    tokensFile: z.string().min(1).optional(),
    heartbeatMs: z.number().int().min(10).max(10 * 60_000).default(DEFAULTS.heartbeatMs),
    maxPayloadBytes: z.number().int().min(1024).max(BOUNDS.maxPayloadBytes).default(DEFAULTS.maxPayloadBytes),
    defaultTimeoutMs: z.number().int().positive().max(BOUNDS.maxTimeoutMs).default(DEFAULTS.defaultTimeoutMs),
    /** Jobs that may wait in one pool's queue. */
    maxQueue: z.number().int().min(0).max(1_000_000).default(DEFAULTS.maxQueue),
    shutdownGraceMs: z.number().int().min(0).max(10 * 60_000).default(DEFAULTS.shutdownGraceMs),
    /** Extra browser origins allowed to open the console socket. */
    consoleOrigin: z.array(z.string()).default([]),
    logLevel: z.enum(LOG_LEVELS).default('info'),
    /** Comma-separated NATS URLs: with them the server is one node of a cluster (server/cluster/). */
    nats: z.string().min(1).optional(),
    /** This node's id in the cluster; default: host name plus a short random suffix. */
    nodeId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$').optional(),
    /** Highest `concurrency` a worker may claim (400 above it). */
    maxWorkerConcurrency: z.number().int().min(1).max(BOUNDS.maxConcurrency).default(DEFAULTS.maxWorkerConcurrency),
    /** Open HTTP connections (worker sockets included); default: the open-file limit less a reserve (server/connection-limits.ts). */
    maxConnections: z.number().int().min(1).optional(),
    /** Time a client gets to send a request's headers. */
    headersTimeoutMs: z.number().int().min(1).max(10 * 60_000).default(DEFAULTS.headersTimeoutMs),
    /** Time a client gets to send a whole request, body included. */
    requestTimeoutMs: z.number().int().min(1).max(60 * 60_000).default(DEFAULTS.requestTimeoutMs),
    /** Proxies (IPs or CIDRs) whose X-Forwarded-For names the client. */
    trustProxy: z.array(z.string().refine((v) => parseCidr(v) !== null, 'must be an IP address or CIDR')).default([]),
    /** Extra header names the console masks. */
    consoleMaskHeader: z.array(z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'must be a header name')).default([]),
  })
  .refine((c) => c.headersTimeoutMs <= c.requestTimeoutMs, { message: 'must not be above --request-timeout-ms', path: ['headersTimeoutMs'] });

/** Options as a caller gives them (everything optional). */
export type ServerOptions = z.input<typeof serverConfigSchema>;
/** Options after validation, every default filled in. */
export type ServerConfig = z.output<typeof serverConfigSchema>;

/** Validates options; throws a ZodError naming the bad field. */
export function parseServerConfig(options: ServerOptions): ServerConfig {
  return serverConfigSchema.parse(options);
}
