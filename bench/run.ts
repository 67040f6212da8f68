/**
 * `npm run bench`: starts every process it needs on loopback, runs the four
 * measurements, prints their tables and writes them (with the CPU profiles) to a
 * directory it names at the end. Exits non-zero only when the bench or one of its
 * measurements could not run (the others still run);
 * a missed target is a result, not a failure.
 *
 *   npm run bench                          # everything (about 7 minutes)
 *   npm run bench -- dispatch              # one or more of: dispatch scale failure profile cluster (run in that order)
 *   npm run bench -- dispatch profile --quick   # shorter windows (fewer requests), 3 repetitions instead of 5;
 *                                               # scale --quick stops at 10,000 workers
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureCluster } from './cluster.ts';
import { measureDispatch } from './dispatch.ts';
import { measureFailure } from './failure.ts';
import { measureProfile } from './profile.ts';
import { measureScale, openFilesLimit } from './scale.ts';
import { killAll, startChild, startNoiseMeter } from './harness/processes.ts';
import { num } from './harness/stats.ts';

const ALL = ['dispatch', 'scale', 'failure', 'profile', 'cluster'] as const;
type Phase = (typeof ALL)[number];

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const asked = args.filter((a) => a !== '--quick');
const unknown = asked.filter((a) => !(ALL as readonly string[]).includes(a));
if (unknown.length > 0) {
  process.stderr.write(`bench: unknown measurement ${unknown.join(', ')}; choose from ${ALL.join(', ')} (and --quick)\n`);
  process.exit(2);
}
const phases: Phase[] = asked.length > 0 ? ALL.filter((p) => asked.includes(p)) : [...ALL];

// Whatever happens, no process of ours outlives the bench.
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

const outDir = join(tmpdir(), `flowtest-bench-${new Date().toISOString().replace(/[:.]/g, '-')}`);
mkdirSync(outDir, { recursive: true });
const started = Date.now();
const sections: string[] = [
  `flowtest bench${quick ? ' (quick)' : ''} — ${new Date().toISOString()} — node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
];
process.stdout.write(`${sections[0]}\n`);
let noise: () => number = () => 0;
const print = (title: string, text: string) => {
  const others = noise();
  const warning = others > 0.1 ? ' — figures skewed: compare ratios, not absolutes' : '';
  const block = `\n## ${title}\n\n${text}\n\nOther processes on the machine used ${num(others, 2)} cores on average during this measurement${warning}.\n`;
  sections.push(block);
  process.stdout.write(block);
};

/** The dispatch and cluster sections measure the same load, so their tables compare. */
const loadShape = {
  concurrencies: [1, 16, 64],
  // The machine is shared: more repetitions in the full run steady the medians.
  reps: quick ? 3 : 5,
  warmupMs: quick ? 150 : 250,
  windowMs: quick ? 600 : 1500,
  agentConcurrency: 64,
};

try {
  const [target, loadgen] = await Promise.all([startChild('target', 'procs/target.ts'), startChild('load generator', 'procs/load-generator.ts')]);
  try {
    for (const phase of phases) {
      const t0 = Date.now();
      process.stderr.write(`bench: ${phase}…\n`);
      noise = startNoiseMeter();
      try {
        if (phase === 'dispatch') {
          const report = await measureDispatch({ target, loadgen }, loadShape);
          print('1. Dispatch throughput and latency', report.text);
        } else if (phase === 'profile') {
          const report = await measureProfile({ target, loadgen }, { concurrency: 16, warmupMs: quick ? 500 : 1000, windowMs: quick ? 2500 : 5000, outDir });
          print('4. Hot-path profiles (server and agent)', `${report.text}\n\nProfiles: ${report.files.join(', ')}`);
        } else if (phase === 'failure') {
          const report = await measureFailure({ target, loadgen }, { reps: 3, jobsInFlight: 50, heartbeatMs: 1000 });
          print('3. Failure timing', report.text);
        } else if (phase === 'cluster') {
          const report = await measureCluster({ target, loadgen }, { ...loadShape, jobsInFlight: 20 });
          print('5. Cluster: the cross-node hop', report.text);
        } else if (phase === 'scale') {
          // As many workers as fit under the open-files limit, leaving room for the server's own files.
          const top = Math.min(20_000, Math.floor((openFilesLimit() - 500) / 1000) * 1000);
          const report = await measureScale({
            // --quick stops at 10,000: on a loaded machine 19,000 handshakes may not fit the time allowed.
            levels: quick ? [5000, 10_000] : [5000, 10_000, top],
            reps: 3,
            heartbeatMs: 3000,
            defaultHeartbeatMs: 15_000,
            windowMs: 3000,
            workerProcesses: 4,
            parallel: 32,
          });
          print('2. Idle-worker scale', report.text);
        }
      } catch (err) {
        // One measurement that cannot finish (a machine too loaded to open 19,000 sockets in
        // time, …) is reported, and the others still run.
        process.exitCode = 1;
        process.stderr.write(`bench: ${phase} could not run: ${err instanceof Error ? err.stack : String(err)}\n`);
        print(`${phase}: could not run`, `\`${err instanceof Error ? err.message : String(err)}\``);
        await loadgen.call('finish').catch(() => {}); // a load left running by the failed phase
      }
      process.stderr.write(`bench: ${phase} took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    }
  } finally {
    await Promise.all([target.stop(), loadgen.stop()]);
  }
} catch (err) {
  process.stderr.write(`bench: could not run: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
}

const total = `\nTotal ${((Date.now() - started) / 1000).toFixed(0)} s. Results: ${join(outDir, 'results.md')}\n`;
sections.push(total);
writeFileSync(join(outDir, 'results.md'), sections.join('\n'));
process.stdout.write(total);
