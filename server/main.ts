/** `flowtest server`: config → start → banner → signals. Returns the exit code. */
import { TokenStore } from './auth.ts';
import { parseServerConfig, type ServerOptions } from './config.ts';
import { createLogger } from './logger.ts';
import { startServer } from './server.ts';

export async function runServerMain(options: ServerOptions): Promise<number> {
  const config = parseServerConfig(options);
  if (config.nats) {
    process.stderr.write('flowtest server: --nats (cluster mode) is not available in this version\n');
    return 2;
  }
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
    return 1;
  }
  if (server.devTokens) process.stdout.write(banner(server.url, server.devTokens));

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
        resolve();
      }, (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  return 0;
}

function banner(url: string, t: { admin: string; worker: string; client: string }): string {
  const ws = url.replace(/^http/, 'ws');
  return [
    '',
    'flowtest dispatcher — no --tokens-file given, so these tokens were made for this run:',
    `  admin token:             ${t.admin}`,
    `  worker token (default):  ${t.worker}`,
    `  client token (default):  ${t.client}`,
    '',
    'Start an agent (on a host that can reach your targets):',
    `  FLOWTEST_TOKEN=${t.worker} npx flowtest agent --server ${ws} --suite default --name local`,
    '',
    'Send a request through it:',
    `  FLOWTEST_TOKEN=${t.client} npx flowtest dispatch --server ${url} --suite default --pool local GET https://example.internal/`,
    '',
    `Console: ${url}/console#token=${t.admin}`,
    '',
  ].join('\n');
}
