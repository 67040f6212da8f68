/**
 * `--allow-host` patterns and the check of a target URL against them. Pure: no DNS,
 * no I/O. A pattern matches the URL's host as written (after WHATWG URL
 * normalisation, which is what the request will connect to): names match names,
 * IPs and CIDRs match IP literals only, so `localhost` never matches `127.0.0.1`.
 * IPv4-mapped IPv6 literals are the IPv4 address; IPv6 patterns never match IPv4.
 * The list also says which denied addresses (egress.ts) its owner named explicitly.
 */
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { Cidr, isInsideDeniedRange, isLoopback, normalizeIp, type ExplicitGrant, type IpAddress } from './egress.ts';

/** A pattern that cannot be parsed; the CLI reports it and exits 2. */
export class InvalidAllowHostError extends Error {
  readonly code = 'invalid_allow_host';
  readonly pattern: string;
  constructor(pattern: string, why: string) {
    super(`invalid --allow-host pattern ${JSON.stringify(pattern)}: ${why}`);
    this.name = 'InvalidAllowHostError';
    this.pattern = pattern;
  }
}

/** The host of a target, as the matchers see it. */
export interface TargetHost {
  /** Lower-case name without a trailing dot, or the IP literal without brackets. */
  host: string;
  /** 4 or 6 for an IP literal, 0 for a name. */
  ipVersion: 0 | 4 | 6;
  /** Explicit port, else the scheme's default. */
  port: number;
}

/** One parsed pattern. */
export interface AllowPattern {
  /** The pattern as the user wrote it. */
  readonly source: string;
  /** `host:port` patterns only admit this port; null admits any port. */
  readonly port: number | null;
  /** True when `target` is admitted. */
  matches(target: TargetHost): boolean;
  /**
   * True when this pattern names denied addresses explicitly: an IP or CIDR wholly inside
   * a denied range, or the name `localhost`.
   */
  readonly namesDenied: boolean;
  /** IP and CIDR patterns: true when `ip` is inside (ports aside). Absent on name patterns. */
  readonly matchesAddress?: (ip: IpAddress) => boolean;
}

/** The parsed `--allow-host` list. */
export interface Allowlist extends ExplicitGrant {
  /** No pattern given: every host is allowed (the agent warns about it at start). */
  readonly allowsAll: boolean;
  readonly patterns: readonly AllowPattern[];
  /** True when the URL's host (and port, for `host:port` patterns) is admitted. */
  isAllowed(url: string | URL): boolean;
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 };
// One DNS label (RFC 1123, plus `_` which real internal names use).
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
// WHATWG URL parses a host whose last label is numeric as IPv4 (`10.0.0` → 10.0.0.0), so
// a name pattern like that could never match anything: reject it instead of ignoring it.
const NUMERIC_LABEL = /^(?:\d+|0x[0-9a-f]*)$/;

function parsePort(pattern: string, text: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new InvalidAllowHostError(pattern, 'the port must be a number');
  const port = Number(text);
  if (port < 1 || port > 65_535) throw new InvalidAllowHostError(pattern, 'the port must be 1-65535');
  return port;
}

interface IpMatcher {
  matches(ip: IpAddress): boolean;
  namesDenied: boolean;
}

function ipMatcher(pattern: string, address: string, prefix: string | undefined): IpMatcher {
  const written = isIP(address);
  if (written === 0) throw new InvalidAllowHostError(pattern, `${JSON.stringify(address)} is not an IP address`);
  let bits = written === 4 ? 32 : 128;
  if (prefix !== undefined) {
    bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
    if (!(bits >= 0 && bits <= (written === 4 ? 32 : 128))) throw new InvalidAllowHostError(pattern, `bad prefix length /${prefix}`);
  }
  // A mapped pattern (::ffff:10.0.0.0/104) is the IPv4 pattern it spells (10.0.0.0/8).
  const ip = normalizeIp(address) as IpAddress;
  if (ip.version === 4 && written === 6) {
    if (bits < 96) throw new InvalidAllowHostError(pattern, 'an IPv4-mapped prefix must be /96 or longer');
    bits -= 96;
  }
  // Family-strict: an IPv6 pattern such as ::/0 never matches an IPv4 address.
  const net = new Cidr(ip, bits);
  return { matches: (t) => net.contains(t), namesDenied: isInsideDeniedRange(ip, bits) };
}

