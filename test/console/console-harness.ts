/**
 * Harness of the console tests: a protocol-level console client that records every
 * message (and its raw text), and a rig with a scriptable router behind a real
 * ConsoleGateway on 127.0.0.1:0. Everything is closed by the test that made it.
 */
import { createServer } from 'node:http';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import WebSocket from 'ws';
import { z } from 'zod';
import { decodeJson } from '../../shared/codec.ts';
import { FlowtestError } from '../../shared/errors.ts';
import type { DispatchRequest, DispatchSuccess, WorkerInfo } from '../../shared/protocol.ts';
import { createLogger } from '../../server/logger.ts';
import type { RouterEvent, RouterObserver } from '../../server/router-events.ts';
import { ConsoleGateway } from '../../server/console/console-gateway.ts';
import type { ConsoleRouter } from '../../server/console/console-feed.ts';
import type { ConsoleOptionsInput } from '../../server/console/console-options.ts';
import { createConsoleRoutes } from '../../server/console/console-routes.ts';
import { CONSOLE_PATH, CONSOLE_SUBPROTOCOL, type ConsoleServerMessage } from '../../server/console/console-protocol.ts';
import { testTokenStore, TOKENS } from '../helpers/server.ts';

export const consoleProtocols = (token: string): string[] => [CONSOLE_SUBPROTOCOL, `token.${Buffer.from(token).toString('base64url')}`];

const anyMessage = z.looseObject({ type: z.string() });
type Msg<T extends ConsoleServerMessage['type']> = Extract<ConsoleServerMessage, { type: T }>;

export class ConsoleClient {
  readonly messages: ConsoleServerMessage[] = [];
  /** Every message as it came over the wire (to prove what the console never received). */
  readonly raw: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #waiters = new Set<{ match: (m: ConsoleServerMessage) => boolean; resolve: (m: ConsoleServerMessage) => void }>();
  /** Messages before this index were consumed by next(). */
  #cursor = 0;

  constructor(readonly ws: WebSocket) {
    ws.on('error', () => {});
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
    ws.on('message', (data) => {
      const text = String(data);
      this.raw.push(text);
      const decoded = decodeJson(anyMessage, text);
      if (!decoded.ok) throw new Error(`server sent a bad console message: ${decoded.reason}`);
      const m = decoded.value as unknown as ConsoleServerMessage;
      this.messages.push(m);
      for (const w of this.#waiters) {
        if (w.match(m)) {
          this.#waiters.delete(w);
          w.resolve(m);
        }
      }
    });
  }

  static async connect(t: TestContext, wsUrl: string, opts: { token?: string; origin?: string } = {}): Promise<ConsoleClient> {
    const ws = new WebSocket(`${wsUrl}${CONSOLE_PATH}`, consoleProtocols(opts.token ?? TOKENS.admin), {
      perMessageDeflate: false,
      ...(opts.origin ? { headers: { origin: opts.origin } } : {}),
    });
    const client = new ConsoleClient(ws);
    t.after(() => ws.terminate());
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`console handshake refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
    return client;
  }

  /** The next message of `type` after those already consumed, within `timeoutMs`. */
  next<T extends ConsoleServerMessage['type']>(type: T, match: (m: Msg<T>) => boolean = () => true, timeoutMs = 5000): Promise<Msg<T>> {
    const test = (m: ConsoleServerMessage) => m.type === type && match(m as Msg<T>);
    for (let i = this.#cursor; i < this.messages.length; i++) {
      if (test(this.messages[i])) {
        this.#cursor = i + 1;
        return Promise.resolve(this.messages[i] as Msg<T>);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`no ${type} message within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        match: test,
        resolve: (m: ConsoleServerMessage) => {
          clearTimeout(timer);
          this.#cursor = this.messages.indexOf(m) + 1;
          resolve(m as Msg<T>);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }
}

/** A router the test scripts: it emits whatever events the test makes and lists what it is told. */
export class ScriptedRouter implements ConsoleRouter {
  readonly observers = new Set<RouterObserver>();
  readonly workers = new Map<string, WorkerInfo>();
  queued = 0;

  observe(observer: RouterObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }
  emit(event: RouterEvent): void {
    for (const o of this.observers) o(event);
  }
  listWorkers(): WorkerInfo[] {
    return [...this.workers.values()];
  }
  poolStats() {
    const pools = new Map<string, { suite: string; pool: string; ready: number; draining: number; freeSlots: number; queued: number }>();
    for (const w of this.workers.values()) {
      const key = `${w.suite}/${w.name}`;
      const p = pools.get(key) ?? { suite: w.suite, pool: w.name, ready: 0, draining: 0, freeSlots: 0, queued: 0 };
      if (w.state === 'ready') {
        p.ready += 1;
        p.freeSlots += w.concurrency - w.inFlight;
      } else p.draining += 1;
      pools.set(key, p);
    }
    return [...pools.values()];
  }
  stats() {
    let inFlight = 0;
    for (const w of this.workers.values()) inFlight += w.inFlight;
    return { workers: this.workers.size, inFlight, queued: this.queued };
  }
  dispatch(_suite: string, body: DispatchRequest, _signal: AbortSignal): Promise<DispatchSuccess> {
    return Promise.reject(new FlowtestError('no_worker', `no open worker in pool ${body.pool}`));
  }
}

export function workerInfo(id: string, over: Partial<WorkerInfo> = {}): WorkerInfo {
  return {
    id, suite: 'acme', name: 'pool1', state: 'ready', concurrency: 4, inFlight: 0,
    connectedAt: new Date().toISOString(), lastPongAt: null, rttMs: null, agentVersion: '0.1.0', remoteAddress: '127.0.0.1',
    ...over,
  };
}

export interface Rig {
  router: ScriptedRouter;
  gateway: ConsoleGateway;
  wsUrl: string;
  url: string;
}

/** A ConsoleGateway and the console page over a ScriptedRouter, on their own HTTP server on 127.0.0.1:0. */
export async function startRig(t: TestContext, options: ConsoleOptionsInput = {}, router = new ScriptedRouter()): Promise<Rig> {
  const tokens = testTokenStore();
  const gateway = new ConsoleGateway({ router, tokens, log: createLogger({ level: 'silent' }), allowedOrigins: [] }, options);
  const routes = createConsoleRoutes({ tokens });
  const http = createServer((req, res) => {
    if (!routes(req, res, new URL(req.url ?? '/', 'http://localhost'))) res.writeHead(404).end();
  });
  http.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    gateway.handleUpgrade(req, socket, head);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  t.after(async () => {
    await gateway.close();
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
  });
  const { port } = http.address() as AddressInfo;
  return { router, gateway, wsUrl: `ws://127.0.0.1:${port}`, url: `http://127.0.0.1:${port}` };
}

/**
 * A TCP proxy on 127.0.0.1:0 in front of `port`. `blackhole()` makes every connection
 * open now silent in both directions without closing it — a dead network path, as a
 * browser sees it; connections opened later pass through normally.
 */
export async function startBlackholeProxy(t: TestContext, port: number): Promise<{ url: string; blackhole(): void }> {
  const pairs = new Set<[Socket, Socket]>();
  const server = createTcpServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    for (const s of pair) {
      s.on('error', () => {});
      s.on('close', () => {
        pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise((r) => server.close(r));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    blackhole() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
  };
}
