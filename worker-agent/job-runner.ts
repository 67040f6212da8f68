/**
 * Performs one job: a single HTTP request to a target over the agent's undici pool,
 * with redirects not followed, the size limit applied while streaming, the egress
 * policy, and a byte-exact body encoding. A {@link TargetJob} is undici's dispatch
 * handler itself (raw headers, no stream, no Promise), holds the job's one timer, and
 * reports to its listener exactly once.
 */
import type { Dispatcher } from 'undici';
import { describeIssue } from '../shared/codec.ts';
import type { AgentErrorCode } from '../shared/errors.ts';
import { httpRequestSchema, type AgentError, type Headers, type HttpRequest, type HttpResponse } from '../shared/protocol.ts';
import type { Allowlist } from './allowlist.ts';
import { targetHostOf } from './allowlist.ts';
import { checkAddresses, EgressForbiddenError } from './egress.ts';
import { prepareHeaders, refuseHostHeader } from './request-headers.ts';
import type { TargetPool } from './target-pool.ts';

/** How long after the job's `timeoutMs` the agent gives up on its own (the server's deadline decides first). */
export const TIMEOUT_GRACE_MS = 1000;

/** Response headers past this many entries fail with `response_too_large` (contract: at most 256). */
export const MAX_RESPONSE_HEADERS = 256;

/** Longest error message the protocol admits. */
const MAX_MESSAGE = 4096;

/** What a job ends with: the target's response or an agent error. */
export type JobOutcome = { response: HttpResponse } | { error: AgentError };

/** What every job of one agent shares. */
export interface JobContext {
  /** Bodies over this many bytes fail with `response_too_large`. */
  maxResponseBytes: number;
  allow: Allowlist;
  targets: TargetPool;
  /** Defaults to {@link TIMEOUT_GRACE_MS}; tests shorten it. */
  timeoutGraceMs?: number;
}

/** Told once when a job ends (not when it is cancelled: the canceller answers). */
export interface JobListener {
  jobEnded(job: TargetJob, outcome: JobOutcome): void;
}

function failure(code: AgentErrorCode, message: string): { error: AgentError } {
  return { error: { code, message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message } };
}

function describeNetError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  const cause = (error as { cause?: unknown }).cause;
  const message = cause instanceof Error && !error.message.includes(cause.message) ? `${error.message}: ${cause.message}` : error.message;
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

const TEXT_SUBTYPES = new Set(['json', 'xml', 'javascript', 'x-javascript', 'ecmascript', 'x-www-form-urlencoded', 'ndjson', 'x-ndjson']);

// A target answers with the same content type again and again: remember the last answer.
let lastContentType: string | undefined;
let lastIsText = true;

/** True for content types whose bodies are text: text/*, JSON, XML, JavaScript, forms. */
export function isTextualContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  if (contentType === lastContentType) return lastIsText;
  const [type = '', subtype = ''] = contentType.split(';')[0].trim().toLowerCase().split('/');
  lastIsText = type === 'text' || subtype.endsWith('+json') || subtype.endsWith('+xml') || TEXT_SUBTYPES.has(subtype);
  lastContentType = contentType;
  return lastIsText;
}

// fatal: invalid UTF-8 must fail, not become U+FFFD; ignoreBOM: keep a BOM so bytes round-trip.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** utf8 when the bytes are valid UTF-8 and the content type is textual (or absent), else base64. */
export function encodeBody(bytes: Buffer, contentType: string | undefined): Pick<HttpResponse, 'body' | 'bodyEncoding'> {
  if (isTextualContentType(contentType)) {
    try {
      return { body: utf8Decoder.decode(bytes), bodyEncoding: 'utf8' };
    } catch {
      // not UTF-8: fall through to base64
    }
  }
  return { body: bytes.toString('base64'), bodyEncoding: 'base64' };
}

/** Raw `[name, value, …]` buffers to protocol headers: names lower-cased, repeated ones as string[]. */
function responseHeaders(raw: Buffer[]): Headers {
  const out: Headers = {};
  for (let i = 0; i < raw.length; i += 2) {
    // latin1, as node:http reads header values.
    const name = raw[i].toString('latin1').toLowerCase();
    const value = raw[i + 1].toString('latin1');
    const seen = out[name];
    if (seen === undefined) out[name] = value;
    else if (Array.isArray(seen)) seen.push(value);
    else out[name] = [seen, value];
  }
  return out;
}

/** Reason of an abort we started: carried to undici, which hands it back to onError (ignored then). */
class JobAborted extends Error {}

