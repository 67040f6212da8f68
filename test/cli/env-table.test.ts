/** The README lists every FLOWTEST_* variable in one table, equal to the CLI's option tables. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { envTable } from '../../cli/usage.ts';
import { ROOT } from '../helpers/processes.ts';

test("the README's FLOWTEST_* table is the option tables' (cli/usage.ts envTable)", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- env-table:start -->\n([\s\S]*?)<!-- env-table:end -->/.exec(readme);
  assert.ok(m, 'README.md has no <!-- env-table:start --> … <!-- env-table:end --> block');
  const expected = envTable();
  assert.equal(m[1], expected, `README's variable table is out of date; put this between the markers:\n${expected}`);
});
