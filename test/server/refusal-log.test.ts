/** Refusals: every one counted, one info line per address per interval, a bounded memory. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_REFUSAL_ADDRESSES, RefusalLog } from '../../server/refusal-log.ts';

function fixture(intervalMs = 1000) {
  let now = 0;
  const lines: Record<string, unknown>[] = [];
  const counted: string[] = [];
  const log = new RefusalLog(
    { authFailed: (kind, transport) => void counted.push(`${kind}/${transport}`) },
    { info: ((obj: Record<string, unknown>) => void lines.push(obj)) as never },
    intervalMs,
    () => now,
  );
  return { log, lines, counted, advance: (ms: number) => (now += ms) };
}

test('one line per address per interval, with the refusals suppressed since', () => {
  const f = fixture();
  f.log.refused('unauthorized', 'http', '10.0.0.1');
  f.log.refused('forbidden', 'http', '10.0.0.1');
  f.log.refused('unauthorized', 'socket', '10.0.0.1');
  f.log.refused('unauthorized', 'http', '10.0.0.2');
  assert.equal(f.lines.length, 2);
  assert.deepEqual(f.counted, ['unauthorized/http', 'forbidden/http', 'unauthorized/socket', 'unauthorized/http']);
  f.advance(999);
  f.log.refused('rate_limited', 'http', '10.0.0.1');
  assert.equal(f.lines.length, 2);
  f.advance(1);
  f.log.refused('unauthorized', 'http', '10.0.0.1', { path: '/v1/workers' });
  assert.equal(f.lines.length, 3);
  assert.deepEqual(f.lines[2], { kind: 'unauthorized', transport: 'http', remoteAddress: '10.0.0.1', path: '/v1/workers', suppressedSinceLast: 3 });
});

test('addresses whose interval is over are forgotten; the map never passes its cap', () => {
  const f = fixture();
  for (let i = 0; i < 100; i++) f.log.refused('unauthorized', 'http', `10.0.${i >> 8}.${i & 255}`);
  assert.equal(f.log.size, 100);
  f.advance(1000);
  f.log.refused('unauthorized', 'http', '192.0.2.1');
  assert.equal(f.log.size, 1);

  const g = fixture(60_000);
  for (let i = 0; i < MAX_REFUSAL_ADDRESSES + 500; i++) g.log.refused('unauthorized', 'http', `a${i}`);
  assert.equal(g.log.size, MAX_REFUSAL_ADDRESSES);
  assert.equal(g.lines.length, MAX_REFUSAL_ADDRESSES + 500);
});
