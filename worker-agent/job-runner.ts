/**
 * Performs one job: a single HTTP request to a target under an AbortSignal, with a
 * backstop timeout, a response size limit and a byte-exact body encoding.
 * Uses node:http/node:https rather than fetch: fetch folds repeated headers into one
 * comma-joined value both ways, and the protocol carries them as string[].
 */
import http from 'node:http';
import https from 'node:https';
import { describeIssue } from '../shared/codec.ts';
import type { AgentErrorCode } from '../shared/errors.ts';
import { httpRequestSchema, type AgentError, type Headers, type HttpRequest, type HttpResponse } from '../shared/protocol.ts';
import type { Allowlist } from './allowlist.ts';

/** How long after the job's `timeoutMs` the agent gives up on its own (the server's deadline decides first). */
export const TIMEOUT_GRACE_MS = 1000;

/** Longest error message the protocol admits. */
const MAX_MESSAGE = 4096;

/** What a job ends with: the target's response or an agent error. */
export type JobOutcome = { response: HttpResponse } | { error: AgentError };

/** The keep-alive connection pools to targets, one per scheme; owned by the agent. */
export interface TargetAgents {
  readonly http: http.Agent;
  readonly https: https.Agent;
  /** Closes every pooled socket; call once when the agent stops. */
  destroy(): void;
}

/** Keep-alive agents with at most `maxSockets` sockets per target origin (= the agent's concurrency). */
export function createTargetAgents(maxSockets: number): TargetAgents {
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets });
  const httpsAgent = new https.Agent({ keepAlive: true, maxSockets });
  return {
    http: httpAgent,
    https: httpsAgent,
    destroy() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}

/** Options of {@link runJob}. */
export interface RunJobOptions {
  /** Aborting it abandons the job with `cancelled` (server `cancel`, drain grace over). */
  signal: AbortSignal;
  /** The job's timeout from the server; the agent stops `timeoutGraceMs` later. */
  timeoutMs: number;
  /** Bodies over this many bytes fail with `response_too_large`. */
  maxResponseBytes: number;
  allow: Allowlist;
  agents: TargetAgents;
  /** Defaults to {@link TIMEOUT_GRACE_MS}; tests shorten it. */
  timeoutGraceMs?: number;
}

function failure(code: AgentErrorCode, message: string): { error: AgentError } {
  return { error: { code, message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message } };
}

function describeNetError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  return code && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
}

/** Lower-cases names and merges names that differ only by case, so repeated headers stay repeated. */
function outgoingHeaders(headers: Headers | undefined): Record<string, string | string[]> {
  const merged: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const key = name.toLowerCase();
    (merged[key] ??= []).push(...(Array.isArray(value) ? value : [value]));
  }
  const out: Record<string, string | string[]> = {};
  for (const [key, values] of Object.entries(merged)) {
    if (values.length > 0) out[key] = values.length === 1 ? values[0] : values;
  }
  return out;
}

/** Repeated response headers become string[], single ones stay a string. */
function incomingHeaders(res: http.IncomingMessage): Headers {
  const out: Headers = {};
  for (const [name, values] of Object.entries(res.headersDistinct)) {
    if (values) out[name] = values.length === 1 ? values[0] : [...values];
  }
  return out;
}

const TEXT_SUBTYPES = new Set(['json', 'xml', 'javascript', 'x-javascript', 'ecmascript', 'x-www-form-urlencoded', 'ndjson', 'x-ndjson']);

/** True for content types whose bodies are text: text/*, JSON, XML, JavaScript, forms. */
export function isTextualContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const [type = '', subtype = ''] = contentType.split(';')[0].trim().toLowerCase().split('/');
  return type === 'text' || subtype.endsWith('+json') || subtype.endsWith('+xml') || TEXT_SUBTYPES.has(subtype);
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

/**
 * Runs one request and never throws. Redirects are not followed. On every path the
 * timer and abort listener are removed and, unless the response was read to its end
 * (its socket then returns to the keep-alive pool), the request and response are destroyed.
 */
export function runJob(request: HttpRequest, options: RunJobOptions): Promise<JobOutcome> {
  return new Promise<JobOutcome>((resolve) => {
    if (options.signal.aborted) return resolve(failure('cancelled', 'the job was cancelled before it started'));

    // Frames are validated on arrival; checking again keeps runJob safe to call on its own.
    const valid = httpRequestSchema.safeParse(request);
    if (!valid.success) return resolve(failure('invalid_job', describeIssue(valid.error)));
    const method = request.method.toUpperCase();
    // CONNECT and upgrades hand over a raw socket, which a request/response job cannot carry.
    if (method === 'CONNECT') return resolve(failure('invalid_job', 'method CONNECT is not supported'));
    const url = new URL(request.url);
    if (!options.allow.isAllowed(url)) {
      return resolve(failure('target_forbidden', `host ${url.host} is not in the agent's --allow-host list`));
    }

    const headers = outgoingHeaders(request.headers);
    // The body we hold decides the length: a stale content-length would hang or desync the target.
    delete headers['content-length'];
    const body = request.body === undefined ? undefined : Buffer.from(request.body, request.bodyEncoding ?? 'utf8');
    if (body !== undefined && headers['transfer-encoding'] === undefined) headers['content-length'] = String(body.length);

    let req: http.ClientRequest | undefined;
    let res: http.IncomingMessage | undefined;
    let settled = false;
    const graceMs = options.timeoutGraceMs ?? TIMEOUT_GRACE_MS;

    const finish = (outcome: JobOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal.removeEventListener('abort', onAbort);
      if ('error' in outcome) {
        // Never leave a socket half-read: the target sees its connection closed.
        res?.destroy();
        req?.destroy();
      }
      resolve(outcome);
    };
    const onAbort = (): void => finish(failure('cancelled', 'the job was cancelled'));
    // Owned by this call; cleared in finish().
    const timer = setTimeout(
      () => finish(failure('target_timeout', `no complete response within ${options.timeoutMs} ms`)),
      options.timeoutMs + graceMs,
    );
    options.signal.addEventListener('abort', onAbort, { once: true });

    try {
      const transport = url.protocol === 'https:' ? https : http;
      const agent = url.protocol === 'https:' ? options.agents.https : options.agents.http;
      req = transport.request(url, { method, headers, agent });
    } catch (error) {
      // Node validates the method and header values synchronously.
      return finish(failure('invalid_job', describeNetError(error)));
    }

    req.on('error', (error) => finish(failure('target_unreachable', describeNetError(error))));
    req.on('close', () => {
      if (!res) finish(failure('target_unreachable', 'the connection closed before a response arrived'));
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      finish(failure('invalid_job', 'the target switched protocols; upgrades are not supported'));
    });
    req.on('response', (response) => {
      res = response;
      const declared = Number(response.headers['content-length']);
      if (declared > options.maxResponseBytes) {
        return finish(failure('response_too_large', `the response declares ${declared} bytes, over the limit of ${options.maxResponseBytes}`));
      }
      const chunks: Buffer[] = [];
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > options.maxResponseBytes) {
          finish(failure('response_too_large', `the response is over the limit of ${options.maxResponseBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('error', (error) => finish(failure('target_unreachable', describeNetError(error))));
      response.on('close', () => {
        if (!response.complete) finish(failure('target_unreachable', 'the connection closed before the response ended'));
      });
      response.on('end', () => {
        const contentType = response.headers['content-type'];
        finish({
          response: {
            status: response.statusCode ?? 0,
            headers: incomingHeaders(response),
            ...encodeBody(Buffer.concat(chunks, received), contentType),
          },
        });
      });
    });
    req.end(body);
  });
}
