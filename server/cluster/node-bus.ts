/**
 * Point-to-point messages between nodes: each node reads its own inbox subject; a message
 * is JSON, validated on arrival, and cut into chunks when it is over the NATS server's
 * max_payload (see chunks.ts).
 */
import type { Subscription } from '@nats-io/transport-node';
import type { Logger } from '../logger.ts';
import { Reassembler, toFrames, wholeFrame } from './chunks.ts';
import { inboxMessageSchema, SUBJECTS, type InboxMessage, type OutboundMessage } from './cluster-protocol.ts';
import type { NatsLink } from './nats-link.ts';

export interface NodeBusOptions {
  nodeId: string;
  /** This process's instance nonce (a restarted node has a new one). */
  nonce: string;
  /** Bytes unfinished incoming transfers may hold together. */
  maxReassemblyBytes: number;
  /** A transfer with no chunk for this long is dropped. */
  transferIdleMs: number;
}

export type InboxHandler = (message: InboxMessage) => void;

export class NodeBus {
  readonly #reassembler: Reassembler;
  /** Owner: this bus; unsubscribed by close. */
  #sub: Subscription | null = null;
  #seq = 0;
  #handler: InboxHandler = () => {};

  constructor(
    readonly link: NatsLink,
    readonly options: NodeBusOptions,
    readonly log: Logger,
  ) {
    this.#reassembler = new Reassembler({
      maxBytes: options.maxReassemblyBytes,
      idleMs: options.transferIdleMs,
      onDrop: (id, reason) => log.warn({ transferId: id, reason }, 'cluster message dropped'),
    });
  }

  /** Unfinished incoming transfers (tests check the table empties). */
  get pendingTransfers(): number {
    return this.#reassembler.pending;
  }

  /** Starts reading the inbox; `handler` gets every valid message. */
  start(handler: InboxHandler): void {
    this.#handler = handler;
    this.#sub = this.link.nc.subscribe(SUBJECTS.inbox(this.options.nodeId), {
      callback: (err, msg) => {
        if (err) return;
        this.#onFrame(msg.data);
      },
    });
  }

  /** Sends to one node. False when not connected (nothing is buffered for later). */
  send(node: string, message: OutboundMessage): boolean {
    if (!this.link.connected) return false;
    const json = JSON.stringify({ ...message, from: this.options.nodeId, nonce: this.options.nonce });
    const maxPayload = this.link.maxPayload;
    const subject = SUBJECTS.inbox(node);
    try {
      const whole = wholeFrame(json, maxPayload);
      if (whole) this.link.nc.publish(subject, whole);
      else for (const f of toFrames(Buffer.from(json), maxPayload, `${this.options.nonce}.${(this.#seq += 1)}`)) this.link.nc.publish(subject, f);
      return true;
    } catch (err) {
      this.log.warn({ err, node }, 'cluster send failed');
      return false;
    }
  }

  /** Forgets the unfinished transfers of a sender that died or restarted. */
  dropSender(nonce: string): void {
    this.#reassembler.dropSender(nonce);
  }

  close(): void {
    this.#sub?.unsubscribe();
    this.#sub = null;
    this.#reassembler.close();
  }

  #onFrame(data: Uint8Array): void {
    const r = this.#reassembler.push(data);
    if (r.kind !== 'message') {
      if (r.kind === 'invalid') this.log.warn({ reason: r.reason }, 'bad cluster frame');
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength).toString('utf8'));
    } catch {
      this.log.warn('cluster message is not JSON');
      return;
    }
    const m = inboxMessageSchema.safeParse(parsed);
    if (!m.success) {
      this.log.warn({ issue: m.error.issues[0]?.message, path: m.error.issues[0]?.path.join('.') }, 'invalid cluster message');
      return;
    }
    this.#handler(m.data);
  }
}
