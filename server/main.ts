/** `flowtest server`: config → start → banner → signals. Returns the exit code. */
import { existsSync } from 'node:fs';
import { isAbsolute, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TokenStore } from './auth.ts';
import { parseServerConfig, type ServerOptions } from './config.ts';
import { createLogger } from './logger.ts';
import { startServer } from './server.ts';

export async function runServerMain(options: ServerOptions): Promise<number> {
  const config = parseServerConfig(options);
  const log = createLogger({ level: config.logLevel });
  let tokens: TokenStore | undefined;
  if (config.tokensFile) {
    try {
      tokens = TokenStore.fromFile(config.tokensFile);
    } catch (err) {
      process.stderr.write(`flowtest server: ${(err as Error).message}\n`);
      return 2;
    }
  }
  let server;
  try {
    server = await startServer(config, { tokens, logger: log });
  } catch (err) {
    process.stderr.write(`flowtest server: ${(err as Error).message}\n`);
    // A taken node id or a bad --nats is the operator's to fix (2); an unreachable NATS may pass (1).
    return (err as { exitCode?: number }).exitCode ?? 1;
  }
  if (server.devTokens) process.stdout.write(banner(server.url, server.devTokens));

  // SIGHUP re-reads the tokens file; sockets stay open (Node's default for SIGHUP would end the process).
  const onHangup = () => {
    server.reloadTokens();
  };
  process.on('SIGHUP', onHangup);
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        log.warn({ signal }, 'second signal: exiting at once');
        process.exit(1);
      }
      log.info({ signal }, 'signal received');
      server.close().then(() => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        process.off('SIGHUP', onHangup);
        resolve();
      }, (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.off('SIGHUP', onHangup);
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  return 0;
}

/**
 * How the banner spells the flowtest command: `node` and the package's bin, relative to the
 * working directory when inside it. Not `npx flowtest`: npm does not pass SIGTERM on, so an
 * agent started that way would not drain when its supervisor stops it.
 */
export function flowtestCommand(cwd = process.cwd()): string {
  // bin/ is one level above server/ in the sources and two above dist/server/ in the build.
  const bin = ['../bin/flowtest.js', '../../bin/flowtest.js']
    .map((candidate) => fileURLToPath(new URL(candidate, import.meta.url)))
    .find((path) => existsSync(path));
  if (!bin) return 'flowtest';
  const rel = relative(cwd, bin);
  const shown = rel.startsWith('..') || isAbsolute(rel) ? bin : rel;
  return `node ${/^[\w./-]+$/.test(shown) ? shown : `'${shown.replaceAll("'", "'\\''")}'`}`;
}

function banner(url: string, t: { admin: string; worker: string; client: string }): string {
  const ws = url.replace(/^http/, 'ws');
  const flowtest = flowtestCommand();
  return [
    '',
    'flowtest dispatcher — no --tokens-file given, so these tokens were made for this run:',
    `  admin token:             ${t.admin}`,
    `  worker token (default):  ${t.worker}`,
    `  client token (default):  ${t.client}`,
    '',
    'Start an agent (on a host that can reach your targets). Supervise this command itself:',
    'it drains on SIGTERM; npx/npm are for interactive use, they do not pass SIGTERM on.',
    `  FLOWTEST_TOKEN=${t.worker} ${flowtest} agent --server ${ws} --suite default --name local`,
    'Name the targets it may reach with --allow-host (e.g. --allow-host api.internal); loopback',
    'and link-local addresses are refused unless named (--allow-host localhost, --allow-host 127.0.0.1:PORT).',
    '',
    'Send a request through it:',
    `  FLOWTEST_TOKEN=${t.client} ${flowtest} dispatch --server ${url} --suite default --pool local GET https://example.internal/`,
    '',
    `Console: ${url}/console#token=${t.admin}`,
    '',
  ].join('\n');
}
