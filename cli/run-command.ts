/**
 * Performs a parsed command. Streams, the clock and the abort signal are passed in,
 * so dispatch and workers are tested in-process against a fake server.
 */
import { isUtf8 } from 'node:buffer';
import { readFile } from 'node:fs/promises';
import { STATUS_CODES } from 'node:http';
import { dispatch, DispatchError, listWorkers } from '../client/client.ts';
import type { DispatchRequest, HttpResponse } from '../shared/protocol.ts';
import { USAGE_EXIT, type Command } from './parse-command.ts';
import { AGENT_VERSION } from '../worker-agent/version.ts';
import { formatWorkerTable } from './workers-table.ts';

export interface Output {
  write(chunk: string | Uint8Array): unknown;
}

export interface CliIo {
  stdout: Output;
  stderr: Output;
  /** Where `--data @-` reads from (default: process.stdin). */
  stdin?: AsyncIterable<Uint8Array | string>;
  /** Aborts a dispatch or listing (Ctrl-C); the dropped connection cancels the job. */
  signal?: AbortSignal;
  now?: () => number;
}

/** Exit status when a client call was interrupted (128 + SIGINT). */
export const INTERRUPTED_EXIT = 130;

/** Runs `command`, resolving with the process exit status. Unexpected errors are thrown. */
export async function runCommand(command: Command, io: CliIo): Promise<number> {
  if (command.kind === 'help') {
    io.stdout.write(command.text);
    return 0;
  }
  if (command.kind === 'version') {
    // One package, one version: the agent's User-Agent reads the same package.json field.
    io.stdout.write(`${AGENT_VERSION}\n`);
    return 0;
  }
  for (const warning of command.warnings) io.stderr.write(`flowtest ${command.kind}: ${warning}\n`);

  switch (command.kind) {
    case 'server': {
      // Loaded on demand: `flowtest dispatch` should not pay for the server's modules.
      const { runServerMain } = await import('../server/main.ts');
      return runServerMain(command.options);
    }
    case 'agent': {
      const { runAgentMain } = await import('../worker-agent/main.ts');
      return runAgentMain(command.options, { stderr: io.stderr });
    }
    case 'dispatch': {
      let body = command.body;
      if (command.dataFrom !== undefined) {
        const read = await readData(command.dataFrom, io);
        if (typeof read === 'string') {
          io.stderr.write(`flowtest dispatch: --data @${command.dataFrom}: ${read}\n`);
          return USAGE_EXIT;
        }
        body = withBody(body, read);
      }
      return clientCall(io, 'dispatch', async () => {
        const result = await dispatch({ ...command, body, signal: io.signal });
        if (command.include) io.stdout.write(formatHead(result.response));
        io.stdout.write(decodeBody(result.response));
      });
    }
    case 'workers':
      return clientCall(io, 'workers', async () => {
        const workers = await listWorkers({ ...command, signal: io.signal });
        io.stdout.write(formatWorkerTable(workers, (io.now ?? Date.now)()));
      });
  }
}

/** The bytes of `--data @FILE` or `@-`, or why they could not be read. */
async function readData(from: string, io: CliIo): Promise<Buffer | string> {
  try {
    if (from !== '-') return await readFile(from);
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdin ?? process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk));
    return Buffer.concat(chunks);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return `cannot read (${code ?? (err as Error).message})`;
  }
}

/** The dispatch with `bytes` as its request body: UTF-8 text as it is, anything else as base64. */
function withBody(body: DispatchRequest, bytes: Buffer): DispatchRequest {
  const encoded = isUtf8(bytes) ? { body: bytes.toString('utf8'), bodyEncoding: 'utf8' as const } : { body: bytes.toString('base64'), bodyEncoding: 'base64' as const };
  return { ...body, request: { ...body.request, ...encoded } };
}

async function clientCall(io: CliIo, name: string, call: () => Promise<void>): Promise<number> {
  try {
    await call();
    return 0;
  } catch (err) {
    if (io.signal?.aborted) {
      io.stderr.write(`flowtest ${name}: interrupted\n`);
      return INTERRUPTED_EXIT;
    }
    if (err instanceof DispatchError) {
      io.stderr.write(`${err.code}: ${oneLine(err.message)}\n`);
      return 1;
    }
    throw err;
  }
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

/** The body as the target sent it: text as UTF-8, base64 as the raw bytes. */
export function decodeBody(response: HttpResponse): Uint8Array | string {
  return response.bodyEncoding === 'base64' ? Buffer.from(response.body, 'base64') : response.body;
}

/** `HTTP/1.1 200 OK` and the header lines, like `curl -i`. */
export function formatHead(response: HttpResponse): string {
  const lines = [`HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ''}`.trimEnd()];
  for (const [name, value] of Object.entries(response.headers)) {
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}
