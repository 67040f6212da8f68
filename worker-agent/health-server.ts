/**
 * The agent's optional probe and metrics endpoint (`--health-port`): `/healthz` (the
 * process answers), `/readyz` (connected to the server and not draining) and `/metrics`
 * (Prometheus text). Bound to 127.0.0.1 unless `--health-host` says otherwise: probes
 * and scrapers run beside the agent, and nothing here needs a token.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { AGENT_ERROR_CODES } from '../shared/errors.ts';
import type { AgentObserver, JobOutcomeLabel } from './agent.ts';

/** What the health server reads from the agent. */
export interface HealthSource {
  /** Connected (welcomed) and not draining or closing. */
  readonly ready: boolean;
  readonly inFlight: number;
  observe(observer: AgentObserver): void;
}

const OUTCOMES: readonly JobOutcomeLabel[] = ['ok', ...AGENT_ERROR_CODES, 'abandoned'];

/** The agent's metrics on their own registry; also the agent's {@link AgentObserver}. */
export class AgentMetrics implements AgentObserver {
  readonly registry = new Registry();
  /** One child per outcome, fetched once: counting a job is an increment. */
  readonly #jobs = new Map<JobOutcomeLabel, { inc(): void }>();
  readonly #reconnects: Counter;
  readonly #connected: Gauge;

  constructor(source: Pick<HealthSource, 'inFlight'>) {
    const jobs = new Counter({
      name: 'flowtest_agent_jobs_total',
      help: 'Jobs this agent ended, by outcome: ok, an agent error code, or abandoned (socket lost, no result sent)',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    // Every series from the start, so rate() and alerts see zeros rather than gaps.
    for (const outcome of OUTCOMES) {
      const child = jobs.labels(outcome);
      child.inc(0);
      this.#jobs.set(outcome, child);
    }
    this.#reconnects = new Counter({
      name: 'flowtest_agent_reconnects_total',
      help: 'Times the agent lost its server connection (or failed to open it) and is retrying',
      registers: [this.registry],
    });
    this.#connected = new Gauge({
      name: 'flowtest_agent_connected',
      help: '1 while the agent holds a welcomed connection to the server, else 0',
      registers: [this.registry],
    });
    this.#connected.set(0);
    new Gauge({
      name: 'flowtest_agent_jobs_in_flight',
      help: 'Jobs the agent is performing now',
      registers: [this.registry],
      collect() {
        this.set(source.inFlight);
      },
    });
  }

  jobEnded(outcome: JobOutcomeLabel): void {
    this.#jobs.get(outcome)?.inc();
  }

  connectionChanged(connected: boolean): void {
    this.#connected.set(connected ? 1 : 0);
  }

  reconnecting(): void {
    this.#reconnects.inc();
  }
}

/** A listening health server; `close()` once when the agent has stopped. */
export interface HealthServer {
  /** `http://HOST:PORT` as bound (the port is real when 0 was asked for). */
  readonly url: string;
  readonly metrics: AgentMetrics;
  close(): Promise<void>;
}

/**
 * Listens on `host:port`, registers the metrics as the agent's observer and answers
 * probes. Rejects when the address cannot be bound (the CLI exits 2).
 */
export async function startHealthServer(agent: HealthSource, options: { port: number; host: string }): Promise<HealthServer> {
  const metrics = new AgentMetrics(agent);
  agent.observe(metrics);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = agent.ready;
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready: not connected, or draining\n');
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n'),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  // A probe endpoint should never hold a socket for long.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    metrics,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
