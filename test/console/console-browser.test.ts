/**
 * The console page in real Chromium (Debian's, driven by playwright-core), against a
 * real server and real agents. When /usr/bin/chromium is absent: skipped, saying why —
 * but failed when `CI` is set (see browserTestMode).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test, type TestContext } from 'node:test';
import { pino } from 'pino';
import type { Browser, Page } from 'playwright-core';
import { startAgent } from '../../worker-agent/main.ts';
import { startCli } from '../helpers/processes.ts';
import { dispatch, startTestServer, TOKENS, type TestServer } from '../helpers/server.ts';
import { startTarget } from '../helpers/target.ts';
import { waitUntil } from '../helpers/wait.ts';
import { browserTestMode, launchChromium } from './chromium.ts';
import { consoleProtocols, startBlackholeProxy, startRig, workerInfo } from './console-harness.ts';

const mode = browserTestMode();
let browser: Browser | undefined;
before(async () => {
  if (mode.run) browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

/** A test that needs Chromium; without it, skipped with the reason — or failed, in CI. */
function browserTest(name: string, fn: (t: TestContext, page: Page, frames: string[]) => Promise<void>): void {
  test(name, { skip: 'skip' in mode ? mode.skip : false }, async (t) => {
    if ('fail' in mode) assert.fail(mode.fail);
    const context = await browser!.newContext();
    t.after(() => context.close());
    const page = await context.newPage();
    page.setDefaultTimeout(5000);
    /** Every console message the page received, as sent. */
    const frames: string[] = [];
    page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
    await fn(t, page, frames);
  });
}

async function openConsole(page: Page, base: string, token: string = TOKENS.admin): Promise<void> {
  await page.goto(`${base}/console#token=${encodeURIComponent(token)}`);
  await page.waitForSelector('#status[data-state="live"]');
  // "live" is set when the snapshot arrives; the page draws it on the next animation frame.
  // Polled from here: page.waitForFunction polls inside the page by evaluating a string,
  // which the console's CSP (no 'unsafe-eval') refuses whenever the first check is false.
  await waitUntil(async () => (await page.textContent('#c-workers')) !== '–', 5000, 'the snapshot drawn');
}

function startInProcessAgent(t: TestContext, s: TestServer, name: string) {
  const agent = startAgent(
    { server: s.url, suite: 'acme', name, token: TOKENS.worker, concurrency: 4, allowHost: ['127.0.0.1'], maxResponseBytes: 1 << 20, drainTimeoutMs: 1000 },
    pino({ level: 'silent' }),
  );
  t.after(() => agent.close());
  return agent;
}

browserTest('signing in through the fragment: live at once, the fragment leaves the address bar, the token no URL', async (t, page) => {
  const s = await startTestServer(t);
  const urls: string[] = [];
  page.on('request', (r) => urls.push(r.url()));
  page.on('websocket', (ws) => urls.push(ws.url()));
  await openConsole(page, s.url);
  assert.equal(new URL(page.url()).hash, '');
  assert.ok(urls.some((u) => u.endsWith('/v1/console')));
  assert.ok(!urls.some((u) => u.includes(TOKENS.admin)), urls.join(' '));
  assert.equal(await page.textContent('#c-workers'), '0');
  assert.ok(!s.logLines.some((l) => l.includes(TOKENS.admin)));

  // Reload keeps the tab signed in; signing out forgets the token.
  await page.reload();
  await page.waitForSelector('#status[data-state="live"]');
  await page.click('#sign-out');
  await page.waitForSelector('#signin-form');
  assert.equal(await page.evaluate('sessionStorage.length'), 0);
  await waitUntil(() => s.console.openConsoles === 0, 2000, 'console closed on sign-out');
});

browserTest('a real agent appears within a second of connecting and disappears within a second of being killed', async (t, page) => {
  const s = await startTestServer(t);
  await openConsole(page, s.url);
  const agent = startCli(t, ['agent', '--server', s.wsUrl, '--suite', 'acme', '--name', 'browser-pool', '--concurrency', '3', '--allow-host', '127.0.0.1'], { FLOWTEST_TOKEN: TOKENS.worker });
  // Starting a process (and tsx compiling the CLI) is what takes long on a loaded machine; the promise timed here starts once the server lists the worker.
  await waitUntil(() => s.router.listWorkers().length === 1, 45_000, 'the agent process to start and connect');
  const listedAt = Date.now();
  const { id } = s.router.listWorkers()[0];
  const row = `tr[data-worker-id="${id}"]`;
  await page.waitForSelector(row, { timeout: 2000 });
  const appearMs = Date.now() - listedAt;
  assert.match((await page.textContent(`${row}`)) ?? '', /ready\s*0 \/ 3/);
  assert.equal(await page.textContent('[data-pool="acme/browser-pool"] .why'), 'would run now');

  agent.child.kill('SIGKILL');
  await waitUntil(() => s.router.listWorkers().length === 0, 5000, 'worker gone at the server');
  const goneAt = Date.now();
  await page.waitForSelector(row, { state: 'detached', timeout: 2000 });
  const goneMs = Date.now() - goneAt;
  t.diagnostic(`worker row appeared ${appearMs} ms after the server listed it, left ${goneMs} ms after the server dropped it`);
  assert.ok(appearMs < 1000 && goneMs < 1000, `appeared after ${appearMs} ms, left after ${goneMs} ms`);
  assert.equal(await page.textContent('[data-pool="acme/browser-pool"] .why'), 'why not? no workers');
  assert.equal(await page.textContent('#c-workers'), '0');
});

