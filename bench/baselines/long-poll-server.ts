/**
 * Long-poll baseline: the old design, small and fair. Same dispatch API, same token
 * check, same zod schemas and JSON answers as the real server; only the worker leg
 * differs. A worker registers, then each of its `concurrency` pollers holds
 *   GET  /v1/workers/{id}/next      open until a job is queued (25 s → 204, poll again)
 * and answers with
 *   POST /v1/workers/{id}/results   a result frame (204).
 * Every worker request carries the worker token, as HTTP requests must.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { nanoid } from 'nanoid';
import { bearerToken } from '../../server/auth.ts';
import { errorOf, sendError, sendJson } from '../../server/http-reply.ts';
import { decodeAgentFrame, decodeJson, encodeFrame } from '../../shared/codec.ts';
import { FlowtestError } from '../../shared/errors.ts';
import { dispatchRequestSchema, type DispatchRequest } from '../../shared/protocol.ts';
import { serveBench } from '../harness/child.ts';
import { benchTokenStore } from '../harness/token-store.ts';

const POLL_HOLD_MS = 25_000;
const MAX_QUEUE = 10_000;
const tokens = benchTokenStore();

interface Job {
  id: string;
  suite: string;
  body: DispatchRequest;
  acceptedAt: number;
  deadlineAt: number;
  client: ServerResponse;
  timer: NodeJS.Timeout;
  workerId: string | null;
}
interface Poller {
  workerId: string;
  res: ServerResponse;
  timer: NodeJS.Timeout;
}
interface Pool {
  /** Pollers waiting for a job, oldest first. */
  pollers: Poller[];
  /** Jobs waiting for a poller, oldest first. */
  queue: Job[];
}

// Owner of all three tables: this process. A job leaves `jobs` when it is answered.
const jobs = new Map<string, Job>();
const pools = new Map<string, Pool>();
const workers = new Map<string, { suite: string; pool: string }>();

const poolOf = (suite: string, name: string): Pool => {
  const key = `${suite}/${name}`;
  let pool = pools.get(key);
  if (!pool) pools.set(key, (pool = { pollers: [], queue: [] }));
  return pool;
};

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function hand(job: Job, poller: Poller): void {
  clearTimeout(poller.timer);
  job.workerId = poller.workerId;
  const text = encodeFrame({ type: 'job', id: job.id, timeoutMs: Math.max(1, Math.ceil(job.deadlineAt - performance.now())), request: job.body.request });
  poller.res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  poller.res.end(text);
}

function end(job: Job, answer: () => void): void {
  if (!jobs.delete(job.id)) return;
  clearTimeout(job.timer);
  const pool = pools.get(`${job.suite}/${job.body.pool}`);
  const i = pool ? pool.queue.indexOf(job) : -1;
  if (i >= 0) pool!.queue.splice(i, 1);
  if (!job.client.destroyed) answer();
}

async function dispatch(req: IncomingMessage, res: ServerResponse, suite: string): Promise<void> {
  const decision = tokens.check(bearerToken(req.headers.authorization), { role: 'client', suite });
  if (decision !== 'ok') return sendError(res, errorOf(decision, 'token refused'), true);
  const parsed = decodeJson(dispatchRequestSchema, await readBody(req));
  if (!parsed.ok) return sendError(res, errorOf('invalid_request', parsed.reason));
  const pool = poolOf(suite, parsed.value.pool);
  if (pool.queue.length >= MAX_QUEUE) return sendError(res, errorOf('overloaded', 'queue full'));
  const timeoutMs = parsed.value.timeoutMs ?? 30_000;
  const acceptedAt = performance.now();
  const job: Job = {
    id: nanoid(),
    suite,
    body: parsed.value,
    acceptedAt,
    deadlineAt: acceptedAt + timeoutMs,
    client: res,
    workerId: null,
    timer: setTimeout(() => end(job, () => sendError(res, errorOf('timeout', `no answer within ${timeoutMs} ms`))), timeoutMs),
  };
  jobs.set(job.id, job);
  res.once('close', () => end(job, () => {}));
  const poller = pool.pollers.shift();
  if (poller) hand(job, poller);
  else pool.queue.push(job);
}

