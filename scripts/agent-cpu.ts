/**
 * CPU per job of a whole worker agent (socket, frame decode, job runner, result encode),
 * measured in this process while a minimal dispatcher (child process) feeds it jobs at a
 * fixed concurrency against a target in another child (55-byte JSON, keep-alive). With
 * `--other ROOT` the agent of another checkout (e.g. `git archive <rev> | tar -x -C ROOT`
 * with node_modules linked) runs the same load, interleaved.
 *
 *   node --import tsx scripts/agent-cpu.ts [--jobs 20000] [--concurrency 16] [--reps 3] [--other ROOT]
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { WebSocketServer } from 'ws';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(SELF, '..', '..');
const role = process.argv[2];

if (role === '--target') {
  const body = JSON.stringify({ ok: true, id: 'item-0001', tags: ['a', 'b'], n: 42 });
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
} else if (role === '--dispatcher') {
  // Feeds the one agent that connects: `go` with {jobs, concurrency, url} starts a run; answers {ms} when every result is in.
  const server = http.createServer();
  const wss = new WebSocketServer({ server, handleProtocols: () => 'flowtest.v1', perMessageDeflate: false });
  wss.on('connection', (ws) => {
    ws.send(JSON.stringify({ type: 'welcome', workerId: 'w', heartbeatMs: 15_000, maxPayloadBytes: 10 * 1024 * 1024 }));
    let run: { jobs: number; url: string; sent: number; done: number; t0: number } | null = null;
    const send = (r: NonNullable<typeof run>): void => {
      ws.send(JSON.stringify({ type: 'job', id: `j${r.sent++}`, timeoutMs: 30_000, request: { method: 'GET', url: r.url, headers: { accept: 'application/json' } } }));
    };
    process.on('message', (m: { jobs: number; concurrency: number; url: string }) => {
      run = { jobs: m.jobs, url: m.url, sent: 0, done: 0, t0: performance.now() };
      for (let i = 0; i < m.concurrency; i += 1) send(run);
    });
    ws.on('message', () => {
      if (!run) return;
      run.done += 1;
      if (run.sent < run.jobs) send(run);
      else if (run.done === run.jobs) process.send?.({ ms: performance.now() - run.t0 });
    });
    process.send?.({ connected: true });
  });
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
} else {
  await main();
}

function next<T>(child: ChildProcess): Promise<T> {
  return new Promise((res) => child.once('message', (m) => res(m as T)));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { jobs: { type: 'string', default: '20000' }, concurrency: { type: 'string', default: '16' }, reps: { type: 'string', default: '3' }, other: { type: 'string' } },
  });
  const jobs = Number(values.jobs);
  const concurrency = Number(values.concurrency);
  const roots: Record<string, string> = { this: ROOT, ...(values.other ? { other: resolve(values.other) } : {}) };
  const target = fork(SELF, ['--target'], { execArgv: ['--import', 'tsx'] });
  const { port: targetPort } = await next<{ port: number }>(target);
  const url = `http://127.0.0.1:${targetPort}/item`;
  const cpu: Record<string, number[]> = {};
  const rate: Record<string, number[]> = {};

  const once = async (name: string, root: string, n: number): Promise<void> => {
    const dispatcher = fork(SELF, ['--dispatcher'], { execArgv: ['--import', 'tsx'] });
    const { port } = await next<{ port: number }>(dispatcher);
    const connected = next(dispatcher);
    const { startAgent } = (await import(resolve(root, 'worker-agent/main.ts'))) as typeof import('../worker-agent/main.ts');
    const agent = startAgent(
      { server: `ws://127.0.0.1:${port}`, suite: 's', name: 'p', concurrency, allowHost: [`127.0.0.1:${targetPort}`], maxResponseBytes: 10 * 1024 * 1024, drainTimeoutMs: 1000 },
      pino({ level: 'info' }, pino.destination('/dev/null')),
    );
    await connected;
    const done = next<{ ms: number }>(dispatcher);
    const before = process.cpuUsage();
    dispatcher.send({ jobs: n, concurrency, url });
    const { ms } = await done;
    const used = process.cpuUsage(before);
    (cpu[name] ??= []).push((used.user + used.system) / n);
    (rate[name] ??= []).push(n / (ms / 1000));
    await agent.close();
    dispatcher.kill();
  };

  for (const [name, root] of Object.entries(roots)) await once(name, root, Math.min(2000, jobs)); // warm-up
  for (const list of [cpu, rate]) for (const name of Object.keys(list)) list[name] = [];
  for (let rep = 0; rep < Number(values.reps); rep += 1) {
    for (const [name, root] of Object.entries(roots)) await once(name, root, jobs);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  process.stdout.write(`jobs/rep ${jobs}, concurrency ${concurrency}, reps ${values.reps} (interleaved), Node ${process.version}\n`);
  for (const name of Object.keys(roots)) {
    process.stdout.write(`${name.padEnd(6)} agent CPU µs/job median ${median(cpu[name]).toFixed(1)} [${cpu[name].map((x) => x.toFixed(1)).join(', ')}]  jobs/s median ${median(rate[name]).toFixed(0)}\n`);
  }
  target.kill();
}
