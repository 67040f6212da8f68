/**
 * The node's one NATS connection: connects to the URL list, reconnects forever with a
 * bounded wait, turns the client's status stream into a `connected` flag (for /readyz and
 * for routing: no connection, no remote node), and closes on shutdown.
 */
import { connect, type NatsConnection, type Status, type Subscription } from '@nats-io/transport-node';
import type { z } from 'zod';
import type { Logger } from '../logger.ts';
import { parseNatsUrls, redact } from './nats-urls.ts';

export interface NatsLinkOptions {
  /** The `--nats` list. */
  urls: string;
  /** Client name shown by the NATS server's monitoring. */
  name: string;
  /** How long the first connection may take before start fails. */
  connectTimeoutMs?: number;
}

/**
 * Client settings. Reconnect never gives up and waits at most ~0.5 s between tries, so a
 * node rejoins soon after NATS returns. A client ping every second with two outstanding
 * allowed notices a NATS that froze (TCP open, nothing answers) within ~3 s.
 */
const CLIENT = {
  reconnectTimeWait: 250,
  reconnectJitter: 250,
  reconnectJitterTLS: 250,
  pingInterval: 1000,
  maxPingOut: 2,
} as const;

export type LinkListener = (connected: boolean) => void;

export class NatsLink {
  #connected = false;
  #closing = false;
  /** Owner: this link; removed by the remover `onChange` returns. */
  readonly #listeners = new Set<LinkListener>();
  /** The status loop; ends when the connection closes. */
  #statusLoop: Promise<void> = Promise.resolve();

  private constructor(
    readonly nc: NatsConnection,
    readonly log: Logger,
  ) {}

  /**
   * Subscribes to `subject` and hands `onValue` each message that is JSON and matches
   * `schema`; anything else is dropped, like any bad input at a boundary. The caller owns
   * the returned subscription.
   */
  subscribeJson<S extends z.ZodType>(subject: string, schema: S, onValue: (value: z.infer<S>) => void): Subscription {
    return this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        let parsed: unknown;
        try {
          parsed = msg.json();
        } catch {
          return;
        }
        const r = schema.safeParse(parsed);
        if (r.success) onValue(r.data);
      },
    });
  }

  /** Connects (rejecting with a one-line Error when NATS cannot be reached in time). */
  static async open(options: NatsLinkOptions, log: Logger): Promise<NatsLink> {
    const target = parseNatsUrls(options.urls);
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: target.servers,
        user: target.user,
        pass: target.pass,
        token: target.token,
        ...(target.tls ? { tls: {} } : {}),
        name: options.name,
        timeout: options.connectTimeoutMs ?? 5000,
        maxReconnectAttempts: -1,
        ignoreAuthErrorAbort: false,
        ...CLIENT,
      });
    } catch (err) {
      throw new Error(`cannot connect to NATS at ${redact(options.urls)}: ${(err as Error).message}`);
    }
    const link = new NatsLink(nc, log);
    link.#connected = true;
    link.#statusLoop = link.#watch();
    log.info({ server: nc.getServer(), maxPayload: nc.info?.max_payload }, 'connected to NATS');
    return link;
  }

  /** Whether the connection is up now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The server's max_payload (bytes) on the current connection. */
  get maxPayload(): number {
    return this.nc.info?.max_payload ?? 1024 * 1024;
  }

  /** Calls `listener` on every change of `connected`; returns its remover. */
  onChange(listener: LinkListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #watch(): Promise<void> {
    for await (const s of this.nc.status() as AsyncIterable<Status>) {
      if (s.type === 'disconnect' || s.type === 'staleConnection') this.#set(false, s);
      else if (s.type === 'reconnect') this.#set(true, s);
      else if (s.type === 'error') this.log.warn({ err: s.error }, 'NATS error');
      else if (s.type === 'slowConsumer') this.log.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'NATS slow consumer');
    }
  }

  #set(connected: boolean, s: Status): void {
    if (this.#closing || this.#connected === connected) return;
    this.#connected = connected;
    if (connected) this.log.info({ server: this.nc.getServer() }, 'reconnected to NATS');
    else this.log.warn({ status: s.type }, 'lost the NATS connection; reconnecting');
    for (const l of this.#listeners) l(connected);
  }

  /**
   * Flushes what was published (best effort, bounded) and closes the connection; idempotent.
   * Listeners are not called: the node is going away, not losing its cluster.
   */
  async close(): Promise<void> {
    if (this.#closing) return this.nc.closed().then(() => undefined);
    this.#closing = true;
    this.#listeners.clear();
    if (this.#connected && !this.nc.isClosed()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.nc.flush().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 500)))]);
      clearTimeout(timer);
    }
    this.#connected = false;
    await this.nc.close().catch(() => undefined);
    await this.#statusLoop;
  }
}
