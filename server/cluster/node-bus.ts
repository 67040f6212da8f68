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

/**
 * Bounds of the outbox: answers (outcomes, cancels, hand-backs) written while the NATS
 * connection is down wait here and go out when their node is heard again (its announcement
 * proves its inbox is subscribed once more; core NATS keeps nothing for a subscriber that is
 * not there) — the client itself drops what was published while disconnected. A brief NATS blip (a restart, a fail-over) then costs no job
 * its answer; past the bounds the oldest are dropped (their jobs end by deadline or node death).
 */
const OUTBOX_MAX_MESSAGES = 10_000;
const OUTBOX_MAX_BYTES = 64 * 1024 * 1024;

export class NodeBus {
  readonly #reassembler: Reassembler;
  /** Owner: this bus; unsubscribed by close. */
  #sub: Subscription | null = null;
  #seq = 0;
  #handler: InboxHandler = () => {};
  /** Answers waiting for the connection, oldest first. Owner: this bus; flushed on reconnect, dropped per node or on close. */
  #outbox: { node: string; message: OutboundMessage; bytes: number }[] = [];
  #outboxBytes = 0;
  /** The sender's members that open every message. */
  readonly #envelope: string;

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
    this.#envelope = `{"from":${JSON.stringify(options.nodeId)},"nonce":${JSON.stringify(options.nonce)},`;
  }

  /** Unfinished incoming transfers (tests check the table empties). */
  get pendingTransfers(): number {
    return this.#reassembler.pending;
  }

  /** Answers waiting for the NATS connection. */
  get outboxSize(): number {
    return this.#outbox.length;
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
    // `{"from":…,"nonce":…,` then the message's own members: no copy of the message to add two.
    const json = this.#envelope + JSON.stringify(message).slice(1);
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

  /**
   * Sends an answer (outcome, cancel, hand-back): at once when connected, else from the outbox
   * when the connection returns.
   */
  deliver(node: string, message: OutboundMessage): void {
    if (this.link.connected && this.send(node, message)) return;
    const bytes = estimateBytes(message);
    this.#outbox.push({ node, message, bytes });
    this.#outboxBytes += bytes;
    let dropped = 0;
    while (this.#outbox.length > OUTBOX_MAX_MESSAGES || this.#outboxBytes > OUTBOX_MAX_BYTES) {
      this.#outboxBytes -= this.#outbox.shift()!.bytes;
      dropped += 1;
    }
    if (dropped > 0) this.log.warn({ dropped, kept: this.#outbox.length }, 'cluster outbox full while NATS is away: oldest answers dropped');
  }

  /** Drops what waits for a node that is gone. */
  forget(node: string): void {
    if (this.#outbox.length === 0) return;
    const kept = this.#outbox.filter((e) => e.node !== node);
    if (kept.length === this.#outbox.length) return;
    this.#outbox = kept;
    this.#outboxBytes = kept.reduce((s, e) => s + e.bytes, 0);
  }

  /** The node was heard: what waits for it goes now. */
  flushFor(node: string): void {
    if (this.#outbox.length === 0 || !this.link.connected) return;
    const due = this.#outbox.filter((e) => e.node === node);
    if (due.length === 0) return;
    this.forget(node);
    for (const e of due) this.deliver(e.node, e.message);
  }

  /** Forgets the unfinished transfers of a sender that died or restarted. */
  dropSender(nonce: string): void {
    this.#reassembler.dropSender(nonce);
  }

  close(): void {
    this.#sub?.unsubscribe();
    this.#sub = null;
    this.#reassembler.close();
    this.#outbox = [];
    this.#outboxBytes = 0;
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

/** Rough size of a queued answer (its bodies dominate). */
function estimateBytes(m: OutboundMessage): number {
  if (m.type === 'outcome' && m.response) return 256 + m.response.body.length;
  return 256;
}
