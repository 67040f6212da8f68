/**
 * A target HTTP server on 127.0.0.1:0 that tests program route by route. It counts
 * its open sockets and tells when a request's connection closes, so tests can see
 * an agent abort a request at the target.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TestContext } from 'node:test';

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

export interface Target {
  url: string;
  route(path: string, handler: Handler): void;
  /** Sockets open right now. */
  openSockets(): number;
  /** Paths of requests whose connection closed before the response finished. */
  aborted: string[];
  /** Every request seen, in order. */
  seen: { method: string; path: string; headers: IncomingMessage['headers']; rawHeaders: string[]; body: Buffer }[];
}

export async function startTarget(t: TestContext): Promise<Target> {
  const routes = new Map<string, Handler>();
  const sockets = new Set<Socket>();
  const aborted: string[] = [];
  const seen: Target['seen'] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', path: url.pathname, headers: req.headers, rawHeaders: req.rawHeaders, body });
      res.on('close', () => {
        if (!res.writableFinished) aborted.push(url.pathname);
      });
      const handler = routes.get(url.pathname);
      if (handler) handler(req, res, body);
      else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
      }
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, route: (p, h) => routes.set(p, h), openSockets: () => sockets.size, aborted, seen };
}
