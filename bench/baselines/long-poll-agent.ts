/**
 * Long-poll baseline agent: registers, then runs `concurrency` pollers, each
 * GET next → run the job with the real agent's job runner → POST the result → repeat.
 * Keep-alive connections to the server and to targets, as the real agent has.
 */
import http from 'node:http';
import { decodeServerFrame, encodeFrame } from '../../shared/codec.ts';
import { parseAllowlist } from '../../worker-agent/allowlist.ts';
import { runJob } from '../../worker-agent/job-runner.ts';
import { createTargetPool } from '../../worker-agent/target-pool.ts';
import { childConfig, serveBench } from '../harness/child.ts';
import { httpCall } from '../harness/http.ts';
import { POOL, SUITE, TOKENS } from '../harness/tokens.ts';

const { server, concurrency } = childConfig<{ server: string; concurrency: number }>();
const base = new URL(server);
const toServer = new http.Agent({ keepAlive: true, maxSockets: concurrency + 1 });
// Bench targets listen on loopback, which the agent's egress policy admits only when named.
const allow = parseAllowlist(['127.0.0.1']);
const targets = createTargetPool({ connections: concurrency, grant: allow });
const auth = { authorization: `Bearer ${TOKENS.worker}` };
let stopping = false;

function call(method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = body === undefined ? auth : { ...auth, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
  return httpCall(toServer, new URL(path, base), method, headers, body);
}

const registered = await call('POST', `/v1/workers/register?suite=${SUITE}&name=${POOL}&concurrency=${concurrency}`);
const { workerId } = JSON.parse(registered.text) as { workerId: string };

async function poller(): Promise<void> {
  while (!stopping) {
    let answer: { status: number; text: string };
    try {
      answer = await call('GET', `/v1/workers/${workerId}/next`);
    } catch {
      if (!stopping) await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    if (answer.status !== 200) continue;
    const decoded = decodeServerFrame(answer.text);
    if (!decoded.ok || decoded.value.type !== 'job') continue;
    const job = decoded.value;
    const outcome = await runJob(job.request, { timeoutMs: job.timeoutMs, maxResponseBytes: 10 * 1024 * 1024, allow, targets });
    await call('POST', `/v1/workers/${workerId}/results`, encodeFrame({ type: 'result', id: job.id, ...outcome })).catch(() => {});
  }
}

const pollers = Array.from({ length: concurrency }, () => poller());

serveBench({}, async () => {
  stopping = true;
  toServer.destroy();
  await targets.destroy();
  await Promise.allSettled(pollers);
}).ready({ workerId });
