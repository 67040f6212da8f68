/**
 * The agent's egress policy: addresses a job may never reach unless the agent's owner
 * named them (loopback, link-local with cloud metadata, unspecified, fd00:ec2::254).
 * Pure: the DNS lookup is done by the caller (target-pool.ts), which passes every
 * address a name resolved to; the connection is then made to a checked address.
 */
import { isIP } from 'node:net';

/** An IP address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into its IPv4 form. */
export interface IpAddress {
  address: string;
  version: 4 | 6;
}

/**
 * Normalises an IP literal (no brackets); null when `text` is not one. An IPv4-mapped
 * IPv6 address connects to the IPv4 host, so it is matched and checked as that host.
 */
export function normalizeIp(text: string): IpAddress | null {
  const version = isIP(text);
  if (version === 4) return { address: text, version: 4 };
  if (version !== 6) return null;
  // Expand to read the groups, however the address was written (`::ffff:1.2.3.4`, `0:0::ffff:102:304`).
  const groups = expandIpv6(text);
  if (groups[5] !== 0xffff || groups[0] !== 0 || groups[1] !== 0 || groups[2] !== 0 || groups[3] !== 0 || groups[4] !== 0) return { address: text, version: 6 };
  const high = groups[6];
  const low = groups[7];
  return { address: `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`, version: 4 };
}

/** The eight 16-bit groups of an IPv6 address (embedded dotted IPv4 tails included). */
function expandIpv6(text: string): number[] {
  // A zone (`fe80::1%eth0`, as a resolver may answer) does not change the address.
  let body = text.split('%')[0];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(body);
  if (dotted) {
    const [a, b, c, d] = dotted[1].split('.').map(Number);
    body = `${body.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = body.includes('::') ? body.split('::') : [body, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => parseInt(g, 16));
}

/** An address as 32-bit words: one for IPv4, four for IPv6. */
function wordsOf(ip: IpAddress): number[] {
  if (ip.version === 4) {
    const [a, b, c, d] = ip.address.split('.').map(Number);
    return [((a << 24) | (b << 16) | (c << 8) | d) >>> 0];
  }
  const g = expandIpv6(ip.address);
  return [0, 2, 4, 6].map((i) => ((g[i] << 16) | g[i + 1]) >>> 0);
}

/**
 * An IP network (`address/bits`) of one family. Plain integer masks: node's BlockList
 * builds a SocketAddress on every check, which showed in the job runner's profile, and
 * matches IPv4 addresses against IPv6 rules (`::/0` would admit every IPv4 host).
 */
export class Cidr {
  readonly version: 4 | 6;
  readonly bits: number;
  readonly #words: number[];

  /** `address` must be a valid IP literal of `version` (already normalised). */
  constructor(ip: IpAddress, bits: number) {
    this.version = ip.version;
    this.bits = bits;
    this.#words = wordsOf(ip);
  }

  /** True when `ip` (same family only) lies inside this network. */
  contains(ip: IpAddress): boolean {
    return ip.version === this.version && this.containsWords(wordsOf(ip));
  }

  /** {@link contains} for an address already split into words of this network's family. */
  containsWords(words: readonly number[]): boolean {
    let left = this.bits;
    for (let i = 0; left > 0; i += 1, left -= 32) {
      const mask = left >= 32 ? 0xffffffff : (0xffffffff << (32 - left)) >>> 0;
      if (((words[i] & mask) >>> 0) !== ((this.#words[i] & mask) >>> 0)) return false;
    }
    return true;
  }
}

/** One range the policy denies, with the name used in messages. */
interface DeniedRange {
  address: string;
  bits: number;
  version: 4 | 6;
  what: string;
}

/**
 * Denied unless named. 0.0.0.0/8 as a whole: on Linux a connect to 0.0.0.0 reaches the
 * host itself, and nothing in "this network" is a legitimate remote target.
 */
const DENIED: readonly DeniedRange[] = [
  { address: '127.0.0.0', bits: 8, version: 4, what: 'loopback' },
  { address: '169.254.0.0', bits: 16, version: 4, what: 'link-local (cloud metadata)' },
  { address: '0.0.0.0', bits: 8, version: 4, what: 'unspecified' },
  { address: '::1', bits: 128, version: 6, what: 'loopback' },
  { address: 'fe80::', bits: 10, version: 6, what: 'link-local' },
  { address: '::', bits: 128, version: 6, what: 'unspecified' },
  { address: 'fd00:ec2::254', bits: 128, version: 6, what: 'cloud metadata' },
];

const DENIED_NETS = DENIED.map((range) => ({ what: range.what, net: new Cidr({ address: range.address, version: range.version }, range.bits) }));

/** What kind of denied address `ip` is ("loopback", …), or null when the policy does not deny it. */
export function deniedKind(ip: IpAddress): string | null {
  const words = wordsOf(ip); // parsed once for every range
  for (const { what, net } of DENIED_NETS) if (net.version === ip.version && net.containsWords(words)) return what;
  return null;
}

/** True when the network `address/bits` lies wholly inside one denied range (so a pattern naming it is explicit). */
export function isInsideDeniedRange(ip: IpAddress, bits: number): boolean {
  return DENIED_NETS.some(({ net }) => bits >= net.bits && net.contains(ip));
}

/** Loopback only (127.0.0.0/8, ::1): what the name `localhost` may reach when named. */
export function isLoopback(ip: IpAddress): boolean {
  return DENIED_NETS[0].net.contains(ip) || DENIED_NETS[3].net.contains(ip);
}

/** Decides whether a denied address was named explicitly by the owner (an `--allow-host` pattern). */
export interface ExplicitGrant {
  /** True when a pattern names `ip` explicitly for a connection to `hostname:port`. */
  grants(hostname: string, port: number, ip: IpAddress): boolean;
}

/** A refusal of the egress policy; the job fails with `target_forbidden`. */
export class EgressForbiddenError extends Error {
  readonly code = 'FLOWTEST_TARGET_FORBIDDEN';
  constructor(message: string) {
    super(message);
    this.name = 'EgressForbiddenError';
  }
}

/**
 * Checks every address `hostname:port` resolved to; returns the refusal, or null when
 * all may be reached. One denied address refuses the name: a resolver that mixes a
 * private answer with a loopback one is not to be trusted with a choice.
 */
export function checkAddresses(hostname: string, port: number, addresses: readonly IpAddress[], grant: ExplicitGrant): EgressForbiddenError | null {
  for (const ip of addresses) {
    const kind = deniedKind(ip);
    if (kind !== null && !grant.grants(hostname, port, ip)) {
      const shown = hostname === ip.address ? ip.address : `${hostname} (${ip.address})`;
      return new EgressForbiddenError(`${shown} is a ${kind} address; the agent reaches it only when an --allow-host pattern names it`);
    }
  }
  return null;
}
