// Build step after tsc: the console's static files sit next to the compiled module that
// serves them (dist/server/console/static), as they sit next to the source.
import { cpSync, rmSync } from 'node:fs';

const from = new URL('../server/console/static/', import.meta.url);
const to = new URL('../dist/server/console/static/', import.meta.url);
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
