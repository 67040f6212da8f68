/**
 * The load generator: closed-loop clients (each sends its next request when the last
 * one is answered) over keep-alive HTTP, or over one WebSocket for the echo baseline.
 * Only answers that arrive between `mark` and `finish` count; warm-up is the caller's.
 * `burst` sends N requests at once and stamps each answer (failure timing).
 */
import http from 'node:http';
import WebSocket from 'ws';
import { httpCall } from '../harness/http.ts';
import { childConfig, serveBench } from '../harness/child.ts';
import { percentile } from '../harness/stats.ts';

childConfig();

export type LoadSpec =
  | { mode: 'http'; method: 'GET' | 'POST'; url: string; headers?: Record<string, string>; body?: string; concurrency: number }
  | { mode: 'ws-echo'; url: string; messageBytes: number; concurrency: number };

export interface LoadResult {
  count: number;
  errors: number;
  firstError: string | null;
  windowMs: number;
  p50Ms: number;
  p99Ms: number;
}

export interface BurstAnswer {
  atMs: number;
  status: number;
  code: string | null;
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** One running load: its loops, its connections, and what the window recorded. */
class Load {
  #stop = false;
  #recording = false;
  #markedAt = 0;
  #latencies: number[] = [];
  #errors = 0;
  #firstError: string | null = null;
  #loops: Promise<void>[] = [];
  /** Owner: this load; closed by finish(). */
  #agent: http.Agent | null = null;
  #ws: WebSocket | null = null;

  async start(spec: LoadSpec): Promise<void> {
    if (spec.mode === 'http') {
      this.#agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency });
      const url = new URL(spec.url);
      const headers = { ...(spec.headers ?? {}), ...(spec.body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(spec.body)) } : {}) };
      const agent = this.#agent;
      const once = async () => {
        const { status, text } = await httpCall(agent, url, spec.method, headers, spec.body);
        if (status !== 200) throw new Error(`HTTP ${status}: ${text.slice(0, 200)}`);
      };
      for (let i = 0; i < spec.concurrency; i++) this.#loops.push(this.#loop(once));
    } else {
      const ws = new WebSocket(spec.url, { perMessageDeflate: false });
      this.#ws = ws;
      ws.on('error', (err) => this.#fail(err));
      await new Promise<void>((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      // One socket, answers in order: the oldest waiter gets the next echo.
      const waiting: (() => void)[] = [];
      ws.on('message', () => waiting.shift()?.());
      ws.on('close', () => {
        for (const w of waiting.splice(0)) w();
      });
      const message = 'x'.repeat(spec.messageBytes);
      const once = () =>
        new Promise<void>((resolve, reject) => {
          if (ws.readyState !== ws.OPEN) return reject(new Error('echo socket closed'));
          waiting.push(resolve);
          ws.send(message);
        });
      for (let i = 0; i < spec.concurrency; i++) this.#loops.push(this.#loop(once));
    }
  }

  async #loop(once: () => Promise<void>): Promise<void> {
    while (!this.#stop) {
      const t0 = nowMs();
      try {
        await once();
        if (this.#recording) this.#latencies.push(nowMs() - t0);
      } catch (err) {
        this.#fail(err);
        await new Promise((r) => setTimeout(r, 10)); // no hot loop against a dead peer
      }
    }
  }

  #fail(err: unknown): void {
    if (!this.#recording) return;
    this.#errors += 1;
    this.#firstError ??= err instanceof Error ? err.message : String(err);
  }

  mark(): void {
    this.#latencies = [];
    this.#errors = 0;
    this.#firstError = null;
    this.#markedAt = nowMs();
    this.#recording = true;
  }

  async finish(): Promise<LoadResult> {
    const windowMs = nowMs() - this.#markedAt;
    this.#recording = false;
    const sorted = Float64Array.from(this.#latencies).sort();
    this.#stop = true;
    await Promise.all(this.#loops);
    this.#agent?.destroy();
    this.#ws?.terminate();
    return { count: sorted.length, errors: this.#errors, firstError: this.#firstError, windowMs, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
  }
}

let load: Load | null = null;

serveBench(
  {
    start: async (spec: LoadSpec) => {
      if (load) throw new Error('a load is already running');
      load = new Load();
      await load.start(spec);
    },
    mark: () => load?.mark(),
    finish: async (): Promise<LoadResult> => {
      if (!load) throw new Error('no load running');
      const result = await load.finish();
      load = null;
      return result;
    },
    /** N POSTs at once, each on its own keep-alive connection (fetch's default); resolves when all are answered. */
    burst: async ({ url, headers, body, n }: { url: string; headers: Record<string, string>; body: string; n: number }): Promise<BurstAnswer[]> => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: n });
      const target = new URL(url);
      const all = { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
      try {
        return await Promise.all(
          Array.from({ length: n }, async () => {
            const { status, text } = await httpCall(agent, target, 'POST', all, body);
            const atMs = nowMs();
            let code: string | null = null;
            try {
              code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? null;
            } catch {
              code = 'unparsable';
            }
            return { atMs, status, code };
          }),
        );
      } finally {
        agent.destroy();
      }
    },
  },
  async () => {
    if (load) await load.finish();
  },
).ready();
