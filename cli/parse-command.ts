/**
 * argv + environment → a typed command, or a one-line usage error. Pure: no I/O, no
 * process globals; the entry (flowtest.ts) passes `process.argv.slice(2)` and `process.env`.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { describeIssue } from '../shared/codec.ts';
import { DEFAULTS, LOG_LEVELS, NAME_PATTERN, type LogLevel } from '../shared/limits.ts';
import { dispatchRequestSchema, type DispatchRequest, type Headers } from '../shared/protocol.ts';
import { parseServerConfig, type ServerConfig } from '../server/config.ts';
import { AgentOptionsError, resolveAgentConfig, type AgentOptions } from '../worker-agent/options.ts';
import { COMMANDS, envName, fieldName, type CommandName, type CommandSpec, type OptionSpec } from './option-table.ts';
import { commandUsage, topUsage } from './usage.ts';

export type Env = Readonly<Record<string, string | undefined>>;

export type Command =
  | { kind: 'help'; text: string }
  | { kind: 'version' }
  | { kind: 'server'; options: ServerConfig; warnings: string[] }
  | { kind: 'agent'; options: AgentOptions; warnings: string[] }
  | {
      kind: 'dispatch';
      server: string;
      token?: string;
      suite: string;
      body: DispatchRequest;
      /** `--data @FILE` / `--data @-`: the request body is read from this file, or stdin for `-`, at run time. */
      dataFrom?: string;
      include: boolean;
      warnings: string[];
    }
  | { kind: 'workers'; server: string; token?: string; suite?: string; warnings: string[] };

/** `message` is the whole line for stderr, e.g. `flowtest agent: missing --suite (or FLOWTEST_SUITE)`. */
export type ParseResult = { ok: true; command: Command } | { ok: false; message: string };

/** Exit status for a usage error. */
export const USAGE_EXIT = 2;

class UsageError extends Error {}

type Value = string | number | boolean | string[];

/** Option values after flags, variables and type checks, keyed by kebab-case name. */
class OptionValues {
  constructor(
    private readonly values: Map<string, Value>,
    /** How the user gave each value: `--port` or `FLOWTEST_PORT`, for messages. */
    private readonly sources: Map<string, string>,
    readonly positionals: string[],
  ) {}

  string(name: string): string | undefined {
    const v = this.values.get(name);
    return typeof v === 'string' ? v : undefined;
  }
  integer(name: string): number | undefined {
    const v = this.values.get(name);
    return typeof v === 'number' ? v : undefined;
  }
  boolean(name: string): boolean {
    return this.values.get(name) === true;
  }
  list(name: string): string[] {
    const v = this.values.get(name);
    return Array.isArray(v) ? v : [];
  }
  source(name: string): string {
    return this.sources.get(name) ?? `--${name}`;
  }
  /** Fields by camelCase name, for config schemas. */
  fields(): Record<string, Value> {
    return Object.fromEntries([...this.values].map(([k, v]) => [fieldName(k), v]));
  }
}

/**
 * Parses a whole command line (without `node` and the script).
 * `--help` anywhere among the options wins over every other problem.
 */
export function parseCommand(argv: readonly string[], env: Env): ParseResult {
  const [first, ...rest] = argv;
  if (first === undefined) {
    return { ok: false, message: 'flowtest: missing command (server, agent, dispatch or workers); see flowtest --help' };
  }
  if (first === '--help' || first === '-h') return ok({ kind: 'help', text: topUsage() });
  if (first === '--version') return ok({ kind: 'version' });
  if (first === 'help') {
    const topic = rest[0];
    if (topic !== undefined && isCommandName(topic)) return ok({ kind: 'help', text: commandUsage(COMMANDS[topic]) });
    return ok({ kind: 'help', text: topUsage() });
  }
  if (!isCommandName(first)) {
    const what = first.startsWith('-') ? `unknown option ${first}` : `unknown command "${first}"`;
    return { ok: false, message: `flowtest: ${what}; see flowtest --help` };
  }
  const spec = COMMANDS[first];
  try {
    const values = readOptions(spec, rest, env);
    if (values === 'help') return ok({ kind: 'help', text: commandUsage(spec) });
    return ok(BUILDERS[first](values));
  } catch (err) {
    if (err instanceof UsageError) return { ok: false, message: `flowtest ${first}: ${err.message}` };
    throw err;
  }
}

function ok(command: Command): ParseResult {
  return { ok: true, command };
}

function isCommandName(s: string): s is CommandName {
  return Object.hasOwn(COMMANDS, s);
}

// ---- generic part: flags, variables, types ----

