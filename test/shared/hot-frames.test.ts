/**
 * The hand-written hot-path checks (shared/hot-frames.ts) against the zod schemas they
 * stand in for: on anything JSON.parse can produce, a value the fast check accepts is one
 * zod accepts, and equal to zod's output down to key order; and whatever zod accepts the
 * fast check accepts too (but for a header named __proto__, which it leaves to zod).
 * Inputs are valid values, values with one member replaced by a boundary case or by
 * anything, and values with a member added.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { z } from 'zod';
import { decodeAgentFrame, decodeJson, decodeServerFrame } from '../../shared/codec.ts';
import { fastDispatchRequest, fastJobFrame, fastResultFrame } from '../../shared/hot-frames.ts';
import { agentFrameSchema, dispatchRequestSchema, serverFrameSchema } from '../../shared/protocol.ts';
import { agentFrame, httpRequest, mutated, serverFrame } from '../fuzz/arbitraries.ts';

const RUNS = { numRuns: Number(process.env.FUZZ_RUNS ?? 1500) };
const NO_NULL_PROTO = { noNullPrototype: true } as const;

const name = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
const dispatchRequest = fc.record(
  {
    pool: name,
    workerId: fc.string({ minLength: 1, maxLength: 64 }),
    timeoutMs: fc.integer({ min: 1, max: 600_000 }),
    waitForWorkerMs: fc.integer({ min: 0, max: 600_000 }),
    request: httpRequest,
  },
  { requiredKeys: ['pool', 'request'], noNullPrototype: true },
);

/** Values at and past every bound of the schemas, and things of the wrong kind. */
const boundary = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, 0.5, 99, 100, 999, 1000, 600_000, 600_001, 2 ** 53 - 1, 2 ** 53, 1e21, null, true, '', 'x', [], {}),
  fc.constantFrom('utf8', 'base64', 'latin1', 'result', 'job', 'drain', 'welcome', 'cancel', 'GET', 'G ET', 'target_timeout', 'timeout'),
  fc.constantFrom('http://h/', 'https://h:1/p?q#f', 'ftp://h/', 'HTTP://H/', ' http://h/', 'http://', 'nope', `http://h/${'p'.repeat(16 * 1024)}`),
  fc.constantFrom('a\rb', 'a\nb', 'a\0b', 'x'.repeat(64 * 1024), 'x'.repeat(64 * 1024 + 1), 'x'.repeat(64), 'x'.repeat(65), 'M'.repeat(32), 'M'.repeat(33)),
  fc.constantFrom('QUJD', 'QUJ', 'QU==', 'QUJD=', 'Q===', '****', ['a'], ['a\r'], [1], [], Array.from({ length: 300 }, () => 'v')),
  fc.anything({ maxDepth: 2 }),
);

/** Per member name: the values at and just past its bounds. */
const AT_BOUNDS: Record<string, unknown[]> = {
  timeoutMs: [0, -0, 1, 600_000, 600_001, 2 ** 53 - 1, 2 ** 53, 1.5],
  waitForWorkerMs: [0, -0, -1, 600_000, 600_001, 0.5],
  status: [99, 100, 999, 1000, 200.5],
  id: ['', 'i', 'i'.repeat(64), 'i'.repeat(65)],
  workerId: ['', 'w', 'w'.repeat(64), 'w'.repeat(65)],
  pool: ['', 'p', '-p', 'p'.repeat(64), 'p'.repeat(65)],
  method: ['', 'M'.repeat(32), 'M'.repeat(33), 'G ET'],
  url: ['http://h/', `http://h/${'p'.repeat(16 * 1024 - 9)}`, `http://h/${'p'.repeat(16 * 1024 - 8)}`, 'ftp://h/', 'HTTP://H/', ' http://h/', 'http://'],
  message: ['', 'm'.repeat(4096), 'm'.repeat(4097)],
  body: ['', 'QUJD', 'QUJ', 'QU==', 'Q===', '****', 1],
  bodyEncoding: ['utf8', 'base64', 'latin1', null],
  code: ['target_timeout', 'cancelled', 'timeout', ''],
  type: ['result', 'job', 'drain', 'welcome', 'cancel'],
};

/** A valid value with one member (at any depth) replaced by a boundary value. */
function atBoundary<T extends object>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.tuple(valid, fc.nat(), fc.nat(), boundary, fc.boolean()).map(([v, n, k, replacement, keyed]) => {
    const copy = structuredClone(v) as Record<string, unknown>;
    const paths: string[][] = [];
    const walk = (o: unknown, path: string[]) => {
      if (o === null || typeof o !== 'object') return;
      for (const k of Object.keys(o)) {
        paths.push([...path, k]);
        walk((o as Record<string, unknown>)[k], [...path, k]);
      }
    };
    walk(copy, []);
    const path = paths[n % paths.length];
    let at: Record<string, unknown> = copy;
    for (const k of path.slice(0, -1)) at = at[k] as Record<string, unknown>;
    const own = AT_BOUNDS[path.at(-1)!];
    at[path.at(-1)!] = keyed && own ? own[k % own.length] : replacement;
    return copy;
  });
}

