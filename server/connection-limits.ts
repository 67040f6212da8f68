/**
 * The default of `--max-connections`: the process's open-file limit less a reserve, so
 * that the server refuses a connection itself before the kernel refuses it `accept()`
 * (EMFILE, which Node retries in a busy loop) and log files, the tokens file and
 * outgoing sockets still find a descriptor. Node 20 has no getrlimit; on Linux the soft
 * limit is in /proc/self/limits, elsewhere `ulimit -n` of a shell (the same limit, inherited).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { DEFAULTS } from '../shared/limits.ts';

/** The soft `Max open files` line of /proc/self/limits, or null (unlimited, missing, unreadable). */
export function parseProcLimits(text: string): number | null {
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (!m || !/^\d+$/.test(m[1])) return null;
  return Number(m[1]);
}

/** The soft open-file limit of this process, or null when unlimited or unknown. */
export function openFileLimit(): number | null {
  try {
    return parseProcLimits(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    // not Linux
  }
  try {
    const out = spawnSync('/bin/sh', ['-c', 'ulimit -n'], { encoding: 'utf8', timeout: 2000 });
    const text = out.stdout?.trim() ?? '';
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

/** `--max-connections` when none is given: the limit less the reserve (at least 1), or null for no cap. */
export function defaultMaxConnections(limit: number | null = openFileLimit(), reserve: number = DEFAULTS.connectionsFdReserve): number | null {
  if (limit === null) return null;
  return Math.max(1, limit - reserve);
}
