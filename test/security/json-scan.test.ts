/** The linear scan that runs before JSON.parse on untrusted text (shared/json-scan.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PROTOCOL_SCAN_LIMITS, scanJson } from '../../shared/json-scan.ts';

const nest = (n: number) => '['.repeat(n) + ']'.repeat(n);

test('depth: 64 levels pass, 65 are refused; brackets inside strings do not count', () => {
  assert.equal(scanJson(nest(64)).ok, true);
  const deep = scanJson(nest(65));
  assert.equal(deep.ok, false);
  assert.match(!deep.ok ? deep.reason : '', /nested deeper than 64 levels/);
  assert.equal(scanJson(`{"a":"${'['.repeat(1000)}"}`).ok, true, 'brackets in a string');
  assert.equal(scanJson(`{"a":"\\"${'{'.repeat(1000)}"}`).ok, true, 'after an escaped quote');
  assert.equal(scanJson(`{"a":"\\\\", "b":${nest(70)}}`).ok, false, 'an escaped backslash ends no string early');
});

test('values: more than the limit are refused, whatever their shape', () => {
  const many = (unit: string, n: number) => `[${Array(n).fill(unit).join(',')}]`;
  assert.equal(scanJson(many('1', 9_000)).ok, true);
  for (const unit of ['1', '[]', '{}', '"s"', 'null']) assert.equal(scanJson(many(unit, 20_000)).ok, false, unit);
  const keys = `{${Array.from({ length: 20_000 }, (_, i) => `"k${i}":1`).join(',')}}`;
  assert.equal(scanJson(keys).ok, false);
});

test('top-level fields: strings read, the last duplicate wins, nested and non-string ones ignored', () => {
  const read = (text: string) => {
    const r = scanJson(text, PROTOCOL_SCAN_LIMITS, ['type', 'id']);
    assert.ok(r.ok);
    return Object.fromEntries(r.fields);
  };
  assert.deepEqual(read('{"type":"result","id":"abc","response":{"id":"inner","type":"x"}}'), { type: 'result', id: 'abc' });
  assert.deepEqual(read('{ "id" : "a" , "id" : "b", "type":"result"}'), { id: 'b', type: 'result' });
  assert.deepEqual(read('{"id":"a","id":7,"type":"result"}'), { type: 'result' }, 'a later number replaces the string');
  assert.deepEqual(read('{"id":"a","id":{"x":1},"type":"result"}'), { type: 'result' });
  assert.deepEqual(read('{"t\\u0079pe":"res\\u0075lt","id":"q\\"x"}'), { type: 'result', id: 'q"x' }, 'escapes decoded as JSON.parse does');
  assert.deepEqual(read('[{"type":"result","id":"a"}]'), {}, 'not an object');
  assert.deepEqual(read('{"a":[{"type":"result"}],"id":"z"}'), { id: 'z' });
});

test('property: on valid JSON the fields read equal what JSON.parse gives', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom('type', 'id', 'x', 'response'), fc.jsonValue({ maxDepth: 3 })), (obj) => {
      const text = JSON.stringify(obj);
      const r = scanJson(text, { maxDepth: 64, maxValues: 1e9 }, ['type', 'id']);
      assert.ok(r.ok);
      const parsed = JSON.parse(text) as Record<string, unknown>;
      for (const k of ['type', 'id']) assert.equal(r.fields.get(k), typeof parsed[k] === 'string' ? parsed[k] : undefined);
    }),
    { numRuns: 500 },
  );
});

test('a 10 MiB text scans in well under the loop budget', () => {
  const text = `{"body":"${'x'.repeat(10 * 1024 * 1024)}","pad":"${' '.repeat(100)}"}`;
  const started = performance.now();
  scanJson(text);
  const ms = performance.now() - started;
  assert.ok(ms < 250, `scan took ${ms.toFixed(0)} ms`);
});
