/**
 * Properties of the one codec: decoding never throws and answers only typed results with
 * short reasons, whatever arrives; every valid frame survives encode → decode unchanged.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeAgentFrame, decodeJson, decodeServerFrame, encodeFrame, type Decoded } from '../../shared/codec.ts';
import { dispatchRequestSchema } from '../../shared/protocol.ts';
import { agentFrame, invalidUtf8, mutated, serverFrame } from './arbitraries.ts';

const RUNS = { numRuns: Number(process.env.FUZZ_RUNS ?? 400) };

/** Close reasons are at most 123 bytes (RFC 6455). */
function assertTyped(result: Decoded<unknown>): void {
  assert.equal(typeof result.ok, 'boolean');
  if (result.ok) assert.ok('value' in result);
  else {
    assert.equal(typeof result.reason, 'string');
    assert.ok(Buffer.byteLength(result.reason) <= 123, result.reason);
  }
}

const hostileInput = fc.oneof(
  fc.anything(),
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  invalidUtf8,
  fc.jsonValue().map((v) => JSON.stringify(v)),
  mutated(agentFrame).map((v) => JSON.stringify(v) ?? 'undefined'),
  mutated(serverFrame).map((v) => JSON.stringify(v) ?? 'undefined'),
  fc.array(fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)), { maxLength: 4 }), // fragments, as ws hands them over
);

test('decoding never throws: anything in, a typed result with a short reason out', () => {
  fc.assert(
    fc.property(hostileInput, fc.boolean(), (input, isBinary) => {
      assertTyped(decodeAgentFrame(input, isBinary));
      assertTyped(decodeServerFrame(input, isBinary));
      if (typeof input === 'string') assertTyped(decodeJson(dispatchRequestSchema, input));
    }),
    RUNS,
  );
});

test('a valid frame with one field replaced by a value of another type is refused, not half-accepted', () => {
  fc.assert(
    fc.property(mutated(agentFrame), (frame) => {
      const result = decodeAgentFrame(JSON.stringify(frame) ?? '');
      assertTyped(result);
      // Whatever passes must be a frame the schema admits: re-encoding it decodes to the same value.
      if (result.ok) assert.deepEqual(decodeAgentFrame(encodeFrame(result.value)), result);
    }),
    RUNS,
  );
});

test('agent frames round-trip through encode/decode, as text and as the Buffer ws delivers', () => {
  fc.assert(
    fc.property(agentFrame, (frame) => {
      const text = encodeFrame(frame);
      assert.deepEqual(decodeAgentFrame(text), { ok: true, value: frame });
      assert.deepEqual(decodeAgentFrame(Buffer.from(text)), { ok: true, value: frame });
    }),
    RUNS,
  );
});

test('server frames round-trip through encode/decode', () => {
  fc.assert(
    fc.property(serverFrame, (frame) => {
      assert.deepEqual(decodeServerFrame(Buffer.from(encodeFrame(frame))), { ok: true, value: frame });
    }),
    RUNS,
  );
});

test('a header named __proto__ is dropped on decoding and pollutes no prototype', () => {
  const frame = '{"type":"result","id":"x","response":{"status":200,"headers":{"__proto__":{"polluted":"yes"},"a":"b"},"body":"","bodyEncoding":"utf8"}}';
  const result = decodeAgentFrame(frame);
  assert.ok(result.ok && result.value.type === 'result');
  assert.deepEqual(result.value.response?.headers, { a: 'b' });
  assert.equal(Object.getPrototypeOf(result.value.response?.headers), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});
