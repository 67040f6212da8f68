/** fast-check arbitraries for protocol values: valid frames as the schemas define them, and hostile input. */
import fc from 'fast-check';
import { AGENT_ERROR_CODES } from '../../shared/errors.ts';
import type { AgentFrame, HttpRequest, HttpResponse, ServerFrame } from '../../shared/protocol.ts';

/** Plain objects, as JSON.parse makes them (fast-check may otherwise build null-prototype ones). */
const NO_NULL_PROTO = { noNullPrototype: true } as const;
const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,24}$/);
// Header maps are plain objects: a header named __proto__ is dropped on decoding (see codec.test.ts), so it cannot round-trip.
const headerName = token.filter((name) => name !== '__proto__');
const headerValue = fc.stringMatching(/^[^\r\n\0]{0,40}$/);
export const headers = fc.dictionary(headerName, fc.oneof(headerValue, fc.array(headerValue, { maxLength: 3 })), { maxKeys: 5, noNullPrototype: true });
const id = fc.string({ minLength: 1, maxLength: 64 });
const base64 = fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64'));
const url = fc.webUrl({ validSchemes: ['http', 'https'], withQueryParameters: true, withFragments: true });

const body = fc.oneof(
  fc.record({ body: fc.string({ maxLength: 200 }), bodyEncoding: fc.constant('utf8' as const) }, { requiredKeys: ['body'], noNullPrototype: true }),
  fc.record({ body: base64, bodyEncoding: fc.constant('base64' as const) }, NO_NULL_PROTO),
  fc.constant({}),
);

export const httpRequest: fc.Arbitrary<HttpRequest> = fc
  .tuple(fc.record({ method: token, url, headers }, { requiredKeys: ['method', 'url'], noNullPrototype: true }), body)
  .map(([r, b]) => ({ ...r, ...b }));

export const httpResponse: fc.Arbitrary<HttpResponse> = fc.oneof(
  fc.record({ status: fc.integer({ min: 100, max: 999 }), headers, body: fc.string({ maxLength: 200 }), bodyEncoding: fc.constant('utf8' as const) }, NO_NULL_PROTO),
  fc.record({ status: fc.integer({ min: 100, max: 999 }), headers, body: base64, bodyEncoding: fc.constant('base64' as const) }, NO_NULL_PROTO),
);

export const agentFrame: fc.Arbitrary<AgentFrame> = fc.oneof(
  fc.record({ type: fc.constant('result' as const), id, response: httpResponse }, NO_NULL_PROTO),
  fc.record({ type: fc.constant('result' as const), id, error: fc.record({ code: fc.constantFrom(...AGENT_ERROR_CODES), message: fc.string({ maxLength: 300 }) }, NO_NULL_PROTO) }, NO_NULL_PROTO),
  fc.constant({ type: 'drain' as const }),
);

export const serverFrame: fc.Arbitrary<ServerFrame> = fc.oneof(
  fc.record({ type: fc.constant('welcome' as const), workerId: id, heartbeatMs: fc.integer({ min: 1, max: 2 ** 31 }), maxPayloadBytes: fc.integer({ min: 1, max: 2 ** 31 }) }, NO_NULL_PROTO),
  fc.record({ type: fc.constant('job' as const), id, timeoutMs: fc.integer({ min: 1, max: 2 ** 31 }), request: httpRequest }, NO_NULL_PROTO),
  fc.record({ type: fc.constant('cancel' as const), id, reason: fc.string({ maxLength: 200 }) }, NO_NULL_PROTO),
);

/** A valid object with one value, somewhere inside, replaced by anything. */
export function mutated<T extends object>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.tuple(valid, fc.nat(), fc.anything({ maxDepth: 2 })).map(([v, n, replacement]) => {
    const copy = structuredClone(v) as Record<string, unknown>;
    const paths: (string[])[] = [];
    const walk = (o: unknown, path: string[]) => {
      if (o === null || typeof o !== 'object') return;
      for (const k of Object.keys(o)) {
        paths.push([...path, k]);
        walk((o as Record<string, unknown>)[k], [...path, k]);
      }
    };
    walk(copy, []);
    if (paths.length === 0) return replacement;
    const path = paths[n % paths.length];
    let at: Record<string, unknown> = copy;
    for (const k of path.slice(0, -1)) at = at[k] as Record<string, unknown>;
    at[path.at(-1)!] = replacement;
    return copy;
  });
}

/** Text that is not valid UTF-8: valid text with a lone continuation byte, an overlong form or a surrogate spliced in. */
export const invalidUtf8 = fc
  .tuple(fc.string({ maxLength: 50 }), fc.constantFrom([0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xff], [0xf8, 0x88, 0x80, 0x80, 0x80]), fc.nat())
  .map(([s, bad, at]) => {
    const bytes = Buffer.from(s, 'utf8');
    const cut = bytes.length === 0 ? 0 : at % bytes.length;
    return Buffer.concat([bytes.subarray(0, cut), Buffer.from(bad), bytes.subarray(cut)]);
  });
