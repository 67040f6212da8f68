/**
 * Floor baseline for the agent: a hand-written worker with no checks. One ws client to
 * the dispatcher, an undici `Pool` per target origin, and per job only: parse the
 * frame, perform the request, answer the result frame. No validation, no allowlist,
 * no deadline timer, no size limit, no logging, nothing pending beyond the request
 * itself. Beside the bare dispatcher it makes the bare pipeline; the gap to the real
 * agent is what the agent's own code costs per job. Imports nothing of the product
 * but the protocol's path and subprotocol names.
 */
import { Pool } from 'undici';
import WebSocket from 'ws';
import { PROTOCOL_VERSION, WORKER_CONNECT_PATH } from '../../shared/limits.ts';
import { childConfig, serveBench } from '../harness/child.ts';
import { POOL, SUITE, TOKENS } from '../harness/tokens.ts';

const { server, concurrency } = childConfig<{ server: string; concurrency: number }>();

/** Keep-alive pools by target origin. Owner: this process; closed on stop. */
const pools = new Map<string, Pool>();
const poolFor = (origin: string): Pool => {
  let pool = pools.get(origin);
  if (!pool) pools.set(origin, (pool = new Pool(origin, { connections: concurrency, pipelining: 1 })));
  return pool;
};

interface JobFrame {
  type: string;
  id: string;
  request: { method: string; url: string; headers?: Record<string, string>; body?: string };
}

const ws = new WebSocket(`${server.replace(/^http/, 'ws')}${WORKER_CONNECT_PATH}?suite=${SUITE}&name=${POOL}&concurrency=${concurrency}`, PROTOCOL_VERSION, {
  headers: { authorization: `Bearer ${TOKENS.worker}` },
  perMessageDeflate: false,
});

async function perform(job: JobFrame): Promise<void> {
  const url = new URL(job.request.url);
  let frame: string;
  try {
    const res = await poolFor(url.origin).request({ method: job.request.method as 'GET', path: url.pathname + url.search, headers: job.request.headers, body: job.request.body });
    const body = await res.body.text();
    frame = JSON.stringify({ type: 'result', id: job.id, response: { status: res.statusCode, headers: res.headers, body, bodyEncoding: 'utf8' } });
  } catch (err) {
    frame = JSON.stringify({ type: 'result', id: job.id, error: { code: 'connect_failed', message: (err as Error).message } });
  }
  if (ws.readyState === WebSocket.OPEN) ws.send(frame);
}

ws.on('message', (data) => {
  const frame = JSON.parse(String(data)) as JobFrame;
  if (frame.type === 'job') void perform(frame);
});
ws.on('error', (err) => process.stderr.write(`bare worker: ${err.message}\n`));
await new Promise<void>((resolve, reject) => {
  ws.once('open', resolve);
  ws.once('error', reject);
});

serveBench({}, async () => {
  ws.terminate();
  await Promise.all([...pools.values()].map((p) => p.destroy()));
}).ready();
