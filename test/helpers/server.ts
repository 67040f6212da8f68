/** Starts a server on 127.0.0.1:0 with known tokens and a captured log; closed after the test. */
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { TokenStore } from '../../server/auth.ts';
import type { ServerOptions } from '../../server/config.ts';
import { createLogger } from '../../server/logger.ts';
import { startServer, type FlowtestServer } from '../../server/server.ts';
import { within } from './wait.ts';

export const TOKENS = {
  admin: 'admin-token-0123456789',
  worker: 'worker-token-acme-0123456789',
  client: 'client-token-acme-0123456789',
  otherWorker: 'worker-token-other-0123456789',
  otherClient: 'client-token-other-0123456789',
} as const;

export function testTokenStore(): TokenStore {
  return new TokenStore({
    admin: [TOKENS.admin],
    suites: {
      acme: { worker: [TOKENS.worker], client: [TOKENS.client] },
      other: { worker: [TOKENS.otherWorker], client: [TOKENS.otherClient] },
    },
  });
}

export interface TestServer extends FlowtestServer {
  /** Every log line written so far. */
  logLines: string[];
  wsUrl: string;
}

export async function startTestServer(t: TestContext, options: ServerOptions = {}): Promise<TestServer> {
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logLines.push(line);
      cb();
    },
  });
  const server = await startServer(
    { host: '127.0.0.1', port: 0, shutdownGraceMs: 0, ...options },
    { tokens: testTokenStore(), logger: createLogger({ level: 'debug', destination: sink }) },
  );
  // Bounded: a shutdown that never completes fails the test that started the server, naming it.
  t.after(() => within(server.close(), 15_000, 'the test server to close'));
  return Object.assign(server, { logLines, wsUrl: server.url.replace(/^http/, 'ws') });
}

/** POSTs a dispatch and returns status and parsed body. */
export async function dispatch(
  server: { url: string },
  suite: string,
  body: unknown,
  init: { token?: string; signal?: AbortSignal } = {},
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}/v1/suites/${suite}/dispatch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(init.token === '' ? {} : { authorization: `Bearer ${init.token ?? TOKENS.client}` }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: init.signal,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

export async function getJson(server: { url: string }, path: string, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  return { status: res.status, body: text.startsWith('{') ? JSON.parse(text) : text };
}
