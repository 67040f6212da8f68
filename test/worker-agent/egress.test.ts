/**
 * The agent's egress policy: loopback, link-local, unspecified and cloud-metadata
 * addresses are refused (`target_forbidden`, no connection) unless an --allow-host
 * pattern names them; names are resolved by the agent and every address is checked.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { parseAllowlist } from '../../worker-agent/allowlist.ts';
import { deniedKind, normalizeIp, type IpAddress } from '../../worker-agent/egress.ts';
import { runJob, type JobOutcome, type RunJobOptions } from '../../worker-agent/job-runner.ts';
import { createTargetPool, type LookupFn } from '../../worker-agent/target-pool.ts';
import { startRawTarget, startTarget, within, type Target } from './harness.ts';

/** Names the tests make resolve, without /etc/hosts. */
const ZONE: Record<string, string[]> = {
  'loop.corp.test': ['127.0.0.1'],
  'meta.corp.test': ['169.254.169.254'],
  'mixed.corp.test': ['10.0.0.1', '127.0.0.1'],
  'mapped.corp.test': ['::ffff:127.0.0.1'],
  'six.corp.test': ['::1'],
  'ec2.corp.test': ['fd00:ec2::254'],
  'zero.corp.test': ['0.0.0.0'],
  'svc.corp.test': ['10.0.0.5'],
};

function fakeLookup(calls: string[] = []): LookupFn {
  return async (hostname) => {
    calls.push(hostname);
    const answers = ZONE[hostname];
    if (!answers) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return answers.map((address) => ({ address, version: address.includes(':') ? 6 : 4 }) as IpAddress);
  };
}

function setup(t: TestContext, patterns: string[], lookup?: LookupFn): RunJobOptions {
  const allow = parseAllowlist(patterns);
  const targets = createTargetPool({ connections: 2, grant: allow, ...(lookup ? { lookup } : {}) });
  t.after(() => targets.destroy());
  return { timeoutMs: 5000, maxResponseBytes: 1024 * 1024, allow, targets };
}

async function countedTarget(t: TestContext): Promise<{ target: Target; connections: () => number }> {
  const target = await startTarget((req, res) => res.end(`hello ${req.headers.host}`));
  t.after(() => target.close());
  let connections = 0;
  target.server.on('connection', () => {
    connections += 1;
  });
  return { target, connections: () => connections };
}

const run = (url: string, options: RunJobOptions, headers?: Record<string, string>): Promise<JobOutcome> =>
  within(runJob({ method: 'GET', url, ...(headers ? { headers } : {}) }, options), 6000, url);

function codeOf(outcome: JobOutcome): string {
  return 'error' in outcome ? outcome.error.code : `status ${outcome.response.status}`;
}

test('mapped IPv6 is the IPv4 address; the denied ranges are the contract\'s', () => {
  assert.deepEqual(normalizeIp('::ffff:127.0.0.1'), { address: '127.0.0.1', version: 4 });
  assert.deepEqual(normalizeIp('::ffff:7f00:1'), { address: '127.0.0.1', version: 4 });
  assert.deepEqual(normalizeIp('0:0:0:0:0:ffff:a9fe:a9fe'), { address: '169.254.169.254', version: 4 });
  assert.deepEqual(normalizeIp('::1'), { address: '::1', version: 6 });
  assert.equal(normalizeIp('localhost'), null);
  const denied = ['127.0.0.1', '127.255.255.254', '169.254.169.254', '169.254.0.1', '0.0.0.0', '::1', 'fe80::1', 'febf::1', '::', 'fd00:ec2::254', '::ffff:127.0.0.1'];
  for (const address of denied) assert.notEqual(deniedKind(normalizeIp(address) as IpAddress), null, address);
  const open = ['10.0.0.1', '128.0.0.1', '169.255.0.1', '1.1.1.1', '::2', 'fec0::1', 'fd00:ec2::253', '2001:db8::1', '::ffff:10.0.0.1'];
  for (const address of open) assert.equal(deniedKind(normalizeIp(address) as IpAddress), null, address);
});

test('::/0 and other IPv6 patterns never admit IPv4 addresses; mapped patterns are IPv4 patterns', () => {
  const six = parseAllowlist(['::/0']);
  assert.ok(!six.isAllowed('http://10.0.0.1/'));
  assert.ok(!six.isAllowed('http://[::ffff:10.0.0.1]/'), 'a mapped literal is the IPv4 address');
  assert.ok(six.isAllowed('http://[2001:db8::1]/'));
  const mapped = parseAllowlist(['::ffff:10.0.0.0/104']);
  assert.ok(mapped.isAllowed('http://10.1.2.3/'));
  assert.ok(!mapped.isAllowed('http://11.1.2.3/'));
  assert.ok(parseAllowlist(['10.0.0.0/8']).isAllowed('http://[::ffff:10.9.8.7]/'));
});

test('without --allow-host, every spelling of a denied address is target_forbidden and nothing connects', async (t) => {
  const { target, connections } = await countedTarget(t);
  const p = target.port;
  const options = setup(t, []);
  const urls = [
    `http://127.0.0.1:${p}/`, `http://127.1:${p}/`, `http://2130706433:${p}/`, `http://0177.0.0.1:${p}/`, `http://0x7f000001:${p}/`,
    `http://0x7f.0.0.1:${p}/`, `http://%31%32%37.0.0.1:${p}/`, `http://127.0.0.1.:${p}/`, `http://[::ffff:127.0.0.1]:${p}/`,
    `http://[::ffff:7f00:1]:${p}/`, `http://[0:0:0:0:0:ffff:7f00:1]:${p}/`, `http://allowed.example@127.0.0.1:${p}/`,
    `http://user:pw@127.0.0.1:${p}/`, `http://localhost:${p}/`, `http://LocalHost:${p}/`, `http://[::1]:${p}/`,
    `http://0.0.0.0:${p}/`, `http://0:${p}/`, `http://[::]:${p}/`, 'http://169.254.169.254/latest/meta-data/', 'http://[fe80::1]/',
    'http://[fd00:ec2::254]/', `https://127.0.0.1:${p}/`,
  ];
  for (const url of urls) assert.equal(codeOf(await run(url, options)), 'target_forbidden', url);
  assert.equal(connections(), 0);
});

