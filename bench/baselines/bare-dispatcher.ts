/**
 * Floor baseline: the least a dispatcher can do over the same wire. It speaks the
 * flowtest worker protocol to the real agent (welcome, job, result, pings) and takes
 * the same dispatch POST — but with no token check, no schema validation, no deadlines,
 * no metrics, no console and no logging. The gap between it and the real server is
 * what our own code costs per job.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { PROTOCOL_VERSION } from '../../shared/limits.ts';
import { serveBench } from '../harness/child.ts';

interface Waiting {
  res: ServerResponse;
  frame: string;
  at: number;
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

const http = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { timeoutMs?: number; request: unknown };
    const id = String(++nextId);
    const job = { res, at: performance.now(), frame: JSON.stringify({ type: 'job', id, timeoutMs: body.timeoutMs ?? 30_000, request: body.request }) };
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
    if (worker?.ws === ws) worker = null;
  });
  ws.on('message', (data) => {
    const frame = JSON.parse(String(data)) as { type: string; id: string; response?: unknown };
    const job = held.get(frame.id);
    if (frame.type !== 'result' || !job) return;
    held.delete(frame.id);
    if (worker) worker.slots += 1;
    const text = JSON.stringify({ id: frame.id, workerId: 'bare', durationMs: performance.now() - job.at, response: frame.response });
    job.res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    job.res.end(text);
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
