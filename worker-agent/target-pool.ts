/**
 * The agent's connections to targets: one undici Agent (a keep-alive pool per origin)
 * whose connector resolves names itself, checks every resolved address against the
 * egress policy and connects to a checked address. The check therefore happens once per
 * new connection, on the address actually connected to; a pooled connection was checked
 * when it was made.
 *
 * Why a connector rather than net's `lookup` hook: the policy depends on the port
 * (`127.0.0.1:8080` names one port only), which a lookup callback never sees, and a
 * connector also covers IP literals, for which net skips the lookup altogether.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import tls from 'node:tls';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { checkAddresses, normalizeIp, type ExplicitGrant, type IpAddress } from './egress.ts';

/** Resolves a host name to every address it has (tests inject one; production uses the system resolver). */
export type LookupFn = (hostname: string) => Promise<IpAddress[]>;

/** The system resolver (getaddrinfo, /etc/hosts included), every address, in its order. */
export const systemLookup: LookupFn = async (hostname) => {
  const answers = await dnsLookup(hostname, { all: true, order: 'verbatim' });
  return answers.map((a) => normalizeIp(a.address) ?? { address: a.address, version: a.family === 6 ? 6 : 4 });
};

/** Options of {@link createTargetPool}. */
export interface TargetPoolOptions {
  /** Connections per origin (the agent's concurrency: it never holds more jobs). */
  connections: number;
  /** Which denied addresses the owner named (the allowlist). */
  grant: ExplicitGrant;
  lookup?: LookupFn;
  /** Time to open a connection (TCP and TLS), default 10 s; the job's deadline still governs. */
  connectTimeoutMs?: number;
  /** Extra trusted CA certificates (PEM), on top of Node's; tests use it (operators: NODE_EXTRA_CA_CERTS). */
  ca?: string[];
}

/** The pooled dispatcher to targets; owned by the agent, `destroy()` once when it stops. */
export interface TargetPool {
  readonly dispatcher: Dispatcher;
  readonly lookup: LookupFn;
  destroy(): Promise<void>;
}

/** Builds the pool; see the module comment for where the egress check happens. */
export function createTargetPool(options: TargetPoolOptions): TargetPool {
  const lookup = options.lookup ?? systemLookup;
  const base = buildConnector({
    timeout: options.connectTimeoutMs ?? 10_000,
    ...(options.ca ? { ca: [...tls.rootCertificates, ...options.ca] } : {}),
  });
  const connect: buildConnector.connector = (opts, callback) => {
    const port = opts.port ? Number(opts.port) : opts.protocol === 'https:' ? 443 : 80;
    const literal = normalizeIp(opts.hostname);
    const proceed = (addresses: IpAddress[]): void => {
      const refusal = checkAddresses(opts.hostname, port, addresses, options.grant);
      if (refusal) return callback(refusal, null);
      // The socket goes to the address just checked; `host` still names the origin, so
      // TLS SNI, certificate checks and the Host header keep using the name.
      base({ ...opts, hostname: addresses[0].address }, callback);
    };
    if (literal) return proceed([literal]);
    lookup(opts.hostname).then(
      (addresses) => {
        if (addresses.length === 0) return callback(Object.assign(new Error(`${opts.hostname} has no address`), { code: 'ENOTFOUND' }), null);
        // Whatever the resolver returned, mapped IPv6 answers are checked as IPv4.
        proceed(addresses.map((a) => normalizeIp(a.address) ?? a));
      },
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)), null),
    );
  };
  const dispatcher = new Agent({
    connections: options.connections,
    pipelining: 1,
    connect,
  });
  return {
    dispatcher,
    lookup,
    async destroy() {
      await dispatcher.destroy();
    },
  };
}
