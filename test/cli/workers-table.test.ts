import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAge, formatRtt, formatWorkerTable } from '../../cli/workers-table.ts';
import type { WorkerInfo } from '../../shared/protocol.ts';

const NOW = Date.parse('2026-01-01T12:00:00.000Z');

function worker(over: Partial<WorkerInfo>): WorkerInfo {
  return {
    id: 'w',
    suite: 's',
    name: 'p',
    state: 'ready',
    concurrency: 4,
    inFlight: 0,
    connectedAt: '2026-01-01T00:00:00.000Z',
    lastPongAt: null,
    rttMs: null,
    agentVersion: null,
    remoteAddress: null,
    ...over,
  };
}

test('formatRtt and formatAge', () => {
  assert.equal(formatRtt(null), '-');
  assert.equal(formatRtt(0.04), '0.0ms');
  assert.equal(formatRtt(37.6), '38ms');
  assert.equal(formatAge(null, NOW), 'never');
  assert.equal(formatAge('2026-01-01T11:59:59.250Z', NOW), '750ms ago');
  assert.equal(formatAge('2026-01-01T11:59:48.000Z', NOW), '12s ago');
  assert.equal(formatAge('2026-01-01T11:56:55.000Z', NOW), '3m05s ago');
  assert.equal(formatAge('2026-01-01T09:50:00.000Z', NOW), '2h10m ago');
  assert.equal(formatAge('2026-01-01T12:00:05.000Z', NOW), '0ms ago', 'clock skew is not negative');
  assert.equal(formatAge('garbage', NOW), 'garbage');
});

test('rows are sorted by suite, pool, id and aligned', () => {
  const text = formatWorkerTable(
    [worker({ id: 'b', suite: 'zeta' }), worker({ id: 'a2', suite: 'acme', name: 'q', state: 'draining' }), worker({ id: 'a1', suite: 'acme', name: 'q' })],
    NOW,
  );
  const lines = text.trimEnd().split('\n');
  assert.deepEqual(lines.map((l) => l.split(/\s+/)[0]), ['ID', 'a1', 'a2', 'b']);
  const stateColumn = lines[0].indexOf('STATE');
  assert.ok(lines.every((l) => /\S/.test(l[stateColumn])), 'columns line up');
  assert.ok(!lines.some((l) => l.endsWith(' ')), 'no trailing spaces');
});

test('an empty list prints the header only; a NODE column appears for a cluster', () => {
  assert.equal(formatWorkerTable([], NOW).trimEnd().split('\n').length, 1);
  const clustered = formatWorkerTable([worker({ node: 'n1' }), worker({ id: 'x' })], NOW);
  assert.match(clustered.split('\n')[0], /ADDRESS\s+NODE$/);
  assert.match(clustered, /n1\n/);
});
