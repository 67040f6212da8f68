/**
 * The bench's hand-written baselines do the whole job (the target's answer comes back
 * through them), fail as a dispatcher must (deadline, worker gone), and load none of
 * the product's code — otherwise the ratios against them would mean nothing.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ROOT, startChild, type BenchChild } from '../../bench/harness/processes.ts';
import { POOL, SUITE } from '../../bench/harness/tokens.ts';
import { waitUntil } from '../helpers/wait.ts';

const ITEM = { id: 42, name: 'widget', tags: ['a', 'b'], price: 9.99 };

async function child(t: TestContext, name: string, script: string, config?: Record<string, unknown>): Promise<BenchChild> {
  const c = await startChild(name, script, { config });
  t.after(() => c.kill());
  return c;
}

async function dispatch(server: BenchChild, url: string, timeoutMs = 10_000): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.info.url as string}/v1/suites/${SUITE}/dispatch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ pool: POOL, timeoutMs, request: { method: 'GET', url } }),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, body: await res.json() };
}

test('bare pipeline: the target answer comes back; deadline → 504; worker gone → 502 at once', async (t) => {
  const target = await child(t, 'target', 'procs/target.ts');
  const bare = await child(t, 'bare dispatcher', 'baselines/bare-dispatcher.ts');
  const worker = await child(t, 'bare worker', 'baselines/bare-worker.ts', { server: bare.info.url, concurrency: 4 });
  await waitUntil(async () => (await bare.call<number>('workers')) === 1, 10_000, 'the bare worker to connect');

  const ok = await dispatch(bare, `${target.info.url as string}/item`);
  assert.equal(ok.status, 200);
  assert.equal(ok.body.response.status, 200);
  assert.deepEqual(JSON.parse(ok.body.response.body), ITEM);

  const late = await dispatch(bare, `${target.info.url as string}/hang`, 300);
  assert.equal(late.status, 504);
  assert.equal(late.body.error.code, 'timeout');

  const held = dispatch(bare, `${target.info.url as string}/hang`);
  await waitUntil(async () => (await target.call<number>('held')) >= 1, 10_000, 'the job to reach the target');
  const killedAt = Date.now();
  await worker.kill();
  const gone = await held;
  assert.equal(gone.status, 502);
  assert.equal(gone.body.error.code, 'worker_disconnected');
  assert.ok(Date.now() - killedAt < 5000, 'answered when the socket closed, not at the 10 s deadline');
});

test('lean long-poll: the target answer comes back; deadline → 504', async (t) => {
  const target = await child(t, 'target', 'procs/target.ts');
  const server = await child(t, 'lean long-poll server', 'baselines/lean-long-poll-server.ts');
  await child(t, 'lean long-poll agent', 'baselines/lean-long-poll-agent.ts', { server: server.info.url, concurrency: 4 });
  await waitUntil(async () => (await server.call<number>('pollers')) === 4, 10_000, 'the pollers to wait');

  const ok = await dispatch(server, `${target.info.url as string}/item`);
  assert.equal(ok.status, 200);
  assert.equal(ok.body.response.status, 200);
  assert.deepEqual(JSON.parse(ok.body.response.body), ITEM);

  const late = await dispatch(server, `${target.info.url as string}/hang`, 300);
  assert.equal(late.status, 504);
  assert.equal(late.body.error.code, 'timeout');
});

/** Every relative import reachable from `file`, as paths from the repository root. */
function reachable(file: string, seen = new Set<string>()): Set<string> {
  const rel = relative(ROOT, file);
  if (seen.has(rel)) return seen;
  seen.add(rel);
  for (const m of readFileSync(file, 'utf8').matchAll(/^import\s[^'"]*['"]([^'"]+)['"]/gm)) {
    if (m[1].startsWith('.')) reachable(resolve(dirname(file), m[1]), seen);
    else seen.add(`package:${m[1]}`);
  }
  return seen;
}

test('the lean baselines load no product code, no zod and no auth', () => {
  const lean = ['bare-dispatcher.ts', 'bare-worker.ts', 'lean-long-poll-server.ts', 'lean-long-poll-agent.ts'];
  for (const name of lean) {
    const loaded = [...reachable(join(ROOT, 'bench', 'baselines', name))];
    const product = loaded.filter((p) => /^(server|worker-agent|client|cli)\//.test(p) || (p.startsWith('shared/') && p !== 'shared/limits.ts') || p === 'package:zod');
    assert.deepEqual(product, [], `${name} loads ${product.join(', ')}`);
  }
});
