/**
 * deploy/nginx/nginx.conf for real: a throwaway CA and certificate (openssl), the shipped
 * file with only its documented values replaced (ports, paths), Debian's nginx on loopback in
 * front of a flowtest server. Proves an agent over wss:// trusting the CA through
 * NODE_EXTRA_CA_CERTS, a dispatch over https:// with a 5 MiB body, the server's own 413
 * through the proxy, the console socket (Origin check with the forwarded Host and scheme) and
 * /metrics refused on the public listener but served on the internal one.
 *
 * Skipped only outside CI when nginx is missing; with CI set, a missing nginx fails.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import WebSocket from 'ws';
import { CONSOLE_PATH, CONSOLE_SUBPROTOCOL, TOKEN_PROTOCOL_PREFIX } from '../../server/console/console-protocol.ts';
import { metricSum } from '../helpers/metrics-text.ts';
import { ROOT, startBin } from '../helpers/processes.ts';
import { getJson, startTestServer, TOKENS } from '../helpers/server.ts';
import { startTarget } from '../helpers/target.ts';
import { freePort } from '../helpers/free-port.ts';
import { NGINX, startNginxProcess } from '../helpers/nginx.ts';
import { waitUntil } from '../helpers/wait.ts';

const OPENSSL = '/usr/bin/openssl';
const SHIPPED = join(ROOT, 'deploy', 'nginx', 'nginx.conf');
const MiB = 1024 * 1024;

const missing = [NGINX, OPENSSL].filter((p) => !existsSync(p));
const skip = missing.length > 0 && !process.env.CI ? `not installed: ${missing.join(', ')} (required when CI is set)` : false;

/** Runs a command to its end; rejects on a non-zero exit with its stderr. */
async function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

async function mustRun(command: string, args: string[], cwd: string): Promise<void> {
  const r = await run(command, args, { cwd });
  assert.equal(r.code, 0, `${command} ${args.join(' ')}: ${r.stderr}`);
}


/** A CA and a certificate for 127.0.0.1 and localhost signed by it, valid for a day. */
async function makeCertificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await mustRun(OPENSSL, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=flowtest test CA'], dir);
  await mustRun(OPENSSL, ['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await mustRun(OPENSSL, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '1', '-days', '1', '-extfile', 'san.cnf', '-out', 'server.pem'], dir);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

/** The shipped config with its documented values (and nothing else) replaced. */
function render(values: { publicPort: number; internalPort: number; upstream: string; cert: string; key: string; logDir: string }): string {
  const replacements: [string, string][] = [
    ['listen 443 ssl', `listen 127.0.0.1:${values.publicPort} ssl`],
    ['127.0.0.1:9101', `127.0.0.1:${values.internalPort}`],
    ['127.0.0.1:8080', values.upstream],
    ['/etc/ssl/flowtest/fullchain.pem', values.cert],
    ['/etc/ssl/flowtest/privkey.pem', values.key],
    ['/var/log/nginx/', `${values.logDir}/`],
  ];
  let text = readFileSync(SHIPPED, 'utf8');
  for (const [from, to] of replacements) {
    assert.ok(text.includes(from), `the shipped config has no ${from}`);
    text = text.replaceAll(from, to);
  }
  return text;
}

async function startNginx(t: TestContext, dir: string, conf: string, port: number): Promise<void> {
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const check = await run(NGINX, ['-t', '-p', dir, '-c', confPath, '-g', `pid ${join(dir, 'nginx-t.pid')};`]);
  assert.equal(check.code, 0, `nginx -t: ${check.stderr}`);
  await startNginxProcess(t, dir, confPath, port);
}

function httpsGet(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens the console socket through the proxy; resolves with the open socket or the refusal's status. */
function openConsole(url: string, origin: string, ca: Buffer): Promise<{ ws: WebSocket } | { status: number }> {
  const protocols = [CONSOLE_SUBPROTOCOL, `${TOKEN_PROTOCOL_PREFIX}${Buffer.from(TOKENS.admin).toString('base64url')}`];
  const ws = new WebSocket(url, protocols, { ca, origin });
  ws.on('error', () => {});
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      req.destroy();
    });
  });
}

