/**
 * Idle workers for the scale measurement: plain ws clients that do the flowtest
 * handshake and then only answer pings (ws does that by itself). One process holds a
 * few thousand, all from one source address, so many processes and addresses
 * together stay under the per-process open-files limit and the per-address port range.
 */
import WebSocket from 'ws';
import { PROTOCOL_VERSION, WORKER_CONNECT_PATH } from '../../shared/limits.ts';
import { childConfig, serveBench } from '../harness/child.ts';
import { SUITE, TOKENS } from '../harness/tokens.ts';

childConfig();

/** Open sockets. Owner: this process; removed on close, terminated by `reset`/stop. */
const sockets = new Set<WebSocket>();
let pings = 0;
let closedByPeer = 0;

function open(base: string, localAddress: string, index: number, pools: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const url = `${base}${WORKER_CONNECT_PATH}?suite=${SUITE}&name=pool${index % pools}&concurrency=4`;
    const ws = new WebSocket(url, PROTOCOL_VERSION, {
      headers: { authorization: `Bearer ${TOKENS.worker}` },
      perMessageDeflate: false,
      localAddress,
      handshakeTimeout: 30_000,
    });
    ws.on('error', (err) => reject(err));
    ws.on('ping', () => {
      pings += 1;
    });
    ws.once('open', () => {
      sockets.add(ws);
      resolve();
    });
    ws.once('close', () => {
      if (sockets.delete(ws)) closedByPeer += 1;
    });
  });
}

serveBench(
  {
    /** Opens `count` more sockets, `parallel` handshakes at a time. */
    connect: async ({ url, localAddress, count, parallel, pools, firstIndex }: { url: string; localAddress: string; count: number; parallel: number; pools: number; firstIndex: number }) => {
      let next = 0;
      let failed = 0;
      let firstError: string | null = null;
      const lane = async () => {
        while (next < count) {
          const i = firstIndex + next++;
          await open(url, localAddress, i, pools).catch((err: Error) => {
            failed += 1;
            firstError ??= err.message;
          });
        }
      };
      await Promise.all(Array.from({ length: parallel }, lane));
      return { open: sockets.size, failed, firstError };
    },
    status: () => ({ open: sockets.size, pings, closedByPeer }),
    reset: () => {
      for (const ws of sockets) ws.terminate();
      sockets.clear();
      pings = 0;
      closedByPeer = 0;
    },
  },
  () => {
    for (const ws of sockets) ws.terminate();
    sockets.clear();
  },
).ready();
