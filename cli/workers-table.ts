/** The `flowtest workers` table: pure formatting of a worker list. */
import type { WorkerInfo } from '../shared/protocol.ts';

/** `1.234` → `1.2ms`, `37.6` → `38ms`, null → `-`. */
export function formatRtt(rttMs: number | null): string {
  if (rttMs === null) return '-';
  return rttMs < 10 ? `${rttMs.toFixed(1)}ms` : `${Math.round(rttMs)}ms`;
}

/** Age of an ISO time relative to `nowMs`: `850ms ago`, `12s ago`, `3m05s ago`, `2h10m ago`. */
export function formatAge(iso: string | null, nowMs: number): string {
  if (iso === null) return 'never';
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return iso;
  const ms = Math.max(0, nowMs - then);
  if (ms < 1000) return `${ms}ms ago`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s ago`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m ago`;
}

/**
 * One row per worker, sorted by suite, pool, id; columns padded with spaces. A NODE
 * column appears when the listing comes from a cluster.
 */
export function formatWorkerTable(workers: readonly WorkerInfo[], nowMs: number): string {
  const clustered = workers.some((w) => w.node !== undefined);
  const header = ['ID', 'SUITE', 'NAME', 'STATE', 'IN FLIGHT', 'RTT', 'LAST PONG', 'ADDRESS', ...(clustered ? ['NODE'] : [])];
  const sorted = [...workers].sort(
    (a, b) => a.suite.localeCompare(b.suite) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id),
  );
  const rows = sorted.map((w) => [
    w.id,
    w.suite,
    w.name,
    w.state,
    `${w.inFlight}/${w.concurrency}`,
    formatRtt(w.rttMs),
    formatAge(w.lastPongAt, nowMs),
    w.remoteAddress ?? '-',
    ...(clustered ? [w.node ?? '-'] : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return `${[header, ...rows].map(line).join('\n')}\n`;
}
