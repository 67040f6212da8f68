import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CODES } from '../../shared/errors.ts';

test("the README's error table equals the error registry", () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const table = /<!-- error-table:start -->([\s\S]*?)<!-- error-table:end -->/.exec(readme)?.[1] ?? '';
  const rows = [...table.matchAll(/^\| (\d{3}) \| `([a-z_]+)` \| (.+) \|$/gm)].map((m) => [m[2], Number(m[1]), m[3]]);
  const registry = Object.entries(ERROR_CODES).map(([code, { status, summary }]) => [code, status, summary]);
  assert.deepEqual(rows, registry);
});
