/**
 * What the console may see of a job: header maps with credentials masked and bodies
 * cut to a preview. Masking happens here, on the server, so the browser never
 * receives a credential. The feed keeps each ended job as it came (`keepJob`) and masks
 * it when a console reads it.
 */
import type { Headers, HttpResponse } from '../../shared/protocol.ts';
import type { JobSummary } from '../router-events.ts';
import type { BodyPreview, JobDetails, JobRow, MaskedHeaders } from './console-protocol.ts';

/** Header names whose values the console never receives (compared lower-case). */
export const MASKED_HEADERS: ReadonlySet<string> = new Set(['authorization', 'cookie', 'set-cookie', 'proxy-authorization', 'x-api-key', 'private-token']);
export const MASK = '[masked]';

/** The credential headers plus the operator's own (`--console-mask-header`), lower-case. */
export function headerMask(extra: readonly string[] = []): ReadonlySet<string> {
  if (extra.length === 0) return MASKED_HEADERS;
  return new Set([...MASKED_HEADERS, ...extra.map((h) => h.toLowerCase())]);
}

/** Masks every `name=value` value of a query or fragment; an item without `=` is masked whole. */
function maskParams(params: string): string {
  return params
    .split('&')
    .map((p) => {
      if (p === '') return p;
      const eq = p.indexOf('=');
      return eq < 0 ? MASK : `${p.slice(0, eq)}=${MASK}`;
    })
    .join('&');
}

/**
 * A URL as the console shows it: the userinfo password, every query-string value and the
 * fragment's values masked (API keys and signed-URL signatures travel there). The scheme,
 * user name, host, port and path stay readable.
 */
export function maskUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return MASK; // never shown unparsed: it may hold anything
  }
  if (!u.password && !u.search && !u.hash) return url;
  const userinfo = u.username || u.password ? `${u.username}${u.password ? `:${MASK}` : ''}@` : '';
  const query = u.search ? `?${maskParams(u.search.slice(1))}` : '';
  const hash = u.hash ? `#${maskParams(u.hash.slice(1))}` : '';
  return `${u.protocol}//${userinfo}${u.host}${u.pathname}${query}${hash}`;
}

export interface PreviewLimits {
  /** Characters of a text body kept for the preview. */
  previewChars: number;
  /** Characters of one header value kept. */
  headerValueChars: number;
  /** Headers kept per map. */
  maxHeaders: number;
  /** Characters of a URL kept in a feed row. */
  urlChars: number;
}

export const DEFAULT_PREVIEW_LIMITS: PreviewLimits = { previewChars: 8 * 1024, headerValueChars: 1024, maxHeaders: 100, urlChars: 2048 };

function cut(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** Whether `maskHeaders` would change anything in `headers`. */
function needsMasking(headers: Headers, limits: PreviewLimits, mask: ReadonlySet<string>): boolean {
  let n = 0;
  for (const name in headers) {
    if (++n > limits.maxHeaders || mask.has(name.toLowerCase())) return true;
    const value = headers[name];
    if (Array.isArray(value)) {
      if (value.length > 20) return true;
      for (const v of value) if (v.length > limits.headerValueChars) return true;
    } else if (value.length > limits.headerValueChars) return true;
  }
  return false;
}

/**
 * A header map with credentials masked and long values cut: a copy, or the map itself when
 * nothing in it is masked or cut (the usual case; nobody writes to either). `mask` holds
 * lower-case names (`headerMask`).
 */
export function maskHeaders(headers: Headers | undefined, limits: PreviewLimits = DEFAULT_PREVIEW_LIMITS, mask: ReadonlySet<string> = MASKED_HEADERS): MaskedHeaders {
  if (!headers) return {};
  if (!needsMasking(headers, limits, mask)) return headers;
  const out: MaskedHeaders = {};
  let n = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (n++ >= limits.maxHeaders) break;
    if (mask.has(name.toLowerCase())) out[name] = MASK;
    else out[name] = Array.isArray(value) ? value.slice(0, 20).map((v) => cut(v, limits.headerValueChars)) : cut(value, limits.headerValueChars);
  }
  return out;
}

function headerValue(headers: Headers | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
  return undefined;
}

/** Bytes a base64 string decodes to, without decoding it. */
function base64Bytes(b64: string): number {
  const pad = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  return Math.max(0, Math.floor((b64.length * 3) / 4) - pad);
}

/**
 * A preview of a body: binary (base64) bodies only by size; text cut to `previewChars`;
 * `json` when the content type says so or the text looks like JSON (the page pretty-prints it).
 */
export function previewBody(body: string, encoding: 'utf8' | 'base64' | undefined, contentType: string | undefined, limits: PreviewLimits = DEFAULT_PREVIEW_LIMITS): BodyPreview {
  if (encoding === 'base64') return { kind: 'binary', bytes: base64Bytes(body), truncated: false };
  const bytes = Buffer.byteLength(body, 'utf8');
  const head = body.slice(0, limits.previewChars);
  const trimmed = head.trimStart();
  const looksJson = /\bjson\b|\+json/i.test(contentType ?? '') || trimmed.startsWith('{') || trimmed.startsWith('[');
  return { kind: looksJson ? 'json' : 'text', bytes, text: head, truncated: head.length < body.length };
}

/** The response part of a job or a test request, masked and previewed. */
export function responseView(response: HttpResponse, limits: PreviewLimits = DEFAULT_PREVIEW_LIMITS, mask: ReadonlySet<string> = MASKED_HEADERS): NonNullable<JobDetails['response']> {
  return {
    status: response.status,
    headers: maskHeaders(response.headers, limits, mask),
    body: previewBody(response.body, response.bodyEncoding, headerValue(response.headers, 'content-type'), limits),
  };
}

