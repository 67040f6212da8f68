/**
 * Console masking (contract "Security (v1.1)"): besides authorization, cookie, set-cookie
 * and proxy-authorization, the console masks x-api-key, private-token, headers named in
 * --console-mask-header, URL userinfo passwords and query-string values.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { headerMask, MASK, maskHeaders, maskUrl, recordJob, responseView } from '../../server/console/job-record.ts';
import type { JobSummary } from '../../server/router-events.ts';
import { startTestServer } from '../helpers/server.ts';

test('headers: credential headers in any case, and the operator\'s own', () => {
  const headers = { 'X-Api-Key': 'k1', 'PRIVATE-TOKEN': 'glpat-1', Authorization: 'Bearer t', 'x-tenant-secret': 's', accept: '*/*' };
  assert.deepEqual(maskHeaders(headers), { 'X-Api-Key': MASK, 'PRIVATE-TOKEN': MASK, Authorization: MASK, 'x-tenant-secret': 's', accept: '*/*' });
  const mask = headerMask(['X-Tenant-Secret']);
  assert.deepEqual(maskHeaders(headers, undefined, mask), { 'X-Api-Key': MASK, 'PRIVATE-TOKEN': MASK, Authorization: MASK, 'x-tenant-secret': MASK, accept: '*/*' });
  assert.deepEqual(maskHeaders({ 'X-Tenant-Secret': ['a', 'b'] }, undefined, mask), { 'X-Tenant-Secret': MASK }, 'every value of an array');
});

test('URLs: userinfo password, query values and fragment values masked; the rest readable', () => {
  assert.equal(maskUrl('https://user:hunter2@api.internal:8443/v1/x?api_key=abc&page=2#access_token=zz'), `https://user:${MASK}@api.internal:8443/v1/x?api_key=${MASK}&page=${MASK}#access_token=${MASK}`);
  assert.equal(maskUrl('http://api.internal/path'), 'http://api.internal/path', 'nothing to mask: unchanged');
  assert.equal(maskUrl('http://user@api.internal/'), 'http://user@api.internal/', 'a user name alone is not a secret');
  assert.equal(maskUrl('http://:pw@h/'), `http://:${MASK}@h/`);
  assert.equal(maskUrl('http://h/?SECRETVALUE'), `http://h/?${MASK}`, 'an item without = is masked whole');
  assert.equal(maskUrl('http://h/?a=1&&b='), `http://h/?a=${MASK}&&b=${MASK}`);
  assert.equal(maskUrl('http://h/?sig=a%2Fb%3D'), `http://h/?sig=${MASK}`);
  assert.equal(maskUrl('not a url'), MASK);
  for (const secret of ['hunter2', 'abc', 'zz']) assert.ok(!maskUrl('https://user:hunter2@h/?k=abc#t=zz').includes(secret));
});

test('a job record masks its URL, request and response headers', () => {
  const job: JobSummary = {
    id: 'j1', suite: 'acme', pool: 'p', workerId: 'w1', acceptedAt: Date.now(), durationMs: 3, outcome: 'ok',
    request: { method: 'GET', url: 'https://u:pw@h/x?token=t0p', headers: { 'x-api-key': 'k-secret', 'x-custom': 'c-secret' } },
    response: { status: 200, headers: { 'private-token': 'p-secret', 'x-custom': 'c-secret', 'set-cookie': ['a=b-secret'] }, body: 'ok', bodyEncoding: 'utf8' },
    error: null,
  };
  const d = recordJob(1, job, false, undefined, headerMask(['x-custom']));
  assert.equal(d.url, `https://u:${MASK}@h/x?token=${MASK}`);
  assert.equal(d.request.url, d.url);
  assert.deepEqual(d.request.headers, { 'x-api-key': MASK, 'x-custom': MASK });
  assert.deepEqual(d.response?.headers, { 'private-token': MASK, 'x-custom': MASK, 'set-cookie': MASK });
  const text = JSON.stringify(d);
  for (const secret of ['pw@', 't0p', 'secret']) assert.ok(!text.includes(secret), secret);
  assert.deepEqual(responseView(job.response!, undefined, headerMask(['X-Custom'])).headers, { 'private-token': MASK, 'x-custom': MASK, 'set-cookie': MASK });
});

test('--console-mask-header reaches the console', async (t) => {
  const s = await startTestServer(t, { consoleMaskHeader: ['X-Tenant-Secret'] });
  assert.deepEqual(s.console.options.maskHeaders, ['X-Tenant-Secret']);
});
