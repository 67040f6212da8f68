/**
 * Entry of `flowtest agent`: logger, agent, signal handling, exit code.
 * Exit codes: 0 after a drain, 2 for bad options, 3 for 401/403 at the handshake.
 */
import { pino, type Logger } from 'pino';
import { WorkerAgent, type AgentTuning } from './agent.ts';
import type { LogLevel } from '../shared/limits.ts';
import { startHealthServer, type HealthServer } from './health-server.ts';
import { AgentOptionsError, resolveAgentConfig, type AgentConfig, type AgentOptions } from './options.ts';

export type { AgentOptions } from './options.ts';
export type { AgentStop, AgentTuning } from './agent.ts';
export { WorkerAgent } from './agent.ts';
export { AgentOptionsError } from './options.ts';
export { startHealthServer, type HealthServer } from './health-server.ts';

/** Paths pino censors; header maps are lower-cased before they could be logged. */
const REDACT_PATHS = ['token', 'authorization', '*.token', '*.authorization', 'headers.authorization', '*.headers.authorization'];

/** The agent's pino logger: JSON lines on stdout (or `destination`). */
export function createAgentLogger(level: LogLevel = 'info', destination?: pino.DestinationStream): Logger {
  const options = { name: 'flowtest-agent', level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * Validates `options` and starts an agent in this process (throws {@link AgentOptionsError}).
 * Await `agent.stopped`; stop it with `drain()` or `close()`.
 */
export function startAgent(options: AgentOptions, logger: Logger, tuning: AgentTuning = {}): WorkerAgent {
  const agent = new WorkerAgent(resolveAgentConfig(options), logger, tuning);
  agent.start();
  return agent;
}

/** What tests may replace in {@link runAgentMain}. */
export interface AgentMainDeps {
  logger?: Logger;
  stderr?: { write(text: string): unknown };
  tuning?: AgentTuning;
  /** Told the health server once it listens (tests read its URL when they asked for port 0). */
  onHealth?: (health: HealthServer) => void;
}

/**
 * Runs the agent until it stops and returns the exit code (never calls process.exit,
 * except on a second SIGTERM/SIGINT, which exits 1 at once).
 */
export async function runAgentMain(options: AgentOptions, deps: AgentMainDeps = {}): Promise<number> {
  const stderr = deps.stderr ?? process.stderr;
  const logger = deps.logger ?? createAgentLogger(options.logLevel);
  let config: AgentConfig;
  try {
    config = resolveAgentConfig(options);
  } catch (error) {
    if (!(error instanceof AgentOptionsError)) throw error;
    stderr.write(`flowtest agent: ${error.message}\n`);
    return 2;
  }
  const agent = new WorkerAgent(config, logger, deps.tuning);
  let health: HealthServer | null = null;
  if (config.health) {
    try {
      health = await startHealthServer(agent, config.health);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      stderr.write(`flowtest agent: --health-port ${config.health.port} on ${config.health.host}: cannot listen (${code})\n`);
      await agent.close();
      return 2;
    }
    logger.info({ url: health.url }, 'health server listening: /healthz, /readyz, /metrics');
    deps.onHealth?.(health);
  }
  agent.start();

  let signals = 0;
  // Installed here, removed in finally on every exit path.
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ signal }, 'signal received: draining');
    void agent.drain();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    const stop = await agent.stopped;
    if (stop.kind === 'fatal') {
      stderr.write(`flowtest agent: ${stop.reason}\n`);
      return stop.exitCode;
    }
    logger.info({ how: stop.kind }, 'agent stopped');
    return 0;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await health?.close();
  }
}
