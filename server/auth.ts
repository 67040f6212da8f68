/**
 * Tokens and what each may do. Tokens are kept only as SHA-256 digests: a lookup
 * hashes the presented token first, so its time does not depend on how much of a
 * stored token it shares, and no token from the file stays in memory after loading.
 *
 * The hot path (every dispatch) looks a presented token up in a small cache first, so a
 * known token costs one map lookup instead of a hash. Only tokens that exist are cached —
 * unknown ones cannot evict them — and the cache is emptied when the file is reloaded.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { describeIssue } from '../shared/codec.ts';
import { nameSchema } from '../shared/protocol.ts';

/** Shortest token accepted from a tokens file. */
export const MIN_TOKEN_CHARS = 16;
/** Presented tokens whose grants are cached; past this the oldest entry goes. */
const CACHE_ENTRIES = 1024;

const tokenSchema = z.string().min(MIN_TOKEN_CHARS, `tokens must have at least ${MIN_TOKEN_CHARS} characters`);
/** A worker token: plain (every pool of the suite) or limited to some pools. */
const workerTokenSchema = z.union([tokenSchema, z.strictObject({ token: tokenSchema, pools: z.array(nameSchema).min(1) })]);
export const tokensFileSchema = z.strictObject({
  admin: z.array(tokenSchema).default([]),
  suites: z
    .record(nameSchema, z.strictObject({ worker: z.array(workerTokenSchema).default([]), client: z.array(tokenSchema).default([]) }))
    .default({}),
});
export type TokensFile = z.input<typeof tokensFileSchema>;

/** What a caller wants to do: connect a worker of a suite's pool, use a suite as a client, or act as admin. */
/** A worker's `pool` is its `name`; without one, only a token valid for every pool of the suite passes. */
export type Access = { role: 'worker'; suite: string; pool?: string } | { role: 'client'; suite: string } | { role: 'admin' };
export type AuthDecision = 'ok' | 'unauthorized' | 'forbidden';

/** A worker grant per suite: every pool (`null`) or only these. */
type Grants = { admin: boolean; worker: Map<string, Set<string> | null>; client: Set<string> };

/**
 * The id a session keeps of the token it authenticated with: the token's SHA-256 digest
 * (base64). Never logged; compared only against the digests of a reloaded file.
 */
export type TokenId = string;

function digest(token: string): TokenId {
  return createHash('sha256').update(token).digest('base64');
}

function buildGrants(file: z.output<typeof tokensFileSchema>): Map<TokenId, Grants> {
  const grants = new Map<TokenId, Grants>();
  const grant = (token: string): Grants => {
    const key = digest(token);
    let g = grants.get(key);
    if (!g) grants.set(key, (g = { admin: false, worker: new Map(), client: new Set() }));
    return g;
  };
  for (const t of file.admin) grant(t).admin = true;
  for (const [suite, roles] of Object.entries(file.suites)) {
    for (const w of roles.worker) {
      const g = grant(typeof w === 'string' ? w : w.token);
      const had = g.worker.get(suite);
      if (typeof w === 'string' || had === null) g.worker.set(suite, null); // a plain entry covers every pool
      else g.worker.set(suite, new Set([...(had ?? []), ...w.pools]));
    }
    for (const t of roles.client) grant(t).client.add(suite);
  }
  return grants;
}

function decide(g: Grants | undefined, access: Access): AuthDecision {
  if (!g) return 'unauthorized';
  if (g.admin) return 'ok';
  if (access.role === 'admin') return 'forbidden';
  if (access.role === 'client') return g.client.has(access.suite) ? 'ok' : 'forbidden';
  const pools = g.worker.get(access.suite);
  if (pools === undefined) return 'forbidden';
  return pools === null || (access.pool !== undefined && pools.has(access.pool)) ? 'ok' : 'forbidden';
}

export class TokenStore {
  // Owner: this store; replaced as a whole by `replace` (SIGHUP reload).
  #grants: Map<TokenId, Grants>;
  /** Suites named in the file (metrics label only these); replaced with the grants. */
  #suites: Set<string>;
  // Owner: this store; presented token → its id and grants. Emptied by `replace`.
  readonly #cache = new Map<string, { id: TokenId; grants: Grants }>();

  constructor(file: TokensFile) {
    const parsed = tokensFileSchema.parse(file);
    this.#grants = buildGrants(parsed);
    this.#suites = new Set(Object.keys(parsed.suites));
  }

  /** Reads and validates a tokens file; throws an Error naming the file and the bad field. */
  static readFile(path: string): TokensFile {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`tokens file ${path}: ${(err as Error).message}`, { cause: err });
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      // V8's message quotes the text around the error, which may be a token.
      throw new Error(`tokens file ${path}: not valid JSON`);
    }
    const parsed = tokensFileSchema.safeParse(data);
    if (!parsed.success) throw new Error(`tokens file ${path}: ${describeIssue(parsed.error)}`);
    return parsed.data;
  }

  /** Reads, validates and loads a tokens file; throws an Error naming the bad field. */
  static fromFile(path: string): TokenStore {
    return new TokenStore(TokenStore.readFile(path));
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

  /** Swaps in a new set of tokens (validated first: a bad file throws and changes nothing). */
  replace(file: TokensFile): void {
    const parsed = tokensFileSchema.parse(file);
    this.#grants = buildGrants(parsed);
    this.#suites = new Set(Object.keys(parsed.suites));
    this.#cache.clear();
  }

  /** Whether the tokens file names `suite`. */
  knowsSuite(suite: string): boolean {
    return this.#suites.has(suite);
  }

  /** The grants of a presented token and its id, or undefined when it is unknown. */
  #lookup(token: string): { id: TokenId; grants: Grants } | undefined {
    const cached = this.#cache.get(token);
    if (cached) return cached;
    const id = digest(token);
    const grants = this.#grants.get(id);
    if (!grants) return undefined;
    const entry = { id, grants };
    if (this.#cache.size >= CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(token, entry);
    return entry;
  }

  /** Decides whether `token` may do `access`. An admin token may do everything. */
  check(token: string | undefined, access: Access): AuthDecision {
    if (!token) return 'unauthorized';
    return decide(this.#lookup(token)?.grants, access);
  }

  /** Like `check`, and on success also the id of the token (what a session remembers). */
  authenticate(token: string | undefined, access: Access): { decision: AuthDecision; tokenId: TokenId | null } {
    if (!token) return { decision: 'unauthorized', tokenId: null };
    const entry = this.#lookup(token);
    const decision = decide(entry?.grants, access);
    return { decision, tokenId: decision === 'ok' ? entry!.id : null };
  }

  /** Whether the token with this id may still do `access` (after a reload). */
  allows(tokenId: TokenId, access: Access): boolean {
    return decide(this.#grants.get(tokenId), access) === 'ok';
  }
}

/** Extracts the token of an `Authorization: Bearer …` header. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m?.[1];
}