test('an IP or CIDR inside a denied range, with its port, names it; wider patterns do not', async (t) => {
  const { target, connections } = await countedTarget(t);
  const p = target.port;
  for (const pattern of [`127.0.0.1:${p}`, '127.0.0.0/8', '127.0.0.1', `[::ffff:127.0.0.1]:${p}`]) {
    const options = setup(t, [pattern]);
    assert.equal(codeOf(await run(`http://127.0.0.1:${p}/`, options)), 'status 200', pattern);
    assert.equal(codeOf(await run(`http://[::ffff:127.0.0.1]:${p}/`, options)), 'status 200', `${pattern} (mapped URL)`);
  }
  const before = connections();
  for (const pattern of ['0.0.0.0/0', '126.0.0.0/7', '::/0', `127.0.0.1:${p + 1 > 65535 ? p - 1 : p + 1}`, 'localhost', `*.corp.test`]) {
    assert.equal(codeOf(await run(`http://127.0.0.1:${p}/`, setup(t, [pattern]))), 'target_forbidden', pattern);
  }
  assert.equal(connections(), before);
  // The metadata address needs its own pattern even when loopback is named.
  assert.equal(codeOf(await run('http://169.254.169.254/', setup(t, ['127.0.0.0/8', '10.0.0.0/8']))), 'target_forbidden');
});

test('the name localhost, when named, reaches loopback; 127.0.0.1 does not admit the name', async (t) => {
  const { target } = await countedTarget(t);
  const p = target.port;
  assert.equal(codeOf(await run(`http://localhost:${p}/`, setup(t, [`localhost:${p}`]))), 'status 200');
  assert.equal(codeOf(await run(`http://localhost:${p}/`, setup(t, ['127.0.0.1']))), 'target_forbidden');
});

test('names are resolved by the agent: every address is checked, one denied address refuses the name', async (t) => {
  const calls: string[] = [];
  const options = setup(t, ['*.corp.test'], fakeLookup(calls));
  for (const name of ['loop', 'meta', 'mixed', 'mapped', 'six', 'ec2', 'zero']) {
    const outcome = await run(`http://${name}.corp.test:8080/`, options);
    assert.equal(codeOf(outcome), 'target_forbidden', name);
    assert.match((outcome as { error: { message: string } }).error.message, new RegExp(`${name}\\.corp\\.test \\(`));
  }
  assert.ok(calls.includes('loop.corp.test'));
});

test('the connection goes to the address that was checked (one lookup per connection)', async (t) => {
  const { target, connections } = await countedTarget(t);
  const calls: string[] = [];
  // loop.corp.test resolves to 127.0.0.1 only through the injected lookup: reaching the target proves the pinned address was used.
  const options = setup(t, ['*.corp.test', `127.0.0.1:${target.port}`], fakeLookup(calls));
  const outcome = await run(`http://loop.corp.test:${target.port}/`, options);
  assert.equal(codeOf(outcome), 'status 200');
  assert.equal((outcome as { response: { body: string } }).response.body, `hello loop.corp.test:${target.port}`, 'the Host header keeps the name');
  assert.deepEqual(calls, ['loop.corp.test']);
  assert.equal(connections(), 1);
  // Another port of the same name is not named: refused.
  assert.equal(codeOf(await run(`http://loop.corp.test:${target.port === 65535 ? 1 : target.port + 1}/`, options)), 'target_forbidden');
});

test('redirects to denied addresses are returned, not followed', async (t) => {
  const { target: inner, connections } = await countedTarget(t);
  const outer = await startTarget((_req, res) => res.writeHead(302, { location: `http://127.0.0.1:${inner.port}/` }).end());
  t.after(() => outer.close());
  const outcome = await run(`${outer.origin}/`, setup(t, [`127.0.0.1:${outer.port}`]));
  assert.equal(codeOf(outcome), 'status 302');
  assert.equal(connections(), 0);
});

test('a host header passes only when http://VALUE/ would itself pass the allowlist and the egress policy', async (t) => {
  const target = await startRawTarget();
  t.after(() => target.close());
  const self = `127.0.0.1:${target.port}`;
  const options = setup(t, [self, '*.corp.test'], fakeLookup());
  const refused = ['evil.example', 'localhost', '169.254.169.254', 'loop.corp.test', '127.0.0.1', `a@${self}`, `${self}/x`, '[::1]', 'meta.corp.test:80'];
  for (const host of refused) assert.equal(codeOf(await run(`${target.origin}/`, options, { Host: host })), 'target_forbidden', host);
  assert.equal(target.connections, 0, 'refused before connecting');
  for (const host of [self, 'svc.corp.test', 'SVC.corp.test:8443', 'unresolvable.corp.test']) {
    assert.equal(codeOf(await run(`${target.origin}/`, options, { host })), 'status 200', host);
    const seen = await target.requests.next(3000, 'the request');
    assert.deepEqual(seen.headers.filter(([n]) => n === 'host'), [['host', host]], host);
  }
});
