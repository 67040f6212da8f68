/**
 * A small typed client for CI code: dispatch one job to a pool and list workers.
 * Uses node:http(s); every answer is validated with the shared schemas.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { decodeJson } from '../shared/codec.ts';
import type { ErrorCode } from '../shared/errors.ts';
import {
  dispatchSuccessSchema,
  errorBodySchema,
  workerListSchema,
  type DispatchRequest,
  type DispatchSuccess,
  type WorkerInfo,
} from '../shared/protocol.ts';

/**
 * Codes a client call can fail with: any code of the registry (the server's answer),
 * `network_error` (no HTTP answer: refused, reset, DNS…) or `bad_response` (an answer
 * that is not a flowtest body, e.g. a proxy's HTML error page).
 */
export type DispatchErrorCode = ErrorCode | 'network_error' | 'bad_response';

/** A failed client call. `status` is the HTTP status of the answer, 0 when there was none. */
export class DispatchError extends Error {
  readonly code: DispatchErrorCode;
  readonly status: number;
  constructor(code: DispatchErrorCode, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DispatchError';
    this.code = code;
    this.status = status;
  }
}

/** Where and as whom to call. `server` is the server's base URL (http(s)://, or ws(s):// which is mapped). */
export interface ClientTarget {
  server: string;
  token?: string;
  signal?: AbortSignal;
}

export interface DispatchOptions extends ClientTarget {
  suite: string;
  body: DispatchRequest;
}

export interface ListWorkersOptions extends ClientTarget {
  /** Without it, lists every suite's workers (admin token needed). */
  suite?: string;
}

/**
 * Sends one job: `POST /v1/suites/{suite}/dispatch`. Resolves with the target's response
 * for any target status; rejects with a {@link DispatchError} when the dispatch failed.
 * Aborting `signal` drops the HTTP connection (the server then cancels the job) and rejects
 * with `signal.reason`, as fetch does.
 */
export async function dispatch(options: DispatchOptions): Promise<DispatchSuccess> {
  const url = endpoint(options.server, `v1/suites/${encodeURIComponent(options.suite)}/dispatch`);
  const { status, text } = await call(url, options, { method: 'POST', body: JSON.stringify(options.body) });
  if (status === 200) {
    const decoded = decodeJson(dispatchSuccessSchema, text);
    if (decoded.ok) return decoded.value;
    throw new DispatchError('bad_response', status, `HTTP 200 is not a dispatch result: ${decoded.reason}`);
  }
  throw errorFromAnswer(status, text);
}

/**
 * Lists workers: `GET /v1/suites/{suite}/workers`, or `GET /v1/workers` (every suite) when
 * no suite is given. Rejects like {@link dispatch}.
 */
export async function listWorkers(options: ListWorkersOptions): Promise<WorkerInfo[]> {
  const path = options.suite === undefined ? 'v1/workers' : `v1/suites/${encodeURIComponent(options.suite)}/workers`;
  const { status, text } = await call(endpoint(options.server, path), options, { method: 'GET' });
  if (status === 200) {
    const decoded = decodeJson(workerListSchema, text);
    if (decoded.ok) return decoded.value.workers;
    throw new DispatchError('bad_response', status, `HTTP 200 is not a worker list: ${decoded.reason}`);
  }
  throw errorFromAnswer(status, text);
}

/**
 * Resolves `path` under the server's base URL, keeping a path prefix (a server behind
 * `https://ci.example/flowtest/` is reached at `…/flowtest/v1/…`). ws(s) maps to http(s),
 * so one `FLOWTEST_SERVER` serves both the agent and the client.
 */
export function endpoint(server: string, path: string): URL {
  let base: URL;
  try {
    base = new URL(server);
  } catch {
    throw new DispatchError('network_error', 0, `server is not a URL: ${server}`);
  }
  if (base.protocol === 'ws:') base.protocol = 'http:';
  else if (base.protocol === 'wss:') base.protocol = 'https:';
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new DispatchError('network_error', 0, `server must be an http:// or https:// URL, got ${base.protocol}`);
  }
  base.search = '';
  base.hash = '';
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return new URL(path, base);
}

/**
 * One request with node:http(s) rather than fetch: Node's fetch gives up waiting for
 * response headers after 300 s, and a dispatch may legitimately wait up to its
 * timeoutMs (10 minutes at most; the server counts waitForWorkerMs within it, from the
 * moment it accepted the job), plus the time to send the body. No client-side deadline
 * here: the server's deadline decides, and aborting `signal` drops the connection
 * (which cancels the job).
 */
function call(
  url: URL,
  target: ClientTarget,
  init: { method: 'GET' | 'POST'; body?: string },
): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (init.body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(init.body));
  }
  if (target.token !== undefined) headers.authorization = `Bearer ${target.token}`;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const fail = (err: unknown) => {
      if (target.signal?.aborted) reject(target.signal.reason);
      else reject(new DispatchError('network_error', 0, `${init.method} ${url.origin}${url.pathname}: ${describeCause(err)}`, { cause: err }));
    };
    const req = send(url, { method: init.method, headers, signal: target.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end(init.body);
  });
}

function errorFromAnswer(status: number, text: string): DispatchError {
  const decoded = decodeJson(errorBodySchema, text);
  if (decoded.ok) return new DispatchError(decoded.value.error.code, status, decoded.value.error.message);
  const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 120);
  return new DispatchError('bad_response', status, `HTTP ${status} is not a flowtest error body${snippet ? `: ${snippet}` : ''}`);
}

/** A transport error with its errno code in front (ECONNREFUSED …) when the message lacks it. */
function describeCause(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  return code && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
}
