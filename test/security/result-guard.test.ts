/**
 * A worker's results for jobs it does not hold (contract "Security (v1.1)", server input):
 * dropped before they are validated, counted as late results, and a worker sending more
 * than 100 of them in 10 s is closed with 1008.
 */
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { test } from 'node:test';
import { LateResultMeter, screenAgentFrame } from '../../server/result-guard.ts';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { dispatch, startTestServer } from '../helpers/server.ts';
import { waitUntil } from '../helpers/wait.ts';

/**
 * Budgets for one 8 MB rogue frame, whose validation would cost ~2.4 s of CPU (issue 10).
 * The loop bound is generous: on a loaded 2-core box this process is often not running at
 * all, and ws unmasks the frame in JavaScript on both ends (client and server share it
 * here). CPU time, which load does not inflate, is held to a tighter bound.
 */
const LOOP_BUDGET_MS = 2000;
const CPU_PER_FRAME_MS = 600;

const held = new Set(['job-1']);

test('screen: a result for a job not held is late; held ids, drains and garbage go on to validation', () => {
  assert.deepEqual(screenAgentFrame('{"type":"result","id":"nope","response":{"status":"not even valid"}}', false, held), { kind: 'late', id: 'nope' });
  assert.equal(screenAgentFrame('{"type":"result","id":"job-1","response":{}}', false, held).kind, 'frame');
  assert.equal(screenAgentFrame('{"type":"drain"}', false, held).kind, 'frame');
  assert.equal(screenAgentFrame('not json', false, held).kind, 'frame', 'the decoder names the problem');
  assert.equal(screenAgentFrame('{"type":"result","id":5}', false, held).kind, 'frame', 'a non-string id is the schema\'s to refuse');
  assert.equal(screenAgentFrame(Buffer.from('{}'), true, held).kind, 'bad');
  assert.deepEqual(screenAgentFrame(`{"type":"drain","x":${'['.repeat(70)}${']'.repeat(70)}}`, false, held), { kind: 'bad', reason: 'bad frame: nested deeper than 64 levels' });
  // A small frame in the agent's encoding is judged by its first id (the hot path reads nothing else);
  // any other frame by the id JSON.parse would see (the last duplicate).
  assert.equal(screenAgentFrame('{"type":"result","id":"nope","id":"job-1"}', false, held).kind, 'late');
  assert.equal(screenAgentFrame('{"type":"result","id":"job-1","id":"nope"}', false, held).kind, 'frame', 'the router then drops it as late');
  assert.equal(screenAgentFrame('{ "type":"result","id":"nope","id":"job-1"}', false, held).kind, 'frame');
  assert.equal(screenAgentFrame(`{"type":"result","id":"job-1","pad":"${'x'.repeat(70_000)}","id":"nope"}`, false, held).kind, 'late');
  assert.equal(screenAgentFrame('{"type":"result","id":"jo\\u0062-1"}', false, new Set(['job-1'])).kind, 'frame', 'an escaped id goes the long way');
  // Many values (past the 64 KiB hot path): dropped unread when late, refused when kept.
  const wide = (id: string) => `{"type":"result","id":"${id}","x":[${Array(40_000).fill(1).join(',')}]}`;
  assert.equal(screenAgentFrame(wide('nope'), false, held).kind, 'late');
  assert.equal(screenAgentFrame(wide('job-1'), false, held).kind, 'bad');
});

test('meter: the 101st late result within 10 s is one too many; spread out they never are', () => {
  const m = new LateResultMeter(100, 10_000);
  for (let i = 0; i < 100; i++) assert.equal(m.hit(i * 10), false);
  assert.equal(m.hit(5_000), true);
  const slow = new LateResultMeter(100, 10_000);
  for (let i = 0; i < 1000; i++) assert.equal(slow.hit(i * 101), false, `hit ${i}`);
});

test('a rogue worker: 8 MB unknown results cost a scan each, are counted, and past 100 in 10 s the worker is closed with 1008', async (t) => {
  const s = await startTestServer(t);
  const good = await FakeAgent.connect(t, s.wsUrl, { name: 'good' });
  const rogue = await FakeAgent.connect(t, s.wsUrl, { name: 'rogue' });
  const late = async () => (await s.metrics.lateResults.get()).values[0]?.value ?? 0;

  // 8 MB of headers: 100,000 name/value strings, the shape that made validation cost seconds.
  const headers = `{${`"x-h":"${'v'.repeat(70)}",`.repeat(102_000)}"x-last":"v"}`;
  const frame = (i: number) => `{"type":"result","id":"unknown-${i}","response":{"status":200,"headers":${headers},"body":"","bodyEncoding":"utf8"}}`;
  assert.ok(frame(0).length > 8_000_000 && frame(0).length < 10 * 1024 * 1024, `${frame(0).length} bytes`);

  const ROGUE_FRAMES = 20;
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const cpu = process.cpuUsage();
  for (let i = 0; i < ROGUE_FRAMES; i++) rogue.ws.send(frame(i));
  await waitUntil(async () => (await late()) === ROGUE_FRAMES, 90_000, 'every rogue frame counted');
  const used = process.cpuUsage(cpu);
  h.disable();
  const cpuPerFrame = (used.user + used.system) / 1000 / ROGUE_FRAMES;
  const maxMs = h.max / 1e6;
  t.diagnostic(`${ROGUE_FRAMES} rogue frames of ${(frame(0).length / 1e6).toFixed(1)} MB: loop delay max ${maxMs.toFixed(0)} ms, p99 ${(h.percentile(99) / 1e6).toFixed(0)} ms; CPU ${cpuPerFrame.toFixed(0)} ms per frame (both ends)`);
  assert.ok(maxMs < LOOP_BUDGET_MS, `the loop was held ${maxMs.toFixed(0)} ms`);
  assert.ok(cpuPerFrame < CPU_PER_FRAME_MS, `${cpuPerFrame.toFixed(0)} ms of CPU per rogue frame`);

  // Up to 100 are tolerated (results can be late for honest reasons); the good worker serves on.
  assert.equal(s.router.stats().workers, 2);
  const pending = dispatch(s, 'acme', { pool: 'good', request: { method: 'GET', url: 'http://127.0.0.1:9/' } });
  good.reply((await good.nextJob()).id);
  assert.equal((await pending).status, 200);

  // 101 within 10 s (sent at once; the big ones may be older than 10 s on a slow box): the rogue
  // worker is closed at the 101st at the latest, the good one stays.
  for (let i = 0; i < 101; i++) rogue.send({ type: 'result', id: `small-${i}`, error: { code: 'cancelled', message: 'x' } });
  let deadline: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    rogue.closed,
    new Promise<never>((_, reject) => {
      deadline = setTimeout(() => reject(new Error('the flooding worker was not closed')), 10_000);
    }),
  ]).finally(() => clearTimeout(deadline));
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /too many results/);
  const counted = await late();
  assert.ok(counted >= 101 && counted <= ROGUE_FRAMES + 101, `${counted} late results counted`);
  await waitUntil(() => s.router.stats().workers === 1, 5000, 'rogue worker gone');
});
