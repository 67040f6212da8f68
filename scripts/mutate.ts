/**
 * Mutation run: proves the tests can tell. Copies the repository (without node_modules,
 * which is symlinked, and .git) to a scratch directory once; then for each mutation of
 * scripts/mutations.ts writes the mutated file there, runs the mutation's test files
 * with a bound, and puts the file back. A failing run means "caught" — but only when
 * each of those files passes on the unmutated copy (its baseline, run once per file and
 * name pattern when first needed): a file that fails anyway proves nothing, and the
 * mutation is reported "baseline failing: FILE" instead.
 *
 *   npm run mutate                 every mutation; last line "N caught, M survived"
 *   npm run mutate -- NAME [NAME]  only these
 *   npm run mutate -- --list       names, files and tests; checks every search text, runs nothing
 *   npm run mutate -- --verbose …  also prints each run's TAP diagnostics and failures
 *
 * Exit code 1 when a mutation survived or was not proven (baseline failing), or when a
 * search text is not found exactly once (a stale mutation, named on stderr); 2 on bad arguments.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MUTATIONS, type Mutation } from './mutations.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_TIMEOUT_MS = 90_000;
/** Per test, unless the mutation says otherwise: a hang names its test well before the mutation's bound. */
const TEST_TIMEOUT_MS = 30_000;

/** The test run in progress (its process group) and the scratch directory: removed on Ctrl-C as at the end. */
const running: { pid: number | null; dir: string | null } = { pid: null, dir: null };

function cleanUpAndExit(code: number): never {
  if (running.pid !== null) {
    try {
      process.kill(-running.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (running.dir) rmSync(running.dir, { recursive: true, force: true });
  process.exit(code);
}

type Verdict = ({ kind: 'caught'; by: string } | { kind: 'survived' } | { kind: 'timed out' }) & { ms: number; tap: string };

function occurrences(text: string, search: string): number {
  let n = 0;
  for (let i = text.indexOf(search); i >= 0; i = text.indexOf(search, i + 1)) n += 1;
  return n;
}

type Edit = { file: string; search: string; replace: string };

/** Every edit of a mutation, the first one and its `also`s. */
function editsOf(m: Mutation): Edit[] {
  return [{ file: m.file, search: m.search, replace: m.replace }, ...(m.also ?? []).map((e) => ({ file: e.file ?? m.file, search: e.search, replace: e.replace }))];
}

/** Why the mutation cannot be applied to `root`, or null. */
function staleness(root: string, m: Mutation): string | null {
  for (const e of editsOf(m)) {
    let text: string;
    try {
      text = readFileSync(join(root, e.file), 'utf8');
    } catch {
      return `${e.file} does not exist`;
    }
    const n = occurrences(text, e.search);
    if (n === 0) return `search text not found in ${e.file}: ${JSON.stringify(e.search)}`;
    if (n > 1) return `search text found ${n} times in ${e.file} (must be once): ${JSON.stringify(e.search)}`;
  }
  for (const file of m.tests) {
    try {
      readFileSync(join(root, file));
    } catch {
      return `test file ${file} does not exist`;
    }
  }
  return null;
}

/** Copies the tree to a scratch directory: sources only, node_modules linked. */
function scratchCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'flowtest-mutate-'));
  cpSync(ROOT, dir, {
    recursive: true,
    filter: (src) => {
      const rel = relative(ROOT, src);
      const top = rel.split('/')[0];
      return top !== 'node_modules' && top !== '.git';
    },
  });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

/** Runs the test files in `cwd` (only tests matching `names`, when given); the process group is killed at `timeoutMs`. */
function runTests(cwd: string, files: string[], timeoutMs: number, testTimeoutMs: number, names?: string): Promise<Verdict> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      // --test-force-exit: a mutation that leaks a timer must not hold the run until the timer fires.
      ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-force-exit', `--test-timeout=${testTimeoutMs}`, '--test-reporter=tap', ...(names ? [`--test-name-pattern=${names}`] : []), ...files],
      // CI set: browser tests fail rather than skip, as in CI.
      { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, CI: process.env.CI ?? '1' } },
    );
    running.pid = child.pid ?? null;
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', () => {}); // drained, not kept
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      running.pid = null;
      // Processes a cut test left behind (its after-hooks did not run) share the group: end them too.
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // none left
      }
      const ms = performance.now() - started;
      if (timedOut) return resolve({ kind: 'timed out', ms, tap: out });
      if (code === 0) return resolve({ kind: 'survived', ms, tap: out });
      resolve({ kind: 'caught', by: firstFailure(out) ?? `exit code ${code}`, ms, tap: out });
    });
  });
}

