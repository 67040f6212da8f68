/** Shutdown's bounded wait for a table to empty: ends on `emptied()` or at its bound, and leaves no timer. */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { EmptyWait } from '../../server/empty-wait.ts';

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

test('empty wait: resolves at once for an empty table, on emptied(), or at its bound; its timer is cleared on every exit', async () => {
  const before = timers();
  const w = new EmptyWait();
  await w.until(true, 60_000);
  assert.equal(timers(), before, 'no timer for an empty table');

  const waiting = w.until(false, 60_000);
  assert.equal(timers(), before + 1);
  w.emptied();
  await waiting;
  assert.equal(timers(), before, 'the bound is cleared when the table empties');

  const started = performance.now();
  await w.until(false, 50);
  assert.ok(performance.now() - started >= 45, 'waits up to its bound');
  assert.equal(timers(), before);
  w.emptied(); // after the wait: does nothing
});
