/**
 * Lean long-poll baseline: the old design (the Go service) written lean in Node — no
 * schema validation, no auth, no product code. Same dispatch POST and answer shape as
 * flowtest. A worker registers, then each of its pollers holds
 *   GET  /v1/workers/{id}/next      open until a job is queued (25 s → 204, poll again)
 * and answers with
 *   POST /v1/workers/{id}/results   the result frame (204).
 * Per job: a pending map entry and a deadline timer, as the Go service had.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveBench } from '../harness/child.ts';

const POLL_HOLD_MS = 25_000;

interface Job {
  id: string;
  /** The job as the worker receives it, encoded once. */
  frame: string;
  at: number;
  client: ServerResponse;
  timer: NodeJS.Timeout;
}
interface Poller {
  res: ServerResponse;
  timer: NodeJS.Timeout;
}

// Owner of these tables: this process. A job leaves `jobs` when it is answered or expires.
const jobs = new Map<string, Job>();
const queue: Job[] = [];
const pollers: Poller[] = [];
let nextJob = 0;
let nextWorker = 0;

function readBody(req: IncomingMessage, then: (text: string) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => then(Buffer.concat(chunks).toString('utf8')));
}

function send(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function hand(job: Job, poller: Poller): void {
  clearTimeout(poller.timer);
  send(poller.res, 200, job.frame);
}

function expire(job: Job): void {
  jobs.delete(job.id);
  const i = queue.indexOf(job);
  if (i >= 0) queue.splice(i, 1);
  send(job.client, 504, '{"error":{"code":"timeout","message":"deadline passed"}}');
}

function dispatch(req: IncomingMessage, res: ServerResponse): void {
  readBody(req, (text) => {
    const body = JSON.parse(text) as { timeoutMs?: number; request: unknown };
    const id = String(++nextJob);
    const timeoutMs = body.timeoutMs ?? 30_000;
    const job: Job = { id, frame: JSON.stringify({ type: 'job', id, timeoutMs, request: body.request }), at: performance.now(), client: res, timer: setTimeout(() => expire(job), timeoutMs) };
    jobs.set(id, job);
    const poller = pollers.shift();
    if (poller) hand(job, poller);
    else queue.push(job);
  });
}

function next(res: ServerResponse): void {
  const job = queue.shift();
  if (job) return send(res, 200, job.frame);
  const poller: Poller = {
    res,
    timer: setTimeout(() => {
      pollers.splice(pollers.indexOf(poller), 1);
      res.writeHead(204).end();
    }, POLL_HOLD_MS),
  };
  pollers.push(poller);
}

function result(req: IncomingMessage, res: ServerResponse, workerId: string): void {
  readBody(req, (text) => {
    res.writeHead(204).end();
    const frame = JSON.parse(text) as { id: string; response?: unknown; error?: unknown };
    const job = jobs.get(frame.id);
    if (!job) return; // late: dropped
    jobs.delete(job.id);
    clearTimeout(job.timer);
    if (frame.response) send(job.client, 200, JSON.stringify({ id: job.id, workerId, durationMs: performance.now() - job.at, response: frame.response }));
    else send(job.client, 502, JSON.stringify({ error: frame.error }));
  });
}

const http = createServer((req, res) => {
  const path = req.url ?? '/';
  if (path.startsWith('/v1/suites/')) return dispatch(req, res);
  if (path.startsWith('/v1/workers/register')) return send(res, 200, `{"workerId":"w${++nextWorker}"}`);
  if (path.startsWith('/v1/workers/')) {
    const [, , , workerId, verb] = path.split('/');
    if (verb === 'next') return next(res);
    if (verb === 'results') return result(req, res, workerId);
  }
  res.writeHead(404).end();
});
http.keepAliveTimeout = 60_000;
await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

serveBench({ workers: () => nextWorker, pollers: () => pollers.length }, async () => {
  for (const p of pollers.splice(0)) clearTimeout(p.timer);
  for (const job of jobs.values()) clearTimeout(job.timer);
  jobs.clear();
  http.closeAllConnections();
  await new Promise((resolve) => http.close(resolve));
}).ready({ url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` });
