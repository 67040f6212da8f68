/** Reading Prometheus text in tests: one sample, or a family summed over its labels. */

/** Samples of `name` (exactly that name) whose labels include `labels`, as [labels, value]. */
export function samples(text: string, name: string, labels: Record<string, string> = {}): [Record<string, string>, number][] {
  const out: [Record<string, string>, number][] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[pair[1]] = pair[2];
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) out.push([got, Number(m[3])]);
  }
  return out;
}

/** The sum of `name` over the samples matching `labels`; NaN when there is none. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  const found = samples(text, name, labels);
  return found.length === 0 ? NaN : found.reduce((sum, [, v]) => sum + v, 0);
}
