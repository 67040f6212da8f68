/**
 * The CLI's options as data: one table per subcommand. Parsing, environment fallback
 * and usage text are all derived from these tables, so an option exists in one place.
 *
 * A kebab-case flag `--max-queue` maps to the config field `maxQueue` and to the
 * environment variable `FLOWTEST_MAX_QUEUE`.
 */
import { BOUNDS, DEFAULTS, LOG_LEVELS } from '../shared/limits.ts';

export type OptionKind = 'string' | 'integer' | 'boolean';

export interface OptionSpec {
  /** Flag name without dashes, kebab-case. */
  name: string;
  kind: OptionKind;
  short?: string;
  /** Repeatable flag; its variable holds a comma-separated list. */
  multiple?: boolean;
  required?: boolean;
  /** Must match the suite/pool name pattern. */
  isName?: boolean;
  /** Bounds checked by the CLI itself (server bounds are checked by its config schema). */
  min?: number;
  max?: number;
  /** A credential: never echoed, and a warning when given on the command line. */
  secret?: boolean;
  /** Placeholder for the value in usage, e.g. `N`, `URL`. */
  arg?: string;
  help: string;
  /** Splits the variable's value into list items; default: on every comma. */
  splitEnv?: (value: string) => string[];
}

export type CommandName = 'server' | 'agent' | 'dispatch' | 'workers';

export interface CommandSpec {
  name: CommandName;
  summary: string;
  synopsis: string;
  /** Names of the positional arguments, all required; none when absent. */
  positionals?: readonly string[];
  options: readonly OptionSpec[];
  /** Extra lines at the end of the usage text. */
  notes?: readonly string[];
}

/** Environment variable of an option: `max-queue` → `FLOWTEST_MAX_QUEUE`. */
export function envName(option: string): string {
  return `FLOWTEST_${option.toUpperCase().replaceAll('-', '_')}`;
}

