/**
 * Hostile workers against a live server: random and malformed frames, invalid UTF-8,
 * oversize frames and frame headers declaring huge lengths, results for other workers'
 * jobs, floods of results for unknown jobs, nesting around the 64-level limit. The server never crashes and answers a bad frame only with 1008 (bad
 * content) or 1009 (too big) — the code of the first bad frame, exactly — while a
 * bystander worker keeps serving its jobs and gets only its own results.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { LATE_RESULT_LIMIT, screenAgentFrame } from '../../server/result-guard.ts';
import { decodeAgentFrame } from '../../shared/codec.ts';
import { HttpClient } from '../helpers/http-client.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';
import { startTestServer } from '../helpers/server.ts';
import { waitUntil } from '../helpers/wait.ts';
import { agentFrame, invalidUtf8, mutated } from './arbitraries.ts';

const MAX_PAYLOAD = 4096;
const request = { method: 'GET', url: 'http://127.0.0.1:9/' };

type Hostile =
  | { kind: 'text'; text: string }
  | { kind: 'invalid-utf8'; bytes: Buffer }
  | { kind: 'binary'; bytes: Buffer }
  | { kind: 'oversize'; size: number }
  | { kind: 'huge-length'; length: bigint }
  | { kind: 'foreign-result' }
  | { kind: 'flood'; count: number };

/** Nesting around the 64-level limit, in a result for a job nobody holds (dropped) or a drain (validated). */
const nested = fc
  .tuple(fc.integer({ min: 58, max: 72 }), fc.constantFrom('{"type":"result","id":"nobody-holds-this","x":', '{"type":"drain","x":'))
  .map(([n, head]) => `${head}${'['.repeat(n)}${']'.repeat(n)}}`);

const hostile: fc.Arbitrary<Hostile> = fc.oneof(
  fc.oneof(fc.string({ maxLength: 300 }), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), mutated(agentFrame).map((v) => JSON.stringify(v) ?? 'null'), agentFrame.map((f) => JSON.stringify(f)), nested).map((text) => ({ kind: 'text' as const, text })),
  invalidUtf8.map((bytes) => ({ kind: 'invalid-utf8' as const, bytes })),
  fc.uint8Array({ minLength: 1, maxLength: 100 }).map((b) => ({ kind: 'binary' as const, bytes: Buffer.from(b) })),
  fc.integer({ min: MAX_PAYLOAD + 1, max: 4 * MAX_PAYLOAD }).map((size) => ({ kind: 'oversize' as const, size })),
  fc.constantFrom(2n ** 16n, 2n ** 40n, 2n ** 63n - 1n).map((length) => ({ kind: 'huge-length' as const, length })),
  fc.constant({ kind: 'foreign-result' as const }),
  fc.integer({ min: 10, max: 300 }).map((count) => ({ kind: 'flood' as const, count })),
);

/**
 * The close code the server owes the first frame it must refuse; null when every frame is
 * acceptable. A valid `drain` from a worker holding nothing ends the session too: the server
 * closes it with 1000 (`drained`). A result for a job the attacker does not hold is dropped
 * unread (whatever else it carries) and counted; the 101st such result closes with 1008.
 * `lateIn(frame)` says how many results for jobs not held a non-text frame sends.
 */
function expectedClose(frames: Hostile[], holdsJob: boolean, lateIn: (f: Hostile) => number): number | null {
  let late = 0;
  for (const f of frames) {
    if (f.kind === 'text' && Buffer.byteLength(f.text) > MAX_PAYLOAD) return 1009;
    if (f.kind === 'text') {
      // Random frames never name the attacker's job (a server-made nanoid).
      const screened = screenAgentFrame(f.text, false, new Set());
      if (screened.kind === 'bad') return 1008;
      if (screened.kind === 'late') late += 1;
      else {
        const decoded = decodeAgentFrame(f.text);
        if (!decoded.ok) return 1008;
        if (decoded.value.type === 'drain' && !holdsJob) return 1000;
      }
    }
    if (f.kind === 'invalid-utf8' || f.kind === 'binary') return 1008;
    if (f.kind === 'oversize' || f.kind === 'huge-length') return 1009;
    late += lateIn(f);
    if (late > LATE_RESULT_LIMIT) return 1008;
  }
  return null;
}

/** A masked text frame header declaring `length` payload bytes (64-bit form), with no payload after it. */
function hugeHeader(length: bigint): Buffer {
  const h = Buffer.alloc(2 + 8 + 4);
  h[0] = 0x81;
  h[1] = 0x80 | 127;
  h.writeBigUInt64BE(length, 2);
  return h; // mask key 0000
}

