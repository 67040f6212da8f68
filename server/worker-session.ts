/**
 * One worker socket: its welcome, its heartbeat, the frames it sends, and the jobs
 * it holds. The session decides when the worker is gone — on close, on a socket
 * error, on a missed pong, on a bad frame — and tells its host at that moment, not
 * when ws eventually emits 'close'.
 */
import { performance } from 'node:perf_hooks';
import { nanoid } from 'nanoid';
import type { WebSocket } from 'ws';
import { decodeAgentFrame, encodeFrame } from '../shared/codec.ts';
import { CLOSE_CODES } from '../shared/errors.ts';
import type { ResultFrame, ServerFrame, WorkerInfo } from '../shared/protocol.ts';
import type { Job } from './job.ts';

export interface SessionHost {
  onResult(session: WorkerSession, frame: ResultFrame): void;
  onDrain(session: WorkerSession): void;
  /** Called exactly once, the moment the session decides its worker is gone. */
  onGone(session: WorkerSession, reason: string): void;
}

export interface SessionMeta {
  suite: string;
  name: string;
  concurrency: number;
  agentVersion: string | null;
  remoteAddress: string | null;
}

export interface SessionOptions {
  heartbeatMs: number;
  maxPayloadBytes: number;
  /** Bytes queued on the socket above which it takes no new job. */
  highWaterBytes: number;
}

export type SessionState = 'ready' | 'draining' | 'gone';

export class WorkerSession {
  readonly id = nanoid();
  readonly connectedAt = new Date();
  state: SessionState = 'ready';
  /** Jobs this worker holds. Owner: the dispatcher, which adds on send and removes when a job ends. */
  readonly held = new Map<string, Job>();
  lastPongAt: Date | null = null;
  rttMs: number | null = null;
  /** Why the session ended; set once by #gone. */
  goneReason: string | null = null;

  // Heartbeat state. Owner of the timer: this session; set by #schedule, cleared by #gone.
  #heartbeat: NodeJS.Timeout | null = null;
  #pingSentAt = 0;
  #awaitingPong = false;

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
    this.#schedule();
  }

  /** Sends a frame; a failed write means the worker is gone. */
  send(frame: ServerFrame): void {
    if (this.state === 'gone') return;
    this.ws.send(encodeFrame(frame), (err) => {
      if (err) this.terminate(`send failed: ${err.message}`);
    });
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
      lastPongAt: this.lastPongAt?.toISOString() ?? null,
      rttMs: this.rttMs,
      agentVersion: this.meta.agentVersion,
      remoteAddress: this.meta.remoteAddress,
    };
  }

  #onMessage(data: unknown, isBinary: boolean): void {
    if (this.state === 'gone') return;
    const decoded = decodeAgentFrame(data, isBinary);
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
    this.lastPongAt = new Date();
    this.rttMs = Math.round((performance.now() - this.#pingSentAt) * 100) / 100;
  }

  /** Each session ticks on its own timer, so pings spread with connection times. */
  #schedule(): void {
    this.#heartbeat = setTimeout(() => {
      this.#heartbeat = null;
      if (this.#awaitingPong) {
        this.terminate('heartbeat: no pong since the previous ping');
        return;
      }
      this.#ping();
      this.#schedule();
    }, this.options.heartbeatMs);
  }

  #gone(reason: string): void {
    if (this.state === 'gone') return;
    this.state = 'gone';
    this.goneReason = reason;
    if (this.#heartbeat) clearTimeout(this.#heartbeat);
    this.#heartbeat = null;
    this.host.onGone(this, reason);
  }
}
