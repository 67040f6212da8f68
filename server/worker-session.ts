/**
 * One worker socket: its welcome, its heartbeat, the frames it sends, and the ids of
 * the jobs it holds. The session decides when the worker is gone — on close, on a
 * socket error, on a missed pong, on a bad frame — and tells its host (the worker
 * registry) at that moment, not when ws eventually emits 'close'. To the router it is
 * a `WorkerHandle`: it knows job ids, never the callers waiting for them.
 */
import { isUtf8 } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { nanoid } from 'nanoid';
import type { WebSocket } from 'ws';
import { decodeScannedAgentFrame, encodeFrame } from '../shared/codec.ts';
import { CLOSE_CODES } from '../shared/errors.ts';
import type { HttpRequest, ResultFrame, ServerFrame, WorkerInfo } from '../shared/protocol.ts';
import { LateResultMeter, screenAgentFrame } from './result-guard.ts';
import type { WorkerHandle } from './router.ts';

export interface SessionHost {
  onResult(session: WorkerSession, frame: ResultFrame): void;
  onDrain(session: WorkerSession): void;
  /** The socket was backed up over its high-water mark and has drained under it: it can take jobs again. */
  onWritable(session: WorkerSession): void;
  /** Called exactly once, the moment the session decides its worker is gone. */
  onGone(session: WorkerSession, reason: string): void;
}

export interface SessionMeta {
  suite: string;
  name: string;
  concurrency: number;
  agentVersion: string | null;
  remoteAddress: string | null;
  /** Id (digest) of the token the worker authenticated with; never logged. Checked again on a tokens reload. */
  tokenId?: string;
}

export interface SessionOptions {
  heartbeatMs: number;
  maxPayloadBytes: number;
  /** Bytes queued on the socket above which it takes no new job. */
  highWaterBytes: number;
  /** Counts a result dropped because the worker does not hold its job (metrics). */
  onLateResult?(): void;
}

/** How far (ms; at most 0.5 % of the interval) heartbeat ticks may fall behind their fixed rate before a timer is made for the exact rest. */
const DRIFT_MS = 5;

/** Heartbeat ticks in a row over the high-water mark after which a socket counts as stuck (over it for more than 2 intervals). */
const STUCK_TICKS = 3;

export type SessionState = 'ready' | 'draining' | 'gone';

export class WorkerSession implements WorkerHandle {
  readonly id = nanoid();
  readonly connectedAt = new Date();
  state: SessionState = 'ready';
  /** Ids of the jobs this worker holds: added by `sendJob`, removed by `release` (the router calls both). */
  readonly held = new Set<string>();
  /** Epoch ms of the last pong (a number: set on every pong, formatted only when listed). */
  lastPongAtMs: number | null = null;
  rttMs: number | null = null;
  /** Why the session ended; set once by #gone. */
  goneReason: string | null = null;

  // Heartbeat state. Owner of the timer: this session; set by #schedule, cleared by #gone.
  #heartbeat: NodeJS.Timeout | null = null;
  /** The delay #heartbeat was made with: what its refresh() re-arms it for. */
  #armedMs = 0;
  /** When the next tick is due (performance.now() ms): ticks keep a fixed rate, late ones do not push the rest. */
  #nextTickAt = 0;
  #pingSentAt = 0;
  #awaitingPong = false;
  // Backpressure state. #backedUp is set by send when it leaves the socket over the mark and
  // cleared by the write callback that finds it under again; #ticksOverMark is kept by the heartbeat.
  #backedUp = false;
  #ticksOverMark = 0;
  /** Recent results for jobs this worker does not hold; owner: this session. */
  readonly #late = new LateResultMeter();
  /** Set by `revoke`: the token was removed; the drained close says so. */
  #revoked = false;

  constructor(
    readonly ws: WebSocket,
    readonly meta: SessionMeta,
    readonly options: SessionOptions,
    readonly host: SessionHost,
  ) {}