function outcomeOfError(error: unknown, timeoutMs: number): { error: AgentError } {
  if (error instanceof EgressForbiddenError) return failure('target_forbidden', error.message);
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return failure('target_timeout', `no complete response within ${timeoutMs} ms`);
    case 'UND_ERR_HEADERS_OVERFLOW':
      return failure('response_too_large', 'the response headers are over 16 KiB');
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
      return failure('invalid_job', describeNetError(error));
    default:
      return failure('target_unreachable', describeNetError(error));
  }
}

/**
 * One job in flight. `start()` it once; it ends by itself (listener told) or by
 * `cancel()` (listener not told). Every path clears the timer and, unless the response
 * was read to its end (the socket then returns to the pool), aborts the request so the
 * target sees its connection closed.
 */
export class TargetJob<Tag = unknown> implements Dispatcher.DispatchHandler {
  /** The caller's data (the agent keeps the job id and its socket here). */
  readonly tag: Tag;
  readonly #request: HttpRequest;
  readonly #timeoutMs: number;
  readonly #context: JobContext;
  readonly #listener: JobListener;
  #settled = false;
  /** Set by callers that validated the request already (the agent's frame decode). */
  #validated = false;
  /** The job's one timer; cleared when it settles. */
  #timer: NodeJS.Timeout | undefined;
  /** undici's abort for this request; null until the request is on a connection. */
  #abort: ((reason?: Error) => void) | null = null;
  #status = 0;
  #rawHeaders: Buffer[] | null = null;
  #chunks: Buffer[] = [];
  #received = 0;

  constructor(request: HttpRequest, timeoutMs: number, context: JobContext, listener: JobListener, tag: Tag) {
    this.#request = request;
    this.#timeoutMs = timeoutMs;
    this.#context = context;
    this.#listener = listener;
    this.tag = tag;
  }

  /** True once the job has ended or was cancelled. */
  get settled(): boolean {
    return this.#settled;
  }

  /** Validates the request, applies the allowlist and host rules, and sends it. */
  start(): void {
    const request = this.#request;
    // Frames are validated on arrival; checking again keeps a TargetJob safe on its own.
    if (!this.#validated) {
      const valid = httpRequestSchema.safeParse(request);
      if (!valid.success) return this.#end(failure('invalid_job', describeIssue(valid.error)));
    }
    const method = request.method.toUpperCase();
    // CONNECT hands over a raw socket, which a request/response job cannot carry.
    if (method === 'CONNECT') return this.#end(failure('invalid_job', 'method CONNECT is not supported'));
    const url = new URL(request.url);
    const { allow } = this.#context;
    if (!allow.isAllowed(url)) return this.#end(failure('target_forbidden', `host ${url.host} is not in the agent's --allow-host list`));
    // IP literals are refused here, before a pool exists for them; names are checked by the connector.
    const target = targetHostOf(url);
    if (target && target.ipVersion !== 0) {
      const refusal = checkAddresses(target.host, target.port, [{ address: target.host, version: target.ipVersion }], allow);
      if (refusal) return this.#end(failure('target_forbidden', refusal.message));
    }
    const headers = prepareHeaders(request.headers, url);
    if (typeof headers === 'string') return this.#end(failure('invalid_job', headers));

    this.#timer = setTimeout(() => this.#onDeadline(), this.#timeoutMs + (this.#context.timeoutGraceMs ?? TIMEOUT_GRACE_MS));
    if (headers.host === null) return this.#dispatch(method, url, headers.list);
    const host = headers.host;
    headers.list.push('host', host);
    refuseHostHeader(host, url, allow, this.#context.targets.lookup).then(
      (refusal) => {
        if (this.#settled) return;
        if (refusal) return this.#end(failure('target_forbidden', refusal));
        this.#dispatch(method, url, headers.list);
      },
      (error: unknown) => this.#end(failure('target_unreachable', describeNetError(error))),
    );
  }

  /** Skips the schema check in `start()`: the caller validated this request. */
  trustValidated(): this {
    this.#validated = true;
    return this;
  }

  /** Abandons the job without telling the listener; the target sees its connection closed. */
  cancel(): void {
    if (this.#settled) return;
    this.#settle();
  }

  #dispatch(method: string, url: URL, headers: string[]): void {
    const request = this.#request;
    const deadlineMs = this.#timeoutMs + (this.#context.timeoutGraceMs ?? TIMEOUT_GRACE_MS);
    const body = request.body === undefined ? null : Buffer.from(request.body, request.bodyEncoding ?? 'utf8');
    this.#context.targets.dispatcher.dispatch(
      {
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method,
        headers,
        // A Buffer: undici frames it with content-length, never chunked.
        body,
        // The job's deadline governs, not undici's 300 s defaults.
        headersTimeout: deadlineMs,
        bodyTimeout: deadlineMs,
        // Requests are not assumed idempotent: never retried.
        idempotent: false,
      },
      this,
    );
  }

