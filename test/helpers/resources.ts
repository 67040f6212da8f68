/**
 * `process.getActiveResourcesInfo()` as a comparable snapshot: how many of each kind
 * (TCPSocketWrap, Timeout, …). Leak tests take one before a scenario and wait for the
 * same one after it.
 */
import { waitUntil } from './wait.ts';

export type Resources = Record<string, number>;

export function resources(): Resources {
  const out: Resources = {};
  for (const kind of process.getActiveResourcesInfo()) out[kind] = (out[kind] ?? 0) + 1;
  return out;
}

function same(a: Resources, b: Resources): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) if ((a[k] ?? 0) !== (b[k] ?? 0)) return false;
  return true;
}

/** Waits (bounded) until the active resources equal `baseline`; fails naming both. Closing handles takes a tick or two. */
export async function waitForResources(baseline: Resources, timeoutMs = 5000): Promise<void> {
  let now = resources();
  await waitUntil(() => same((now = resources()), baseline), timeoutMs, 'active resources back to the baseline').catch(() => {
    throw new Error(`active resources ${JSON.stringify(now)} differ from the baseline ${JSON.stringify(baseline)}`);
  });
}