test('hostile frames: the server closes only with 1008/1009 (the first bad frame decides; 1000 after a drain holding nothing), never crashes, and the bystander is unaffected', async (t) => {
  const s = await startTestServer(t, { maxPayloadBytes: MAX_PAYLOAD, heartbeatMs: 60_000 });
  const client = new HttpClient(s.url, 64);
  t.after(() => client.destroy());
  // The bystander answers each job after a moment, with the job's id as the body.
  const bystanderHolds = new Set<string>();
  const bystander = await ScriptedAgent.connect(s.wsUrl, {
    name: 'steady',
    onJob: (job, a) => {
      bystanderHolds.add(job.id);
      setTimeout(() => {
        bystanderHolds.delete(job.id);
        a.reply(job.id, 200, job.id);
      }, 15);
    },
  });
  t.after(() => bystander.ws.terminate());
  const closes = new Map<number, number>();
  let runs = 0;

  await fc.assert(
    fc.asyncProperty(fc.array(hostile, { minLength: 1, maxLength: 5 }), fc.boolean(), async (frames, holdsJob) => {
      runs += 1;
      const steady = client.dispatch('acme', { pool: 'steady', timeoutMs: 5000, request });
      await waitUntil(() => bystanderHolds.size > 0, 5000, 'bystander holds a job');
      const attacker = await ScriptedAgent.connect(s.wsUrl, { name: 'attack', onJob: () => {} });
      const attackerJob = holdsJob ? client.dispatch('acme', { pool: 'attack', timeoutMs: 5000, request }) : null;
      if (attackerJob) await waitUntil(() => attacker.jobs === 1, 5000, 'attacker holds a job');
      // How many results for jobs the attacker does not hold each frame sent (foreign ones depend on the moment).
      const lateSent = new Map<Hostile, number>();
      try {
        for (const f of frames) {
          if (attacker.ws.readyState !== attacker.ws.OPEN) break;
          if (f.kind === 'text') attacker.ws.send(f.text);
          else if (f.kind === 'invalid-utf8') attacker.ws.send(f.bytes, { binary: false });
          else if (f.kind === 'binary') attacker.ws.send(f.bytes, { binary: true });
          else if (f.kind === 'oversize') attacker.ws.send('x'.repeat(f.size));
          else if (f.kind === 'huge-length') attacker.socket.write(hugeHeader(f.length));
          else if (f.kind === 'foreign-result') {
            const ids = [...bystanderHolds, 'no-such-job'];
            lateSent.set(f, ids.length);
            for (const id of ids) attacker.reply(id, 200, 'forged');
          } else {
            lateSent.set(f, f.count);
            for (let i = 0; i < f.count; i++) attacker.reply(`unknown-${i}`);
          }
        }
        const expected = expectedClose(frames, holdsJob, (f) => lateSent.get(f) ?? 0);
        if (expected !== null) {
          let bound: NodeJS.Timeout | undefined;
          const { code } = await Promise.race([
            attacker.closed,
            new Promise<never>((_, reject) => (bound = setTimeout(() => reject(new Error(`not closed: ${JSON.stringify(frames.map((f) => f.kind))}`)), 5000))),
          ]).finally(() => clearTimeout(bound));
          assert.equal(code, expected, JSON.stringify(frames.map((f) => f.kind)));
          closes.set(code, (closes.get(code) ?? 0) + 1);
        } else {
          // Every frame was acceptable: a ping round trip proves the server read them all and kept the socket.
          await new Promise<void>((resolve) => {
            attacker.ws.once('pong', () => resolve());
            attacker.ws.ping();
          });
          assert.equal(attacker.ws.readyState, attacker.ws.OPEN);
          assert.ok(s.router.listWorkers('acme').some((w) => w.id === attacker.workerId));
          attacker.ws.close();
          await attacker.closed;
        }
        if (attackerJob) assert.equal((await attackerJob).body.error.code, 'worker_disconnected');
        // The bystander's job got the bystander's answer, not a forged one.
        const r = await steady;
        assert.equal(r.status, 200);
        assert.equal(r.body.workerId, bystander.workerId);
        assert.equal(r.body.response.body, r.body.id);
      } finally {
        attacker.ws.terminate();
      }
    }),
    { numRuns: Number(process.env.FUZZ_RUNS ?? 120) },
  );
  t.diagnostic(`${runs} runs; closes: ${JSON.stringify(Object.fromEntries(closes))}`);
  assert.ok((closes.get(1008) ?? 0) > 10 && (closes.get(1009) ?? 0) > 10);
  assert.equal(bystander.ws.readyState, bystander.ws.OPEN, 'the bystander kept its socket');
  assert.equal((await client.get('/healthz')).status, 200);
  await waitUntil(() => s.router.stats().pending === 0, 5000);
  assert.deepEqual(s.router.stats(), { pending: 0, queued: 0, inFlight: 0, workers: 1, pools: 1 });
  assert.ok(!s.logLines.some((l) => /"level":(50|60)/.test(l)), 'no error logged');
});

test('hostile frames: broken WebSocket framing (random bytes after the handshake) drops only that socket', async (t) => {
  const s = await startTestServer(t, { maxPayloadBytes: MAX_PAYLOAD, heartbeatMs: 60_000 });
  const client = new HttpClient(s.url, 8);
  t.after(() => client.destroy());
  const bystander = await ScriptedAgent.connect(s.wsUrl, { name: 'steady' });
  t.after(() => bystander.ws.terminate());
  const codes = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (bytes) => {
      const attacker = await ScriptedAgent.connect(s.wsUrl, { name: 'attack', onJob: () => {} });
      attacker.socket.write(Buffer.from(bytes));
      // Random bytes may also be the start of a frame still waiting for its rest: end the socket then.
      const closed = await Promise.race([attacker.closed, new Promise<null>((r) => setTimeout(r, 50, null))]);
      if (closed) codes.set(closed.code, (codes.get(closed.code) ?? 0) + 1);
      attacker.ws.terminate();
      const r = await client.dispatch('acme', { pool: 'steady', timeoutMs: 5000, request });
      assert.equal(r.status, 200);
    }),
    { numRuns: Number(process.env.FUZZ_RUNS ?? 60) },
  );
  // Most random byte strings are not a frame still waiting for its rest: some sockets must have been closed by the server.
  assert.ok(codes.size > 0, 'the server closed no socket that sent random bytes');
  // RFC 6455 protocol errors below the message layer are ws's to answer (1002); messages that are bad get 1008/1009.
  for (const code of codes.keys()) assert.ok([1002, 1006, 1008, 1009].includes(code), `close code ${code}`);
  t.diagnostic(`closes: ${JSON.stringify(Object.fromEntries(codes))}`);
  assert.equal(bystander.ws.readyState, bystander.ws.OPEN);
  await waitUntil(() => s.router.stats().workers === 1, 5000);
});
