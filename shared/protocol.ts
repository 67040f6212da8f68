/**
 * The wire protocol in one place: zod schemas for every socket frame and for the
 * HTTP bodies of the dispatch API, and the types inferred from them.
 */
import { z } from 'zod';
import { AGENT_ERROR_CODES, ERROR_CODES, type ErrorCode } from './errors.ts';
import { BOUNDS, NAME_PATTERN } from './limits.ts';

export const nameSchema = z.string().regex(NAME_PATTERN, 'must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');
export const idSchema = z.string().min(1).max(64);

// RFC 9110 token for header names and methods; values must not smuggle CR, LF or NUL.
/** An HTTP token (a method or a header name). */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
export const MAX_HEADER_VALUE_CHARS = 64 * 1024;
export const MAX_URL_CHARS = 16 * 1024;
const headerValue = z.string().max(MAX_HEADER_VALUE_CHARS).regex(/^[^\r\n\0]*$/, 'must not contain CR, LF or NUL');
export const headersSchema = z.record(
  z.string().regex(TOKEN, 'header name must be an HTTP token'),
  z.union([headerValue, z.array(headerValue)]),
);

/** Header lines in a map: each value of an array counts, as each goes on the wire as its own line. */
export function headerLineCount(headers: object): number {
  let n = 0;
  for (const key in headers) {
    if (!Object.hasOwn(headers, key)) continue;
    const v = (headers as Record<string, unknown>)[key];
    n += Array.isArray(v) ? v.length : 1;
  }
  return n;
}

/**
 * A request's headers: at most BOUNDS.maxRequestHeaders lines, counted before the names
 * and values are checked one by one, so a huge map is refused at the cost of a count.
 */
export const requestHeadersSchema = z
  .custom<Record<string, unknown>>((v) => typeof v !== 'object' || v === null || headerLineCount(v) <= BOUNDS.maxRequestHeaders, {
    message: `at most ${BOUNDS.maxRequestHeaders} header lines`,
  })
  .pipe(headersSchema);

export const bodyEncodingSchema = z.enum(['utf8', 'base64']);

export const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** One parse per URL: this runs on every dispatch and every job. */
export function isHttpUrl(u: string): boolean {
  try {
    const { protocol } = new URL(u);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

/** The request an agent performs. */
export const httpRequestSchema = z
  .strictObject({
    method: z.string().max(32).regex(TOKEN, 'must be an HTTP method token'),
    url: z.string().max(MAX_URL_CHARS).refine(isHttpUrl, 'must be an absolute http:// or https:// URL'),
    headers: requestHeadersSchema.optional(),
    body: z.string().optional(),
    bodyEncoding: bodyEncodingSchema.optional(),
  })
  .refine((r) => r.bodyEncoding !== 'base64' || r.body === undefined || (r.body.length % 4 === 0 && BASE64.test(r.body)), {
    message: 'must be valid base64 when bodyEncoding is base64',
    path: ['body'],
  });

/** The target's response as the agent returns it. */
export const httpResponseSchema = z.strictObject({
  status: z.number().int().min(100).max(999),
  headers: headersSchema,
  body: z.string(),
  bodyEncoding: bodyEncodingSchema,
});

export const agentErrorSchema = z.strictObject({
  code: z.enum(AGENT_ERROR_CODES),
  message: z.string().max(4096),
});

// ---- frames, server → agent ----
export const welcomeFrame = z.strictObject({
  type: z.literal('welcome'),
  workerId: idSchema,
  heartbeatMs: z.number().int().positive(),
  maxPayloadBytes: z.number().int().positive(),
});
export const jobFrame = z.strictObject({
  type: z.literal('job'),
  id: idSchema,
  timeoutMs: z.number().int().positive(),
  request: httpRequestSchema,
});
export const cancelFrame = z.strictObject({
  type: z.literal('cancel'),
  id: idSchema,
  reason: z.string().max(200),
});
export const serverFrameSchema = z.discriminatedUnion('type', [welcomeFrame, jobFrame, cancelFrame]);

// ---- frames, agent → server ----
export const resultFrame = z
  .strictObject({
    type: z.literal('result'),
    id: idSchema,
    response: httpResponseSchema.optional(),
    error: agentErrorSchema.optional(),
  })
  .refine((f) => (f.response === undefined) !== (f.error === undefined), 'a result has either response or error');
export const drainFrame = z.strictObject({ type: z.literal('drain') });
export const agentFrameSchema = z.discriminatedUnion('type', [resultFrame, drainFrame]);

// ---- HTTP bodies ----
export const dispatchRequestSchema = z.strictObject({
  pool: nameSchema,
  workerId: idSchema.optional(),
  timeoutMs: z.number().int().positive().max(BOUNDS.maxTimeoutMs).optional(),
  waitForWorkerMs: z.number().int().min(0).max(BOUNDS.maxWaitForWorkerMs).optional(),
  request: httpRequestSchema,
});

export const dispatchSuccessSchema = z.strictObject({
  id: idSchema,
  workerId: idSchema,
  durationMs: z.number().nonnegative(),
  response: httpResponseSchema,
});

const errorCodeSchema = z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]);
export const errorBodySchema = z.strictObject({
  error: z.strictObject({ code: errorCodeSchema, message: z.string() }),
});

export const workerInfoSchema = z.object({
  id: idSchema,
  suite: nameSchema,
  name: nameSchema,
  state: z.enum(['ready', 'draining']),
  concurrency: z.number().int().positive(),
  inFlight: z.number().int().nonnegative(),
  connectedAt: z.string(),
  lastPongAt: z.string().nullable(),
  rttMs: z.number().nullable(),
  agentVersion: z.string().nullable(),
  remoteAddress: z.string().nullable(),
  node: z.string().optional(),
});
export const workerListSchema = z.object({ workers: z.array(workerInfoSchema) });

const required = { error: (issue: { input: unknown }) => (issue.input === undefined ? 'required' : undefined) };

/** Query of the worker socket handshake; unknown parameters are ignored (room for later agents). */
export const connectQuerySchema = z.object({
  suite: z.string(required).pipe(nameSchema),
  name: z.string(required).pipe(nameSchema),
  concurrency: z
    .string(required)
    .regex(/^[1-9][0-9]{0,5}$/, 'must be a positive integer')
    .transform(Number)
    .pipe(z.number().max(BOUNDS.maxConcurrency)),
});

export type HttpRequest = z.infer<typeof httpRequestSchema>;
export type HttpResponse = z.infer<typeof httpResponseSchema>;
export type Headers = z.infer<typeof headersSchema>;
export type AgentError = z.infer<typeof agentErrorSchema>;
export type WelcomeFrame = z.infer<typeof welcomeFrame>;
export type JobFrame = z.infer<typeof jobFrame>;
export type CancelFrame = z.infer<typeof cancelFrame>;
export type ServerFrame = z.infer<typeof serverFrameSchema>;
export type ResultFrame = z.infer<typeof resultFrame>;
export type AgentFrame = z.infer<typeof agentFrameSchema>;
export type DispatchRequest = z.infer<typeof dispatchRequestSchema>;
export type DispatchSuccess = z.infer<typeof dispatchSuccessSchema>;
export type ErrorBody = z.infer<typeof errorBodySchema>;
export type WorkerInfo = z.infer<typeof workerInfoSchema>;
