/**
 * The `flowtest` entry: the only module that reads process.argv and process.env.
 * argv/env → parseCommand → runCommand → process.exitCode (never process.exit, so
 * stdout is flushed and a server or agent ends on its own after its shutdown).
 */

// `flowtest dispatch … | head -1` closes our stdout early; that is not a failure.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

// `--version` (read as parseCommand reads it: the first argument) answers before the
// parser and its schemas are loaded, in node's own start-up time.
if (process.argv[2] === '--version') {
  const { packageVersion } = await import('../shared/package-version.ts');
  process.stdout.write(`${packageVersion()}\n`);
} else {
  await main();
}

async function main(): Promise<void> {
  const { parseCommand, USAGE_EXIT } = await import('./parse-command.ts');
  const { runCommand } = await import('./run-command.ts');
  const parsed = parseCommand(process.argv.slice(2), process.env);
  if (!parsed.ok) {
    process.stderr.write(`${parsed.message}\n`);
    process.exitCode = USAGE_EXIT;
    return;
  }
  const { command } = parsed;
  // Server and agent own their signals (drain, grace). A client call is aborted on the
  // first Ctrl-C: the dropped connection makes the server cancel the job.
  const controller = new AbortController();
  const isClient = command.kind === 'dispatch' || command.kind === 'workers';
  const onSignal = () => controller.abort();
  if (isClient) {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
  try {
    process.exitCode = await runCommand(command, { stdout: process.stdout, stderr: process.stderr, signal: controller.signal });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`flowtest ${command.kind}: ${message.replace(/[\r\n]+/g, ' ')}\n`);
    process.exitCode = 1;
  } finally {
    if (isClient) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}
