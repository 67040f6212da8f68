import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserTestMode, CHROMIUM_PATH } from './chromium.ts';

test('browser tests: skipped without Chromium on a developer machine, failed without it in CI, run with it', () => {
  const nowhere = '/nonexistent/chromium';
  assert.deepEqual(browserTestMode({}, nowhere), { run: false, skip: `${nowhere} is missing (apt-get install -y --no-install-recommends chromium; .ci/run does it)` });
  const ci = browserTestMode({ CI: 'true' }, nowhere);
  assert.ok('fail' in ci && ci.fail.includes('CI is set'), JSON.stringify(ci));
  assert.deepEqual(browserTestMode({ CI: 'true' }, process.execPath), { run: true });
  if (process.env.CI) assert.deepEqual(browserTestMode(), { run: true }, `${CHROMIUM_PATH} must exist in CI`);
});