/**
 * The first failing test of a TAP report, quoted, with "(timed out)" when the runner cut
 * it, or the file when no test failed by name: a mutation should be caught by a test
 * that names the broken promise, not by a file that ran too long.
 */
function firstFailure(tap: string): string | null {
  const lines = tap.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*not ok \d+ - (.*)$/.exec(lines[i]);
    if (!m) continue;
    const name = m[1].trim();
    if (name.endsWith('.test.ts')) continue; // a file's own line; its failing test, if any, is named elsewhere
    const at = lines.slice(i + 1, i + 12).findIndex((l) => /^\s*error:/.test(l));
    let error = at < 0 ? '' : lines[i + 1 + at].replace(/^\s*error:\s*/, '');
    // A multi-line error ('|-') continues on the next line.
    if (/^[|>]-?$/.test(error)) error = (lines[i + 2 + at] ?? '').trim();
    error = error.replace(/^'|'$/g, '');
    if (/test timed out/.test(error)) return `"${name}" (timed out)`;
    return `"${name}"${error ? `: ${error.length > 200 ? `${error.slice(0, 197)}...` : error}` : ''}`;
  }
  const file = /^\s*not ok \d+ - (.*\.test\.ts)$/m.exec(tap);
  return file ? `the file ${file[1].trim()} (no test named)` : null;
}

/** Tests that passed in a TAP report (its `# pass N` summary). */
function passedCount(tap: string): number {
  const m = /^# pass (\d+)$/m.exec(tap);
  return m ? Number(m[1]) : 0;
}

/**
 * Baselines: whether each test file (with a name pattern) passes on the unmutated copy,
 * run once when a mutation listing it is first caught. A file whose pattern selects no
 * test fails its baseline too: a mutation it "catches" would prove nothing.
 */
class Baselines {
  readonly #known = new Map<string, string | null>();
  constructor(readonly dir: string) {}

  /** Why `file` cannot vouch for a catch (a failure or no test run), or null when it passes unmutated. */
  async problem(m: Mutation, file: string): Promise<string | null> {
    const key = `${file}\0${m.names ?? ''}`;
    if (!this.#known.has(key)) {
      const v = await runTests(this.dir, [file], m.timeoutMs ?? DEFAULT_TIMEOUT_MS, m.testTimeoutMs ?? TEST_TIMEOUT_MS, m.names);
      const secs = `${(v.ms / 1000).toFixed(1)} s`;
      let problem: string | null = null;
      if (v.kind === 'timed out') problem = `timed out unmutated (${secs})`;
      else if (v.kind === 'caught') problem = `fails unmutated (${secs}) at ${v.by}`;
      else if (passedCount(v.tap) === 0) problem = `runs no test${m.names ? ` matching ${JSON.stringify(m.names)}` : ''}`;
      this.#known.set(key, problem);
      process.stdout.write(`baseline ${file}${m.names ? ` /${m.names}/` : ''} (${secs}): ${problem ?? 'passes'}\n`);
    }
    return this.#known.get(key)!;
  }
}

