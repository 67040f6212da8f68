/**
 * The console page's formatting (server/console/static/format.js) under node:test.
 * The functions that build DOM nodes are left to the browser tests.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fmtAddress, fmtAge, fmtBytes, fmtClock, fmtMs, fmtRate, shortId, whyLevel } from '../../server/console/static/format.js';

test('format: durations in ms below a second, seconds above, a dash when unknown', () => {
  assert.equal(fmtMs(null), '–');
  assert.equal(fmtMs(undefined), '–');
  assert.equal(fmtMs(0), '0.0 ms');
  assert.equal(fmtMs(9.94), '9.9 ms');
  assert.equal(fmtMs(10), '10 ms');
  assert.equal(fmtMs(999.4), '999 ms');
  assert.equal(fmtMs(1000), '1.00 s');
  assert.equal(fmtMs(9_999), '10.00 s');
  assert.equal(fmtMs(12_345), '12.3 s');
});

test('format: ages round down to the unit people read; a clock ahead of ours is "0 s ago"', () => {
  assert.equal(fmtAge(-5000), '0 s ago');
  assert.equal(fmtAge(59_999), '59 s ago');
  assert.equal(fmtAge(60_000), '1 min ago');
  assert.equal(fmtAge(3_600_000 + 25 * 60_000), '1 h 25 min ago');
  assert.equal(fmtAge(3 * 86_400_000), '3 d ago');
});

test('format: sizes in B, KiB and MiB', () => {
  assert.equal(fmtBytes(0), '0 B');
  assert.equal(fmtBytes(1023), '1023 B');
  assert.equal(fmtBytes(1024), '1.0 KiB');
  assert.equal(fmtBytes(1536), '1.5 KiB');
  assert.equal(fmtBytes(5 * 1024 * 1024), '5.0 MiB');
});

test('format: clock times with milliseconds, in local time', () => {
  const at = new Date(2026, 0, 2, 3, 4, 5, 6).getTime();
  assert.equal(fmtClock(at), '03:04:05.006');
});

test('format: rates as percentages, small ones with a decimal', () => {
  assert.equal(fmtRate(null), '–');
  assert.equal(fmtRate(undefined), '–');
  assert.equal(fmtRate(0), '0%');
  assert.equal(fmtRate(0.005), '0.5%');
  assert.equal(fmtRate(0.25), '25%');
  assert.equal(fmtRate(1), '100%');
});

test('format: ids cut to 8, IPv4-mapped addresses shown as IPv4, why-not levels', () => {
  assert.equal(shortId('abcdefghijkl'), 'abcdefgh');
  assert.equal(shortId(null), '–');
  assert.equal(fmtAddress('::ffff:10.0.0.5'), '10.0.0.5');
  assert.equal(fmtAddress('::1'), '::1');
  assert.equal(fmtAddress(null), '–');
  assert.equal(whyLevel(null), 'ok');
  assert.equal(whyLevel('all full and 3 queued'), 'warn');
  assert.equal(whyLevel('no workers'), 'bad');
  assert.equal(whyLevel('all 2 draining'), 'bad');
});
