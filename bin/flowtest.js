#!/usr/bin/env node
// The `flowtest` command. Runs the compiled CLI (dist/, made by `npm run build`, which
// `npm ci` and `npm install` run through `prepare`) with plain node: fast start-up, nothing
// written outside the working directory, and this process is the one that gets signals.
//
// In a checkout whose build is missing or older than its sources (edited, pulled), it runs
// the TypeScript sources through tsx instead (a development dependency), and says so on
// stderr: a developer's edits take effect, and nobody runs stale code without being told.
import { existsSync, readdirSync, statSync } from 'node:fs';

const compiled = new URL('../dist/cli/flowtest.js', import.meta.url);
// What tsconfig.build.json compiles, plus the console's static files it copies.
const SOURCE_DIRS = ['shared', 'server', 'worker-agent', 'cli', 'client'];

/** Whether a file under `dir` changed after `time` (ms); about 2 ms for the whole tree. */
function changedSince(dir, time) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = new URL(`${entry.name}${entry.isDirectory() ? '/' : ''}`, dir);
    if (entry.isDirectory() ? changedSince(path, time) : statSync(path).mtimeMs > time) return true;
  }
  return false;
}

function staleness() {
  if (!existsSync(compiled)) return 'no build in dist/';
  const builtAt = statSync(compiled).mtimeMs;
  for (const name of SOURCE_DIRS) {
    const dir = new URL(`../${name}/`, import.meta.url);
    if (existsSync(dir) && changedSince(dir, builtAt)) return `the build in dist/ is older than ${name}/`;
  }
  return null;
}

const stale = staleness();
if (stale === null) {
  await import(compiled.href);
} else {
  process.stderr.write(`flowtest: ${stale} (run \`npm run build\`); running the TypeScript sources through tsx\n`);
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write('flowtest: tsx is not installed either (a development dependency): run `npm ci && npm run build`\n');
    process.exit(1);
  }
  register();
  await import('../cli/flowtest.ts');
}