browserTest('a dispatch from the form shows its response', async (t, page) => {
  const s = await startTestServer(t);
  const target = await startTarget(t);
  target.route('/hello', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'sid=target-cookie-secret' });
    res.end('{"greeting":"hi","n":[1,2]}');
  });
  startInProcessAgent(t, s, 'web');
  await openConsole(page, s.url);
  await page.waitForSelector('[data-pool="acme/web"] .why:text("would run now")');
  await page.fill('#send-form [name=suite]', 'acme');
  await page.fill('#send-form [name=pool]', 'web');
  await page.selectOption('#send-form [name=method]', 'POST');
  await page.fill('#send-form [name=url]', `${target.url}/hello`);
  await page.fill('#send-form [name=headers]', 'x-from: console\ncontent-type: application/json');
  await page.fill('#send-form [name=body]', '{"q":1}');
  await page.click('#send-form button[type=submit]');
  await page.waitForSelector('#send-result .result-block[data-status="200"]');
  const text = (await page.textContent('#send-result')) ?? '';
  assert.match(text, /HTTP 200/);
  assert.match(text, /"greeting": "hi"/, 'JSON is pretty-printed');
  assert.doesNotMatch(text, /target-cookie-secret/);
  const seen = target.seen.find((r) => r.path === '/hello')!;
  assert.equal(seen.method, 'POST');
  assert.equal(seen.headers['x-from'], 'console');
  assert.equal(seen.body.toString(), '{"q":1}');
  // The test request is a job like any other: it is in the feed.
  await page.waitForSelector('#feed tr[data-outcome="ok"]');
});

browserTest('a failed job appears in the feed with its code; its details mask the authorization header; Replay re-sends it', async (t, page, frames) => {
  const s = await startTestServer(t);
  const agent = startInProcessAgent(t, s, 'web');
  await openConsole(page, s.url);
  await waitUntil(() => agent.workerId !== null, 5000, 'agent welcomed');
  const secret = 'Bearer browser-secret-4711';
  const r = await dispatch(s, 'acme', { pool: 'web', request: { method: 'GET', url: 'http://127.0.0.1:1/down', headers: { authorization: secret, 'x-trace': 'trace-1' } } });
  assert.equal(r.body.error.code, 'target_unreachable');

  const row = page.locator('#feed tr[data-outcome="target_unreachable"]');
  await row.waitFor();
  assert.equal(await row.getAttribute('class'), 'fail');
  assert.equal(await row.locator('.outcome').textContent(), 'target_unreachable');
  await row.click();
  await page.waitForSelector('#details .details');
  const headers = await page.$$eval('#details table.headers tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
  assert.deepEqual(headers, [['authorization', 'masked'], ['x-trace', 'trace-1']]);
  assert.doesNotMatch((await page.content()) ?? '', /browser-secret-4711/);

  await page.click('#replay');
  await page.waitForSelector('#replay-result .result-block[data-outcome="target_unreachable"]');
  await waitUntil(async () => (await page.locator('#feed tr[data-outcome="target_unreachable"]').count()) === 2, 3000, 'replayed job in the feed');
  assert.ok(!frames.some((f) => f.includes('browser-secret-4711')), 'the secret reached the browser');
});

browserTest('"why not?" says "no workers" for an empty pool', async (t, page) => {
  const s = await startTestServer(t);
  await openConsole(page, s.url);
  await page.fill('#send-form [name=suite]', 'acme');
  await page.fill('#send-form [name=pool]', 'nobody-home');
  assert.equal(await page.textContent('#send-why'), 'no workers');
  await page.fill('#send-form [name=url]', 'http://svc.internal/');
  await page.click('#send-form button[type=submit]');
  await page.waitForSelector('#send-result .result-block[data-outcome="no_worker"]');
  await page.waitForSelector('[data-pool="acme/nobody-home"] .why:text("why not? no workers")');
  await page.waitForSelector('#feed tr[data-outcome="no_worker"]');
});

browserTest('a console on a foreign origin is refused; the same origin listed in --console-origin is let in', async (t, page) => {
  const foreign = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>elsewhere</title>'));
  await new Promise<void>((r) => foreign.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => foreign.close(r)));
  const foreignUrl = `http://127.0.0.1:${(foreign.address() as AddressInfo).port}`;
  const open = (wsUrl: string) =>
    page.evaluate(
      ({ url, protocols }) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url, protocols);
          ws.onmessage = (m) => {
            resolve(`data:${String(m.data).slice(0, 18)}`);
            ws.close();
          };
          ws.onclose = (e) => resolve(`closed:${e.code}`);
        }),
      { url: `${wsUrl}/v1/console`, protocols: consoleProtocols(TOKENS.admin) },
    );

  const s = await startTestServer(t);
  await page.goto(foreignUrl);
  assert.equal(await open(s.wsUrl), 'closed:1006');
  assert.equal(s.console.openConsoles, 0);

  const allowing = await startTestServer(t, { consoleOrigin: [foreignUrl] });
  assert.equal(await open(allowing.wsUrl), 'data:{"type":"snapshot"');
});