function parseArgs(argv: string[]): { list: boolean; verbose: boolean; names: string[] } {
  const list = argv.includes('--list');
  const verbose = argv.includes('--verbose');
  const names = argv.filter((a) => a !== '--list' && a !== '--verbose');
  for (const n of names) {
    if (n.startsWith('-') || !MUTATIONS.some((m) => m.name === n)) {
      process.stderr.write(`unknown mutation or option: ${n}\nknown: ${MUTATIONS.map((m) => m.name).join(', ')}\n`);
      process.exit(2);
    }
  }
  return { list, verbose, names };
}

async function main(): Promise<void> {
  const names = new Set(MUTATIONS.map((m) => m.name));
  if (names.size !== MUTATIONS.length) throw new Error('mutation names must be unique');
  const args = parseArgs(process.argv.slice(2));
  const chosen = args.names.length > 0 ? MUTATIONS.filter((m) => args.names.includes(m.name)) : MUTATIONS;

  let stale = 0;
  for (const m of chosen) {
    const why = staleness(ROOT, m);
    if (why) {
      stale += 1;
      process.stderr.write(`stale    ${m.name}: ${why}\n`);
    }
  }
  if (args.list) {
    for (const m of chosen) process.stdout.write(`${m.name}\n  ${m.promise}\n  ${m.file} → ${m.tests.join(' ')}${m.names ? ` /${m.names}/` : ''}\n`);
    process.stdout.write(`${chosen.length} mutations, ${stale} stale\n`);
    process.exit(stale > 0 ? 1 : 0);
  }

  const dir = scratchCopy();
  running.dir = dir;
  process.once('SIGINT', () => cleanUpAndExit(130));
  process.once('SIGTERM', () => cleanUpAndExit(143));
  let caught = 0;
  let survived = 0;
  let unproven = 0;
  const baselines = new Baselines(dir);
  const started = performance.now();
  try {
    for (const m of chosen) {
      if (staleness(dir, m)) continue; // reported above
      // Originals by path, restored after the run (several edits may touch one file).
      const originals = new Map<string, string>();
      for (const e of editsOf(m)) {
        const path = join(dir, e.file);
        const text = readFileSync(path, 'utf8');
        if (!originals.has(path)) originals.set(path, text);
        writeFileSync(path, text.replace(e.search, () => e.replace));
      }
      let v: Verdict;
      try {
        v = await runTests(dir, m.tests, m.timeoutMs ?? DEFAULT_TIMEOUT_MS, m.testTimeoutMs ?? TEST_TIMEOUT_MS, m.names);
      } finally {
        for (const [path, text] of originals) writeFileSync(path, text);
      }
      const secs = `${(v.ms / 1000).toFixed(1)} s`;
      // A catch counts only when every listed file passes unmutated (now restored).
      let failing: string | null = null;
      if (v.kind !== 'survived') {
        for (const file of m.tests) {
          const problem = await baselines.problem(m, file);
          if (problem) {
            failing = `${file}: ${problem}`;
            break;
          }
        }
      }
      if (v.kind === 'survived') {
        survived += 1;
        process.stdout.write(`survived ${m.name} (${secs}): ${m.promise}\n`);
      } else if (failing) {
        unproven += 1;
        process.stdout.write(`unproven ${m.name} (${secs}): baseline failing: ${failing}\n`);
      } else {
        caught += 1;
        const how = v.kind === 'caught' ? `by ${v.by}` : 'only by the bound: no test named it';
        process.stdout.write(`caught   ${m.name} (${secs}) ${how}\n`);
      }
      // --verbose: the test run's diagnostics and failures, to see why it failed.
      if (args.verbose) for (const line of v.tap.split('\n')) if (/^\s*(# |not ok|\s*error:)/.test(line)) process.stdout.write(`    ${line.trim()}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (stale > 0) process.stderr.write(`${stale} stale mutation(s): re-target their search text in scripts/mutations.ts\n`);
  process.stdout.write(`run took ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  process.stdout.write(`${caught} caught, ${survived} survived${unproven > 0 ? `, ${unproven} unproven (baseline failing)` : ''}\n`);
  process.exit(survived > 0 || unproven > 0 || stale > 0 ? 1 : 0);
}

await main();
