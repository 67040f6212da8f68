/**
 * What the console may see of a job: header maps with credentials masked and bodies
 * cut to a preview. Masking happens here, on the server, so the browser never
 * receives a credential. Pure functions; the feed calls them once per ended job.
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

/** Copies a header map with credentials masked and long values cut. */
export function maskHeaders(headers: Headers | undefined, limits: PreviewLimits = DEFAULT_PREVIEW_LIMITS, mask: ReadonlySet<string> = MASKED_HEADERS): MaskedHeaders {
  const out: MaskedHeaders = {};
  if (!headers) return out;
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

/** The feed row and the details of an ended job. */
export function recordJob(seq: number, job: JobSummary, replayable: boolean, limits: PreviewLimits = DEFAULT_PREVIEW_LIMITS, mask: ReadonlySet<string> = MASKED_HEADERS): JobDetails {
  const req = job.request;
  const row: JobRow = {
    seq,
    id: job.id,
    at: Math.round(job.acceptedAt),
    suite: job.suite,
    pool: job.pool,
    workerId: job.workerId,
    method: req.method,
    url: cut(maskUrl(req.url), limits.urlChars),
    status: job.response?.status ?? null,
    outcome: job.outcome,
    durationMs: job.durationMs,
    replayable,
    ...(job.node !== undefined ? { node: job.node } : {}),
  };
  return {
    ...row,
    request: {
      method: req.method,
      url: row.url,
      headers: maskHeaders(req.headers, limits, mask),
      body: req.body === undefined ? null : previewBody(req.body, req.bodyEncoding, headerValue(req.headers, 'content-type'), limits),
    },
    response: job.response ? responseView(job.response, limits, mask) : null,
    error: job.error,
  };
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
