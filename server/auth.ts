/**
 * Tokens and what each may do. Tokens are kept only as SHA-256 digests: a lookup
 * hashes the presented token first, so its time does not depend on how much of a
 * stored token it shares, and no plain token stays in memory after loading.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { describeIssue } from '../shared/codec.ts';
import { nameSchema } from '../shared/protocol.ts';

const tokenSchema = z.string().min(8, 'tokens must have at least 8 characters');
export const tokensFileSchema = z.strictObject({
  admin: z.array(tokenSchema).default([]),
  suites: z
    .record(nameSchema, z.strictObject({ worker: z.array(tokenSchema).default([]), client: z.array(tokenSchema).default([]) }))
    .default({}),
});
export type TokensFile = z.input<typeof tokensFileSchema>;

/** What a caller wants to do: connect a worker of a suite, use a suite as a client, or act as admin. */
export type Access = { role: 'worker' | 'client'; suite: string } | { role: 'admin' };
export type AuthDecision = 'ok' | 'unauthorized' | 'forbidden';

type Grants = { admin: boolean; worker: Set<string>; client: Set<string> };

function digest(token: string): string {
  return createHash('sha256').update(token).digest('base64');
}

export class TokenStore {
  // Owner: this store; filled once at construction.
  readonly #grants = new Map<string, Grants>();
  /** Suites named in the file (metrics label only these). */
  readonly #suites = new Set<string>();

  constructor(file: TokensFile) {
    const parsed = tokensFileSchema.parse(file);
    for (const t of parsed.admin) this.#grant(t).admin = true;
    for (const [suite, roles] of Object.entries(parsed.suites)) {
      this.#suites.add(suite);
      for (const t of roles.worker) this.#grant(t).worker.add(suite);
      for (const t of roles.client) this.#grant(t).client.add(suite);
    }
  }

  #grant(token: string): Grants {
    const key = digest(token);
    let g = this.#grants.get(key);
    if (!g) this.#grants.set(key, (g = { admin: false, worker: new Set(), client: new Set() }));
    return g;
  }

  /** Reads and validates a tokens file; throws an Error naming the bad field. */
  static fromFile(path: string): TokenStore {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new Error(`tokens file ${path}: ${(err as Error).message}`, { cause: err });
    }
    const parsed = tokensFileSchema.safeParse(data);
    if (!parsed.success) throw new Error(`tokens file ${path}: ${describeIssue(parsed.error)}`);
    return new TokenStore(parsed.data);
  }

  /** Makes an admin token and a worker and client token for suite `default`. */
  static generateDev(): { store: TokenStore; tokens: { admin: string; worker: string; client: string } } {
    const make = (prefix: string) => `${prefix}_${randomBytes(18).toString('base64url')}`;
    const tokens = { admin: make('adm'), worker: make('wrk'), client: make('cli') };
    const store = new TokenStore({
      admin: [tokens.admin],
      suites: { default: { worker: [tokens.worker], client: [tokens.client] } },
    });
    return { store, tokens };
  }

  /** Whether the tokens file names `suite`. */
  knowsSuite(suite: string): boolean {
    return this.#suites.has(suite);
  }

  /** Decides whether `token` may do `access`. An admin token may do everything. */
  check(token: string | undefined, access: Access): AuthDecision {
    if (!token) return 'unauthorized';
    const g = this.#grants.get(digest(token));
    if (!g) return 'unauthorized';
    if (g.admin) return 'ok';
    if (access.role === 'admin') return 'forbidden';
    return g[access.role].has(access.suite) ? 'ok' : 'forbidden';
  }
}

/** Extracts the token of an `Authorization: Bearer …` header. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m?.[1];
}
