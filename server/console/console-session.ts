/**
 * One console socket: the page's messages (heartbeat, resync, job details, test
 * requests, replays), its idle watchdog and the test requests it has running. The
 * session ends exactly once (#end) — on close, error, idle timeout, bad message or
 * server shutdown — and then aborts its test requests and leaves the feed.
 */
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { decodeJson } from '../../shared/codec.ts';
import { CLOSE_CODES, FlowtestError } from '../../shared/errors.ts';
import type { DispatchRequest } from '../../shared/protocol.ts';
import { consoleClientMessageSchema, type ConsoleServerMessage } from './console-protocol.ts';
import type { ConsoleFeed, ConsoleRouter, FeedSink } from './console-feed.ts';
import type { ConsoleOptions } from './console-options.ts';
import { DEFAULT_PREVIEW_LIMITS, headerMask, responseView } from './job-record.ts';

export interface ConsoleSessionMeta {
  remoteAddress: string | null;
  origin: string | null;
}

export class ConsoleSession implements FeedSink {
  #ended = false;
  /** Owner: this session; re-armed by every message (#armIdle), cleared by #end. */
  #idleTimer: NodeJS.Timeout | null = null;
  /** Test requests running for this page; owner: this session, each removed when it settles, all aborted by #end. */
  readonly #dispatches = new Set<AbortController>();
  /** Called once by #end (the gateway forgets the session). */
  readonly #onEnd: (session: ConsoleSession) => void;

  constructor(
    readonly ws: WebSocket,
    readonly meta: ConsoleSessionMeta,
    readonly feed: ConsoleFeed,
    readonly router: ConsoleRouter,
    readonly options: ConsoleOptions,
    readonly log: Logger,
    onEnd: (session: ConsoleSession) => void,
  ) {
    this.#onEnd = onEnd;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Listens to the socket, joins the feed (which sends the snapshot) and arms the idle watchdog. */
  start(): void {
    this.ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    this.ws.on('close', (code) => this.#end(`socket closed (${code})`));
    this.ws.on('error', (err: Error & { code?: string }) => this.#end(`socket error: ${err.code ?? err.message}`));
    this.#armIdle();
    this.feed.add(this);
  }

  send(text: string): void {
    if (this.#ended) return;
    this.ws.send(text, (err) => {
      if (err) this.terminate(`send failed: ${err.message}`);
    });
  }

  close(code: number, reason: string): void {
    if (this.#ended) return;
    this.ws.close(code, reason);
    this.#end(reason);
  }

  terminate(reason: string): void {
    if (this.#ended) return;
    this.ws.terminate();
    this.#end(reason);
  }

  #reply(message: ConsoleServerMessage): void {
    if (this.bufferedAmount > this.options.hardLimitBytes) {
      this.terminate('console too far behind');
      return;
    }
    this.send(JSON.stringify(message));
  }

  #armIdle(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      this.terminate(`no message for ${this.options.idleTimeoutMs} ms`);
    }, this.options.idleTimeoutMs);
  }

  #onMessage(data: unknown, isBinary: boolean): void {
    if (this.#ended) return;
    this.#armIdle();
    if (isBinary) return this.close(CLOSE_CODES.policyViolation, 'binary messages are not accepted');
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : String(data);
    const decoded = decodeJson(consoleClientMessageSchema, text);
    if (!decoded.ok) return this.close(CLOSE_CODES.policyViolation, `bad message: ${decoded.reason}`.slice(0, 120));
    const m = decoded.value;
    switch (m.type) {
      case 'ping':
        return this.#reply({ type: 'pong', t: m.t });
      case 'resync':
        return this.feed.requestSnapshot(this);
      case 'job':
        return this.#reply({ type: 'job', id: m.id, job: this.feed.details(m.id) });
      case 'dispatch':
        if (Buffer.byteLength(text) > this.options.maxRequestBytes) {
          return this.#reply({ type: 'dispatch-result', ref: m.ref, ok: false, error: { code: 'payload_too_large', message: `the test request is over ${this.options.maxRequestBytes} bytes` } });
        }
        return this.#dispatch(m.ref, m.suite, m.dispatch);
      case 'replay': {
        const kept = this.feed.replayRequest(m.id);
        if (!kept) return this.#reply({ type: 'dispatch-result', ref: m.ref, ok: false, error: { code: 'invalid_request', message: `job ${m.id} is no longer kept for replay` } });
        return this.#dispatch(m.ref, kept.suite, kept.dispatch);
      }
    }
  }

  /** Runs a test request through the router with the admin's authority; the answer goes back as `dispatch-result`. */
  #dispatch(ref: string, suite: string, body: DispatchRequest): void {
    if (this.#dispatches.size >= this.options.maxDispatchesPerConsole) {
      return this.#reply({ type: 'dispatch-result', ref, ok: false, error: { code: 'overloaded', message: `at most ${this.options.maxDispatchesPerConsole} test requests at once` } });
    }
    const abort = new AbortController();
    this.#dispatches.add(abort);
    this.router.dispatch(suite, body, abort.signal).then(
      (r) => this.#reply({ type: 'dispatch-result', ref, ok: true, result: { id: r.id, workerId: r.workerId, durationMs: r.durationMs, response: responseView(r.response, DEFAULT_PREVIEW_LIMITS, headerMask(this.options.maskHeaders)) } }),
      (err: unknown) => {
        if (err instanceof FlowtestError) this.#reply({ type: 'dispatch-result', ref, ok: false, error: { code: err.code, message: err.message } });
        else {
          this.log.error({ err }, 'console test request failed');
          this.#reply({ type: 'dispatch-result', ref, ok: false, error: { code: 'internal', message: 'internal error' } });
        }
      },
    ).finally(() => this.#dispatches.delete(abort));
  }

  #end(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    // Like a CI client that goes away: its jobs are cancelled.
    for (const abort of this.#dispatches) abort.abort();
    this.feed.remove(this);
    this.#onEnd(this);
    this.log.info({ remoteAddress: this.meta.remoteAddress, reason }, 'console closed');
  }
}
