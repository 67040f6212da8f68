/** Debian's Chromium driven by playwright-core (never a downloaded browser). */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Why the browser tests cannot run here, or null when they can. */
export function chromiumMissing(path = CHROMIUM_PATH): string | null {
  return existsSync(path) ? null : `${path} is missing (apt-get install -y --no-install-recommends chromium; .ci/run does it)`;
}

/**
 * What a browser test should do here: run; skip with a reason (no Chromium on a
 * developer's machine); or fail with a reason — with `CI` set, a green run must have
 * driven the console, so a missing browser is a failure, never a skip.
 */
export function browserTestMode(env: NodeJS.ProcessEnv = process.env, path = CHROMIUM_PATH): { run: true } | { run: false; skip: string } | { run: false; fail: string } {
  const missing = chromiumMissing(path);
  if (!missing) return { run: true };
  if (env.CI) return { run: false, fail: `${missing}; CI is set, so the browser tests fail instead of skipping` };
  return { run: false, skip: missing };
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
