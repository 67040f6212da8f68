/**
 * HTTP side of the console: the page and its assets (read once from ./static at start,
 * served from memory) and `GET /console/auth`, which tells the page whether a token
 * is an admin token (Authorization header, never the URL) before it opens the socket.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuthGuard } from '../auth-guard.ts';
import { bearerToken, type TokenStore } from '../auth.ts';
import type { ClientAddresses } from '../client-address.ts';
import { errorOf, sendError } from '../http-reply.ts';
import type { RefusalLog } from '../refusal-log.ts';

const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The page may only load its own assets and talk to its own server. */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(STATIC_DIR)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    const body = readFileSync(join(STATIC_DIR, name));
    assets.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` });
  }
  return assets;
}

/** Returns the `extraRoutes` handler of the HTTP API for `/console` and `/console/*`. */
export function createConsoleRoutes(deps: { tokens: TokenStore; refusals?: RefusalLog; guard?: AuthGuard; addresses?: ClientAddresses }): (req: IncomingMessage, res: ServerResponse, url: URL) => boolean {
  const assets = loadAssets();
  return (req, res, url) => {
    const path = url.pathname;
    if (path !== '/console' && !path.startsWith('/console/')) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendError(res, errorOf('method_not_allowed', 'use GET'), true);
      return true;
    }
    if (path === '/console/auth') {
      const token = bearerToken(req.headers.authorization);
      const address = deps.addresses ? deps.addresses.of(req) : (req.socket.remoteAddress ?? null);
      const auth = deps.guard ? deps.guard.authenticate(token, { role: 'admin' }, address, 'http', { path }) : null;
      const decision = auth ? (auth.ok ? 'ok' : auth.kind) : deps.tokens.check(token, { role: 'admin' });
      if (!auth && decision !== 'ok') deps.refusals?.refused(decision, 'http', address, { path });
      if (auth && !auth.ok && auth.retryAfterS !== undefined) res.setHeader('retry-after', String(auth.retryAfterS));
      if (decision === 'rate_limited') sendError(res, errorOf('rate_limited', 'too many failed authentications from this address; retry later'));
      else if (decision === 'unauthorized') sendError(res, errorOf('unauthorized', 'missing or unknown token'));
      else if (decision === 'forbidden') sendError(res, errorOf('forbidden', 'an admin token is required'));
      else {
        res.writeHead(204, { 'cache-control': 'no-store' });
        res.end();
      }
      return true;
    }
    const name = path === '/console' || path === '/console/' ? 'index.html' : path.slice('/console/'.length);
    const asset = assets.get(name);
    if (!asset) {
      sendError(res, errorOf('not_found', `no console asset ${path}`));
      return true;
    }
    const headers = { 'content-type': asset.type, 'cache-control': 'no-cache', etag: asset.etag, ...SECURITY_HEADERS };
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    res.writeHead(200, { ...headers, 'content-length': asset.body.length });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
    return true;
  };
}
