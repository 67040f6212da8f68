/** The package version, read once from package.json: the worker socket's User-Agent and `flowtest --version`. */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { decodeJson } from '../shared/codec.ts';

function readVersion(): string {
  try {
    const text = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
    const decoded = decodeJson(z.object({ version: z.string().min(1) }), text);
    return decoded.ok ? decoded.value.version : '0.0.0';
  } catch {
    // A missing package.json must not stop the agent; the version is informational.
    return '0.0.0';
  }
}

/** `version` from package.json. */
export const AGENT_VERSION: string = readVersion();

/** The User-Agent header of the worker socket handshake. */
export const USER_AGENT = `flowtest-agent/${AGENT_VERSION}`;
