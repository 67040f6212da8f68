/**
 * Whether a browser `Origin` may open the console socket: the server's own origin
 * (scheme, host and port, as the browser reached it) or one listed in
 * `--console-origin`. `null` is foreign unless listed verbatim. Pure.
 */

/** `scheme://host[:port]` lower-cased with the default port dropped; other strings as given, trimmed and lower-cased. */
export function normalizeOrigin(origin: string): string {
  const o = origin.trim();
  if (/^https?:\/\//i.test(o) && URL.canParse(o)) return new URL(o).origin;
  return o.toLowerCase();
}

export interface OriginContext {
  /** The request's Host header. */
  host: string | undefined;
  /** TLS on this connection, or `X-Forwarded-Proto: https` from a proxy in front. */
  https: boolean;
  /** `--console-origin` entries. */
  allowed: readonly string[];
}

/** The server's own origin as seen by this request, or null without a Host header. */
export function ownOrigin(ctx: Pick<OriginContext, 'host' | 'https'>): string | null {
  if (!ctx.host) return null;
  const candidate = `${ctx.https ? 'https' : 'http'}://${ctx.host}`;
  return URL.canParse(candidate) ? new URL(candidate).origin : null;
}

export function isOriginAllowed(origin: string, ctx: OriginContext): boolean {
  const o = normalizeOrigin(origin);
  if (o === ownOrigin(ctx)) return true;
  return ctx.allowed.some((a) => normalizeOrigin(a) === o);
}
