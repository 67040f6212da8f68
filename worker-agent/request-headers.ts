/**
 * What the agent sends to a target, header by header: hop-by-hop headers are dropped,
 * the body is framed by the agent (content-length from the bytes it holds), and a `host`
 * header must name a host the agent could be sent to anyway.
 */
import type { Headers } from '../shared/protocol.ts';
import type { Allowlist } from './allowlist.ts';
import { checkAddresses, normalizeIp } from './egress.ts';
import type { LookupFn } from './target-pool.ts';

/** Connection-level headers (RFC 9110 §7.6.1) that belong to the agent's own connection, never forwarded. */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Also set by the agent alone: `content-length` (the body it holds decides) and `expect`
 * (the agent sends the body at once; `100-continue` would stall the request).
 */
const AGENT_FRAMED: ReadonlySet<string> = new Set(['content-length', 'expect']);

/** Outgoing headers as a flat `[name, value, …]` list, plus the `host` header if the job set one. */
export interface PreparedHeaders {
  list: string[];
  host: string | null;
}

/**
 * Lower-cases names, keeps repeated headers as repeated lines, drops hop-by-hop headers
 * (and any named in `connection`), and adds Basic auth from URL userinfo as node:http
 * did. Returns a string when the headers cannot be sent (the job is `invalid_job`).
 */
export function prepareHeaders(headers: Headers | undefined, url: URL): PreparedHeaders | string {
  let list: string[] = [];
  let host: string | null = null;
  let hasAuthorization = false;
  let named: Set<string> | null = null;
  for (const rawName in headers) {
    const name = rawName.toLowerCase();
    const value = headers[rawName];
    if (name === 'connection') {
      // Its tokens name more hop-by-hop headers, which may come before or after it.
      named ??= new Set();
      for (const line of Array.isArray(value) ? value : [value]) {
        for (const token of line.split(',')) named.add(token.trim().toLowerCase());
      }
      continue;
    }
    if (HOP_BY_HOP_HEADERS.has(name) || AGENT_FRAMED.has(name)) continue;
    if (name === 'host') {
      if (host !== null || (Array.isArray(value) && value.length !== 1)) return 'a job may carry one host header';
      host = Array.isArray(value) ? value[0] : value;
      continue;
    }
    if (name === 'authorization') hasAuthorization = true;
    if (Array.isArray(value)) for (const v of value) list.push(name, v);
    else list.push(name, value);
  }
  if (named !== null) {
    const keep: string[] = [];
    for (let i = 0; i < list.length; i += 2) if (!named.has(list[i])) keep.push(list[i], list[i + 1]);
    list = keep;
    if (host !== null && named.has('host')) host = null;
    if (named.has('authorization')) hasAuthorization = false;
  }
  if ((url.username || url.password) && !hasAuthorization) {
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    list.push('authorization', `Basic ${Buffer.from(credentials).toString('base64')}`);
  }
  return { list, host };
}

/**
 * Null when a `host` header of `value` may be sent with a request to `url`: the same
 * host as the URL, or one a job could target itself (`http://VALUE/` passes the allowlist
 * and, resolved by the agent, the egress policy). Otherwise the reason it may not.
 */
export async function refuseHostHeader(value: string, url: URL, allow: Allowlist, lookup: LookupFn): Promise<string | null> {
  if (value.toLowerCase() === url.host) return null;
  let candidate: URL;
  try {
    candidate = new URL(`http://${value}/`);
  } catch {
    return `the host header ${JSON.stringify(value)} is not a host`;
  }
  // `a@b`, `a/b`, `a?b` would parse as something else than the host the target reads.
  if (candidate.username || candidate.password || candidate.pathname !== '/' || candidate.search || candidate.hash) {
    return `the host header ${JSON.stringify(value)} is not a host`;
  }
  if (!allow.isAllowed(candidate)) return `the host header ${JSON.stringify(value)} names a host outside the agent's --allow-host list`;
  const hostname = candidate.hostname.startsWith('[') ? candidate.hostname.slice(1, -1) : candidate.hostname;
  const port = candidate.port ? Number(candidate.port) : 80;
  const literal = normalizeIp(hostname);
  let addresses = literal ? [literal] : [];
  if (!literal) {
    try {
      addresses = await lookup(hostname);
    } catch {
      // A name the agent cannot resolve reaches nothing through it; the target's virtual host decides.
      addresses = [];
    }
  }
  const refusal = checkAddresses(hostname, port, addresses, allow);
  return refusal ? `the host header: ${refusal.message}` : null;
}
