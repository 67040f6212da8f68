/**
 * A server and agents as real processes, started through the CLI the way users start
 * them, with a tokens file in a temp dir. Everything is stopped after the test.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startCli, type Proc } from './processes.ts';
import { TOKENS } from './server.ts';

export interface ServerProc extends Proc {
  url: string;
  wsUrl: string;
}

export function writeTokensFile(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'flowtest-e2e-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'tokens.json');
  writeFileSync(
    file,
    JSON.stringify({
      admin: [TOKENS.admin],
      suites: { acme: { worker: [TOKENS.worker], client: [TOKENS.client] }, other: { worker: [TOKENS.otherWorker], client: [TOKENS.otherClient] } },
    }),
  );
  return file;
}

export async function startServerProc(t: TestContext, args: string[] = []): Promise<ServerProc> {
  const proc = startCli(t, ['server', '--host', '127.0.0.1', '--port', '0', '--tokens-file', writeTokensFile(t), ...args]);
  const line = await proc.waitForLine(/"msg":"server listening"/);
  const url = JSON.parse(line).url as string;
  return Object.assign(proc, { url, wsUrl: url.replace(/^http/, 'ws') });
}

export interface AgentProc extends Proc {
  /** Resolves when the agent has a welcome (a connection is open). */
  connected(): Promise<string>;
}

/**
 * Starts an agent process. Test targets listen on 127.0.0.1, which the agent's egress
 * policy refuses unless named: without an `--allow-host` in `args`, `127.0.0.1` is named.
 */
export function startAgentProc(t: TestContext, server: { wsUrl: string }, args: string[] = [], token: string = TOKENS.worker): AgentProc {
  const allow = args.includes('--allow-host') ? [] : ['--allow-host', '127.0.0.1'];
  const proc = startCli(t, ['agent', '--server', server.wsUrl, '--suite', 'acme', '--name', 'pool1', ...allow, ...args], { FLOWTEST_TOKEN: token });
  return Object.assign(proc, { connected: () => proc.waitForLine(/"workerId"/) });
}
