/**
 * Properties of the agent's egress decision for URL hosts, without I/O: every spelling of
 * a denied IPv4 address (dotted, one number, hex, octal, shortened, IPv4-mapped IPv6 in
 * several forms, with userinfo) is refused without --allow-host; every address outside the
 * denied ranges is admitted; IPv6 patterns never admit an IPv4 host.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseAllowlist, targetHostOf } from '../../worker-agent/allowlist.ts';
import { checkAddresses, deniedKind, normalizeIp } from '../../worker-agent/egress.ts';

const RUNS = { numRuns: Number(process.env.FUZZ_RUNS ?? 400) };

/** The decision the job runner takes for an IP-literal URL: allowlist, then the policy. */
function refused(url: string, patterns: string[] = []): boolean {
  const allow = parseAllowlist(patterns);
  if (!allow.isAllowed(url)) return true;
  const target = targetHostOf(url);
  assert.ok(target && target.ipVersion !== 0, `not an IP literal: ${url}`);
  return checkAddresses(target.host, target.port, [{ address: target.host, version: target.ipVersion }], allow) !== null;
}

const octets = (n: number): number[] => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];

/** Ways the WHATWG URL parser accepts one IPv4 address. */
function spellings(n: number): string[] {
  const [a, b, c, d] = octets(n);
  const hex = (x: number): string => `0x${x.toString(16)}`;
  const oct = (x: number): string => `0${x.toString(8)}`;
  const g6 = (x: number, y: number): string => ((x << 8) | y).toString(16);
  return [
    `${a}.${b}.${c}.${d}`,
    String(n),
    hex(n),
    `${oct(a)}.${oct(b)}.${oct(c)}.${oct(d)}`,
    `${hex(a)}.${b}.${hex(c)}.${d}`,
    `${a}.${(b << 16) | (c << 8) | d}`,
    `${a}.${b}.${(c << 8) | d}`,
    `[::ffff:${a}.${b}.${c}.${d}]`,
    `[::ffff:${g6(a, b)}:${g6(c, d)}]`,
    `[0:0:0:0:0:ffff:${a}.${b}.${c}.${d}]`,
    `[0000::FFFF:${g6(a, b)}:${g6(c, d)}]`,
    `user:pass@${a}.${b}.${c}.${d}`,
    `allowed.example@${n}`,
  ];
}

const deniedV4 = fc.oneof(
  fc.integer({ min: 0x7f000000, max: 0x7fffffff }), // 127/8
  fc.integer({ min: 0xa9fe0000, max: 0xa9feffff }), // 169.254/16
  fc.integer({ min: 0, max: 0x00ffffff }), // 0/8
);
const openV4 = fc.integer({ min: 0, max: 0xffffffff }).filter((n) => deniedKind({ address: octets(n).join('.'), version: 4 }) === null);

test('every spelling of a denied IPv4 address is refused without --allow-host, and with wide patterns', () => {
  fc.assert(
    fc.property(deniedV4, fc.constantFrom('http', 'https'), fc.integer({ min: 1, max: 65535 }), (n, scheme, port) => {
      for (const host of spellings(n)) {
        const url = `${scheme}://${host}:${port}/x`;
        assert.ok(refused(url), url);
        assert.ok(refused(url, ['0.0.0.0/0', '::/0']), `${url} with wide patterns`);
      }
    }),
    RUNS,
  );
});

test('a denied address named by an IP pattern is admitted in every spelling; other ports are not', () => {
  fc.assert(
    fc.property(deniedV4, fc.integer({ min: 1, max: 65534 }), (n, port) => {
      const dotted = octets(n).join('.');
      for (const host of spellings(n)) {
        assert.ok(!refused(`http://${host}:${port}/`, [`${dotted}:${port}`]), host);
        assert.ok(refused(`http://${host}:${port + 1}/`, [`${dotted}:${port}`]), `${host} other port`);
      }
    }),
    RUNS,
  );
});

test('addresses outside the denied ranges pass the policy; IPv6 patterns never admit them', () => {
  fc.assert(
    fc.property(openV4, (n) => {
      for (const host of spellings(n)) {
        assert.ok(!refused(`http://${host}/`), host);
        assert.ok(refused(`http://${host}/`, ['::/0']), `${host} under ::/0`);
      }
    }),
    RUNS,
  );
});

test('normalizeIp never throws and maps every ::ffff: form to the same IPv4 address', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => {
      const dotted = octets(n).join('.');
      const [a, b, c, d] = octets(n);
      const g6 = (x: number, y: number): string => ((x << 8) | y).toString(16);
      for (const form of [`::ffff:${dotted}`, `::ffff:${g6(a, b)}:${g6(c, d)}`, `0:0:0:0:0:ffff:${g6(a, b)}:${g6(c, d)}`]) {
        assert.deepEqual(normalizeIp(form), { address: dotted, version: 4 }, form);
      }
    }),
    RUNS,
  );
  fc.assert(fc.property(fc.string(), (s) => void normalizeIp(s)), RUNS);
});