function register(req: IncomingMessage, res: ServerResponse, url: URL): void {
  const suite = url.searchParams.get('suite') ?? '';
  const name = url.searchParams.get('name') ?? '';
  if (tokens.check(bearerToken(req.headers.authorization), { role: 'worker', suite }) !== 'ok') return sendError(res, errorOf('unauthorized', 'token refused'), true);
  const id = nanoid();
  workers.set(id, { suite, pool: name });
  sendJson(res, 200, { workerId: id });
}

function next(req: IncomingMessage, res: ServerResponse, workerId: string): void {
  const worker = workers.get(workerId);
  if (!worker || tokens.check(bearerToken(req.headers.authorization), { role: 'worker', suite: worker.suite }) !== 'ok') {
    return sendError(res, errorOf('unauthorized', 'unknown worker or token'), true);
  }
  const pool = poolOf(worker.suite, worker.pool);
  const poller: Poller = {
    workerId,
    res,
    timer: setTimeout(() => {
      pool.pollers.splice(pool.pollers.indexOf(poller), 1);
      res.writeHead(204).end();
    }, POLL_HOLD_MS),
  };
  const job = pool.queue.shift();
  if (job) return hand(job, poller);
  pool.pollers.push(poller);
  res.once('close', () => {
    clearTimeout(poller.timer);
    const i = pool.pollers.indexOf(poller);
    if (i >= 0) pool.pollers.splice(i, 1);
  });
}

async function result(req: IncomingMessage, res: ServerResponse, workerId: string): Promise<void> {
  const worker = workers.get(workerId);
  if (!worker || tokens.check(bearerToken(req.headers.authorization), { role: 'worker', suite: worker.suite }) !== 'ok') {
    return sendError(res, errorOf('unauthorized', 'unknown worker or token'), true);
  }
  const decoded = decodeAgentFrame(await readBody(req));
  if (!decoded.ok || decoded.value.type !== 'result') return sendError(res, errorOf('invalid_request', decoded.ok ? 'not a result' : decoded.reason));
  res.writeHead(204).end();
  const frame = decoded.value;
  const job = jobs.get(frame.id);
  if (!job || job.workerId !== workerId) return; // late or foreign: dropped, as the real server does
  end(job, () => {
    if (frame.response) {
      const durationMs = Math.round((performance.now() - job.acceptedAt) * 100) / 100;
      sendJson(job.client, 200, { id: job.id, workerId, durationMs, response: frame.response });
    } else if (frame.error) sendError(job.client, new FlowtestError(frame.error.code, frame.error.message));
  });
}

const DISPATCH = /^\/v1\/suites\/([^/]+)\/dispatch$/;
const WORKER = /^\/v1\/workers\/([^/]+)\/(next|results)$/;

const http = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  let m: RegExpExecArray | null;
  let done: void | Promise<void>;
  if (req.method === 'POST' && (m = DISPATCH.exec(url.pathname))) done = dispatch(req, res, decodeURIComponent(m[1]));
  else if (req.method === 'POST' && url.pathname === '/v1/workers/register') done = register(req, res, url);
  else if ((m = WORKER.exec(url.pathname))) done = m[2] === 'next' && req.method === 'GET' ? next(req, res, m[1]) : result(req, res, m[1]);
  else done = sendError(res, errorOf('not_found', 'no route'), true);
  if (done) done.catch(() => res.destroy());
});
http.keepAliveTimeout = 60_000;
await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

serveBench({ workers: () => workers.size }, async () => {
  http.closeAllConnections();
  await new Promise((resolve) => http.close(resolve));
}).ready({ url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` });
