/**
 * Hand-written checks for the inputs decoded once per job — the dispatch body, the job
 * frame and the agent's result frame — that accept exactly what their zod schemas in
 * protocol.ts accept and return exactly what zod would (new objects, keys in the
 * schema's order). They answer "valid, here is the value" or "not sure": on the second
 * the caller runs the zod schema, which then has the last word and the error message.
 * zod stays the definition; these are its compiled hot path, held equal to it by a
 * property test (test/shared/hot-frames.test.ts).
 */
import { AGENT_ERROR_CODES } from './errors.ts';
import { BOUNDS, NAME_PATTERN } from './limits.ts';
import { BASE64, isHttpUrl, MAX_HEADER_VALUE_CHARS as MAX_HEADER_VALUE, MAX_URL_CHARS as MAX_URL, TOKEN } from './protocol.ts';
import type { AgentError, DispatchRequest, Headers, HttpRequest, HttpResponse, JobFrame, ResultFrame } from './protocol.ts';

// The patterns of protocol.ts, repeated: a change there must be made here too (the property test says so).
const CRLF_NUL = /[\r\n\0]/;
const AGENT_CODES: ReadonlySet<string> = new Set(AGENT_ERROR_CODES);

type Plain = Record<string, unknown>;

/** A plain object as JSON.parse makes them; anything else is left to zod. */
function plain(v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

/** Whether every own key of `o` is one of `allowed` (strict objects). */
function onlyKeys(o: Plain, allowed: ReadonlySet<string>): boolean {
  for (const k in o) if (!allowed.has(k)) return false;
  return true;
}

function isId(v: unknown): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= 64;
}

/** z.number().int() (zod 4: a safe integer) within [min, max]. */
function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

function isHeaderValue(v: unknown): v is string {
  return typeof v === 'string' && v.length <= MAX_HEADER_VALUE && !CRLF_NUL.test(v);
}

/**
 * headersSchema: a copy, or undefined. A header named `__proto__` is left to zod (its
 * record drops it), as is a map of more than `maxLines` lines (requestHeadersSchema).
 */
function headers(v: unknown, maxLines: number): Headers | undefined {
  if (!plain(v)) return undefined;
  const out: Headers = {};
  let lines = 0;
  for (const name in v) {
    if (name === '__proto__' || !TOKEN.test(name)) return undefined;
    const value = v[name];
    if (typeof value === 'string') {
      if (!isHeaderValue(value)) return undefined;
      out[name] = value;
      lines += 1;
    } else if (Array.isArray(value)) {
      const copy: string[] = new Array(value.length);
      for (let i = 0; i < value.length; i++) {
        if (!isHeaderValue(value[i])) return undefined;
        copy[i] = value[i] as string;
      }
      out[name] = copy;
      lines += value.length;
    } else return undefined;
  }
  return lines <= maxLines ? out : undefined;
}

const REQUEST_KEYS: ReadonlySet<string> = new Set(['method', 'url', 'headers', 'body', 'bodyEncoding']);

/** httpRequestSchema. */
export function fastHttpRequest(v: unknown): HttpRequest | undefined {
  if (!plain(v) || !onlyKeys(v, REQUEST_KEYS)) return undefined;
  const { method, url, body, bodyEncoding } = v;
  if (typeof method !== 'string' || method.length > 32 || !TOKEN.test(method)) return undefined;
  if (typeof url !== 'string' || url.length > MAX_URL || !isHttpUrl(url)) return undefined;
  const out: HttpRequest = { method, url };
  if (v.headers !== undefined) {
    const h = headers(v.headers, BOUNDS.maxRequestHeaders);
    if (!h) return undefined;
    out.headers = h;
  }
  if (body !== undefined) {
    if (typeof body !== 'string') return undefined;
    out.body = body;
  }
  if (bodyEncoding !== undefined) {
    if (bodyEncoding !== 'utf8' && bodyEncoding !== 'base64') return undefined;
    out.bodyEncoding = bodyEncoding;
  }
  if (bodyEncoding === 'base64' && body !== undefined && ((body as string).length % 4 !== 0 || !BASE64.test(body as string))) return undefined;
  return out;
}

