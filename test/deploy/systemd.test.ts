/**
 * deploy/systemd units: they start node itself (never npx/npm, which would not pass SIGTERM
 * on), stop with SIGTERM and a timeout above the drain grace, and do not restart on exit 2
 * or 3. `systemd-analyze verify` checks their syntax where it is installed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DEFAULTS } from '../../shared/limits.ts';
import { ROOT } from '../helpers/processes.ts';

const DIR = join(ROOT, 'deploy', 'systemd');
const UNITS = { server: 'flowtest-server.service', agent: 'flowtest-agent.service' } as const;
/** The server's grace is followed by up to 10 s for answers to finish writing (server.ts). */
const RESPONSE_FLUSH_S = 10;

/** `Key=value` lines of a unit's [Service] section (later lines win, as in systemd). */
function service(name: string): Map<string, string> {
  const text = readFileSync(join(DIR, name), 'utf8');
  const section = /^\[Service\]$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(text)?.[1] ?? '';
  const out = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1], m[2]);
  }
  return out;
}

/** The value an `Environment=KEY=value` line of the unit sets. */
function envOf(text: string, key: string): string | undefined {
  return new RegExp(`^Environment=${key}=(\\S+)$`, 'm').exec(text)?.[1];
}

for (const [role, name] of Object.entries(UNITS)) {
  test(`${name}: node runs the bin, SIGTERM stops it, exit 2 and 3 do not restart`, () => {
    const unit = service(name);
    const text = readFileSync(join(DIR, name), 'utf8');
    assert.match(unit.get('ExecStart') ?? '', new RegExp(`^/usr/bin/node /opt/flowtest/bin/flowtest\\.js ${role}$`));
    assert.doesNotMatch(text, /^ExecStart=.*\b(npx|npm)\b/m);
    assert.equal(unit.get('KillSignal'), 'SIGTERM');
    assert.equal(unit.get('KillMode'), 'mixed');
    assert.equal(unit.get('Restart'), 'on-failure');
    assert.deepEqual((unit.get('RestartPreventExitStatus') ?? '').split(/\s+/).sort(), ['2', '3']);
    assert.equal(unit.get('ProtectSystem'), 'strict', 'the app writes nothing: a read-only system works');

    const stopS = Number(unit.get('TimeoutStopSec'));
    if (role === 'server') {
      const graceMs = Number(envOf(text, 'FLOWTEST_SHUTDOWN_GRACE_MS') ?? DEFAULTS.shutdownGraceMs);
      assert.ok(stopS > graceMs / 1000 + RESPONSE_FLUSH_S, `TimeoutStopSec ${stopS} must exceed the grace ${graceMs} ms + ${RESPONSE_FLUSH_S} s`);
    } else {
      const drainMs = Number(envOf(text, 'FLOWTEST_DRAIN_TIMEOUT_MS') ?? DEFAULTS.drainTimeoutMs);
      assert.ok(stopS > drainMs / 1000, `TimeoutStopSec ${stopS} must exceed the drain grace ${drainMs} ms`);
    }
  });
}

test('systemd-analyze verify finds nothing to say', { skip: existsSync('/usr/bin/systemd-analyze') ? false : 'systemd-analyze not installed' }, () => {
  const run = spawnSync('/usr/bin/systemd-analyze', ['verify', ...Object.values(UNITS).map((u) => join(DIR, u))], { encoding: 'utf8', timeout: 30_000 });
  // It exits 0 on unknown keys and bad values too, and reports them on stderr.
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stderr.trim(), '');
});
