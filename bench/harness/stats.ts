/** Percentiles, the median-and-spread summary of repeated runs, and table rendering. */

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Median and range of repeated runs of one measurement. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function summarize(runs: number[]): Summary {
  const sorted = [...runs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], runs };
}

/** Formats a number with a precision that suits its size. */
export function num(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return '–';
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** "median (min–max)". */
export function med(s: Summary, digits?: number, unit = ''): string {
  return `${num(s.median, digits)}${unit} (${num(s.min, digits)}–${num(s.max, digits)})`;
}

/** "1.62× (1.55–1.70)". */
export function ratio(s: Summary): string {
  return `${num(s.median, 2)}× (${num(s.min, 2)}–${num(s.max, 2)})`;
}

/** Per-run ratios a[i] / b[i] of runs that were interleaved, summarized. */
export function pairedRatio(a: Summary, b: Summary): Summary {
  return summarize(a.runs.map((x, i) => x / b.runs[i]));
}

/** A markdown table (it also reads well as plain text in a terminal). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

export function verdict(met: boolean): string {
  return met ? 'met' : 'NOT met';
}
