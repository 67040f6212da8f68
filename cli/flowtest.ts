/**
 * The `flowtest` entry: the only module that reads process.argv and process.env.
 * argv/env → parseCommand → runCommand → process.exitCode (never process.exit, so
 * stdout is flushed and a server or agent ends on its own after its shutdown).
 */
import { parseCommand, USAGE_EXIT } from './parse-command.ts';
import { runCommand } from './run-command.ts';

// `flowtest dispatch … | head -1` closes our stdout early; that is not a failure.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

const parsed = parseCommand(process.argv.slice(2), process.env);
if (!parsed.ok) {
  process.stderr.write(`${parsed.message}\n`);
  process.exitCode = USAGE_EXIT;
} else {
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
