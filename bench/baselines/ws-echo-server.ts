/**
 * Transport-limit baseline: a bare ws server that sends every text message straight
 * back. No parsing, no validation, no tables — what one message each way costs.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { serveBench } from '../harness/child.ts';

const http = createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ server: http, perMessageDeflate: false, clientTracking: true });
wss.on('connection', (ws) => {
  ws.on('error', () => ws.terminate());
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

serveBench({}, async () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  await new Promise((resolve) => http.close(resolve));
}).ready({ url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}` });