/** Config field of an option: `max-queue` → `maxQueue`. */
export function fieldName(option: string): string {
  return option.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Splits `FLOWTEST_HEADER` on commas, except commas inside a header value:
 * a piece starts a new header only when it looks like `Name:`.
 */
export function splitHeaderList(value: string): string[] {
  const out: string[] = [];
  for (const piece of value.split(',')) {
    if (piece.trim() === '') continue;
    if (out.length === 0 || /^\s*[!#$%&'*+\-.^_`|~0-9A-Za-z]+\s*:/.test(piece)) out.push(piece.trim());
    else out[out.length - 1] += `,${piece}`;
  }
  return out;
}

const LOG_LEVEL_OPTION: OptionSpec = {
  name: 'log-level',
  kind: 'string',
  arg: 'LEVEL',
  help: `log level: ${LOG_LEVELS.join(', ')} (default info)`,
};

const token: OptionSpec = {
  name: 'token',
  kind: 'string',
  secret: true,
  arg: 'T',
  help: 'bearer token; prefer the variable, argv is visible to other users',
};

export const COMMANDS: Readonly<Record<CommandName, CommandSpec>> = {
  server: {
    name: 'server',
    summary: 'run the dispatcher (HTTP API, worker sockets, console, metrics)',
    synopsis: 'flowtest server [options]',
    options: [
      { name: 'host', kind: 'string', arg: 'HOST', help: `address to listen on (default ${DEFAULTS.host})` },
      { name: 'port', kind: 'integer', arg: 'N', help: `port to listen on; 0 picks a free one (default ${DEFAULTS.port})` },
      { name: 'tokens-file', kind: 'string', arg: 'FILE', help: 'JSON tokens file; without one, dev tokens are made and printed' },
      { name: 'heartbeat-ms', kind: 'integer', arg: 'N', help: `ping interval for worker sockets (default ${DEFAULTS.heartbeatMs})` },
      { name: 'max-payload-bytes', kind: 'integer', arg: 'N', help: `largest dispatch body or frame (default ${DEFAULTS.maxPayloadBytes})` },
      { name: 'default-timeout-ms', kind: 'integer', arg: 'N', help: `job deadline when a dispatch names none (default ${DEFAULTS.defaultTimeoutMs})` },
      { name: 'max-queue', kind: 'integer', arg: 'N', help: `jobs that may wait in one pool's queue (default ${DEFAULTS.maxQueue})` },
      { name: 'shutdown-grace-ms', kind: 'integer', arg: 'N', help: `time jobs in flight get on SIGTERM (default ${DEFAULTS.shutdownGraceMs})` },
      { name: 'console-origin', kind: 'string', multiple: true, arg: 'ORIGIN', help: 'extra browser origin allowed to open the console (repeatable)' },
      { name: 'nats', kind: 'string', arg: 'URL[,URL…]', help: 'join a cluster over NATS: nats:// or tls:// URLs, comma-separated (user:pass@ in the URL)' },
      { name: 'node-id', kind: 'string', arg: 'ID', help: 'this node\'s id in the cluster (default: host name plus a random suffix)' },
      { name: 'max-worker-concurrency', kind: 'integer', arg: 'N', help: `highest concurrency a worker may claim; above it the handshake gets 400 (default ${DEFAULTS.maxWorkerConcurrency})` },
      { name: 'max-connections', kind: 'integer', arg: 'N', help: `open connections at once (default: the open-file limit less ${DEFAULTS.connectionsFdReserve})` },
      { name: 'headers-timeout-ms', kind: 'integer', arg: 'N', help: `time a client gets to send request headers (default ${DEFAULTS.headersTimeoutMs})` },
      { name: 'request-timeout-ms', kind: 'integer', arg: 'N', help: `time a client gets to send a whole request (default ${DEFAULTS.requestTimeoutMs})` },
      { name: 'trust-proxy', kind: 'string', multiple: true, arg: 'CIDR', help: 'proxy address or CIDR whose X-Forwarded-For names the client (repeatable)' },
      { name: 'console-mask-header', kind: 'string', multiple: true, arg: 'NAME', help: 'header the console masks, besides the credential headers (repeatable)' },
      LOG_LEVEL_OPTION,
    ],
    notes: ['SIGHUP re-reads --tokens-file: connected workers stay; those whose token was removed are closed (1008) once their jobs end.'],
  },
  agent: {
    name: 'agent',
    summary: 'connect to a server as a worker and perform its jobs',
    synopsis: 'flowtest agent --server ws://HOST:PORT --suite S --name P [options]',
    options: [
      { name: 'server', kind: 'string', required: true, arg: 'URL', help: 'server address, ws:// or wss:// (http(s):// is mapped)' },
      { name: 'suite', kind: 'string', required: true, isName: true, arg: 'S', help: 'suite this worker serves' },
      { name: 'name', kind: 'string', required: true, isName: true, arg: 'P', help: 'pool name; workers sharing it are replicas' },
      token,
      { name: 'token-file', kind: 'string', arg: 'FILE', help: 'read the token from FILE (trimmed); instead of --token' },
      { name: 'concurrency', kind: 'integer', min: 1, max: BOUNDS.maxConcurrency, arg: 'N', help: `jobs held at once (default ${DEFAULTS.agentConcurrency})` },
      { name: 'allow-host', kind: 'string', multiple: true, arg: 'PATTERN', help: 'allowed target host: name, *.suffix, IP, CIDR or host:port (repeatable)' },
      { name: 'max-response-bytes', kind: 'integer', min: 1, arg: 'N', help: `largest target response read (default ${DEFAULTS.maxResponseBytes})` },
      { name: 'drain-timeout-ms', kind: 'integer', min: 0, arg: 'N', help: `grace for jobs in flight on SIGTERM (default ${DEFAULTS.drainTimeoutMs})` },
      { name: 'health-port', kind: 'integer', min: 0, max: 65_535, arg: 'N', help: 'serve /healthz, /readyz and /metrics on this port (off by default)' },
      { name: 'health-host', kind: 'string', arg: 'HOST', help: 'address of the health server (default 127.0.0.1)' },
      LOG_LEVEL_OPTION,
    ],
    notes: [
      'Loopback, link-local (cloud metadata) and unspecified targets are refused unless an --allow-host pattern names them.',
      'Exit 3 when the server refuses the token (401/403); other losses reconnect with backoff.',
    ],
  },
  dispatch: {
    name: 'dispatch',
    summary: 'send one HTTP request through a pool and print the response',
    synopsis: "flowtest dispatch --server http://HOST:PORT --suite S --pool P [options] METHOD URL [-H 'K: V']... [--data BODY]",
    positionals: ['METHOD', 'URL'],
    options: [
      { name: 'server', kind: 'string', required: true, arg: 'URL', help: 'server address, http:// or https:// (ws(s):// is mapped)' },
      { name: 'suite', kind: 'string', required: true, isName: true, arg: 'S', help: 'suite to dispatch in' },
      { name: 'pool', kind: 'string', required: true, isName: true, arg: 'P', help: 'pool whose workers perform the request' },
      token,
      { name: 'timeout-ms', kind: 'integer', min: 1, max: BOUNDS.maxTimeoutMs, arg: 'N', help: 'job deadline (default: the server\'s)' },
      {
        name: 'header',
        short: 'H',
        kind: 'string',
        multiple: true,
        arg: "'K: V'",
        help: 'request header (repeatable; the same name twice sends both)',
        splitEnv: splitHeaderList,
      },
      { name: 'data', kind: 'string', arg: 'BODY', help: 'request body as UTF-8 text; @FILE reads a file, @- stdin (bytes as they are; not UTF-8: sent as base64)' },
      { name: 'include', short: 'i', kind: 'boolean', help: 'print the status line and headers before the body' },
    ],
    notes: [
      'Prints the target\'s response body (binary bodies as raw bytes); exit 0 for any target status.',
      'A failed dispatch prints "<code>: <message>" on stderr and exits 1. Ctrl-C cancels the job.',
    ],
  },
  workers: {
    name: 'workers',
    summary: 'list connected workers as a table',
    synopsis: 'flowtest workers --server http://HOST:PORT [--suite S] [--token T]',
    options: [
      { name: 'server', kind: 'string', required: true, arg: 'URL', help: 'server address, http:// or https:// (ws(s):// is mapped)' },
      { name: 'suite', kind: 'string', isName: true, arg: 'S', help: 'only this suite (without it: every suite, admin token)' },
      token,
    ],
  },
};