  // ---- undici's dispatch handler ----

  onConnect(abort: (reason?: Error) => void): void {
    // Cancelled while waiting for a connection: stop before a byte is sent.
    if (this.#settled) return abort(new JobAborted('cancelled'));
    this.#abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    if (this.#settled) return false;
    // 1xx informational answers come before the real one.
    if (statusCode < 200) return true;
    if (rawHeaders.length / 2 > MAX_RESPONSE_HEADERS) {
      this.#end(failure('response_too_large', `the response has ${rawHeaders.length / 2} headers, over the limit of ${MAX_RESPONSE_HEADERS}`));
      return false;
    }
    const max = this.#context.maxResponseBytes;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if (rawHeaders[i].length === 14 && rawHeaders[i].toString('latin1').toLowerCase() === 'content-length') {
        const declared = Number(rawHeaders[i + 1].toString('latin1'));
        // Refused from the headers alone: not a byte of the body is read.
        if (declared > max) {
          this.#end(failure('response_too_large', `the response declares ${declared} bytes, over the limit of ${max}`));
          return false;
        }
      }
    }
    this.#status = statusCode;
    this.#rawHeaders = rawHeaders;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#settled) return false;
    this.#received += chunk.length;
    if (this.#received > this.#context.maxResponseBytes) {
      this.#end(failure('response_too_large', `the response is over the limit of ${this.#context.maxResponseBytes} bytes`));
      return false;
    }
    this.#chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    if (this.#settled) return;
    // The request is complete: nothing to abort, the socket goes back to the pool.
    this.#abort = null;
    const raw = this.#rawHeaders ?? [];
    const headers = responseHeaders(raw);
    const contentType = headers['content-type'];
    const body = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#received);
    this.#end({
      response: {
        status: this.#status,
        headers,
        ...encodeBody(body, Array.isArray(contentType) ? contentType[0] : contentType),
      },
    });
  }

  onError(error: Error): void {
    this.#abort = null; // undici already ended the request
    if (this.#settled || error instanceof JobAborted) return;
    this.#end(outcomeOfError(error, this.#timeoutMs));
  }

  onUpgrade(): void {
    this.#end(failure('invalid_job', 'the target switched protocols; upgrades are not supported'));
  }

  // ---- endings ----

  #onDeadline(): void {
    this.#timer = undefined;
    this.#end(failure('target_timeout', `no complete response within ${this.#timeoutMs} ms`));
  }

  #end(outcome: JobOutcome): void {
    if (this.#settled) return;
    this.#settle();
    this.#listener.jobEnded(this, outcome);
  }

  #settle(): void {
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#chunks = [];
    const abort = this.#abort;
    this.#abort = null;
    // Never leave a request half-done on a pooled socket: undici destroys that socket.
    abort?.(new JobAborted('the job ended'));
  }
}

/** Options of {@link runJob}. */
export interface RunJobOptions extends JobContext {
  /** Aborting it abandons the job with `cancelled`. */
  signal?: AbortSignal;
  /** The job's timeout from the server; the agent stops `timeoutGraceMs` later. */
  timeoutMs: number;
}

/**
 * Runs one request and never rejects: a Promise over {@link TargetJob} for callers that
 * want one (tests, tools). The agent drives TargetJob directly.
 */
export function runJob(request: HttpRequest, options: RunJobOptions): Promise<JobOutcome> {
  return new Promise<JobOutcome>((resolve) => {
    const { signal } = options;
    if (signal?.aborted) return resolve(failure('cancelled', 'the job was cancelled before it started'));
    const onAbort = (): void => {
      job.cancel();
      resolve(failure('cancelled', 'the job was cancelled'));
    };
    const job = new TargetJob(request, options.timeoutMs, options, {
      jobEnded(_job, outcome) {
        signal?.removeEventListener('abort', onAbort);
        resolve(outcome);
      },
    }, null);
    signal?.addEventListener('abort', onAbort, { once: true });
    job.start();
    if (job.settled) signal?.removeEventListener('abort', onAbort);
  });
}
