/**
 * Which nodes are live. Every node announces itself (id, instance nonce, its pools: ready
 * workers, free slots, queue depth) every `announceMs`, and says so when it leaves cleanly.
 * A node not heard for `deadAfterMs` is dead; so is an old instance when its id comes back
 * with a new nonce. A node that lost NATS stops hearing anyone and, after the same delay,
 * sees every other node dead — as they see it.
 */
import { hostname } from 'node:os';
import { NoRespondersError, TimeoutError, type Subscription } from '@nats-io/transport-node';
import { nanoid } from 'nanoid';
import type { Logger } from '../logger.ts';
import { announceSchema, NODE_ID_PATTERN, SUBJECTS, type Announce, type PoolAnnounce } from './cluster-protocol.ts';
import type { NatsLink } from './nats-link.ts';

export const MEMBERSHIP_DEFAULTS = {
  announceMs: 450,
  /** ~3 announcements missed; well under the contract's 3 s. */
  deadAfterMs: 1400,
  /** How often liveness is checked. */
  checkMs: 100,
} as const;

/** Delay of a change-driven announcement: long enough to batch a burst of worker events. */
const SOON_MS = 10;

export interface Peer {
  readonly node: string;
  readonly nonce: string;
  /** Leaving: shutting down cleanly; it finishes what it holds and takes nothing new. */
  leaving: boolean;
  /** Workers it said it holds. */
  workers: number;
  /** It has a console open (wants the job feed). */
  consoles: boolean;
  lastHeardAt: number;
  /** Pools by `suite/pool`, from its last announcement. */
  pools: Map<string, PoolAnnounce>;
}

export type LeaveReason = 'left' | 'dead' | 'restarted';

export interface MembershipEvents {
  joined(peer: Peer): void;
  /** The peer is gone (its jobs elsewhere must fail); called once per instance. */
  left(peer: Peer, reason: LeaveReason): void;
  /** A new announcement (pools, worker count, leaving). */
  updated(peer: Peer): void;
}

export interface MembershipOptions {
  nodeId: string;
  nonce: string;
  /** This node's pools now (read at each announcement). */
  localPools(): PoolAnnounce[];
  /** Workers this node holds now. */
  localWorkers(): number;
  /** Whether a console is open here now. */
  localConsoles?(): boolean;
  announceMs?: number;
  deadAfterMs?: number;
}

/** `--node-id` default: the host name (made subject-safe) plus a short random suffix. */
export function defaultNodeId(host = hostname()): string {
  const base = host.replace(/[^A-Za-z0-9_-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 50) || 'node';
  return `${base}-${nanoid(6).replace(/[^A-Za-z0-9]/g, 'x')}`;
}

export function isValidNodeId(id: string): boolean {
  return NODE_ID_PATTERN.test(id);
}

/** Whether a node with this id answers in the cluster now (no responders: the id is free). */
export async function isNodeIdLive(link: NatsLink, nodeId: string, timeoutMs = 1000): Promise<boolean> {
  try {
    await link.nc.request(SUBJECTS.ping(nodeId), '', { timeout: timeoutMs });
    return true;
  } catch (err) {
    if (err instanceof NoRespondersError) return false;
    // Subscribed but silent (a frozen node): its id is still taken.
    if (err instanceof TimeoutError) return true;
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof NoRespondersError) return false;
    if (cause instanceof TimeoutError) return true;
    throw err;
  }
}

export class Membership {
  /** Live peers by node id (this node not included). Owner: this membership. */
  readonly #peers = new Map<string, Peer>();
  readonly #announceMs: number;
  readonly #deadAfterMs: number;
  // Timers and subscriptions, all owned here; started by start, stopped by close.
  #announceTimer: NodeJS.Timeout | null = null;
  /** A coalesced announcement after a local change (one timer at most). */
  #soonTimer: NodeJS.Timeout | null = null;
  #checkTimer: NodeJS.Timeout | null = null;
  #subs: Subscription[] = [];
  #closed = false;
  #state: 'up' | 'leaving' | 'gone' = 'up';

