/**
 * Auth-failure back-off and --trust-proxy (contract "Security (v1.1)", Connections): more
 * than 20 failed authentications (401) from one address in 10 s → 429 rate_limited with
 * Retry-After for the next 10 s, on the HTTP API and at socket handshakes alike; behind a
 * trusted proxy the address is the X-Forwarded-For client.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import WebSocket from 'ws';
import { AuthBackoff } from '../../server/auth-backoff.ts';
import type { AuthFailure } from '../../server/auth-guard.ts';
import { backoffKey, ClientAddresses, parseCidr } from '../../server/client-address.ts';
import { PROTOCOL_VERSION } from '../../shared/limits.ts';
import { FakeAgent, handshakeStatus } from '../helpers/fake-agent.ts';
import { startTestServer, TOKENS } from '../helpers/server.ts';

test('back-off: the 21st failure within 10 s blocks for 10 s; then the count starts afresh', () => {
  let now = 0;
  const b = new AuthBackoff({ maxFailures: 20, windowMs: 10_000, blockMs: 10_000, maxEntries: 100 }, () => now);
  for (let i = 0; i < 20; i++) {
    b.fail('a');
    now += 100;
  }
  assert.equal(b.blockedForMs('a'), 0);
  assert.deepEqual(b.fail('a'), { first: false, blocked: true });
  assert.equal(b.blockedForMs('a'), 10_000);
  assert.equal(b.blockedForMs('b'), 0, 'other addresses are not affected');
  now += 9_999;
  assert.equal(b.blockedForMs('a'), 1);
  now += 1;
  assert.equal(b.blockedForMs('a'), 0);
  for (let i = 0; i < 20; i++) b.fail('a');
  assert.equal(b.blockedForMs('a'), 0);
});

test('back-off: failures spread over more than 10 s never block', () => {
  let now = 0;
  const b = new AuthBackoff({ maxFailures: 20, windowMs: 10_000, blockMs: 10_000, maxEntries: 100 }, () => now);
  for (let i = 0; i < 200; i++) {
    assert.equal(b.fail('a').blocked, false, `failure ${i}`);
    now += 600;
  }
});

test('back-off: memory is bounded by the entry cap and expiry', () => {
  let now = 0;
  const b = new AuthBackoff({ maxFailures: 20, windowMs: 10_000, blockMs: 10_000, maxEntries: 1000 }, () => now);
  for (let i = 0; i < 50_000; i++) b.fail(`10.0.${i >> 8}.${i & 255}`);
  assert.equal(b.size, 1000);
  now += 10_001;
  b.blockedForMs('x');
  assert.equal(b.size, 0, 'expired entries are dropped');
});

test('client address: X-Forwarded-For only from trusted peers, rightmost untrusted hop', () => {
  const req = (peer: string, xff?: string | string[]) => ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;
  const none = new ClientAddresses();
  assert.equal(none.of(req('10.0.0.1', '1.2.3.4')), '10.0.0.1', 'ignored without --trust-proxy');
  const trust = new ClientAddresses(['10.0.0.0/8', '::1']);
  assert.equal(trust.of(req('192.0.2.7', '1.2.3.4')), '192.0.2.7', 'ignored from an untrusted peer');
  assert.equal(trust.of(req('10.0.0.1', '1.2.3.4')), '1.2.3.4');
  assert.equal(trust.of(req('::ffff:10.0.0.1', '6.6.6.6, 1.2.3.4, 10.9.9.9')), '1.2.3.4', 'a spoofed left part is skipped');
  assert.equal(trust.of(req('::1', ['6.6.6.6', '1.2.3.4:5678'])), '1.2.3.4', 'several headers, a port');
  assert.equal(trust.of(req('10.0.0.1', '[2001:db8::1]:443')), '2001:db8::1');
  assert.equal(trust.of(req('10.0.0.1', 'garbage, 1.2.3.4')), '1.2.3.4');
  assert.equal(trust.of(req('10.0.0.1', '1.2.3.4, garbage')), '10.0.0.1', 'garbage in the trusted part: the peer itself');
  assert.equal(trust.of(req('10.0.0.1', '10.0.0.2, 10.0.0.3')), '10.0.0.2', 'all trusted: the leftmost');
  assert.equal(trust.of(req('10.0.0.1')), '10.0.0.1');
  assert.equal(parseCidr('10.0.0.0/33'), null);
  assert.equal(parseCidr('nope'), null);
  assert.deepEqual(parseCidr('fd00::/8'), { address: 'fd00::', prefix: 8, family: 'ipv6' });
  assert.equal(backoffKey('::ffff:1.2.3.4'), '1.2.3.4');
  assert.equal(backoffKey('2001:db8:1:2:aaaa::1'), backoffKey('2001:db8:1:2:bbbb::9'), 'one /64, one key');
  assert.notEqual(backoffKey('2001:db8:1:2::1'), backoffKey('2001:db8:1:3::1'));
});

test('HTTP and handshakes: 21 bad tokens from one address → 429 rate_limited with Retry-After, even for a good token', async (t) => {
  const s = await startTestServer(t);
  const failures: AuthFailure[] = [];
  t.after(s.auth.onFailure((f) => failures.push(f)));
  const get = (token: string) => fetch(`${s.url}/v1/workers`, { headers: { authorization: `Bearer ${token}` } });

  for (let i = 0; i < 30; i++) assert.equal((await get(TOKENS.client)).status, 403, '403s do not count');
  for (let i = 0; i < 20; i++) assert.equal((await get(`wrong-token-${i}-xxxxxxxx`)).status, 401);
  assert.equal((await get(TOKENS.admin)).status, 200, '20 failures are allowed');
  assert.equal((await get('wrong-token-21-xxxxxxxxx')).status, 401);

  const blocked = await get(TOKENS.admin);
  assert.equal(blocked.status, 429);
  assert.equal(((await blocked.json()) as { error: { code: string } }).error.code, 'rate_limited');
  const retryAfter = Number(blocked.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= 10, `Retry-After ${retryAfter}`);
  const dispatch = await fetch(`${s.url}/v1/suites/acme/dispatch`, { method: 'POST', headers: { authorization: `Bearer ${TOKENS.client}` }, body: '{}' });
  assert.equal(dispatch.status, 429);
  const q = new URLSearchParams({ suite: 'acme', name: 'p', concurrency: '1' });
  assert.equal(await handshakeStatus(`${s.wsUrl}/v1/workers/connect?${q}`, [PROTOCOL_VERSION], { authorization: `Bearer ${TOKENS.worker}` }), 429);
  assert.equal((await fetch(`${s.url}/console/auth`, { headers: { authorization: `Bearer ${TOKENS.admin}` } })).status, 429);
  assert.equal((await fetch(`${s.url}/healthz`)).status, 200, 'routes without a token are not blocked');

  assert.equal(failures.filter((f) => f.kind === 'forbidden').length, 30);
  assert.equal(failures.filter((f) => f.kind === 'unauthorized').length, 21);
  assert.ok(failures.filter((f) => f.kind === 'rate_limited').length >= 4);
  assert.ok(failures.some((f) => f.detail.path === '/v1/workers/connect') && failures.some((f) => f.detail.path === '/console/auth'));
  // Refusals logged once per address per interval (the refusal log), plus the block.
  assert.equal(s.logLines.filter((l) => l.includes('"msg":"refused"')).length, 1);
  assert.equal(s.logLines.filter((l) => l.includes('address rate limited')).length, 1);
  assert.ok(!s.logLines.some((l) => l.includes('wrong-token')), 'no presented token in the log');
});

test('socket handshakes count toward the same back-off', async (t) => {
  const s = await startTestServer(t);
  const q = new URLSearchParams({ suite: 'acme', name: 'p', concurrency: '1' });
  for (let i = 0; i < 21; i++) assert.equal(await handshakeStatus(`${s.wsUrl}/v1/workers/connect?${q}`, [PROTOCOL_VERSION], { authorization: `Bearer bad-token-${i}-xxxxxxxxx` }), 401);
  assert.equal(await handshakeStatus(`${s.wsUrl}/v1/workers/connect?${q}`, [PROTOCOL_VERSION], { authorization: `Bearer ${TOKENS.worker}` }), 429);
  assert.equal((await fetch(`${s.url}/v1/workers`, { headers: { authorization: `Bearer ${TOKENS.admin}` } })).status, 429);
});

test('--trust-proxy: the back-off and the listing use the forwarded client; without it the header is ignored', async (t) => {
  const proxied = await startTestServer(t, { trustProxy: ['127.0.0.1/32'] });
  const get = (s: { url: string }, token: string, xff: string) => fetch(`${s.url}/v1/workers`, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': xff } });
  for (let i = 0; i < 21; i++) await get(proxied, 'bad-token-xxxxxxxxxxxx', '203.0.113.5');
  assert.equal((await get(proxied, TOKENS.admin, '203.0.113.5')).status, 429, 'the forwarded client is blocked');
  assert.equal((await get(proxied, TOKENS.admin, '203.0.113.6')).status, 200, 'not the proxy, not other clients');
  assert.ok(proxied.logLines.some((l) => l.includes('"remoteAddress":"203.0.113.5"')));

  const ws = new WebSocket(`${proxied.wsUrl}/v1/workers/connect?suite=acme&name=p&concurrency=1`, PROTOCOL_VERSION, {
    headers: { authorization: `Bearer ${TOKENS.worker}`, 'x-forwarded-for': '198.51.100.9' },
  });
  t.after(() => ws.terminate());
  const agent = new FakeAgent(ws);
  await agent.next('welcome');
  assert.equal(proxied.router.listWorkers('acme')[0].remoteAddress, '198.51.100.9');

  const direct = await startTestServer(t);
  for (let i = 0; i < 21; i++) await get(direct, 'bad-token-xxxxxxxxxxxx', `203.0.113.${i}`);
  assert.equal((await get(direct, TOKENS.admin, '203.0.113.99')).status, 429, 'a spoofed header does not dodge the back-off');
});
