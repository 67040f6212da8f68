/**
 * The package version from package.json, with no dependency: `flowtest --version` loads
 * only this module, so it answers in node's own start-up time.
 */
import { readFileSync } from 'node:fs';

// From the sources (shared/) the package root is one level up; from the build (dist/shared/), two.
const CANDIDATES = ['../package.json', '../../package.json'];
const PACKAGE_NAME = 'flowtest-dispatcher';

/** `version` of this package's package.json; `0.0.0` when it cannot be read (informational only). */
export function packageVersion(): string {
  for (const candidate of CANDIDATES) {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8'));
    } catch {
      continue; // not there (or not JSON): try the next place
    }
    // Checked by hand rather than with zod: loading zod alone costs ~100 ms of start-up.
    if (typeof data !== 'object' || data === null) continue;
    const { name, version } = data as Record<string, unknown>;
    if (name === PACKAGE_NAME && typeof version === 'string' && version.length > 0) return version;
  }
  return '0.0.0';
}