function readOptions(spec: CommandSpec, args: readonly string[], env: Env): OptionValues | 'help' {
  const byName = new Map(spec.options.map((o) => [o.name, o]));
  const parseOptions: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const o of spec.options) {
    parseOptions[o.name] = { type: o.kind === 'boolean' ? 'boolean' : 'string', ...(o.short ? { short: o.short } : {}) };
  }
  // Not strict: unknown options come back as tokens, so the reason can be ours and short.
  const { tokens } = parseArgs({ args: [...args], options: parseOptions, strict: false, allowPositionals: true, tokens: true });
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) return 'help';

  const raw = new Map<string, string | boolean | string[]>();
  const sources = new Map<string, string>();
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') {
      positionals.push(t.value);
      continue;
    }
    if (t.kind !== 'option') continue;
    const o = byName.get(t.name);
    if (!o) throw new UsageError(`unknown option ${t.rawName}`);
    let value: string | boolean;
    if (o.kind === 'boolean') {
      if (t.value !== undefined) throw new UsageError(`${t.rawName} takes no value`);
      value = true;
    } else {
      if (t.value === undefined) throw new UsageError(`${t.rawName} needs a value`);
      value = t.value;
    }
    sources.set(o.name, `--${o.name}`);
    if (o.multiple) raw.set(o.name, [...((raw.get(o.name) as string[] | undefined) ?? []), value as string]);
    else raw.set(o.name, value);
  }

  const expected = spec.positionals ?? [];
  if (positionals.length > expected.length) {
    throw new UsageError(`unexpected argument "${positionals[expected.length]}"`);
  }
  if (positionals.length < expected.length) {
    throw new UsageError(`missing ${expected.slice(positionals.length).join(' ')}`);
  }

  const values = new Map<string, Value>();
  for (const o of spec.options) {
    let value = raw.get(o.name);
    if (value === undefined) {
      const variable = envName(o.name);
      const text = env[variable];
      // An empty variable counts as unset (`FLOWTEST_TOKEN= flowtest …` clears it).
      if (text !== undefined && text !== '') {
        sources.set(o.name, variable);
        value = o.multiple ? (o.splitEnv ?? splitComma)(text) : o.kind === 'boolean' ? envBoolean(variable, text) : text;
      }
    }
    if (value === undefined) {
      if (o.required) throw new UsageError(`missing --${o.name} (or ${envName(o.name)})`);
      continue;
    }
    values.set(o.name, checkValue(o, sources.get(o.name) ?? `--${o.name}`, value));
  }
  return new OptionValues(values, sources, positionals);
}

function splitComma(text: string): string[] {
  return text.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function envBoolean(variable: string, text: string): boolean {
  if (/^(1|true|yes|on)$/i.test(text)) return true;
  if (/^(0|false|no|off)$/i.test(text)) return false;
  throw new UsageError(`${variable} must be true or false, got "${text}"`);
}

function checkValue(o: OptionSpec, source: string, value: string | boolean | string[]): Value {
  if (typeof value === 'boolean' || Array.isArray(value)) return value;
  const shown = o.secret ? '' : `, got "${value}"`;
  if (o.kind === 'integer') {
    const n = /^[+-]?\d+$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n)) throw new UsageError(`${source} must be an integer${shown}`);
    if (o.min !== undefined && n < o.min) throw new UsageError(`${source} must be at least ${o.min}${shown}`);
    if (o.max !== undefined && n > o.max) throw new UsageError(`${source} must be at most ${o.max}${shown}`);
    return n;
  }
  if (o.isName && !NAME_PATTERN.test(value)) {
    throw new UsageError(`${source} must match ${NAME_PATTERN.source}${shown}`);
  }
  if (value === '') throw new UsageError(`${source} must not be empty`);
  return value;
}

/** Token given on argv: allowed, but it shows in `ps` and shell history. */
function tokenWarnings(values: OptionValues): string[] {
  return values.source('token') === '--token' && values.string('token') !== undefined
    ? ['warning: --token on the command line is visible to other users; prefer FLOWTEST_TOKEN']
    : [];
}

/**
 * Maps the server URL's scheme to the one a command speaks, so that one FLOWTEST_SERVER
 * serves agents (ws) and clients (http). The rest of the URL is kept as written.
 */
function serverUrl(values: OptionValues, want: 'ws' | 'http'): string {
  const text = values.string('server') as string;
  const source = values.source('server');
  if (!URL.canParse(text)) throw new UsageError(`${source} is not a URL: "${text}"`);
  const scheme = new URL(text).protocol;
  const secure = scheme === 'https:' || scheme === 'wss:';
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(scheme)) {
    throw new UsageError(`${source} must be a ${want}:// or ${want}s:// URL, got "${text}"`);
  }
  return `${want}${secure ? 's' : ''}${text.slice(text.indexOf(':'))}`;
}

// ---- per command ----