  constructor(
    readonly link: NatsLink,
    readonly options: MembershipOptions,
    readonly events: MembershipEvents,
    readonly log: Logger,
  ) {
    this.#announceMs = options.announceMs ?? MEMBERSHIP_DEFAULTS.announceMs;
    this.#deadAfterMs = options.deadAfterMs ?? MEMBERSHIP_DEFAULTS.deadAfterMs;
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** Live nodes this node sees, itself included (the `flowtest_cluster_nodes` gauge). */
  get liveNodes(): number {
    return this.#peers.size + 1;
  }

  peers(): IterableIterator<Peer> {
    return this.#peers.values();
  }

  peer(node: string): Peer | undefined {
    return this.#peers.get(node);
  }

  /** Subscribes, answers id checks, announces at once and then periodically. */
  start(): void {
    const nc = this.link.nc;
    this.#subs.push(
      nc.subscribe(SUBJECTS.ping(this.options.nodeId), {
        callback: (err, msg) => {
          if (!err) msg.respond(this.options.nonce);
        },
      }),
      this.link.subscribeJson(SUBJECTS.announce, announceSchema, (a) => this.#onAnnounce(a)),
    );
    this.#announce();
    this.#announceTimer = setInterval(() => this.#announce(), this.#announceMs);
    this.#checkTimer = setInterval(this.#check, MEMBERSHIP_DEFAULTS.checkMs);
  }

  /** Announces now (after a local change worth telling at once). */
  announceNow(): void {
    if (!this.#closed) this.#announce();
  }

  /**
   * Announces within a few milliseconds: a worker came, changed or went here. Changes in a burst
   * (a reconnect storm) share one announcement.
   */
  announceSoon(): void {
    if (this.#closed || this.#soonTimer) return;
    this.#soonTimer = setTimeout(() => {
      this.#soonTimer = null;
      this.#announce();
    }, SOON_MS);
  }

  /** Shutdown began: tell the others at once (they stop sending new jobs) and keep announcing so. */
  beginLeave(): void {
    if (this.#closed || this.#state !== 'up') return;
    this.#state = 'leaving';
    this.#announce();
  }

  /** Says goodbye, stops timers and subscriptions; idempotent. Every peer is forgotten (no events). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#state = 'gone';
    this.#announce();
    if (this.#announceTimer) clearInterval(this.#announceTimer);
    if (this.#soonTimer) clearTimeout(this.#soonTimer);
    this.#soonTimer = null;
    if (this.#checkTimer) clearInterval(this.#checkTimer);
    this.#announceTimer = null;
    this.#checkTimer = null;
    for (const s of this.#subs) s.unsubscribe();
    this.#subs = [];
    this.#peers.clear();
  }

  #announce(): void {
    if (!this.link.connected) return;
    const gone = this.#state === 'gone';
    const a: Announce = {
      node: this.options.nodeId,
      nonce: this.options.nonce,
      state: this.#state,
      workers: gone ? 0 : this.options.localWorkers(),
      consoles: !gone && (this.options.localConsoles?.() ?? false),
      pools: gone ? [] : this.options.localPools(),
    };
    try {
      this.link.nc.publish(SUBJECTS.announce, JSON.stringify(a));
    } catch (err) {
      this.log.warn({ err }, 'announce failed');
    }
  }

  #onAnnounce(a: Announce): void {
    if (this.#closed || a.node === this.options.nodeId) return;
    const known = this.#peers.get(a.node);
    if (known && known.nonce !== a.nonce) {
      this.#remove(known, 'restarted');
    }
    if (a.state === 'gone') {
      const p = this.#peers.get(a.node);
      if (p) this.#remove(p, 'left');
      return;
    }
    const pools = new Map<string, PoolAnnounce>();
    for (const p of a.pools) pools.set(`${p.suite}/${p.pool}`, p);
    const peer = this.#peers.get(a.node);
    if (peer) {
      peer.lastHeardAt = Date.now();
      peer.pools = pools;
      peer.leaving = a.state === 'leaving';
      peer.workers = a.workers;
      peer.consoles = a.consoles;
      this.events.updated(peer);
      return;
    }
    const fresh: Peer = { node: a.node, nonce: a.nonce, leaving: a.state === 'leaving', workers: a.workers, consoles: a.consoles, lastHeardAt: Date.now(), pools };
    this.#peers.set(a.node, fresh);
    this.log.info({ node: a.node }, 'cluster node joined');
    this.events.joined(fresh);
  }

  readonly #check = (): void => {
    const cutoff = Date.now() - this.#deadAfterMs;
    for (const p of [...this.#peers.values()]) if (p.lastHeardAt < cutoff) this.#remove(p, 'dead');
  };

  #remove(peer: Peer, reason: LeaveReason): void {
    if (this.#peers.get(peer.node) !== peer) return;
    this.#peers.delete(peer.node);
    this.log.info({ node: peer.node, reason }, 'cluster node gone');
    this.events.left(peer, reason);
  }
}