browserTest('a wrong token is refused: the page says so and gets no data', async (t, page, frames) => {
  const s = await startTestServer(t);
  await page.goto(`${s.url}/console#token=not-the-token`);
  await page.waitForSelector('#signin-error:text("unknown token")');
  assert.equal(await page.getAttribute('#status', 'data-state'), 'refused');
  assert.equal(await page.isVisible('#main'), false);

  await page.fill('#signin-token', TOKENS.client);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#signin-error:text("not an admin token")');

  // The socket itself refuses it too (no page logic involved).
  const result = await page.evaluate(
    (protocols) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(`ws://${(globalThis as any).location.host}/v1/console`, protocols);
        ws.onopen = () => resolve('open');
        ws.onclose = (e) => resolve(`closed:${e.code}`);
      }),
    consoleProtocols('not-the-token'),
  );
  assert.equal(result, 'closed:1006');
  assert.deepEqual(frames, []);
  assert.equal(s.console.openConsoles, 0);
});

browserTest("the page's heartbeat notices a dead connection, reconnects and resyncs from a fresh snapshot", async (t, page) => {
  const rig = await startRig(t, { heartbeatMs: 200, tickMs: 50 });
  const proxy = await startBlackholeProxy(t, Number(new URL(rig.url).port));
  rig.router.workers.set('w-before', workerInfo('w-before'));
  await openConsole(page, proxy.url);
  await page.waitForSelector('tr[data-worker-id="w-before"]');
  // On a busy machine the page may already have reconnected once (a 200 ms heartbeat is
  // tight): count snapshots from here rather than expecting exactly one.
  const snapshotsBefore = Number(await page.evaluate('window.__flowtestConsole.stats.snapshots'));
  assert.ok(snapshotsBefore >= 1);

  proxy.blackhole();
  // While the page hears nothing, the world changes.
  rig.router.workers.delete('w-before');
  rig.router.emit({ kind: 'worker-down', workerId: 'w-before', suite: 'acme', pool: 'pool1', reason: 'socket closed (1006)' });
  rig.router.workers.set('w-after', workerInfo('w-after'));
  rig.router.emit({ kind: 'worker-up', worker: workerInfo('w-after') });

  await page.waitForSelector('tr[data-worker-id="w-after"]', { timeout: 5000 });
  assert.equal(await page.locator('tr[data-worker-id="w-before"]').count(), 0);
  // The blackholed socket delivered nothing: what the page shows came from a fresh snapshot.
  const snapshotsAfter = Number(await page.evaluate('window.__flowtestConsole.stats.snapshots'));
  assert.ok(snapshotsAfter > snapshotsBefore, `snapshots ${snapshotsBefore} → ${snapshotsAfter}`);
  assert.equal(await page.getAttribute('#status', 'data-state'), 'live');
});

browserTest('two quick sign-ins open one socket, and signing out closes it', async (t, page) => {
  const rig = await startRig(t);
  let sockets = 0;
  page.on('websocket', () => (sockets += 1));
  await page.goto(`${rig.url}/console`);
  await page.fill('#signin-token', TOKENS.admin);
  // Both submits are in their token check at once, as with a double Enter.
  await page.evaluate("const f = document.getElementById('signin-form'); f.requestSubmit(); f.requestSubmit();");
  await page.waitForSelector('#status[data-state="live"]');
  await page.click('#sign-out');
  await waitUntil(() => rig.gateway.openConsoles === 0, 3000, 'no console left open after sign-out');
  assert.equal(sockets, 1);
});

browserTest('a Replay waiting for its answer says so when the connection drops', async (t, page) => {
  const rig = await startRig(t);
  // The replay hangs at the router until the server cancels it.
  rig.router.dispatch = (_suite, _body, signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
  rig.router.emit({
    kind: 'job-end',
    job: { id: 'job-failed', suite: 'acme', pool: 'pool1', workerId: null, acceptedAt: Date.now(), durationMs: 1, outcome: 'no_worker', request: { method: 'GET', url: 'http://t.internal/x' }, response: null, error: { code: 'no_worker', message: 'none' } },
  });
  await openConsole(page, rig.url);
  await page.click('#feed tr[data-job-id="job-failed"]');
  await page.click('#replay:not([disabled])');
  await page.waitForSelector('#replay-result:has-text("Replaying")');
  await rig.gateway.close();
  await page.waitForSelector('#replay-result .error:has-text("connection dropped")');
});