const BUILDERS: Record<CommandName, (values: OptionValues) => Command> = {
  server(values) {
    try {
      return { kind: 'server', options: parseServerConfig(values.fields()), warnings: [] };
    } catch (err) {
      if (!(err instanceof z.ZodError)) throw err;
      const issue = err.issues[0];
      const field = issue?.path[0];
      const option = COMMANDS.server.options.find((o) => fieldName(o.name) === field);
      throw new UsageError(option ? `${values.source(option.name)}: ${issue?.message}` : describeIssue(err));
    }
  },

  agent(values) {
    const token = values.string('token');
    const options: AgentOptions = {
      server: serverUrl(values, 'ws'),
      suite: values.string('suite') as string,
      name: values.string('name') as string,
      ...(token !== undefined ? { token } : {}),
      concurrency: values.integer('concurrency') ?? DEFAULTS.agentConcurrency,
      allowHost: values.list('allow-host'),
      maxResponseBytes: values.integer('max-response-bytes') ?? DEFAULTS.maxResponseBytes,
      drainTimeoutMs: values.integer('drain-timeout-ms') ?? DEFAULTS.drainTimeoutMs,
      ...(values.string('log-level') !== undefined ? { logLevel: values.string('log-level') as LogLevel } : {}),
      ...(values.string('token-file') !== undefined ? { tokenFile: values.string('token-file') as string } : {}),
      ...(values.integer('health-port') !== undefined ? { healthPort: values.integer('health-port') as number } : {}),
      ...(values.string('health-host') !== undefined ? { healthHost: values.string('health-host') as string } : {}),
    };
    try {
      // The agent's own checks (allow-host patterns, server URL) also count as bad options.
      resolveAgentConfig(options);
    } catch (err) {
      if (err instanceof AgentOptionsError) throw new UsageError(err.message);
      throw err;
    }
    return { kind: 'agent', options, warnings: tokenWarnings(values) };
  },

  dispatch(values) {
    const [method, url] = values.positionals as [string, string];
    const headers = parseHeaders(values.list('header'), values.source('header'));
    const data = values.string('data');
    // As curl spells it: `@FILE` reads the body from a file, `@-` from stdin (read by runCommand).
    const dataFrom = data?.startsWith('@') ? data.slice(1) : undefined;
    if (dataFrom === '') throw new UsageError(`${values.source('data')} @: name a file, or - for stdin`);
    const timeoutMs = values.integer('timeout-ms');
    const candidate = {
      pool: values.string('pool'),
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      request: {
        method: normalizeMethod(method),
        url,
        ...(headers ? { headers } : {}),
        ...(data !== undefined && dataFrom === undefined ? { body: data, bodyEncoding: 'utf8' } : {}),
      },
    };
    const parsed = dispatchRequestSchema.safeParse(candidate);
    if (!parsed.success) throw new UsageError(describeDispatchIssue(parsed.error, values));
    const token = values.string('token');
    return {
      kind: 'dispatch',
      server: serverUrl(values, 'http'),
      ...(token !== undefined ? { token } : {}),
      suite: values.string('suite') as string,
      body: parsed.data,
      ...(dataFrom !== undefined ? { dataFrom } : {}),
      include: values.boolean('include'),
      warnings: tokenWarnings(values),
    };
  },

  workers(values) {
    const token = values.string('token');
    const suite = values.string('suite');
    return {
      kind: 'workers',
      server: serverUrl(values, 'http'),
      ...(token !== undefined ? { token } : {}),
      ...(suite !== undefined ? { suite } : {}),
      warnings: tokenWarnings(values),
    };
  },
};

const STANDARD_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT'];

/** `get` → `GET` for the standard methods; any other token is sent as written. */
function normalizeMethod(method: string): string {
  const upper = method.toUpperCase();
  return STANDARD_METHODS.includes(upper) ? upper : method;
}

/**
 * `-H 'Name: value'` lines → a header map. Names repeated in any case collect into a
 * string[] under the first spelling, in the order given.
 */
export function parseHeaders(lines: readonly string[], source: string): Headers | undefined {
  if (lines.length === 0) return undefined;
  const headers: Headers = {};
  const keyOf = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = colon < 0 ? '' : line.slice(0, colon).trim();
    if (name === '') throw new UsageError(`${source === '--header' ? '-H' : source} expects 'Name: value'`);
    const value = line.slice(colon + 1).trim();
    const key = keyOf.get(name.toLowerCase());
    if (key === undefined) {
      keyOf.set(name.toLowerCase(), name);
      headers[name] = value;
    } else {
      const prev = headers[key] as string | string[];
      headers[key] = Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
  }
  return headers;
}

/** Names the argument a dispatch-body issue came from, as the user typed it. */
function describeDispatchIssue(error: z.ZodError, values: OptionValues): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid request';
  const [top, field, key] = issue.path.map(String);
  let where: string;
  if (top === 'pool') where = values.source('pool');
  else if (top === 'timeoutMs') where = values.source('timeout-ms');
  else if (field === 'method') where = 'METHOD';
  else if (field === 'url') where = 'URL';
  else if (field === 'headers') where = `${values.source('header') === '--header' ? '-H' : values.source('header')}${key ? ` ${key}` : ''}`;
  else if (field === 'body') where = values.source('data');
  else return describeIssue(error);
  return `${where}: ${issue.message}`;
}
