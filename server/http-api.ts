/**
 * HTTP routes: dispatch, worker listings, health, readiness and metrics.
 * Requests are checked in the order that reads the least: state, route, token,
 * declared size — the body is read only for a request that may be served.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeJson } from '../shared/codec.ts';
import { FlowtestError } from '../shared/errors.ts';
import { fastDispatchRequest } from '../shared/hot-frames.ts';
import { PROTOCOL_SCAN_LIMITS } from '../shared/json-scan.ts';
import { NAME_PATTERN } from '../shared/limits.ts';
import { dispatchRequestSchema } from '../shared/protocol.ts';
import type { AuthGuard } from './auth-guard.ts';
import { bearerToken, type Access, type TokenStore } from './auth.ts';
import type { ClientAddresses } from './client-address.ts';
import { errorOf, sendError, sendJson } from './http-reply.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { RefusalLog } from './refusal-log.ts';
import type { JobCaller, Outcome, Router } from './router.ts';

export interface HttpApiDeps {
  router: Router;
  tokens: TokenStore;
  /** Back-off and token check; without it, the token store alone decides (tests of other parts). */
  guard?: AuthGuard;
  /** The client's address (X-Forwarded-For from trusted proxies). */
  addresses?: ClientAddresses;
  metrics: Metrics;
  log: Logger;
  maxPayloadBytes: number;
  isShuttingDown(): boolean;
  /** Counts and logs refusals; absent in tests that do not look. */
  refusals?: RefusalLog;
  /** In a cluster: whether the node has its NATS connection (/readyz is 503 without it). */
  isClusterConnected?(): boolean;
  /** Extra routes (the console) tried before answering 404. Returns true when it answered. */
  extraRoutes?: (req: IncomingMessage, res: ServerResponse, url: URL) => boolean;
}

const SUITE_ROUTE = /^\/v1\/suites\/([^/]+)\/(dispatch|workers)$/;
/**
 * A dispatch path as clients send it: a plain suite name, no query, nothing for the URL
 * parser to normalize (no `%`, no dot segment) — its path is itself, its suite valid.
 */
const PLAIN_DISPATCH = /^\/v1\/suites\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/dispatch$/;

export function createHttpApi(deps: HttpApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    try {
      handle(deps, req, res);
    } catch (err) {
      failed(deps, res, err);
    }
  };
}

function failed(deps: HttpApiDeps, res: ServerResponse, err: unknown): void {
  deps.log.error({ err }, 'request failed');
  sendError(res, errorOf('internal', 'internal error'), true);
}

/** Synchronous to the point where a request waits (its body, the metrics text): no promise per request. */
function handle(deps: HttpApiDeps, req: IncomingMessage, res: ServerResponse): void {
  // The hot route without a URL parse: what the parse and SUITE_ROUTE below would find for it.
  const plain = req.method === 'POST' && req.url !== undefined ? PLAIN_DISPATCH.exec(req.url) : null;
  if (plain) return dispatch(deps, req, res, plain[1], req.url!);
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname;

  if (path === '/healthz' && req.method === 'GET') return sendJson(res, 200, { status: 'ok' });
  if (path === '/readyz' && req.method === 'GET') {
    if (deps.isShuttingDown()) return sendJson(res, 503, { status: 'shutting_down' });
    if (deps.isClusterConnected && !deps.isClusterConnected()) return sendJson(res, 503, { status: 'cluster_unreachable' });
    return sendJson(res, 200, { status: 'ready' });
  }
  if (path === '/metrics' && req.method === 'GET') {
    deps.metrics.registry.metrics().then((text) => {
      res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
      res.end(text);
    }, (err: unknown) => failed(deps, res, err));
    return;
  }
  if (path === '/v1/workers') {
    if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
    if (!authorize(deps, req, res, { role: 'admin' })) return;
    return sendListing(deps, res);
  }
  const m = SUITE_ROUTE.exec(path);
  if (m) {
    const suite = decodePathSegment(m[1]);
    if (suite === null || !NAME_PATTERN.test(suite)) return sendError(res, errorOf('invalid_request', 'suite: must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'), true);
    if (m[2] === 'workers') {
      if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
      if (!authorize(deps, req, res, { role: 'client', suite })) return;
      return sendListing(deps, res, suite);
    }
    if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
    return dispatch(deps, req, res, suite, pathOf(req));
  }
  if (deps.extraRoutes?.(req, res, url)) return;
  sendError(res, errorOf('not_found', `no route for ${req.method} ${path}`), true);
}

/** A worker listing: the router's fresh one when it has one (a cluster), else its own table. */
function sendListing(deps: HttpApiDeps, res: ServerResponse, suite?: string): void {
  const fresh = deps.router.listWorkersFresh;
  if (!fresh) return sendJson(res, 200, { workers: deps.router.listWorkers(suite) });
  fresh.call(deps.router, suite).then((workers) => sendJson(res, 200, { workers }), (err: unknown) => failed(deps, res, err));
}

/** A percent-decoded path segment, or null when its escapes are broken (decodeURIComponent throws on `%,`). */
function decodePathSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** The request's path as refusals log it (its query may hold anything). */
function pathOf(req: IncomingMessage): string | undefined {
  const u = req.url;
  if (u === undefined) return undefined;
  const q = u.indexOf('?');
  return q < 0 ? u : u.slice(0, q);
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader('allow', allow);
  sendError(res, errorOf('method_not_allowed', `use ${allow}`), true);
}

