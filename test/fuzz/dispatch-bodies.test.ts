/**
 * Random dispatch requests — JSON of any shape, valid bodies with one field broken,
 * bytes that are not UTF-8, odd suite segments — are answered with a contract error or a
 * result, never a 500, and nothing is logged as a server error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { errorBodySchema } from '../../shared/protocol.ts';
import { HttpClient } from '../helpers/http-client.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';
import { startTestServer, TOKENS } from '../helpers/server.ts';
import { waitUntil } from '../helpers/wait.ts';
import { httpRequest, invalidUtf8, mutated } from './arbitraries.ts';

const MAX_PAYLOAD = 16 * 1024;

const validBody = fc.record(
  {
    pool: fc.constantFrom('pool1', 'nobody'),
    timeoutMs: fc.integer({ min: 1, max: 2000 }),
    waitForWorkerMs: fc.integer({ min: 0, max: 20 }),
    request: httpRequest,
  },
  { requiredKeys: ['pool', 'request'], noNullPrototype: true },
);

const body: fc.Arbitrary<string | Buffer> = fc.oneof(
  validBody.map((b) => JSON.stringify(b)),
  mutated(validBody).map((b) => JSON.stringify(b) ?? ''),
  fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  invalidUtf8,
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.constant('{"pool":"pool1","request":' + '['.repeat(5000) + ']'.repeat(5000) + '}'),
  // Nesting around the 64-level limit, in a field the schema refuses and in a header value.
  fc.integer({ min: 58, max: 70 }).map((n) => `{"pool":"pool1","request":{"method":"GET","url":"http://x/"},"x":${'['.repeat(n)}${']'.repeat(n)}}`),
  fc.integer({ min: 1, max: 70 }).map((n) => `{"pool":"pool1","request":{"method":"GET","url":"http://x/","headers":{"a":${'['.repeat(n)}"v"${']'.repeat(n)}}}}`),
  // Header counts around the 256-line limit, as names or as values of one name.
  fc.tuple(fc.integer({ min: 250, max: 262 }), fc.boolean()).map(([n, asArray]) =>
    JSON.stringify({ pool: 'pool1', request: { method: 'GET', url: 'http://x/', headers: asArray ? { 'x-a': Array(n).fill('v') } : Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-${i}`, 'v'])) } }),
  ),
  fc.integer({ min: MAX_PAYLOAD - 100, max: MAX_PAYLOAD + 100 }).map((n) => JSON.stringify({ pool: 'pool1', request: { method: 'POST', url: 'http://x/', body: 'x'.repeat(n) } })),
);

// Characters a request target may carry as they are, '%' included (broken escapes too).
const suite = fc.oneof(fc.constant('acme'), fc.constant('other'), fc.constant('%E0%A4%A'), fc.stringMatching(/^[A-Za-z0-9._~%!$&'()*+,;=:@-]{1,70}$/));
const CONTRACT_STATUSES = new Set([200, 400, 401, 403, 404, 405, 413, 429, 502, 503, 504]);

test('random dispatch requests never produce a 500', async (t) => {
  const s = await startTestServer(t, { maxPayloadBytes: MAX_PAYLOAD, heartbeatMs: 60_000 });
  const client = new HttpClient(s.url, 32);
  t.after(() => client.destroy());
  const worker = await ScriptedAgent.connect(s.wsUrl);
  t.after(() => worker.ws.terminate());
  const statuses = new Map<number, number>();

  await fc.assert(
    fc.asyncProperty(suite, body, fc.constantFrom(TOKENS.client, TOKENS.admin), async (suiteName, text, token) => {
      const r = await client.dispatch(suiteName, text, { token });
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      assert.ok(CONTRACT_STATUSES.has(r.status), `status ${r.status}: ${JSON.stringify(r.body)}`);
      if (r.status !== 200) assert.ok(errorBodySchema.safeParse(r.body).success, JSON.stringify(r.body));
    }),
    { numRuns: Number(process.env.FUZZ_RUNS ?? 400) },
  );
  t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
  assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0);
  assert.ok(!s.logLines.some((l) => /"level":(50|60)/.test(l)), s.logLines.find((l) => /"level":(50|60)/.test(l)));
  await waitUntil(() => s.router.stats().pending === 0, 5000);
});
