/**
 * Lean long-poll baseline agent: registers, then runs `concurrency` pollers, each
 * GET next → perform the job with undici → POST the result → repeat. undici `Pool`s
 * (keep-alive) to the server and to each target origin. No validation, no auth, no
 * product code: the worker the old design needs at its leanest.
 */
import { Pool } from 'undici';
import { childConfig, serveBench } from '../harness/child.ts';

const { server, concurrency } = childConfig<{ server: string; concurrency: number }>();
// One connection per poller (each holds its GET open), plus room for the register call.
const toServer = new Pool(server, { connections: concurrency + 1, pipelining: 1 });
/** Keep-alive pools by target origin. Owner: this process; closed on stop. */
const targets = new Map<string, Pool>();
const targetPool = (origin: string): Pool => {
  let pool = targets.get(origin);
  if (!pool) targets.set(origin, (pool = new Pool(origin, { connections: concurrency, pipelining: 1 })));
  return pool;
};
let stopping = false;

interface JobFrame {
  id: string;
  request: { method: string; url: string; headers?: Record<string, string>; body?: string };
}

const registered = await toServer.request({ method: 'POST', path: `/v1/workers/register?concurrency=${concurrency}` });
const { workerId } = (await registered.body.json()) as { workerId: string };

async function perform(job: JobFrame): Promise<string> {
  const url = new URL(job.request.url);
  try {
    const res = await targetPool(url.origin).request({ method: job.request.method as 'GET', path: url.pathname + url.search, headers: job.request.headers, body: job.request.body });
    const body = await res.body.text();
    return JSON.stringify({ id: job.id, response: { status: res.statusCode, headers: res.headers, body, bodyEncoding: 'utf8' } });
  } catch (err) {
    return JSON.stringify({ id: job.id, error: { code: 'connect_failed', message: (err as Error).message } });
  }
}

async function poller(): Promise<void> {
  while (!stopping) {
    try {
      const res = await toServer.request({ method: 'GET', path: `/v1/workers/${workerId}/next` });
      if (res.statusCode !== 200) {
        await res.body.dump();
        continue;
      }
      const job = JSON.parse(await res.body.text()) as JobFrame;
      const body = await perform(job);
      const posted = await toServer.request({ method: 'POST', path: `/v1/workers/${workerId}/results`, headers: { 'content-type': 'application/json' }, body });
      await posted.body.dump();
    } catch {
      if (!stopping) await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const pollers = Array.from({ length: concurrency }, () => poller());

serveBench({}, async () => {
  stopping = true;
  await Promise.allSettled([toServer.destroy(), ...[...targets.values()].map((p) => p.destroy())]);
  await Promise.allSettled(pollers);
}).ready({ workerId });
