/**
 * A debug console left open on the flowtest server during the dispatch measurement:
 * the product run pays for the console's job record and feed as it would with a
 * person watching. Does the console handshake (admin token in the subprotocol), sends
 * the page's heartbeat, and counts the job rows the feed delivers.
 */
import WebSocket from 'ws';
import { CONSOLE_PATH, CONSOLE_SUBPROTOCOL, TOKEN_PROTOCOL_PREFIX } from '../../server/console/console-protocol.ts';
import { childConfig, serveBench } from '../harness/child.ts';
import { TOKENS } from '../harness/tokens.ts';

const { server } = childConfig<{ server: string }>();

let jobRows = 0;
let messages = 0;
/** The page's heartbeat; owned by this socket, cleared on close. */
let heartbeat: NodeJS.Timeout | null = null;

const ws = new WebSocket(`${server.replace(/^http/, 'ws')}${CONSOLE_PATH}`, [CONSOLE_SUBPROTOCOL, `${TOKEN_PROTOCOL_PREFIX}${Buffer.from(TOKENS.admin).toString('base64url')}`], {
  perMessageDeflate: false,
});
ws.on('message', (data) => {
  messages += 1;
  const msg = JSON.parse(String(data)) as { type: string; heartbeatMs?: number; jobs?: unknown[] };
  if (msg.jobs) jobRows += msg.jobs.length;
  if (msg.type === 'snapshot' && !heartbeat) heartbeat = setInterval(() => ws.send(JSON.stringify({ type: 'ping', t: Date.now() })), msg.heartbeatMs ?? 10_000);
});
ws.on('close', () => {
  if (heartbeat) clearInterval(heartbeat);
  heartbeat = null;
});
ws.on('error', (err) => process.stderr.write(`console observer: ${err.message}\n`));
await new Promise<void>((resolve, reject) => {
  ws.once('open', resolve);
  ws.once('error', reject);
});

serveBench({ status: () => ({ open: ws.readyState === WebSocket.OPEN, messages, jobRows }) }, () => {
  if (heartbeat) clearInterval(heartbeat);
  ws.terminate();
}).ready();
