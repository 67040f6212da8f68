/**
 * Idle-scale baseline: a bare ws server that accepts the same handshake path and
 * subprotocol and then only holds the sockets and pings each one every `heartbeatMs`
 * on its own timer (started at its connection, as the real server's are) — no
 * sessions, no pong bookkeeping, no tables, no logging. What N open, pinged sockets
 * cost in ws, Node and the kernel before any of our code runs.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { PROTOCOL_VERSION } from '../../shared/limits.ts';
import { childConfig, serveBench } from '../harness/child.ts';

const { heartbeatMs } = childConfig<{ heartbeatMs: number }>();

/** Open sockets. Owner: this process; removed on close. */
const sockets = new Set<WebSocket>();
const http = createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({
  noServer: true,
  clientTracking: false,
  perMessageDeflate: false,
  handleProtocols: (protocols) => (protocols.has(PROTOCOL_VERSION) ? PROTOCOL_VERSION : false),
});
http.on('upgrade', (req, socket, head) => {
  socket.on('error', () => socket.destroy());
  wss.handleUpgrade(req, socket, head, (ws) => {
    sockets.add(ws);
    // Owned by this socket's handlers: cleared on close.
    const ping = setInterval(() => ws.ping(), heartbeatMs);
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      clearInterval(ping);
      sockets.delete(ws);
    });
  });
});
await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

serveBench({ workers: () => sockets.size }, async () => {
  for (const ws of sockets) ws.terminate();
  await new Promise((resolve) => http.close(resolve));
}).ready({ url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` });
