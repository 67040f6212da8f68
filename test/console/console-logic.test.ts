import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tokenFromProtocols } from '../../server/console/console-gateway.ts';
import { maskHeaders, previewBody, recordJob } from '../../server/console/job-record.ts';
import { isOriginAllowed, normalizeOrigin } from '../../server/console/origin.ts';
import { PoolMemory, RateWindow, whyNot } from '../../server/console/pool-view.ts';

test('origin: the server’s own scheme, host and port, or a listed origin; null and everything else are foreign', () => {
  const ctx = { host: '127.0.0.1:8080', https: false, allowed: ['https://Dash.Example', 'null-not-really'] };
  assert.equal(isOriginAllowed('http://127.0.0.1:8080', ctx), true);
  assert.equal(isOriginAllowed('http://127.0.0.1:8081', ctx), false);
  assert.equal(isOriginAllowed('https://127.0.0.1:8080', ctx), false);
  assert.equal(isOriginAllowed('http://localhost:8080', ctx), false);
  assert.equal(isOriginAllowed('null', ctx), false);
  assert.equal(isOriginAllowed('https://dash.example:443', ctx), true, 'default port and case normalized');
  assert.equal(isOriginAllowed('http://dash.example', ctx), false);
  assert.equal(isOriginAllowed('http://example.com', { host: 'example.com:80', https: false, allowed: [] }), true);
  assert.equal(isOriginAllowed('https://example.com', { host: 'example.com', https: true, allowed: [] }), true, 'behind a TLS proxy');
  assert.equal(isOriginAllowed('http://example.com', { host: undefined, https: false, allowed: [] }), false, 'no Host header');
  assert.equal(isOriginAllowed('null', { host: 'x', https: false, allowed: ['null'] }), true, 'null only when listed verbatim');
  assert.equal(normalizeOrigin(' HTTP://A.example:80 '), 'http://a.example');
});

test('why not: no workers, all draining, all full (and queued), or nothing in the way', () => {
  const p = { suite: 's', pool: 'p', ready: 0, draining: 0, freeSlots: 0, queued: 0 };
  assert.equal(whyNot(p), 'no workers');
  assert.equal(whyNot({ ...p, draining: 2 }), 'all 2 draining');
  assert.equal(whyNot({ ...p, ready: 1 }), 'all full');
  assert.equal(whyNot({ ...p, ready: 1, queued: 7 }), 'all full and 7 queued');
  assert.equal(whyNot({ ...p, ready: 1, draining: 1, freeSlots: 3 }), null);
});

test('pool memory: current pools plus the most recent gone ones, bounded', () => {
  const m = new PoolMemory(2);
  m.see('s', 'a');
  m.see('s', 'b');
  m.see('s', 'c'); // forgets a
  const views = m.views([{ suite: 's', pool: 'live', ready: 1, draining: 0, freeSlots: 1, queued: 0 }]);
  assert.deepEqual(views.map((v) => [v.pool, v.whyNot]), [['c', 'no workers'], ['live', null]]);
});

test('rate window: jobs/s and error rate over the last seconds, nothing older', () => {
  const t0 = 1_000_000;
  const w = new RateWindow(10, t0);
  for (let i = 0; i < 20; i++) w.record(t0 + 100 + i * 10, i % 4 === 0);
  assert.deepEqual(w.read(t0 + 500), { jobsPerSec: 20, errorRate: 0.25 }, 'under a second counts as one');
  assert.deepEqual(w.read(t0 + 4000), { jobsPerSec: 5, errorRate: 0.25 });
  assert.deepEqual(w.read(t0 + 60_000), { jobsPerSec: 0, errorRate: null });
});

test('masking: credentials by name in any case, lists too; other values kept, long ones cut', () => {
  const masked = maskHeaders({ AUTHORIZATION: 'Bearer x', Cookie: 'a=b', 'set-cookie': ['c=d', 'e=f'], 'proxy-authorization': 'Basic y', accept: 'text/html', long: 'v'.repeat(5000) });
  assert.deepEqual({ ...masked, long: undefined }, { AUTHORIZATION: '[masked]', Cookie: '[masked]', 'set-cookie': '[masked]', 'proxy-authorization': '[masked]', accept: 'text/html', long: undefined });
  assert.equal((masked.long as string).length, 1025);
});

test('body preview: JSON by content type or shape, binary by size only, text cut', () => {
  assert.deepEqual(previewBody('[1]', 'utf8', undefined), { kind: 'json', bytes: 3, text: '[1]', truncated: false });
  assert.equal(previewBody('x', 'utf8', 'application/problem+json').kind, 'json');
  assert.deepEqual(previewBody('aGVsbG8=', 'base64', 'text/plain'), { kind: 'binary', bytes: 5, truncated: false });
  assert.deepEqual(previewBody('héllo', undefined, 'text/plain'), { kind: 'text', bytes: 6, text: 'héllo', truncated: false });
  const long = previewBody('y'.repeat(10_000), 'utf8', 'text/plain');
  assert.deepEqual({ ...long, text: long.text?.length }, { kind: 'text', bytes: 10_000, text: 8192, truncated: true });
});

test('a job record carries no credential anywhere', () => {
  const d = recordJob(1, {
    id: 'j1', suite: 's', pool: 'p', workerId: 'w1', acceptedAt: 1, durationMs: 2, outcome: 'ok',
    request: { method: 'GET', url: 'http://t/', headers: { authorization: 'Bearer top-secret' } },
    response: { status: 200, headers: { 'Set-Cookie': 'sid=top-secret' }, body: '', bodyEncoding: 'utf8' },
    error: null,
  }, false);
  assert.ok(!JSON.stringify(d).includes('top-secret'));
  assert.equal(d.status, 200);
});

test('the token subprotocol entry is base64url; anything else carries no token', () => {
  const b64 = Buffer.from('tok en/+=ü').toString('base64url');
  assert.equal(tokenFromProtocols(['flowtest.console.v1', `token.${b64}`]), 'tok en/+=ü');
  assert.equal(tokenFromProtocols(['flowtest.console.v1']), undefined);
  assert.equal(tokenFromProtocols(['token.']), undefined);
  assert.equal(tokenFromProtocols(['token.a+b']), undefined);
});
