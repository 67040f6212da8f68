/**
 * The address a request comes from, as listings, logs and the auth back-off see it.
 *
 * Behind a reverse proxy every peer is the proxy. With `--trust-proxy CIDR…` the
 * address is taken from `X-Forwarded-For` — but only when the peer itself is trusted,
 * and then as the rightmost hop that is not trusted (hops to its left were written by
 * the client and prove nothing). Without the option the header is ignored.
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/** `10.0.0.0/8`, `::1`, `fd00::/8`: an IP with an optional prefix length. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const [ip, bits, extra] = text.trim().split('/');
  if (extra !== undefined || ip === undefined) return null;
  const version = isIP(ip);
  if (version === 0) return null;
  const max = version === 4 ? 32 : 128;
  if (bits !== undefined && !/^[0-9]{1,3}$/.test(bits)) return null;
  const prefix = bits === undefined ? max : Number(bits);
  if (prefix > max) return null;
  return { address: ip, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** `::ffff:10.0.0.1` → `10.0.0.1`; other addresses unchanged. */
export function plainAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

/**
 * The key the auth back-off counts under: an IPv4 address itself, an IPv6 address by
 * its /64 (one host usually holds a whole /64, and would otherwise have 2^64 keys).
 */
export function backoffKey(address: string): string {
  const plain = plainAddress(address);
  if (isIP(plain) !== 6) return plain;
  const groups = expandIpv6(plain);
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : plain;
}

function expandIpv6(address: string): string[] | null {
  const noZone = address.split('%')[0];
  const [head, tail] = noZone.split('::');
  const parse = (s: string | undefined) => (s ? s.split(':') : []);
  const h = parse(head);
  const t = parse(tail);
  // An embedded IPv4 tail takes two groups.
  const last = t.length ? t : h;
  if (last.length && last[last.length - 1].includes('.')) {
    const v4 = last.pop()!.split('.').map(Number);
    last.push(((v4[0] << 8) | v4[1]).toString(16), ((v4[2] << 8) | v4[3]).toString(16));
  }
  const fill = noZone.includes('::') ? 8 - h.length - t.length : 0;
  const groups = [...h, ...Array(Math.max(0, fill)).fill('0'), ...t].map((g) => parseInt(g, 16).toString(16));
  return groups.length === 8 ? groups : null;
}

/** An X-Forwarded-For entry as an address: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`; else null. */
function hopAddress(entry: string): string | null {
  const e = entry.trim();
  if (isIP(e)) return plainAddress(e);
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(e);
  if (bracketed && isIP(bracketed[1]) === 6) return plainAddress(bracketed[1]);
  const v4port = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(e);
  if (v4port && isIP(v4port[1]) === 4) return v4port[1];
  return null;
}

export class ClientAddresses {
  readonly #trusted: BlockList | null;

  /** `trustProxy`: CIDRs (or single addresses) of the proxies whose X-Forwarded-For is believed. */
  constructor(trustProxy: readonly string[] = []) {
    if (trustProxy.length === 0) {
      this.#trusted = null;
      return;
    }
    this.#trusted = new BlockList();
    for (const text of trustProxy) {
      const cidr = parseCidr(text);
      if (!cidr) throw new Error(`--trust-proxy: not an IP or CIDR: ${text}`);
      this.#trusted.addSubnet(cidr.address, cidr.prefix, cidr.family);
    }
  }

  isTrusted(address: string): boolean {
    if (!this.#trusted) return false;
    const plain = plainAddress(address);
    const family = isIP(plain);
    return family !== 0 && this.#trusted.check(plain, family === 4 ? 'ipv4' : 'ipv6');
  }

  /** The client's address for this request (null when the socket has none, e.g. already closed). */
  of(req: IncomingMessage): string | null {
    const peer = req.socket.remoteAddress;
    if (peer === undefined) return null;
    if (!this.#trusted || !this.isTrusted(peer)) return peer;
    const header = req.headers['x-forwarded-for'];
    if (!header) return plainAddress(peer);
    const hops = (Array.isArray(header) ? header.join(',') : header).split(',');
    let address = plainAddress(peer);
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hopAddress(hops[i]);
      if (hop === null) return address; // garbage: believe nothing further left
      address = hop;
      if (!this.isTrusted(hop)) return hop;
    }
    return address; // every hop is a trusted proxy: the leftmost is the best we know
  }
}
