/** `npm start` without a tokens file: the banner, and the agent command in it working as printed. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { getJson } from '../helpers/server.ts';
import { ROOT, startCli } from '../helpers/processes.ts';
import { waitUntil, within } from '../helpers/wait.ts';

test('without a tokens file the server prints dev tokens, a working agent command and the console address', async (t) => {
  const server = startCli(t, ['server', '--host', '127.0.0.1', '--port', '0']);
  const consoleLine = await server.waitForLine(/^Console: /);
  const admin = /admin token:\s+(\S+)/.exec((await server.waitForLine(/admin token:/)))![1];
  const client = /client token \(default\):\s+(\S+)/.exec(await server.waitForLine(/client token/))![1];
  const agentCommand = (await server.waitForLine(/ agent --server /)).trim();
  // The printed command is one that receives signals itself: node and the bin, never npx/npm.
  assert.match(agentCommand, /^FLOWTEST_TOKEN=\S+ node bin\/flowtest\.js agent /);
  assert.match(consoleLine, new RegExp(`/console#token=${admin}$`));
  const url = /^Console: (http:\/\/[^/]+)\//.exec(consoleLine)![1];

  // The banner is plain text; no JSON log line carries a token.
  for (const line of server.stdout.filter((l) => l.startsWith('{'))) {
    assert.ok(!line.includes(admin) && !line.includes(client), line);
  }

  // Paste the agent command as printed (bash execs a lone simple command, so the PID is node's).
  const agent = spawn('bash', ['-c', agentCommand], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const agentLog: string[] = [];
  agent.stdout!.on('data', (c: Buffer) => agentLog.push(c.toString('utf8')));
  const agentExited = new Promise((r) => agent.once('exit', r));
  t.after(async () => {
    if (agent.exitCode === null) {
      process.kill(-agent.pid!, 'SIGKILL');
      await agentExited;
    }
  });
  await waitUntil(async () => (await getJson({ url }, '/v1/suites/default/workers', client)).body.workers?.length === 1, 20_000, 'the pasted agent to connect');
  // A supervisor signals only the PID it started: that PID alone gets SIGTERM, and drains.
  assert.match(readFileSync(`/proc/${agent.pid}/cmdline`, 'utf8'), /flowtest\.js\0agent\0/);
  process.kill(agent.pid!, 'SIGTERM');
  assert.equal(await agentExited, 0);
  assert.match(agentLog.join(''), /signal received: draining/);
  await waitUntil(async () => (await getJson({ url }, '/v1/suites/default/workers', client)).body.workers?.length === 0, 10_000, 'the agent to leave');
  server.child.kill('SIGTERM');
  assert.deepEqual(await within(server.exited, 15_000, 'the server process to exit on SIGTERM'), { code: 0, signal: null });
});
