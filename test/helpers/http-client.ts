/**
 * A dispatch client on node:http with its own keep-alive pool, for tests that count
 * sockets and active resources: unlike fetch (undici's global pool), everything it
 * opens is closed by `destroy()`.
 */
import http from 'node:http';
import { TOKENS } from './server.ts';

export interface Answer {
  status: number;
  body: any;
}

export class HttpClient {
  // Owner of every client socket; destroyed by destroy().
  readonly agent: http.Agent;

  constructor(
    readonly baseUrl: string,
    maxSockets = 64,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  /** POSTs a dispatch; rejects when the connection fails or `signal` aborts it. */
  dispatch(suite: string, body: unknown, init: { token?: string; signal?: AbortSignal } = {}): Promise<Answer> {
    return this.request('POST', `/v1/suites/${suite}/dispatch`, typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body), init);
  }

  get(path: string, init: { token?: string } = {}): Promise<Answer> {
    return this.request('GET', path, undefined, init);
  }

  request(method: string, path: string, text: string | Buffer | undefined, init: { token?: string; signal?: AbortSignal } = {}): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      const token = init.token ?? TOKENS.client;
      if (token !== '') headers.authorization = `Bearer ${token}`;
      const req = http.request(`${this.baseUrl}${path}`, { method, headers, agent: this.agent, ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let body: unknown = raw;
          try {
            body = raw ? JSON.parse(raw) : null;
          } catch {
            // not JSON (metrics): keep the text
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(text);
    });
  }

  destroy(): void {
    this.agent.destroy();
  }
}
