import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKOFF } from '../../shared/limits.ts';
import { Backoff, fullJitterDelayMs } from '../../worker-agent/backoff.ts';

const justBelowOne = () => 0.999_999;

test('the ceiling starts at 0.5 s and doubles up to 30 s', () => {
  const b = new Backoff({ random: justBelowOne });
  const delays = Array.from({ length: 10 }, () => b.nextDelayMs());
  assert.deepEqual(delays, [499, 999, 1999, 3999, 7999, 15_999, 29_999, 29_999, 29_999, 29_999]);
});

test('full jitter: the delay is uniform below the ceiling, 0 included', () => {
  assert.equal(fullJitterDelayMs(3, { ...BACKOFF, random: () => 0 }), 0);
  assert.equal(fullJitterDelayMs(3, { ...BACKOFF, random: () => 0.5 }), 2000);
  for (let i = 0; i < 200; i += 1) {
    const d = fullJitterDelayMs(2, { ...BACKOFF, random: Math.random });
    assert.ok(d >= 0 && d < 2000, `delay ${d}`);
  }
});

test('huge attempt counts stay finite and capped', () => {
  assert.equal(fullJitterDelayMs(10_000, { ...BACKOFF, random: justBelowOne }), 29_999);
});

test('a connection that lived 10 s resets the sequence; a shorter one does not', () => {
  const b = new Backoff({ random: justBelowOne });
  b.nextDelayMs();
  b.nextDelayMs();
  b.connectionEnded(BACKOFF.resetAfterMs - 1);
  assert.equal(b.attempt, 2);
  assert.equal(b.nextDelayMs(), 1999);
  b.connectionEnded(BACKOFF.resetAfterMs);
  assert.equal(b.attempt, 0);
  assert.equal(b.nextDelayMs(), 499);
});
