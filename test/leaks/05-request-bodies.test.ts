/**
 * Audit finding 5: "request bodies read but not released". A dispatch the server turns
 * down before reading its body (401, 403, 400, 413, 503 shutting_down) is answered with
 * `connection: close` and the server closes the socket, however much body the client
 * still sends; one turned down after reading it whole (400 invalid JSON, 429, 503
 * no_worker) leaves the connection clean for the next request. Either way no socket
 * stays open afterwards. Raw TCP clients, so nothing but the server decides.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { FakeAgent } from '../helpers/fake-agent.ts';
import { resources, waitForResources } from '../helpers/resources.ts';
import { startTestServer, TOKENS } from '../helpers/server.ts';
import { waitUntil, within } from '../helpers/wait.ts';

const MAX_PAYLOAD = 64 * 1024;
const validBody = JSON.stringify({ pool: 'pool1', request: { method: 'GET', url: 'http://127.0.0.1:9/' } });

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: any;
}

/** A raw HTTP/1.1 connection that reads responses one by one and notices when the server closes. */
class RawConnection {
  readonly socket: Socket;
  #buffer = Buffer.alloc(0);
  #wake: (() => void) | null = null;
  /** Resolves when the server ends or drops the connection. */
  readonly ended: Promise<void>;
  serverClosed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, c]);
      this.#wake?.();
    });
    socket.on('error', () => {});
    this.ended = new Promise((resolve) => {
      const done = () => {
        this.serverClosed = true;
        this.#wake?.();
        resolve();
      };
      socket.once('end', done);
      socket.once('close', done);
    });
  }

  static async open(port: number): Promise<RawConnection> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawConnection(socket);
  }

  write(text: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(text);
  }

  /** The next complete response (content-length framed), within `timeoutMs`. */
  async response(timeoutMs = 5000): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end >= 0) {
        const [statusLine, ...lines] = this.#buffer.subarray(0, end).toString('latin1').split('\r\n');
        const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
        const length = Number(headers['content-length'] ?? 0);
        if (this.#buffer.length >= end + 4 + length) {
          const text = this.#buffer.subarray(end + 4, end + 4 + length).toString('utf8');
          this.#buffer = this.#buffer.subarray(end + 4 + length);
          return { status: Number(statusLine.split(' ')[1]), headers, body: text.startsWith('{') ? JSON.parse(text) : text };
        }
      }
      if (this.serverClosed) throw new Error(`connection closed before a complete response (${this.#buffer.length} bytes: ${this.#buffer.toString('latin1').slice(0, 60)})`);
      if (Date.now() > deadline) throw new Error('no response in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.#wake = () => {
          clearTimeout(timer);
          this.#wake = null;
          resolve();
        };
      });
    }
  }

  /** Waits (bounded) for the server to close the connection. */
  async serverCloses(timeoutMs = 3000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.ended,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the server left the connection open')), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function head(path: string, headers: Record<string, string>): string {
  return `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

test('finding 5 (request bodies not released): early rejections close the connection, whatever body is still coming', async (t) => {
  const baseline = resources();
  const s = await startTestServer(t, { maxPayloadBytes: MAX_PAYLOAD });
  const declaredHuge = { 'content-length': String(100 * 1024 * 1024) };
  const cases: { name: string; path?: string; headers: Record<string, string>; status: number; code: string; chunked?: boolean }[] = [
    { name: '401 no token', headers: { ...declaredHuge }, status: 401, code: 'unauthorized' },
    { name: '401 unknown token', headers: { ...declaredHuge, ...auth('unknown-token-123') }, status: 401, code: 'unauthorized' },
    { name: '403 other suite', headers: { ...declaredHuge, ...auth(TOKENS.otherClient) }, status: 403, code: 'forbidden' },
    { name: '400 bad suite name', path: '/v1/suites/bad!suite/dispatch', headers: { ...declaredHuge, ...auth(TOKENS.client) }, status: 400, code: 'invalid_request' },
    { name: '413 declared', headers: { ...declaredHuge, ...auth(TOKENS.client) }, status: 413, code: 'payload_too_large' },
    { name: '413 streamed', headers: { 'transfer-encoding': 'chunked', ...auth(TOKENS.client) }, status: 413, code: 'payload_too_large', chunked: true },
  ];
  for (const c of cases) {
    const conn = await RawConnection.open(s.port);
    conn.write(head(c.path ?? '/v1/suites/acme/dispatch', c.headers));
    // The client keeps sending body until the server closes on it.
    const piece = Buffer.alloc(16 * 1024, 'x');
    const frame = c.chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece;
    let sent = 0;
    const pump = setInterval(() => {
      for (let i = 0; i < 4 && !conn.serverClosed; i++) {
        conn.write(frame);
        sent += piece.length;
      }
    }, 1);
    try {
      const r = await conn.response().catch((e: Error) => Promise.reject(new Error(`${c.name}: ${e.message}`)));
      assert.equal(r.status, c.status, c.name);
      assert.equal(r.body.error.code, c.code, c.name);
      assert.equal(r.headers.connection, 'close', c.name);
      await conn.serverCloses();
    } finally {
      clearInterval(pump);
      conn.destroy();
    }
    assert.ok(sent < 50 * 1024 * 1024, `${c.name}: the server read ${sent} bytes before closing`);
  }

  await within(s.close(), 15_000, 'the server to close');
  await waitForResources(baseline);
});

test('finding 5: a dispatch whose headers arrive after shutdown began gets 503 shutting_down and a closed connection', async (t) => {
  const baseline = resources();
  const s = await startTestServer(t, { maxPayloadBytes: MAX_PAYLOAD, shutdownGraceMs: 10_000 });
  // A job in flight keeps the shutdown in its grace period.
  const worker = await FakeAgent.connect(t, s.wsUrl);
  const held = fetch(`${s.url}/v1/suites/acme/dispatch`, { method: 'POST', headers: auth(TOKENS.client), body: validBody }).then((r) => r.json() as Promise<any>);
  const job = await worker.nextJob();
  // This connection is busy (a request has begun), so shutdown does not cut it as idle.
  const conn = await RawConnection.open(s.port);
  conn.write('POST /v1/suites/acme/dispatch HTTP/1.1\r\nhost: 127.0.0.1\r\n');
  await waitUntil(() => s.router.stats().pending === 1, 5000);
  const closed = s.close();
  conn.write(`authorization: Bearer ${TOKENS.client}\r\ncontent-length: ${100 * 1024 * 1024}\r\n\r\n`);
  conn.write(Buffer.alloc(16 * 1024, 'x'));
  const r = await conn.response();
  assert.deepEqual([r.status, r.body.error.code, r.headers.connection], [503, 'shutting_down', 'close']);
  await conn.serverCloses();
  conn.destroy();
  worker.reply(job.id);
  assert.equal((await held).response.body, 'ok');
  await within(closed, 5000, 'the dispatch connection to close');
  await within(worker.closed, 5000, 'the worker socket to close');
  await waitForResources(baseline);
});

test('finding 5: rejections after the whole body was read (400, 429, 503 no_worker) leave the connection clean for the next request', async (t) => {
  const baseline = resources();
  const s = await startTestServer(t, { maxPayloadBytes: MAX_PAYLOAD, maxQueue: 0 });
  const worker = await FakeAgent.connect(t, s.wsUrl, { concurrency: 1 });
  const busy = fetch(`${s.url}/v1/suites/acme/dispatch`, { method: 'POST', headers: auth(TOKENS.client), body: validBody }).then((r) => r.json() as Promise<any>);
  const job = await worker.nextJob();

  const conn = await RawConnection.open(s.port);
  const send = (body: string) => conn.write(head('/v1/suites/acme/dispatch', { ...auth(TOKENS.client), 'content-length': String(Buffer.byteLength(body)) }) + body);
  const cases: [string, number, string][] = [
    ['{"pool": "pool1", "request": ' + '"x"'.padEnd(30_000, ' ') + '}', 400, 'invalid_request'],
    ['{not json', 400, 'invalid_request'],
    [validBody, 429, 'overloaded'],
    [JSON.stringify({ pool: 'nobody', request: { method: 'GET', url: 'http://127.0.0.1:9/' } }), 503, 'no_worker'],
  ];
  for (const [body, status, code] of cases) {
    send(body);
    const r = await conn.response();
    assert.deepEqual([r.status, r.body.error.code], [status, code]);
    assert.notEqual(r.headers.connection, 'close', 'a fully read request keeps its connection');
    // The next request on the same connection is parsed from a clean start.
    conn.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
    assert.deepEqual((await conn.response()).body, { status: 'ok' });
  }
  conn.destroy();
  worker.reply(job.id);
  await busy;
  worker.ws.close();
  await within(worker.closed, 5000, 'the worker socket to close');
  await within(s.close(), 15_000, 'the server to close');
  await waitForResources(baseline);
});
