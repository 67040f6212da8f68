import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { bearerToken, TokenStore } from '../../server/auth.ts';

const store = new TokenStore({
  admin: ['admin-admin-admin-0'],
  suites: { acme: { worker: ['w-acme-token-0123'], client: ['c-acme-token-0123'] }, beta: { client: ['c-beta-token-0123', 'c-acme-token-0123'] } },
});

test('roles: admin everywhere, worker and client only in their suites and roles', () => {
  assert.equal(store.check('admin-admin-admin-0', { role: 'admin' }), 'ok');
  assert.equal(store.check('admin-admin-admin-0', { role: 'worker', suite: 'zzz' }), 'ok');
  assert.equal(store.check('w-acme-token-0123', { role: 'worker', suite: 'acme', pool: 'p' }), 'ok');
  assert.equal(store.check('w-acme-token-0123', { role: 'client', suite: 'acme' }), 'forbidden');
  assert.equal(store.check('w-acme-token-0123', { role: 'worker', suite: 'beta' }), 'forbidden');
  assert.equal(store.check('c-acme-token-0123', { role: 'client', suite: 'beta' }), 'ok', 'one token in two suites');
  assert.equal(store.check('c-beta-token-0123', { role: 'client', suite: 'acme' }), 'forbidden');
  assert.equal(store.check('c-beta-token-0123', { role: 'admin' }), 'forbidden');
  assert.equal(store.check(undefined, { role: 'admin' }), 'unauthorized');
  assert.equal(store.check('', { role: 'admin' }), 'unauthorized');
  assert.equal(store.check('admin-admin-admin-O', { role: 'admin' }), 'unauthorized');
});

test('bearerToken parses the Authorization header', () => {
  assert.equal(bearerToken('Bearer abc'), 'abc');
  assert.equal(bearerToken('bearer   abc '), 'abc');
  assert.equal(bearerToken('Basic abc'), undefined);
  assert.equal(bearerToken(undefined), undefined);
  assert.equal(bearerToken('Bearer a b'), undefined);
});

test('tokens file: valid file loads; bad files name the problem', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flowtest-auth-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.json');
  writeFileSync(good, JSON.stringify({ admin: ['admin-file-token-0123'], suites: { acme: { worker: ['worker-file-token-0123'] } } }));
  assert.equal(TokenStore.fromFile(good).check('worker-file-token-0123', { role: 'worker', suite: 'acme' }), 'ok');
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ suites: { 'bad suite': { worker: ['worker-file-token-0123'] } } }));
  assert.throws(() => TokenStore.fromFile(bad), /suites/);
  writeFileSync(bad, JSON.stringify({ admin: ['short'] }));
  assert.throws(() => TokenStore.fromFile(bad), /admin\.0: tokens must have at least 16/);
  writeFileSync(bad, '{');
  assert.throws(() => TokenStore.fromFile(bad), /bad\.json/);
  assert.throws(() => TokenStore.fromFile(join(dir, 'missing.json')), /missing\.json/);
});

test('dev tokens: admin, and worker and client for suite default', () => {
  const { store: dev, tokens } = TokenStore.generateDev();
  assert.equal(dev.check(tokens.admin, { role: 'admin' }), 'ok');
  assert.equal(dev.check(tokens.worker, { role: 'worker', suite: 'default' }), 'ok');
  assert.equal(dev.check(tokens.client, { role: 'client', suite: 'default' }), 'ok');
  assert.equal(dev.check(tokens.client, { role: 'client', suite: 'other' }), 'forbidden');
  assert.notEqual(TokenStore.generateDev().tokens.admin, tokens.admin);
});