/**
 * An ended job as the console's log keeps it: the router's summary as it is, masked and
 * previewed only when a console reads it (`rowOfKept` for the feed, `detailsOfKept` for a
 * job's details) — most jobs are never looked at. A body longer than a preview, or binary,
 * is previewed at once and not kept, so the log holds no more of a job than its details.
 */
export interface KeptJob {
  readonly seq: number;
  readonly replayable: boolean;
  readonly job: JobSummary;
  /** Previews made when the job was kept (the body is then gone from `job`). */
  readonly requestBody?: BodyPreview;
  readonly responseBody?: BodyPreview;
  /** The feed row, made once by the first `rowOfKept`. */
  row?: JobRow;
}

function bodyKept(body: string, encoding: 'utf8' | 'base64' | undefined, limits: PreviewLimits): boolean {
  return encoding !== 'base64' && body.length <= limits.previewChars;
}

/** Keeps an ended job for the log: O(1) for a job whose bodies fit a preview. */
export function keepJob(seq: number, job: JobSummary, replayable: boolean, limits: PreviewLimits = DEFAULT_PREVIEW_LIMITS): KeptJob {
  const req = job.request;
  const res = job.response;
  const reqBig = req.body !== undefined && !bodyKept(req.body, req.bodyEncoding, limits);
  const resBig = res !== null && !bodyKept(res.body, res.bodyEncoding, limits);
  if (!reqBig && !resBig) return { seq, replayable, job };
  return {
    seq,
    replayable,
    job: { ...job, request: reqBig ? { ...req, body: '' } : req, response: resBig && res ? { ...res, body: '' } : res },
    ...(reqBig ? { requestBody: previewBody(req.body!, req.bodyEncoding, headerValue(req.headers, 'content-type'), limits) } : {}),
    ...(resBig && res ? { responseBody: previewBody(res.body, res.bodyEncoding, headerValue(res.headers, 'content-type'), limits) } : {}),
  };
}

/**
 * The URL of a kept job for its row. The router only holds URLs that passed the schema
 * (absolute http(s), so they parse): one without `@`, `?` or `#` has no password, query or
 * fragment and is shown as it is, with no parse.
 */
function rowUrl(url: string, limits: PreviewLimits): string {
  const plain = !url.includes('@') && !url.includes('?') && !url.includes('#');
  return cut(plain ? url : maskUrl(url), limits.urlChars);
}

/** The feed row of a kept job (made once, then reused by every tick and snapshot). */
export function rowOfKept(k: KeptJob, limits: PreviewLimits = DEFAULT_PREVIEW_LIMITS): JobRow {
  if (k.row) return k.row;
  const job = k.job;
  k.row = {
    seq: k.seq,
    id: job.id,
    at: Math.round(job.acceptedAt),
    suite: job.suite,
    pool: job.pool,
    workerId: job.workerId,
    method: job.request.method,
    url: rowUrl(job.request.url, limits),
    status: job.response?.status ?? null,
    outcome: job.outcome,
    durationMs: job.durationMs,
    replayable: k.replayable,
    ...(job.node !== undefined ? { node: job.node } : {}),
  };
  return k.row;
}

/** The details of a kept job, masked and previewed. */
export function detailsOfKept(k: KeptJob, limits: PreviewLimits = DEFAULT_PREVIEW_LIMITS, mask: ReadonlySet<string> = MASKED_HEADERS): JobDetails {
  const row = rowOfKept(k, limits);
  const { request: req, response: res, error } = k.job;
  return {
    ...row,
    request: {
      method: req.method,
      url: row.url,
      headers: maskHeaders(req.headers, limits, mask),
      body: req.body === undefined ? null : (k.requestBody ?? previewBody(req.body, req.bodyEncoding, headerValue(req.headers, 'content-type'), limits)),
    },
    response: res
      ? { status: res.status, headers: maskHeaders(res.headers, limits, mask), body: k.responseBody ?? previewBody(res.body, res.bodyEncoding, headerValue(res.headers, 'content-type'), limits) }
      : null,
    error,
  };
}

/** The feed row and the details of an ended job. */
export function recordJob(seq: number, job: JobSummary, replayable: boolean, limits: PreviewLimits = DEFAULT_PREVIEW_LIMITS, mask: ReadonlySet<string> = MASKED_HEADERS): JobDetails {
  return detailsOfKept(keepJob(seq, job, replayable, limits), limits, mask);
}

/** The row part of a details record (what the feed sends), field by field so nothing of the details slips into rows. */
export function rowOf(d: JobDetails): JobRow {
  return {
    seq: d.seq,
    id: d.id,
    at: d.at,
    suite: d.suite,
    pool: d.pool,
    workerId: d.workerId,
    method: d.method,
    url: d.url,
    status: d.status,
    outcome: d.outcome,
    durationMs: d.durationMs,
    replayable: d.replayable,
    ...(d.node !== undefined ? { node: d.node } : {}),
  };
}

/** Rough size in bytes of a request kept for Replay (body plus headers). */
export function requestSize(job: JobSummary): number {
  let n = job.request.url.length + (job.request.body?.length ?? 0);
  for (const [k, v] of Object.entries(job.request.headers ?? {})) n += k.length + (Array.isArray(v) ? v.join('').length : v.length);
  return n;
}