/** Answers 401/403/429 itself and returns false when the token may not do `access`. */
function authorize(deps: HttpApiDeps, req: IncomingMessage, res: ServerResponse, access: Access, path = pathOf(req)): boolean {
  if (deps.guard) {
    const address = deps.addresses ? deps.addresses.of(req) : (req.socket.remoteAddress ?? null);
    const outcome = deps.guard.authenticate(bearerToken(req.headers.authorization), access, address, 'http', { path });
    if (outcome.ok) return true;
    if (outcome.retryAfterS !== undefined) res.setHeader('retry-after', String(outcome.retryAfterS));
    sendError(res, errorOf(outcome.kind, outcome.message), true);
    return false;
  }
  const decision = deps.tokens.check(bearerToken(req.headers.authorization), access);
  if (decision === 'ok') return true;
  deps.refusals?.refused(decision, 'http', req.socket.remoteAddress, { path });
  if (decision === 'unauthorized') sendError(res, errorOf('unauthorized', 'missing or unknown token'), true);
  else sendError(res, errorOf('forbidden', access.role === 'admin' ? 'an admin token is required' : `token not valid for suite ${access.suite}`), true);
  return false;
}

function dispatch(deps: HttpApiDeps, req: IncomingMessage, res: ServerResponse, suite: string, path: string | undefined): void {
  if (deps.isShuttingDown()) return sendError(res, errorOf('shutting_down', 'the server is shutting down'), true);
  if (!authorize(deps, req, res, { role: 'client', suite }, path)) return;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > deps.maxPayloadBytes) return sendError(res, tooLarge(deps.maxPayloadBytes), true);
  new HttpDispatch(deps, req, res, suite).readBody();
}

/** The dispatch a request or response belongs to (set by HttpDispatch, read by the listeners below). */
const DISPATCH = Symbol('flowtest.dispatch');
type Carrier = { [DISPATCH]?: HttpDispatch };

// Listeners shared by every dispatch (`this` is the request or the response): no closure per job.
function onReqData(this: IncomingMessage, chunk: Buffer): void {
  (this as Carrier)[DISPATCH]?.onData(chunk);
}
function onReqEnd(this: IncomingMessage): void {
  (this as Carrier)[DISPATCH]?.onEnd();
}
function onReqError(this: IncomingMessage): void {
  (this as Carrier)[DISPATCH]?.stopReading();
}
function onReqClose(this: IncomingMessage): void {
  if (!this.complete) (this as Carrier)[DISPATCH]?.stopReading();
}
function onResClose(this: ServerResponse): void {
  (this as Carrier)[DISPATCH]?.onClose();
}

/**
 * One dispatch over HTTP, from its body to its answer: it reads the body (up to the limit;
 * past it, drops what it read and answers 413 while the rest drains), submits the job and
 * is the job's caller — the router answers through `settle`. The client dropping its
 * connection before the answer ('close' on the response) cancels the job. The listeners
 * are module functions that find their dispatch on the request and response: no promise,
 * no AbortController and no closure per job.
 */
class HttpDispatch implements JobCaller {
  #chunks: Buffer[] = [];
  #size = 0;
  #jobId: string | null = null;
  #settled = false;
  /** The client went away: nobody is listening for the answer. */
  #gone = false;

  constructor(
    readonly deps: HttpApiDeps,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly suite: string,
  ) {
    (req as Carrier)[DISPATCH] = this;
    (res as Carrier)[DISPATCH] = this;
  }

  readBody(): void {
    const req = this.req;
    req.on('data', onReqData);
    req.on('end', onReqEnd);
    req.on('error', onReqError);
    req.on('close', onReqClose);
  }

  stopReading(): void {
    const req = this.req;
    req.off('data', onReqData);
    req.off('end', onReqEnd);
    req.off('error', onReqError);
    req.off('close', onReqClose);
  }

  onData(chunk: Buffer): void {
    this.#size += chunk.length;
    if (this.#size <= this.deps.maxPayloadBytes) {
      this.#chunks.push(chunk);
      return;
    }
    // Keep draining (and discarding) while the 413 goes out; its lingering close bounds how long.
    this.#chunks = [];
    this.stopReading();
    sendError(this.res, tooLarge(this.deps.maxPayloadBytes), true);
  }

  onEnd(): void {
    this.stopReading();
    const chunks = this.#chunks;
    this.#chunks = [];
    try {
      const body = chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8');
      // Scanned before it is parsed: deep nesting or millions of tiny values are refused at the cost of one pass.
      const parsed = decodeJson(dispatchRequestSchema, body, PROTOCOL_SCAN_LIMITS, fastDispatchRequest);
      if (!parsed.ok) return sendError(this.res, errorOf('invalid_request', parsed.reason));
      this.#jobId = this.deps.router.submit(this.suite, parsed.value, this);
      if (!this.#settled) this.res.on('close', onResClose);
    } catch (err) {
      failed(this.deps, this.res, err);
    }
  }

  onClose(): void {
    if (this.#settled || this.res.writableFinished) return;
    this.#gone = true;
    if (this.#jobId !== null) this.deps.router.cancel(this.#jobId);
  }

  settle(outcome: Outcome): void {
    this.#settled = true;
    this.res.off('close', onResClose);
    if (this.#gone) return;
    try {
      if (outcome.ok) sendJson(this.res, 200, outcome.value);
      else sendError(this.res, outcome.error);
    } catch (err) {
      // The router calls this inside its own bookkeeping: nothing may escape.
      failed(this.deps, this.res, err);
    }
  }
}

function tooLarge(limit: number): FlowtestError {
  return errorOf('payload_too_large', `the request body is over ${limit} bytes`);
}