const DISPATCH_KEYS: ReadonlySet<string> = new Set(['pool', 'workerId', 'timeoutMs', 'waitForWorkerMs', 'request']);

/** dispatchRequestSchema. */
export function fastDispatchRequest(v: unknown): DispatchRequest | undefined {
  if (!plain(v) || !onlyKeys(v, DISPATCH_KEYS)) return undefined;
  const { pool, workerId, timeoutMs, waitForWorkerMs } = v;
  if (typeof pool !== 'string' || !NAME_PATTERN.test(pool)) return undefined;
  if (workerId !== undefined && !isId(workerId)) return undefined;
  if (timeoutMs !== undefined && !isInt(timeoutMs, 1, BOUNDS.maxTimeoutMs)) return undefined;
  if (waitForWorkerMs !== undefined && !isInt(waitForWorkerMs, 0, BOUNDS.maxWaitForWorkerMs)) return undefined;
  const request = fastHttpRequest(v.request);
  if (!request) return undefined;
  const out: Partial<DispatchRequest> = { pool };
  if (workerId !== undefined) out.workerId = workerId;
  if (timeoutMs !== undefined) out.timeoutMs = timeoutMs;
  if (waitForWorkerMs !== undefined) out.waitForWorkerMs = waitForWorkerMs;
  out.request = request;
  return out as DispatchRequest;
}

const JOB_KEYS: ReadonlySet<string> = new Set(['type', 'id', 'timeoutMs', 'request']);

/** The `job` member of serverFrameSchema (other server frames: undefined). */
export function fastJobFrame(v: unknown): JobFrame | undefined {
  if (!plain(v) || v.type !== 'job' || !onlyKeys(v, JOB_KEYS)) return undefined;
  const { id, timeoutMs } = v;
  if (!isId(id) || !isInt(timeoutMs, 1, Number.MAX_SAFE_INTEGER)) return undefined;
  const request = fastHttpRequest(v.request);
  return request ? { type: 'job', id, timeoutMs, request } : undefined;
}

const RESPONSE_KEYS: ReadonlySet<string> = new Set(['status', 'headers', 'body', 'bodyEncoding']);

function fastHttpResponse(v: unknown): HttpResponse | undefined {
  if (!plain(v) || !onlyKeys(v, RESPONSE_KEYS)) return undefined;
  const { status, body, bodyEncoding } = v;
  if (!isInt(status, 100, 999)) return undefined;
  const h = headers(v.headers, Number.POSITIVE_INFINITY);
  if (!h || typeof body !== 'string' || (bodyEncoding !== 'utf8' && bodyEncoding !== 'base64')) return undefined;
  return { status, headers: h, body, bodyEncoding };
}

const ERROR_KEYS: ReadonlySet<string> = new Set(['code', 'message']);

function fastAgentError(v: unknown): AgentError | undefined {
  if (!plain(v) || !onlyKeys(v, ERROR_KEYS)) return undefined;
  const { code, message } = v;
  if (typeof code !== 'string' || !AGENT_CODES.has(code) || typeof message !== 'string' || message.length > 4096) return undefined;
  return { code: code as AgentError['code'], message };
}

const RESULT_KEYS: ReadonlySet<string> = new Set(['type', 'id', 'response', 'error']);

/** The `result` member of agentFrameSchema (a drain frame: undefined). */
export function fastResultFrame(v: unknown): ResultFrame | undefined {
  if (!plain(v) || v.type !== 'result' || !onlyKeys(v, RESULT_KEYS)) return undefined;
  const { id } = v;
  if (!isId(id)) return undefined;
  // Exactly one of response and error.
  if (v.response !== undefined) {
    if (v.error !== undefined) return undefined;
    const response = fastHttpResponse(v.response);
    return response ? { type: 'result', id, response } : undefined;
  }
  const error = v.error === undefined ? undefined : fastAgentError(v.error);
  return error ? { type: 'result', id, error } : undefined;
}
