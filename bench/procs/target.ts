/**
 * The target the jobs call: `GET /item` answers a small JSON body at once, `GET /hang`
 * holds the request until `release` (failure timing). Reports its CPU like every child.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveBench } from '../harness/child.ts';

const ITEM = JSON.stringify({ id: 42, name: 'widget', tags: ['a', 'b'], price: 9.99 });
/** Requests held by /hang. Owner: this process; entries leave on release or when the connection closes. */
const held = new Set<ServerResponse>();

const server = createServer((req, res) => {
  req.resume();
  if (req.url === '/item') {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(ITEM) });
    res.end(ITEM);
  } else if (req.url === '/hang') {
    held.add(res);
    res.on('close', () => held.delete(res));
  } else {
    res.writeHead(404).end();
  }
});
server.keepAliveTimeout = 60_000;
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

const io = serveBench(
  {
    held: () => held.size,
    release: () => {
      for (const res of held) res.destroy();
      held.clear();
    },
  },
  async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  },
);
io.ready({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