/** A valid value with a member added to one of its objects (strict objects refuse it; header maps take it). */
function withExtra<T extends object>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.tuple(valid, fc.nat(), fc.constantFrom('extra', '__proto__', 'X-Token', 'a b', 'error', 'response', 'headers', 'bodyEncoding'), boundary).map(([v, n, key, value]) => {
    const copy = structuredClone(v) as Record<string, unknown>;
    const objects: Record<string, unknown>[] = [];
    const walk = (o: unknown) => {
      if (o === null || typeof o !== 'object' || Array.isArray(o)) return;
      objects.push(o as Record<string, unknown>);
      for (const k of Object.keys(o)) walk((o as Record<string, unknown>)[k]);
    };
    walk(copy);
    const at = objects[n % objects.length];
    // JSON.parse makes an own `__proto__` member; so does defineProperty.
    Object.defineProperty(at, key, { value, enumerable: true, writable: true, configurable: true });
    return copy;
  });
}

function inputs<T extends object>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  // Through JSON text, as the decoders see them.
  return fc.oneof(valid, atBoundary(valid), atBoundary(valid), withExtra(valid), mutated(valid)).map((v) => JSON.parse(JSON.stringify(v) ?? 'null') as unknown);
}

function assertSame<S extends z.ZodType>(schema: S, fast: (v: unknown) => unknown, input: unknown): void {
  const expected = schema.safeParse(input);
  const got = fast(input);
  if (got !== undefined) {
    assert.ok(expected.success, `the fast check accepted what zod refuses: ${JSON.stringify(input)?.slice(0, 300)}`);
    assert.deepStrictEqual(got, expected.data);
    assert.equal(JSON.stringify(got), JSON.stringify(expected.data), 'same key order');
  } else if (expected.success) {
    // Left to zod on purpose only for a header named __proto__ (zod's record drops it).
    assert.ok(JSON.stringify(input).includes('"__proto__"'), `the fast check left a valid value to zod: ${JSON.stringify(input)?.slice(0, 300)}`);
  }
}

test('dispatch body: the fast check accepts exactly what dispatchRequestSchema accepts, with the same output', () => {
  fc.assert(fc.property(inputs(dispatchRequest), (input) => assertSame(dispatchRequestSchema, fastDispatchRequest, input)), RUNS);
});

test('result frame: the fast check accepts exactly the results agentFrameSchema accepts, with the same output', () => {
  const results = agentFrame.filter((f) => f.type === 'result');
  fc.assert(
    fc.property(inputs(results), (input) => {
      const fast = (v: unknown) => fastResultFrame(v);
      assertSame(agentFrameSchema, fast, input);
    }),
    RUNS,
  );
});

test('job frame: the fast check accepts exactly the jobs serverFrameSchema accepts, with the same output', () => {
  const jobs = serverFrame.filter((f) => f.type === 'job');
  fc.assert(fc.property(inputs(jobs), (input) => assertSame(serverFrameSchema, fastJobFrame, input)), RUNS);
});

test('a frame or body the fast check leaves to zod still gets zod’s answer and message', () => {
  const headerLines = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`h${i}`, 'v']));
  const bad = decodeJson(dispatchRequestSchema, JSON.stringify({ pool: 'p', request: { method: 'GET', url: 'http://h/', headers: headerLines } }), undefined, fastDispatchRequest);
  assert.deepEqual(bad, { ok: false, reason: 'request.headers: at most 256 header lines' });
  const proto = decodeJson(dispatchRequestSchema, '{"pool":"p","request":{"method":"GET","url":"http://h/","headers":{"__proto__":"x","a":"b"}}}', undefined, fastDispatchRequest);
  assert.deepEqual(proto, { ok: true, value: { pool: 'p', request: { method: 'GET', url: 'http://h/', headers: { a: 'b' } } } });
  const both = decodeAgentFrame('{"type":"result","id":"j","response":{"status":200,"headers":{},"body":"","bodyEncoding":"utf8"},"error":{"code":"cancelled","message":""}}');
  assert.deepEqual(both, { ok: false, reason: 'bad frame: a result has either response or error' });
  assert.deepEqual(decodeAgentFrame('{"type":"drain"}'), { ok: true, value: { type: 'drain' } });
  assert.deepEqual(decodeServerFrame('{"type":"job","id":"j","timeoutMs":0,"request":{"method":"GET","url":"http://h/"}}'), { ok: false, reason: 'bad frame: timeoutMs: Too small: expected number to be >0' });
});