function nameMatcher(pattern: string, text: string): (t: TargetHost) => boolean {
  const wildcard = text.startsWith('*.');
  const rest = (wildcard ? text.slice(2) : text).replace(/\.$/, '');
  // domainToASCII lower-cases and turns IDNs into punycode, as the URL parser does.
  const ascii = rest.includes('*') ? '' : domainToASCII(rest);
  const labels = ascii.split('.');
  if (!ascii || ascii.length > 253 || !labels.every((l) => LABEL.test(l))) {
    throw new InvalidAllowHostError(pattern, 'not a host name, *.domain, IP address or CIDR');
  }
  if (NUMERIC_LABEL.test(labels[labels.length - 1])) throw new InvalidAllowHostError(pattern, 'not a valid IP address');
  if (wildcard) {
    const suffix = `.${ascii}`;
    // Any subdomain, not the apex: `*.svc.local` admits `a.svc.local`, not `svc.local`.
    return (t) => t.ipVersion === 0 && t.host.endsWith(suffix) && t.host.length > suffix.length;
  }
  return (t) => t.ipVersion === 0 && t.host === ascii;
}

/**
 * Parses one pattern: `api.internal`, `*.svc.local`, `10.0.0.0/8`, `fd00::/8`,
 * `10.1.2.3`, `::1`, `[::1]`, each optionally with `:port` (IPv6 then in brackets:
 * `[::1]:8080`). Throws {@link InvalidAllowHostError}.
 */
export function parseAllowPattern(source: string): AllowPattern {
  const text = source.trim();
  if (!text) throw new InvalidAllowHostError(source, 'empty pattern');
  if (text.includes('://')) throw new InvalidAllowHostError(source, 'give a host, not a URL');

  let hostText: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const m = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
    if (!m) throw new InvalidAllowHostError(source, 'unbalanced brackets');
    [, hostText, portText] = m;
    if (isIP(hostText.split('/')[0]) !== 6) throw new InvalidAllowHostError(source, 'brackets hold an IPv6 address');
  } else if (isIP(text) === 6) {
    hostText = text; // bare IPv6: its colons are not a port separator
  } else if (text.includes('/')) {
    const m = /^([^/]+)\/(\d+)(?::(.*))?$/.exec(text);
    if (!m) throw new InvalidAllowHostError(source, 'a CIDR is ADDRESS/BITS');
    hostText = `${m[1]}/${m[2]}`;
    portText = m[3];
  } else {
    const parts = text.split(':');
    if (parts.length > 2) throw new InvalidAllowHostError(source, 'not a valid IPv6 address (write [addr]:port for a port)');
    [hostText, portText] = parts;
  }

  const port = portText === undefined ? null : parsePort(source, portText);
  const slash = hostText.indexOf('/');
  const isIpPattern = slash >= 0 || isIP(hostText) !== 0;
  if (isIpPattern) {
    const ip = ipMatcher(source, slash >= 0 ? hostText.slice(0, slash) : hostText, slash >= 0 ? hostText.slice(slash + 1) : undefined);
    return {
      source,
      port,
      namesDenied: ip.namesDenied,
      matches: (t) => (port === null || t.port === port) && t.ipVersion !== 0 && ip.matches({ address: t.host, version: t.ipVersion }),
      matchesAddress: (address) => ip.matches(address),
    };
  }
  const name = nameMatcher(source, hostText.toLowerCase());
  return {
    source,
    port,
    namesDenied: hostText.toLowerCase().replace(/\.$/, '') === 'localhost',
    matches: (t) => (port === null || t.port === port) && name(t),
  };
}

function targetOf(url: string | URL): TargetHost | null {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return null;
  }
  const raw = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  const port = parsed.port ? Number(parsed.port) : DEFAULT_PORTS[parsed.protocol];
  if (port === undefined) return null;
  const ip = normalizeIp(raw);
  if (ip) return { host: ip.address, ipVersion: ip.version, port };
  // `api.internal.` and `api.internal` are the same DNS name.
  return { host: raw.toLowerCase().replace(/\.$/, ''), ipVersion: 0, port };
}

/** The URL's host as the allowlist and the egress policy see it; null for a URL without a known port. */
export function targetHostOf(url: string | URL): TargetHost | null {
  return targetOf(url);
}


/** Parses every pattern (throwing on the first invalid one) into an {@link Allowlist}. */
export function parseAllowlist(sources: readonly string[]): Allowlist {
  const patterns = sources.map(parseAllowPattern);
  const explicit = patterns.filter((p) => p.namesDenied);
  return {
    allowsAll: patterns.length === 0,
    patterns,
    isAllowed(url) {
      if (patterns.length === 0) return true;
      const target = targetOf(url);
      return target !== null && patterns.some((p) => p.matches(target));
    },
    grants(hostname, port, ip) {
      const name = hostname.toLowerCase().replace(/\.$/, '');
      return explicit.some((p) => {
        if (p.port !== null && p.port !== port) return false;
        // `localhost` admits the loopback addresses the name resolves to, nothing else.
        if (p.matchesAddress === undefined) return name === 'localhost' && isLoopback(ip);
        return p.matchesAddress(ip);
      });
    },
  };
}
