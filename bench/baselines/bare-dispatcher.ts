/**
 * Floor baseline: the least a dispatcher can do over the same wire. It speaks the
 * flowtest worker protocol (welcome, job, result, pings) and takes the same dispatch
 * POST — node:http in front, ws to one worker, a pending map, a deadline timer per job
 * and fail-fast when the worker's socket closes — but no token check, no schema
 * validation, no metrics, no console and no logging. It drives either the real agent
 * or the bare worker (bare-worker.ts: then the whole pipeline is bare). Nothing of the
 * product is imported but the subprotocol's name.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { PROTOCOL_VERSION } from '../../shared/limits.ts';
import { serveBench } from '../harness/child.ts';

interface Waiting {
  id: string;
  res: ServerResponse;
  frame: string;
  at: number;
  /** The job's deadline; cleared when it is answered. */
  timer: NodeJS.Timeout;
}

/** The one worker, its free slots, the jobs it holds and the jobs waiting. Owner: this process. */
let worker: { ws: WebSocket; slots: number } | null = null;
const held = new Map<string, Waiting>();
const queue: Waiting[] = [];
let nextId = 0;

function pump(): void {
  while (worker && worker.slots > 0 && queue.length > 0) {
    const job = queue.shift()!;
    worker.slots -= 1;
    worker.ws.send(job.frame);
  }
}

function answer(job: Waiting, status: number, text: string): void {
  held.delete(job.id);
  clearTimeout(job.timer);
  job.res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  job.res.end(text);
}

function expire(job: Waiting): void {
  const i = queue.indexOf(job);
  if (i >= 0) queue.splice(i, 1);
  else if (worker) worker.slots += 1; // the worker still holds it; a late result is dropped
  answer(job, 504, '{"error":{"code":"timeout","message":"deadline passed"}}');
}

const http = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { timeoutMs?: number; request: unknown };
    const id = String(++nextId);
    const timeoutMs = body.timeoutMs ?? 30_000;
    const job: Waiting = {
      id,
      res,
      at: performance.now(),
      frame: JSON.stringify({ type: 'job', id, timeoutMs, request: body.request }),
      timer: setTimeout(() => expire(job), timeoutMs),
    };
    held.set(id, job);
    queue.push(job);
    pump();
  });
});
const wss = new WebSocketServer({ server: http, perMessageDeflate: false, handleProtocols: (p) => (p.has(PROTOCOL_VERSION) ? PROTOCOL_VERSION : false) });
wss.on('connection', (ws, req) => {
  const concurrency = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('concurrency') ?? 8);
  worker = { ws, slots: concurrency };
  // The agent wants a ping within 2 × heartbeatMs; one socket, one timer, owned by the connection.
  const ping = setInterval(() => ws.ping(), 10_000);
  ws.on('error', () => ws.terminate());
  ws.on('close', () => {
    clearInterval(ping);
    if (worker?.ws !== ws) return;
    worker = null;
    // Fail fast: every job the worker held is answered now, not at its deadline.
    for (const job of [...held.values()]) if (!queue.includes(job)) answer(job, 502, '{"error":{"code":"worker_disconnected","message":"worker gone"}}');
  });
  ws.on('message', (data) => {
    const frame = JSON.parse(String(data)) as { type: string; id: string; response?: unknown };
    const job = frame.type === 'result' ? held.get(frame.id) : undefined;
    if (!job) return;
    if (worker) worker.slots += 1;
    answer(job, 200, JSON.stringify({ id: frame.id, workerId: 'bare', durationMs: performance.now() - job.at, response: frame.response }));
    pump();
  });
  ws.send(JSON.stringify({ type: 'welcome', workerId: 'bare', heartbeatMs: 15_000, maxPayloadBytes: 10 * 1024 * 1024 }));
});
http.keepAliveTimeout = 60_000;
await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

serveBench({ workers: () => (worker ? 1 : 0) }, async () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  http.closeAllConnections();
  await new Promise((resolve) => http.close(resolve));
}).ready({ url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` });
