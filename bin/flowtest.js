#!/usr/bin/env node
// The `flowtest` command. Runs the compiled CLI (dist/, made by `npm run build`, which
// `npm ci`/`npm install` run through `prepare`) with plain node: fast start-up, nothing
// written outside the working directory, and this process is the one that gets signals.
// In a checkout without a build it falls back to the TypeScript sources through tsx
// (a development dependency), saying so on stderr.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/flowtest.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  process.stderr.write('flowtest: no build in dist/ (run `npm run build`); running the TypeScript sources through tsx\n');
  const { register } = await import('tsx/esm/api');
  register();
  await import('../cli/flowtest.ts');
}
