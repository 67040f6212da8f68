/**
 * A tiny HTTP target for demos: the thing behind the firewall that agents call.
 *
 *   GET  /hello         → JSON greeting
 *   ANY  /echo          → JSON of the method, path, query, headers and body received
 *   ANY  /status/NNN    → an empty answer with that status (try 302, 418, 503)
 *   GET  /bytes         → 256 binary bytes (comes back base64, printed raw by the CLI)
 *   GET  /slow?ms=N     → answers after N ms (at most 60 s), to try --timeout-ms
 *
 * Imported by scripts/demo.ts; run alone (docker compose) with
 * `node --import tsx scripts/demo-target.ts`, listening on DEMO_TARGET_HOST:DEMO_TARGET_PORT
 * (default 127.0.0.1:8081).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

export interface DemoTarget {
  /** `http://host:port` as bound. */
  readonly url: string;
  /** Stops listening and ends open connections and pending /slow timers; idempotent. */
  close(): Promise<void>;
}

const MAX_SLOW_MS = 60_000;
const MAX_ECHO_BYTES = 1024 * 1024;

export async function startDemoTarget(options: { host?: string; port?: number } = {}): Promise<DemoTarget> {
  const host = options.host ?? '127.0.0.1';
  // Timers of /slow requests still waiting; owned here, cleared when the request goes away or on close.
  const slowTimers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => route(req, res, slowTimers));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of slowTimers) clearTimeout(t);
        slowTimers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function route(req: IncomingMessage, res: ServerResponse, slowTimers: Set<NodeJS.Timeout>): void {
  const url = new URL(req.url ?? '/', 'http://target');
  const status = /^\/status\/(\d{3})$/.exec(url.pathname);
  if (url.pathname === '/hello') {
    json(res, 200, { hello: 'from behind the firewall', time: new Date().toISOString() });
  } else if (url.pathname === '/echo') {
    readBody(req, (body, tooLarge) => {
      if (tooLarge) return json(res, 413, { error: `body over ${MAX_ECHO_BYTES} bytes` });
      json(res, 200, {
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body: body.toString('utf8'),
      });
    });
  } else if (status) {
    const code = Number(status[1]);
    if (code < 200 || code > 599) return json(res, 400, { error: 'status must be 200..599' });
    if (code >= 300 && code < 400) res.setHeader('location', '/hello');
    res.writeHead(code).end();
  } else if (url.pathname === '/bytes') {
    const bytes = Buffer.alloc(256);
    for (let i = 0; i < bytes.length; i++) bytes[i] = i;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length }).end(bytes);
  } else if (url.pathname === '/slow') {
    const ms = Math.min(Math.max(Number(url.searchParams.get('ms')) || 0, 0), MAX_SLOW_MS);
    const timer = setTimeout(() => {
      slowTimers.delete(timer);
      json(res, 200, { waitedMs: ms });
    }, ms);
    slowTimers.add(timer);
    res.once('close', () => {
      clearTimeout(timer);
      slowTimers.delete(timer);
    });
  } else {
    json(res, 404, { error: 'not found', routes: ['/hello', '/echo', '/status/NNN', '/bytes', '/slow?ms=N'] });
  }
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = `${JSON.stringify(value, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
}

function readBody(req: IncomingMessage, done: (body: Buffer, tooLarge: boolean) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_ECHO_BYTES) tooLarge = true;
    else chunks.push(chunk);
  });
  req.on('end', () => done(Buffer.concat(chunks), tooLarge));
}

// Run alone: `node --import tsx scripts/demo-target.ts` (docker compose's demo-target service).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const target = await startDemoTarget({
    host: process.env.DEMO_TARGET_HOST ?? '127.0.0.1',
    port: Number(process.env.DEMO_TARGET_PORT ?? 8081),
  });
  process.stdout.write(`demo target listening on ${target.url}\n`);
  const stop = () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    void target.close();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
