import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidAllowHostError, parseAllowlist } from '../../worker-agent/allowlist.ts';

function allowed(patterns: string[], url: string): boolean {
  return parseAllowlist(patterns).isAllowed(url);
}

test('an empty list allows everything and says so', () => {
  const list = parseAllowlist([]);
  assert.equal(list.allowsAll, true);
  assert.equal(list.isAllowed('http://anything.example:1234/x'), true);
});

test('names match names, case-insensitively, on any port', () => {
  assert.ok(allowed(['api.internal'], 'http://api.internal/x'));
  assert.ok(allowed(['API.Internal'], 'https://api.INTERNAL:8443/'));
  assert.ok(allowed(['api.internal'], 'http://api.internal./'), 'a trailing dot is the same name');
  assert.ok(!allowed(['api.internal'], 'http://x.api.internal/'));
  assert.ok(!allowed(['api.internal'], 'http://api.internal.evil.com/'));
  assert.ok(!allowed(['api.internal'], 'http://evilapi.internal/'));
});

test('*.domain matches any subdomain, not the apex', () => {
  assert.ok(allowed(['*.svc.local'], 'http://a.svc.local/'));
  assert.ok(allowed(['*.svc.local'], 'http://a.b.svc.local/'));
  assert.ok(!allowed(['*.svc.local'], 'http://svc.local/'));
  assert.ok(!allowed(['*.svc.local'], 'http://xsvc.local/'));
});

test('localhost is a name, not 127.0.0.1, and the other way round', () => {
  assert.ok(!allowed(['localhost'], 'http://127.0.0.1/'));
  assert.ok(!allowed(['127.0.0.1'], 'http://localhost/'));
  assert.ok(allowed(['localhost'], 'http://localhost:3000/'));
  assert.ok(allowed(['127.0.0.1'], 'http://127.0.0.1:3000/'));
});

test('CIDRs and IPs match IP literals only', () => {
  assert.ok(allowed(['10.0.0.0/8'], 'http://10.1.2.3/'));
  assert.ok(!allowed(['10.0.0.0/8'], 'http://11.0.0.1/'));
  assert.ok(!allowed(['10.0.0.0/8'], 'http://10.example/'));
  assert.ok(allowed(['10.0.0.0/8'], 'http://10.1.2/'), 'the URL parser reads 10.1.2 as 10.1.0.2');
  assert.ok(allowed(['127.0.0.0/8'], 'http://0x7f.1/'), 'hex IPv4 is normalised before matching');
  assert.ok(allowed(['fd00::/8'], 'http://[fd12::1]/'));
  assert.ok(allowed(['[fd00::/8]'], 'http://[fd12::1]/'));
  assert.ok(!allowed(['fd00::/8'], 'http://[fe80::1]/'));
});

test('IPv6 literals, bracketed or not', () => {
  assert.ok(allowed(['::1'], 'http://[::1]:8080/'));
  assert.ok(allowed(['[::1]'], 'http://[0:0::1]/'));
  assert.ok(!allowed(['::1'], 'http://localhost/'));
});

test('host:port also requires the port, with the scheme default when none is written', () => {
  assert.ok(allowed(['api.internal:8080'], 'http://api.internal:8080/'));
  assert.ok(!allowed(['api.internal:8080'], 'http://api.internal/'));
  assert.ok(allowed(['api.internal:80'], 'http://api.internal/'));
  assert.ok(allowed(['api.internal:443'], 'https://api.internal/'));
  assert.ok(!allowed(['api.internal:443'], 'http://api.internal/'));
  assert.ok(allowed(['[::1]:8080'], 'http://[::1]:8080/'));
  assert.ok(!allowed(['[::1]:8080'], 'http://[::1]:8081/'));
  assert.ok(allowed(['10.0.0.0/8:443'], 'https://10.9.9.9/'));
  assert.ok(allowed(['*.svc.local:9000'], 'http://a.svc.local:9000/'));
});

test('any pattern of several may match', () => {
  const list = parseAllowlist(['api.internal', '10.0.0.0/8']);
  assert.equal(list.allowsAll, false);
  assert.ok(list.isAllowed('http://10.0.0.1/'));
  assert.ok(list.isAllowed('http://api.internal/'));
  assert.ok(!list.isAllowed('http://example.com/'));
  assert.ok(!list.isAllowed('not a url'));
});

test('invalid patterns throw a typed error naming the pattern', () => {
  for (const bad of ['', ' ', 'http://api.internal', '10.0.0.0/33', 'fd00::/129', '10.0.0.0/x', 'api.internal:0', 'api.internal:99999',
    'api.internal:http', '[::1', '[api.internal]', '1:2:3', '*', '*.', 'a.*.b', 'bad host', 'under/score', '10.0.0', '1.2.3.4.5']) {
    assert.throws(() => parseAllowlist([bad]), (e: unknown) => e instanceof InvalidAllowHostError && e.pattern === bad && e.message.includes('--allow-host'), bad);
  }
});
