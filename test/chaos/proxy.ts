/**
 * A TCP proxy on 127.0.0.1:0 between agents and the server, so the chaos test can reset
 * a worker socket (a RST to both ends) and point agents at a restarted server.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Rng } from '../helpers/prng.ts';

interface Pair {
  client: Socket;
  upstream: Socket;
}

export class ChaosProxy {
  // Owner of the listener and of every pair; close() ends them all.
  readonly #server: Server;
  readonly #pairs = new Set<Pair>();
  #upstreamPort: number;
  port = 0;

  private constructor(upstreamPort: number) {
    this.#upstreamPort = upstreamPort;
    this.#server = createServer((client) => this.#pipe(client));
  }

  static async start(upstreamPort: number): Promise<ChaosProxy> {
    const proxy = new ChaosProxy(upstreamPort);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.#server.address() as AddressInfo).port;
    return proxy;
  }

  /** New connections go to `port` from now on; open ones stay where they are. */
  setUpstream(port: number): void {
    this.#upstreamPort = port;
  }

  get connections(): number {
    return this.#pairs.size;
  }

  /** Resets one connection, chosen by `random`, at both ends; false when there is none. */
  resetOne(random: Rng): boolean {
    const pairs = [...this.#pairs];
    if (pairs.length === 0) return false;
    const pair = random.pick(pairs);
    pair.client.resetAndDestroy();
    pair.upstream.resetAndDestroy();
    return true;
  }

  #pipe(client: Socket): void {
    const upstream = connect(this.#upstreamPort, '127.0.0.1');
    const pair = { client, upstream };
    this.#pairs.add(pair);
    const end = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async close(): Promise<void> {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise((resolve) => this.#server.close(resolve));
  }
}
