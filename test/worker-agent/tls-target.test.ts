/**
 * HTTPS to a name: the connector pins the checked address, yet TLS still sends the name
 * (SNI) and verifies the certificate against it. A throwaway CA-less self-signed
 * certificate is made with openssl; skipped when openssl is missing.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllowlist } from '../../worker-agent/allowlist.ts';
import type { IpAddress } from '../../worker-agent/egress.ts';
import { runJob } from '../../worker-agent/job-runner.ts';
import { createTargetPool } from '../../worker-agent/target-pool.ts';
import { within } from './harness.ts';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('https by name: connected to the checked address, SNI and certificate check use the name', { skip: !hasOpenssl() && 'openssl not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flowtest-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=api.corp.test', '-addext', 'subjectAltName=DNS:api.corp.test'], { stdio: 'ignore' });
  const pem = readFileSync(cert, 'utf8');
  const servernames: (string | false | null)[] = [];
  const server = https.createServer({ key: readFileSync(key), cert: pem }, (req, res) => res.end(`host ${req.headers.host}`));
  server.on('secureConnection', (socket) => servernames.push(socket.servername));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const port = (server.address() as AddressInfo).port;

  const lookup = async (name: string): Promise<IpAddress[]> => {
    if (name === 'api.corp.test' || name === 'other.corp.test') return [{ address: '127.0.0.1', version: 4 }];
    throw Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  };
  const allow = parseAllowlist(['*.corp.test', `127.0.0.1:${port}`]);
  const targets = createTargetPool({ connections: 2, grant: allow, lookup, ca: [pem] });
  t.after(() => targets.destroy());
  const options = { timeoutMs: 5000, maxResponseBytes: 1 << 20, allow, targets };

  const ok = await within(runJob({ method: 'GET', url: `https://api.corp.test:${port}/` }, options), 6000, 'the job');
  assert.ok('response' in ok, JSON.stringify(ok));
  assert.equal(ok.response.body, `host api.corp.test:${port}`);
  assert.deepEqual(servernames, ['api.corp.test']);

  // Same address, another name: the certificate does not name it, so the check fails.
  const wrong = await within(runJob({ method: 'GET', url: `https://other.corp.test:${port}/` }, options), 6000, 'the job');
  assert.ok('error' in wrong);
  assert.equal(wrong.error.code, 'target_unreachable');
  assert.match(wrong.error.message, /altname|does not match|ERR_TLS_CERT_ALTNAME_INVALID/i);
});