  get suite(): string {
    return this.meta.suite;
  }
  get name(): string {
    return this.meta.name;
  }
  get pool(): string {
    return this.meta.name;
  }
  get concurrency(): number {
    return this.meta.concurrency;
  }
  get inFlight(): number {
    return this.held.size;
  }
  get ready(): boolean {
    return this.state === 'ready';
  }
  get writable(): boolean {
    return this.ws.readyState === this.ws.OPEN && this.ws.bufferedAmount < this.options.highWaterBytes;
  }

  /** Sends the welcome, starts the heartbeat and listens to the socket. */
  start(): void {
    const ws = this.ws;
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    ws.on('pong', () => this.#onPong());
    ws.on('close', (code) => this.#gone(`socket closed (${code})`));
    // ws has already started the close handshake (1009 for an oversize frame) when it emits this.
    ws.on('error', (err: Error & { code?: string }) => this.#gone(`socket error: ${err.code ?? err.message}`));
    this.send({ type: 'welcome', workerId: this.id, heartbeatMs: this.options.heartbeatMs, maxPayloadBytes: this.options.maxPayloadBytes });
    this.#ping();
    this.#nextTickAt = performance.now();
    this.#schedule();
  }

  /**
   * Sends a frame; a failed write means the worker is gone. A socket left over its
   * high-water mark takes no new job (routing skips it: `writable`); the write callback
   * that finds it under the mark again tells the host, which hands it queued jobs —
   * nothing else would, since no result or dispatch need arrive meanwhile.
   */
  send(frame: ServerFrame): void {
    if (this.state === 'gone') return;
    this.ws.send(encodeFrame(frame), this.#afterWrite);
    if (this.ws.bufferedAmount >= this.options.highWaterBytes) this.#backedUp = true;
  }

  /** Every write's callback; a field, so a send allocates no closure. */
  readonly #afterWrite = (err?: Error | null): void => {
    if (err) this.terminate(`send failed: ${err.message}`);
    else if (this.#backedUp && this.writable && this.state !== 'gone') {
      this.#backedUp = false;
      this.host.onWritable(this);
    }
  };

  sendJob(jobId: string, timeoutMs: number, request: HttpRequest): void {
    this.held.add(jobId);
    this.send({ type: 'job', id: jobId, timeoutMs, request });
  }

  release(jobId: string, cancelReason?: string): void {
    if (!this.held.delete(jobId)) return;
    if (this.state === 'gone') return;
    if (cancelReason !== undefined) this.send({ type: 'cancel', id: jobId, reason: cancelReason });
    this.closeIfDrained();
  }

  /**
   * A draining worker is closed (1000) by the server once it holds nothing: only the server
   * knows that no job routed to it before its drain frame arrived is still on the way.
   */
  closeIfDrained(): void {
    if (this.state !== 'draining' || this.held.size > 0) return;
    if (this.#revoked) this.close(CLOSE_CODES.policyViolation, 'token revoked');
    else this.close(CLOSE_CODES.normal, 'drained');
  }

  /**
   * The worker's token was removed (tokens reload): it takes no new job from now on, as if
   * draining, and once it holds nothing it is closed with 1008 `token revoked`.
   */
  revoke(): void {
    if (this.state === 'gone' || this.#revoked) return;
    this.#revoked = true;
    if (this.state === 'ready') {
      this.state = 'draining';
      this.host.onDrain(this);
    } else this.closeIfDrained();
  }

  get revoked(): boolean {
    return this.#revoked;
  }

  /** Ends the session with a close handshake (code and reason go to the agent). */
  close(code: number, reason: string): void {
    if (this.state === 'gone') return;
    this.ws.close(code, reason);
    this.#gone(reason);
  }

  /** Ends the session at once, without a close handshake. */
  terminate(reason: string): void {
    if (this.state === 'gone') return;
    this.ws.terminate();
    this.#gone(reason);
  }

  info(): WorkerInfo {
    return {
      id: this.id,
      suite: this.meta.suite,
      name: this.meta.name,
      state: this.state === 'ready' ? 'ready' : 'draining',
      concurrency: this.meta.concurrency,
      inFlight: this.held.size,
      connectedAt: this.connectedAt.toISOString(),
      lastPongAt: this.lastPongAtMs === null ? null : new Date(this.lastPongAtMs).toISOString(),
      rttMs: this.rttMs,
      agentVersion: this.meta.agentVersion,
      remoteAddress: this.meta.remoteAddress,
    };
  }

  #onMessage(data: unknown, isBinary: boolean): void {
    if (this.state === 'gone') return;
    // The gateway turned off ws's UTF-8 check (it answers 1007); the contract closes every bad frame with 1008.
    if (!isBinary && Buffer.isBuffer(data) && !isUtf8(data)) {
      this.close(CLOSE_CODES.policyViolation, 'bad frame: not valid UTF-8');
      return;
    }
    // Results for jobs this worker does not hold are dropped before they are parsed.
    const screened = screenAgentFrame(data, isBinary, this.held);
    if (screened.kind === 'late') {
      this.options.onLateResult?.();
      if (this.#late.hit(performance.now())) this.close(CLOSE_CODES.policyViolation, 'too many results for jobs not held');
      return;
    }
    if (screened.kind === 'bad') {
      this.close(CLOSE_CODES.policyViolation, screened.reason);
      return;
    }
    const decoded = decodeScannedAgentFrame(screened.text);
    if (!decoded.ok) {
      this.close(CLOSE_CODES.policyViolation, decoded.reason);
      return;
    }
    const frame = decoded.value;
    if (frame.type === 'result') this.host.onResult(this, frame);
    else if (frame.type === 'drain' && this.state === 'ready') {
      this.state = 'draining';
      this.host.onDrain(this);
    }
  }

  #ping(): void {
    this.#awaitingPong = true;
    this.#pingSentAt = performance.now();
    this.ws.ping();
  }

  #onPong(): void {
    if (!this.#awaitingPong) return; // unsolicited pongs carry no timing
    this.#awaitingPong = false;
    this.lastPongAtMs = Date.now();
    this.rttMs = Math.round((performance.now() - this.#pingSentAt) * 100) / 100;
  }

  /**
   * Each session ticks on its own timer, so pings spread with connection times. Fixed rate
   * (within DRIFT_MS), but after a stalled event loop a pong still gets half an interval to
   * arrive. A tick on time re-arms the same timer with refresh(): no timer object per tick,
   * which at 20,000 idle workers would be 20,000 objects each living one interval, promoted,
   * for the old-generation GC to sweep.
   */
  #schedule(): void {
    const hb = this.options.heartbeatMs;
    const now = performance.now();
    this.#nextTickAt = Math.max(this.#nextTickAt + hb, now + hb / 2);
    const delay = Math.max(0, this.#nextTickAt - now);
    // Armed for a whole interval from now, the next tick would be this far behind the fixed rate.
    const drift = hb - delay;
    if (Math.abs(drift) <= Math.min(DRIFT_MS, hb / 200)) {
      if (this.#heartbeat && this.#armedMs === hb) this.#heartbeat.refresh();
      else this.#heartbeat = setTimeout(this.#tick, (this.#armedMs = hb));
      return;
    }
    // Off by more (late ticks added up, a stalled loop): a timer for exactly the rest.
    this.#armedMs = delay;
    this.#heartbeat = setTimeout(this.#tick, delay);
  }

  /** One heartbeat tick; a field so that scheduling allocates no closure per tick. */
  readonly #tick = (): void => {
    // A socket that stays over its high-water mark is a worker that does not read: dead
    // to us, and its send buffer must not hold memory any longer.
    this.#ticksOverMark = this.ws.bufferedAmount >= this.options.highWaterBytes ? this.#ticksOverMark + 1 : 0;
    if (this.#ticksOverMark >= STUCK_TICKS) {
      this.terminate(`backpressure: over ${this.options.highWaterBytes} bytes unsent for ${STUCK_TICKS - 1} heartbeat intervals`);
      return;
    }
    if (this.#awaitingPong) {
      this.terminate('heartbeat: no pong since the previous ping');
      return;
    }
    this.#ping();
    this.#schedule();
  };


  #gone(reason: string): void {
    if (this.state === 'gone') return;
    this.state = 'gone';
    this.goneReason = reason;
    if (this.#heartbeat) clearTimeout(this.#heartbeat);
    this.#heartbeat = null;
    this.host.onGone(this, reason);
  }
}
