/**
 * A protocol-level agent in the test process: a raw ws client that records frames
 * and answers only when told, so tests control every step of a job.
 */
import type { TestContext } from 'node:test';
import WebSocket from 'ws';
import { decodeServerFrame, encodeFrame } from '../../shared/codec.ts';
import { PROTOCOL_VERSION } from '../../shared/limits.ts';
import type { AgentFrame, JobFrame, ServerFrame, WelcomeFrame } from '../../shared/protocol.ts';
import { TOKENS } from './server.ts';

export interface FakeAgentOptions {
  suite?: string;
  name?: string;
  concurrency?: number;
  token?: string;
  /** Answer pings (default true). */
  autoPong?: boolean;
}

export class FakeAgent {
  readonly frames: ServerFrame[] = [];
  /** Pending `next` calls; each removed when it resolves, times out, or the socket closes. */
  readonly #waiters = new Set<{ match: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void; fail: (e: Error) => void }>();
  welcome!: WelcomeFrame;
  closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    ws.on('error', () => {});
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        // No frame can come any more: fail the waits now rather than at their timeouts.
        for (const w of this.#waiters) w.fail(new Error(`socket closed (${code}) while waiting for a frame`));
        this.#waiters.clear();
        resolve({ code, reason: String(reason) });
      }),
    );
    ws.on('message', (data) => {
      const decoded = decodeServerFrame(data);
      if (!decoded.ok) throw new Error(`server sent a bad frame: ${decoded.reason}`);
      const frame = decoded.value;
      this.frames.push(frame);
      for (const w of this.#waiters) {
        if (w.match(frame)) {
          this.#waiters.delete(w);
          w.resolve(frame);
        }
      }
    });
  }

  static async connect(t: TestContext, wsUrl: string, opts: FakeAgentOptions = {}): Promise<FakeAgent> {
    const q = new URLSearchParams({ suite: opts.suite ?? 'acme', name: opts.name ?? 'pool1', concurrency: String(opts.concurrency ?? 4) });
    const ws = new WebSocket(`${wsUrl}/v1/workers/connect?${q}`, PROTOCOL_VERSION, {
      headers: { authorization: `Bearer ${opts.token ?? TOKENS.worker}` },
      perMessageDeflate: false,
      autoPong: opts.autoPong ?? true,
    });
    const agent = new FakeAgent(ws);
    t.after(() => ws.terminate());
    agent.welcome = await agent.next('welcome');
    return agent;
  }

  /** The next frame of `type` (already received or still to come), within `timeoutMs`. */
  next<T extends ServerFrame['type']>(type: T, timeoutMs = 5000, match: (f: ServerFrame) => boolean = () => true): Promise<Extract<ServerFrame, { type: T }>> {
    const seen = this.frames.findIndex((f) => f.type === type && match(f));
    if (seen >= 0) return Promise.resolve(this.frames.splice(seen, 1)[0] as Extract<ServerFrame, { type: T }>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`no ${type} frame within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        match: (f: ServerFrame) => f.type === type && match(f),
        resolve: (f: ServerFrame) => {
          clearTimeout(timer);
          this.frames.splice(this.frames.indexOf(f), 1);
          resolve(f as Extract<ServerFrame, { type: T }>);
        },
        fail: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  nextJob(timeoutMs?: number): Promise<JobFrame> {
    return this.next('job', timeoutMs);
  }

  send(frame: AgentFrame | Record<string, unknown>): void {
    this.ws.send(encodeFrame(frame as AgentFrame));
  }

  /** Answers a job with a small utf8 response. */
  reply(id: string, status = 200, body = 'ok'): void {
    this.send({ type: 'result', id, response: { status, headers: { 'content-type': 'text/plain' }, body, bodyEncoding: 'utf8' } });
  }
}

/** Rejects a WebSocket handshake expected to fail; resolves with the HTTP status. */
export async function handshakeStatus(url: string, protocols: string[] | undefined, headers: Record<string, string>): Promise<number> {
  return (await handshakeRefusal(url, protocols, headers)).status;
}

/** A WebSocket handshake expected to be refused: its HTTP status and parsed JSON body (null when not JSON); rejects when it opens. */
export function handshakeRefusal(url: string, protocols: string[] | undefined, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false });
  ws.on('error', () => {});
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('error', reject);
      res.on('end', () => {
        ws.terminate();
        let body: unknown = null;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: body stays null
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('handshake unexpectedly succeeded'));
    });
  });
}
