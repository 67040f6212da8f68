/**
 * The agent's options as the CLI hands them over, validated once with a strict schema,
 * and turned into the agent's working config (parsed allow list, connect URL).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { describeIssue } from '../shared/codec.ts';
import { BOUNDS, LOG_LEVELS, type LogLevel } from '../shared/limits.ts';
import { nameSchema } from '../shared/protocol.ts';
import { InvalidAllowHostError, parseAllowlist, type Allowlist } from './allowlist.ts';
import { connectUrl } from './connection.ts';

/** Options of `flowtest agent`; defaults are in shared/limits.ts DEFAULTS. */
export interface AgentOptions {
  /** ws://, wss://, http:// or https:// address of the server. */
  server: string;
  suite: string;
  /** The pool this worker joins. */
  name: string;
  /** Worker token; sent as `Authorization: Bearer`. */
  token?: string;
  /** File holding the worker token (read at start and before every reconnect, trimmed); excludes `token`. */
  tokenFile?: string;
  /** Jobs held at once. */
  concurrency: number;
  /** `--allow-host` patterns; empty allows every host. */
  allowHost: string[];
  maxResponseBytes: number;
  /** Grace for jobs in flight after SIGTERM/SIGINT. */
  drainTimeoutMs: number;
  /** pino level of the agent's log (default info). */
  logLevel?: LogLevel;
  /** Serve /healthz, /readyz and /metrics on this port (0 picks a free one); off when absent. */
  healthPort?: number;
  /** Address of the health server (default 127.0.0.1: probes and scrapes come from the same host or pod). */
  healthHost?: string;
}

/** Where the health server listens unless `--health-host` says otherwise. */
export const DEFAULT_HEALTH_HOST = '127.0.0.1';

/** Options that fail validation; the CLI prints the message and exits 2. */
export class AgentOptionsError extends Error {
  readonly code = 'invalid_option';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentOptionsError';
  }
}

export const agentOptionsSchema = z.strictObject({
  server: z.string().min(1),
  suite: nameSchema,
  name: nameSchema,
  token: z.string().min(1).optional(),
  tokenFile: z.string().min(1).optional(),
  concurrency: z.number().int().positive().max(BOUNDS.maxConcurrency),
  allowHost: z.array(z.string()),
  maxResponseBytes: z.number().int().positive(),
  drainTimeoutMs: z.number().int().nonnegative(),
  logLevel: z.enum(LOG_LEVELS).optional(),
  healthPort: z.number().int().min(0).max(65_535).optional(),
  healthHost: z.string().min(1).optional(),
}) satisfies z.ZodType<AgentOptions>;

/** The agent's validated working config. */
export interface AgentConfig {
  url: URL;
  token?: string;
  /** Where `token` came from; re-read before each connection so a rotated secret is picked up. */
  tokenFile?: string;
  concurrency: number;
  allow: Allowlist;
  maxResponseBytes: number;
  drainTimeoutMs: number;
  /** Present when the health server is on. */
  health?: { port: number; host: string };
}

/**
 * Reads the token file: the whole content, trimmed (editors and `echo` add a newline).
 * Throws {@link AgentOptionsError} when it cannot be read or holds no single-line token.
 */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new AgentOptionsError(`--token-file ${path}: cannot read it (${code})`, { cause: error });
  }
  const token = text.trim();
  if (!token) throw new AgentOptionsError(`--token-file ${path}: the file is empty`);
  if (/[\r\n]/.test(token)) throw new AgentOptionsError(`--token-file ${path}: the token must be a single line`);
  return token;
}

/** Validates `options`; throws {@link AgentOptionsError} with a one-line reason. */
export function resolveAgentConfig(options: AgentOptions): AgentConfig {
  const parsed = agentOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path[0];
    // Name the option as the user typed it: maxResponseBytes → --max-response-bytes.
    const option = typeof field === 'string' ? `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : null;
    throw new AgentOptionsError(option && issue ? `${option}: ${issue.message}` : describeIssue(parsed.error));
  }
  const o = parsed.data;
  if (o.token !== undefined && o.tokenFile !== undefined) throw new AgentOptionsError('give --token or --token-file, not both');
  const token = o.tokenFile !== undefined ? readTokenFile(o.tokenFile) : o.token;
  let url: URL;
  let allow: Allowlist;
  try {
    url = connectUrl(o.server, o);
    allow = parseAllowlist(o.allowHost);
  } catch (error) {
    if (error instanceof TypeError || error instanceof InvalidAllowHostError) throw new AgentOptionsError(error.message, { cause: error });
    throw error;
  }
  return {
    url,
    ...(token !== undefined ? { token } : {}),
    ...(o.tokenFile !== undefined ? { tokenFile: o.tokenFile } : {}),
    concurrency: o.concurrency,
    allow,
    maxResponseBytes: o.maxResponseBytes,
    drainTimeoutMs: o.drainTimeoutMs,
    ...(o.healthPort !== undefined ? { health: { port: o.healthPort, host: o.healthHost ?? DEFAULT_HEALTH_HOST } } : {}),
  };
}
