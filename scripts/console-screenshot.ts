/**
 * Makes docs/console.png: a server with a few real agents (in this process) in two
 * suites, a target, a mix of jobs (ok, 4xx/5xx, unreachable, forbidden, no worker),
 * one failed job opened in the details panel and one test request sent from the form.
 *
 *   node --import tsx scripts/console-screenshot.ts [out.png]
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { TokenStore } from '../server/auth.ts';
import { createLogger } from '../server/logger.ts';
import { startServer } from '../server/server.ts';
import { startAgent, type WorkerAgent } from '../worker-agent/main.ts';
import { launchChromium } from '../test/console/chromium.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = process.argv[2] ?? join(ROOT, 'docs', 'console.png');
const T = { admin: 'adm_screenshot_0123456789', shopW: 'wrk_shop_0123456789', shopC: 'cli_shop_0123456789', billW: 'wrk_billing_0123456789', billC: 'cli_billing_0123456789' };

async function startTarget(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'set-cookie': 'session=abc123; HttpOnly' });
      res.end(JSON.stringify(body));
    };
    if (path === '/api/orders') json(200, { orders: [{ id: 1041, total: 99.5, status: 'paid' }, { id: 1042, total: 12, status: 'pending' }], next: null });
    else if (path === '/api/cart') json(201, { cart: 'c-77', items: 3 });
    else if (path === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    } else if (path === '/api/invoices') json(500, { error: 'database timeout' });
    else json(404, { error: 'not found' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function main(): Promise<void> {
  const target = await startTarget();
  const tokens = new TokenStore({ admin: [T.admin], suites: { shop: { worker: [T.shopW], client: [T.shopC] }, billing: { worker: [T.billW], client: [T.billC] } } });
  const server = await startServer({ host: '127.0.0.1', port: 0, shutdownGraceMs: 0 }, { tokens, logger: createLogger({ level: 'silent' }) });
  const quiet = pino({ level: 'silent' });
  const agents: WorkerAgent[] = [];
  const agent = (suite: string, name: string, token: string, concurrency: number, allowHost: string[] = []) =>
    agents.push(startAgent({ server: server.url, suite, name, token, concurrency, allowHost, maxResponseBytes: 1 << 20, drainTimeoutMs: 1000 }, quiet));
  // The target listens on loopback, which agents reach only when named.
  agent('shop', 'staging', T.shopW, 8, ['127.0.0.1']);
  agent('shop', 'staging', T.shopW, 8, ['127.0.0.1']);
  agent('shop', 'eu-west', T.shopW, 4, ['127.0.0.1']);
  agent('billing', 'vpn', T.billW, 2, ['*.billing.internal']);
  while (server.router.stats().workers < 4) await new Promise((r) => setTimeout(r, 20));

  const send = (suite: string, token: string, pool: string, method: string, url: string, headers?: Record<string, string>, body?: string) =>
    fetch(`${server.url}/v1/suites/${suite}/dispatch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ pool, timeoutMs: 5000, request: { method, url, ...(headers ? { headers } : {}), ...(body ? { body } : {}) } }),
    }).then((r) => r.text());
  const auth = { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.user-4711', 'x-request-id': 'flow-288' };
  for (let i = 0; i < 6; i++) await send('shop', T.shopC, 'staging', 'GET', `${target.url}/api/orders?page=${i + 1}`, auth);
  await send('shop', T.shopC, 'staging', 'POST', `${target.url}/api/cart`, { ...auth, 'content-type': 'application/json' }, '{"sku":"A-100","qty":3}');
  await send('shop', T.shopC, 'eu-west', 'GET', `${target.url}/health`);
  await send('shop', T.shopC, 'staging', 'GET', `${target.url}/api/missing`, auth);
  await send('billing', T.billC, 'vpn', 'GET', `${target.url}/api/invoices`);
  await send('billing', T.billC, 'legacy', 'GET', 'http://erp.billing.internal/export');
  await send('shop', T.shopC, 'eu-west', 'GET', `${target.url}/api/invoices`);
  await send('shop', T.shopC, 'staging', 'DELETE', 'http://127.0.0.1:1/api/orders/1041', auth);
  await send('shop', T.shopC, 'eu-west', 'GET', `${target.url}/api/orders`);

  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1480, height: 1360 }, deviceScaleFactor: 1 });
    await page.goto(`${server.url}/console#token=${T.admin}`);
    await page.waitForSelector('#status[data-state="live"]');
    await page.waitForSelector('#feed tr[data-outcome="target_unreachable"]');
    await page.click('#feed tr[data-outcome="target_unreachable"]');
    await page.waitForSelector('#details .details');
    await page.fill('#send-form [name=suite]', 'shop');
    await page.fill('#send-form [name=pool]', 'staging');
    await page.fill('#send-form [name=url]', `${target.url}/api/orders`);
    await page.fill('#send-form [name=headers]', 'accept: application/json');
    await page.click('#send-form button[type=submit]');
    await page.waitForSelector('#send-result .result-block');
    await page.screenshot({ path: OUT, fullPage: true });
    process.stdout.write(`wrote ${OUT}\n`);
  } finally {
    await browser.close();
    await Promise.all(agents.map((a) => a.close()));
    await server.close();
    target.server.closeAllConnections();
    await new Promise((r) => target.server.close(r));
  }
}

await main();
