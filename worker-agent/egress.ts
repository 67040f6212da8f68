/**
 * The agent's egress policy: addresses a job may never reach unless the agent's owner
 * named them (loopback, link-local with cloud metadata, unspecified, fd00:ec2::254).
 * Pure: the DNS lookup is done by the caller (target-pool.ts), which passes every
 * address a name resolved to; the connection is then made to a checked address.
 */
import { BlockList, isIP } from 'node:net';

/** An IP address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into its IPv4 form. */
export interface IpAddress {
  address: string;
  version: 4 | 6;
}

const MAPPED = new BlockList();
MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6');

/**
 * Normalises an IP literal (no brackets); null when `text` is not one. An IPv4-mapped
 * IPv6 address connects to the IPv4 host, so it is matched and checked as that host.
 */
export function normalizeIp(text: string): IpAddress | null {
  const version = isIP(text);
  if (version === 4) return { address: text, version: 4 };
  if (version !== 6) return null;
  if (!MAPPED.check(text, 'ipv6')) return { address: text, version: 6 };
  // Expand to read the last 32 bits, however the mapped address was written.
  const groups = expandIpv6(text);
  const high = groups[6];
  const low = groups[7];
  return { address: `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`, version: 4 };
}

/** The eight 16-bit groups of an IPv6 address (embedded dotted IPv4 tails included). */
function expandIpv6(text: string): number[] {
  let body = text;
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

const DENIED_LISTS = DENIED.map((range) => {
  const list = new BlockList();
  list.addSubnet(range.address, range.bits, range.version === 4 ? 'ipv4' : 'ipv6');
  return { range, list };
});

/** What kind of denied address `ip` is ("loopback", …), or null when the policy does not deny it. */
export function deniedKind(ip: IpAddress): string | null {
  for (const { range, list } of DENIED_LISTS) {
    if (range.version === ip.version && list.check(ip.address, ip.version === 4 ? 'ipv4' : 'ipv6')) return range.what;
  }
  return null;
}

/** True when the network `address/bits` lies wholly inside one denied range (so a pattern naming it is explicit). */
export function isInsideDeniedRange(ip: IpAddress, bits: number): boolean {
  return DENIED_LISTS.some(({ range, list }) => range.version === ip.version && bits >= range.bits && list.check(ip.address, ip.version === 4 ? 'ipv4' : 'ipv6'));
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
