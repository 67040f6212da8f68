/**
 * A stand-in for the flowtest server's HTTP API on 127.0.0.1, port 0: each test says
 * how to answer and sees what the client sent. Used by the client and CLI tests.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** The exchange, to see the client drop it. */
  res: ServerResponse;
}

export type Handler = (req: RecordedRequest, res: ServerResponse) => void;

export interface FakeServer {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Resolves with the next request to arrive (or the first one not yet awaited). */
  nextRequest(): Promise<RecordedRequest>;
  /** Ends every connection and stops listening; idempotent. */
  close(): Promise<void>;
}

export async function startFakeServer(handler: Handler): Promise<FakeServer> {
  const requests: RecordedRequest[] = [];
  let awaited = 0;
  // Waiters for nextRequest(); owned here, resolved by the request handler.
  const waiters: ((r: RecordedRequest) => void)[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const recorded = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), res };
      requests.push(recorded);
      const waiter = waiters.shift();
      if (waiter) {
        awaited += 1;
        waiter(recorded);
      }
      handler(recorded, res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    nextRequest() {
      if (awaited < requests.length) return Promise.resolve(requests[awaited++]);
      return new Promise((resolve) => waiters.push(resolve));
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Answers with JSON. */
export function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

/** Rejects when `promise` takes longer than `ms`: tests wait on events, never forever. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port on 127.0.0.1 with nothing listening (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** A valid dispatch success body. */
export function successBody(response: { status?: number; body?: string; bodyEncoding?: 'utf8' | 'base64'; headers?: Record<string, string | string[]> } = {}) {
  return {
    id: 'job-1',
    workerId: 'worker-1',
    durationMs: 12,
    response: {
      status: response.status ?? 200,
      headers: response.headers ?? { 'content-type': 'text/plain' },
      body: response.body ?? 'hello',
      bodyEncoding: response.bodyEncoding ?? 'utf8',
    },
  };
}
