/**
 * `--nats` as the NATS client wants it: a comma-separated list of `nats://` (or `tls://`)
 * URLs, credentials optionally riding in one of them as `user:pass@` (or a lone token `tok@`).
 * Pure, so the CLI and the tests check it without a server.
 */

export interface NatsTarget {
  /** `host:port` entries, credentials stripped. */
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  /** A `tls://` URL asks for TLS on every connection. */
  tls: boolean;
}

/** Parses the list; throws an Error with a one-line reason on a bad entry. */
export function parseNatsUrls(list: string): NatsTarget {
  const entries = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (entries.length === 0) throw new Error('--nats: no URL given');
  const out: NatsTarget = { servers: [], tls: false };
  for (const entry of entries) {
    const withScheme = entry.includes('://') ? entry : `nats://${entry}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw new Error(`--nats: not a URL: ${redact(entry)}`);
    }
    if (url.protocol !== 'nats:' && url.protocol !== 'tls:') throw new Error(`--nats: scheme must be nats:// or tls://, got ${url.protocol}//`);
    if (!url.hostname) throw new Error(`--nats: no host in ${redact(entry)}`);
    if (url.pathname !== '' && url.pathname !== '/') throw new Error(`--nats: unexpected path in ${redact(entry)}`);
    if (url.protocol === 'tls:') out.tls = true;
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    if (user !== '' && out.user === undefined && out.token === undefined) {
      if (pass !== '') {
        out.user = user;
        out.pass = pass;
      } else out.token = user;
    }
    // URL keeps IPv6 hosts in brackets, as host:port needs them.
    out.servers.push(`${url.hostname}:${url.port || '4222'}`);
  }
  return out;
}

/** An entry with its credentials masked, for error messages and logs. */
export function redact(entry: string): string {
  return entry.replace(/\/\/[^@/]*@/, '//***@');
}
