import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeAgentFrame, decodeServerFrame, encodeFrame } from '../../shared/codec.ts';
import type { AgentFrame, ServerFrame } from '../../shared/protocol.ts';

test('frames round-trip through encode/decode', () => {
  const server: ServerFrame[] = [
    { type: 'welcome', workerId: 'w1', heartbeatMs: 15000, maxPayloadBytes: 1024 },
    { type: 'job', id: 'j1', timeoutMs: 10, request: { method: 'POST', url: 'http://a/b?c=1', headers: { 'x-a': ['1', '2'] }, body: 'AAE=', bodyEncoding: 'base64' } },
    { type: 'cancel', id: 'j1', reason: 'timeout' },
  ];
  for (const f of server) assert.deepEqual(decodeServerFrame(encodeFrame(f)), { ok: true, value: f });
  const agent: AgentFrame[] = [
    { type: 'result', id: 'j1', response: { status: 302, headers: { location: '/x', 'set-cookie': ['a=1', 'b=2'] }, body: '', bodyEncoding: 'utf8' } },
    { type: 'result', id: 'j1', error: { code: 'target_unreachable', message: 'ECONNREFUSED' } },
    { type: 'drain' },
  ];
  for (const f of agent) assert.deepEqual(decodeAgentFrame(Buffer.from(encodeFrame(f))), { ok: true, value: f });
});

test('bad frames decode to typed failures with short reasons, never throw', () => {
  const bad: unknown[] = ['', 'null', '[]', '{"type":"result","id":"x"}', '{"type":"drain","x":1}', '{"type":"result","id":"x","response":{"status":200}}', '\u0000', 42, undefined, {}];
  for (const b of bad) {
    const r = decodeAgentFrame(b);
    assert.equal(r.ok, false, String(b));
    if (!r.ok) assert.ok(Buffer.byteLength(r.reason) <= 123, r.reason);
  }
  assert.deepEqual(decodeAgentFrame(Buffer.from('{"type":"drain"}'), true), { ok: false, reason: 'binary frames are not accepted' });
  const long = decodeAgentFrame(JSON.stringify({ type: 'result', id: 'x'.repeat(500), error: { code: 'nope', message: '' } }));
  assert.equal(long.ok, false);
  if (!long.ok) assert.ok(Buffer.byteLength(long.reason) <= 123);
});
