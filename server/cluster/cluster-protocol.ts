/**
 * What nodes say to each other over NATS: subjects and the zod schemas of every message.
 * Each message is validated when it arrives, like any other input at a boundary.
 */
import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../../shared/errors.ts';
import { bodyEncodingSchema, headersSchema, idSchema, nameSchema, workerInfoSchema } from '../../shared/protocol.ts';

/** A node id is one NATS subject token: no dots, spaces or wildcards. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const nodeIdSchema = z.string().regex(NODE_ID_PATTERN, 'must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$');

export const SUBJECTS = {
  /** Every node's periodic announcement and its clean leave. */
  announce: 'flowtest.cluster.announce',
  /** Request/reply: is this node id live? (no responders: free). */
  ping: (node: string) => `flowtest.cluster.node.${node}.ping`,
  /** One node's inbox: jobs, outcomes, cancels, hand-backs, listings (chunked frames). */
  inbox: (node: string) => `flowtest.cluster.node.${node}.in`,
  /** Worker up / draining / down, from the node holding the socket. */
  workers: 'flowtest.cluster.workers',
  /** The cluster's job feed for consoles. */
  feed: 'flowtest.cluster.feed',
} as const;

export const poolAnnounceSchema = z.strictObject({
  suite: nameSchema,
  pool: nameSchema,
  ready: z.number().int().min(0),
  freeSlots: z.number().int().min(0),
  queued: z.number().int().min(0),
});
export type PoolAnnounce = z.infer<typeof poolAnnounceSchema>;

export const announceSchema = z.strictObject({
  node: nodeIdSchema,
  nonce: z.string().min(1).max(64),
  /** `leaving`: shutting down cleanly (serving what it holds, taking nothing new); `gone`: its last word. */
  state: z.enum(['up', 'leaving', 'gone']),
  /** Workers it holds (a listing that counts otherwise is out of step and asks again). */
  workers: z.number().int().min(0),
  /** A console is open there: the others send it their job feed (nobody pays for a feed no one reads). */
  consoles: z.boolean(),
  pools: z.array(poolAnnounceSchema).max(100_000),
});
export type Announce = z.infer<typeof announceSchema>;

const errorCodeSchema = z.string().refine((c): c is ErrorCode => Object.hasOwn(ERROR_CODES, c), 'unknown error code') as unknown as z.ZodType<ErrorCode>;

/**
 * A job's request as it crosses nodes: checked for shape only. The arrival node validated it
 * in full at its HTTP boundary (URL, method token, base64 body); repeating the base64 and URL
 * checks costs ~100 ms on a 5 MiB body under load, for input that a node made.
 */
const forwardedRequestSchema = z.strictObject({
  method: z.string().min(1).max(32),
  url: z.string().min(1).max(16 * 1024),
  headers: headersSchema.optional(),
  body: z.string().optional(),
  bodyEncoding: bodyEncodingSchema.optional(),
});

/** A target's response as it crosses nodes: shape only (the holding node validated the agent's frame in full). */
const forwardedResponseSchema = z.strictObject({
  status: z.number().int().min(100).max(999),
  headers: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
  body: z.string(),
  bodyEncoding: bodyEncodingSchema,
});

const from = { from: nodeIdSchema, nonce: z.string().min(1).max(64) };

export const inboxMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('job'),
    ...from,
    id: idSchema,
    suite: nameSchema,
    pool: nameSchema,
    workerId: idSchema.optional(),
    timeoutMs: z.number().int().positive(),
    waitForWorkerMs: z.number().int().min(0),
    request: forwardedRequestSchema,
  }),
  z.strictObject({
    type: z.literal('outcome'),
    ...from,
    id: idSchema,
    workerId: z.string().nullable(),
    response: forwardedResponseSchema.optional(),
    error: z.strictObject({ code: errorCodeSchema, message: z.string().max(8192) }).optional(),
  }),
  /** A queued job the holder gives back: it was never held by a worker, so routing it again is not a retry. */
  z.strictObject({ type: z.literal('handback'), ...from, id: idSchema, reason: z.string().max(500) }),
  z.strictObject({ type: z.literal('cancel'), ...from, id: idSchema, reason: z.string().max(200) }),
  z.strictObject({ type: z.literal('list'), ...from, reqId: z.string().min(1).max(64), suite: nameSchema.optional() }),
  z.strictObject({ type: z.literal('listed'), ...from, reqId: z.string().min(1).max(64), workers: z.array(workerInfoSchema) }),
]);
export type InboxMessage = z.infer<typeof inboxMessageSchema>;
/** A message as sent: the bus adds `from` and `nonce`. */
export type OutboundMessage = InboxMessage extends infer M ? (M extends unknown ? Omit<M, 'from' | 'nonce'> : never) : never;

/** One ended job for the consoles of the other nodes: headers as sent, bodies cut to a preview. */
export const feedEntrySchema = z.strictObject({
  node: nodeIdSchema,
  job: z.strictObject({
    id: idSchema,
    suite: nameSchema,
    pool: nameSchema,
    workerId: z.string().nullable(),
    acceptedAt: z.number(),
    durationMs: z.number(),
    outcome: z.union([z.literal('ok'), errorCodeSchema]),
    request: forwardedRequestSchema,
    response: z.strictObject({ status: z.number().int(), headers: headersSchema, body: z.string(), bodyEncoding: bodyEncodingSchema }).nullable(),
    error: z.strictObject({ code: errorCodeSchema, message: z.string().max(8192) }).nullable(),
  }),
});
export type FeedEntry = z.infer<typeof feedEntrySchema>;

export const workerEventSchema = z.strictObject({
  node: nodeIdSchema,
  nonce: z.string().min(1).max(64),
  kind: z.enum(['up', 'draining', 'down']),
  workerId: idSchema,
  /** For up and draining. */
  worker: workerInfoSchema.optional(),
});
export type WorkerEvent = z.infer<typeof workerEventSchema>;