test('the shipped nginx config in front of flowtest: wss agent, https dispatch, 5 MiB body, console, /metrics internal', { skip, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flowtest-nginx-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const logDir = join(dir, 'logs');
  mkdirSync(logDir);
  const { ca, cert, key } = await makeCertificates(dir);
  const caPem = readFileSync(ca);

  const server = await startTestServer(t);
  const target = await startTarget(t);
  target.route('/echo', (_req, res, body) => res.end(`got ${body.length} bytes`));

  const [publicPort, internalPort] = [await freePort(), await freePort()];
  await startNginx(t, dir, render({ publicPort, internalPort, upstream: new URL(server.url).host, cert, key, logDir }), publicPort);
  const https = `https://127.0.0.1:${publicPort}`;

  // An agent over wss://, trusting the private CA the documented way.
  const tls = { NODE_EXTRA_CA_CERTS: ca };
  const agent = startBin(t, ['agent', '--server', `wss://127.0.0.1:${publicPort}`, '--suite', 'acme', '--name', 'edge', '--allow-host', '127.0.0.1'], { ...tls, FLOWTEST_TOKEN: TOKENS.worker });
  await waitUntil(async () => (await getJson(server, '/v1/suites/acme/workers', TOKENS.client)).body.workers.length === 1, 30_000, 'the agent to connect through nginx');

  // A dispatch over https:// with a 5 MiB body read from a file.
  const bodyFile = join(dir, 'body.txt');
  writeFileSync(bodyFile, 'x'.repeat(5 * MiB));
  const dispatchArgs = ['dispatch', '--server', https, '--suite', 'acme', '--pool', 'edge', 'POST', `${target.url}/echo`];
  const env = { ...process.env, ...tls, FLOWTEST_TOKEN: TOKENS.client };
  const big = await run(process.execPath, [join(ROOT, 'bin', 'flowtest.js'), ...dispatchArgs, '--data', `@${bodyFile}`], { env });
  assert.deepEqual({ code: big.code, stdout: big.stdout }, { code: 0, stdout: `got ${5 * MiB} bytes` }, big.stderr);

  // Over the server's limit: the server's JSON 413 comes through, not nginx's HTML page.
  writeFileSync(bodyFile, 'x'.repeat(10 * MiB + 1));
  const tooBig = await run(process.execPath, [join(ROOT, 'bin', 'flowtest.js'), ...dispatchArgs, '--data', `@${bodyFile}`], { env });
  assert.equal(tooBig.code, 1);
  assert.match(tooBig.stderr, /^payload_too_large: /m);

  // The console socket: the Origin check sees the forwarded Host (with port) and scheme.
  const opened = await openConsole(`wss://127.0.0.1:${publicPort}${CONSOLE_PATH}`, https, caPem);
  assert.ok('ws' in opened, `console refused through the proxy: ${JSON.stringify(opened)}`);
  const [first] = (await once(opened.ws, 'message')) as [Buffer];
  assert.ok(first.length > 0);
  opened.ws.close();
  assert.deepEqual(await openConsole(`wss://127.0.0.1:${publicPort}${CONSOLE_PATH}`, 'https://evil.example', caPem), { status: 403 });

  // /metrics: refused on the public listener, served on the internal one.
  assert.equal((await httpsGet(`${https}/metrics`, caPem)).status, 403);
  const internal = await httpGet(`http://127.0.0.1:${internalPort}/metrics`);
  assert.equal(internal.status, 200);
  assert.equal(metricSum(internal.body, 'flowtest_workers_connected', { suite: 'acme', pool: 'edge' }), 1);
  assert.equal((await httpGet(`http://127.0.0.1:${internalPort}/v1/workers`)).status, 404);
  assert.equal((await httpsGet(`${https}/healthz`, caPem)).status, 200);

  agent.child.kill('SIGTERM');
  assert.deepEqual(await agent.exited, { code: 0, signal: null });
});
