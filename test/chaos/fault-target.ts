/**
 * The chaos tests' target: answers each `/job/ID?fault=…` by the fault named (ok, slow with
 * `ms`, reset, reset-mid; anything else hangs), counts every job id it sees and remembers the
 * client port each came from (the agent holding it). Its timers and connections go when the
 * test ends.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

export interface FaultTarget {
  url: string;
  /** Job id → how many times the target saw it. */
  seen: Map<string, number>;
  /** Job id → the client port of its request (the port of the agent that holds it). */
  requestPorts: Map<string, number>;
}

export async function startFaultTarget(t: TestContext): Promise<FaultTarget> {
  const seen = new Map<string, number>();
  const requestPorts = new Map<string, number>();
  const slowTimers = new Set<NodeJS.Timeout>(); // owned here, cleared when answered, dropped or closed
  const target = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const id = url.pathname.split('/')[2] ?? '';
    seen.set(id, (seen.get(id) ?? 0) + 1);
    if (req.socket.remotePort !== undefined) requestPorts.set(id, req.socket.remotePort);
    req.resume();
    const fault = url.searchParams.get('fault');
    if (fault === 'ok') res.end(id);
    else if (fault === 'slow') {
      const timer = setTimeout(() => {
        slowTimers.delete(timer);
        res.end(id);
      }, Number(url.searchParams.get('ms')));
      slowTimers.add(timer);
      res.on('close', () => {
        clearTimeout(timer);
        slowTimers.delete(timer);
      });
    } else if (fault === 'reset') req.socket.resetAndDestroy();
    else if (fault === 'reset-mid') {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('partial', () => req.socket.resetAndDestroy());
    } // hang: never answers
  });
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const timer of slowTimers) clearTimeout(timer);
    target.closeAllConnections();
    await new Promise((resolve) => target.close(resolve));
  });
  return { url: `http://127.0.0.1:${(target.address() as AddressInfo).port}`, seen, requestPorts };
}
