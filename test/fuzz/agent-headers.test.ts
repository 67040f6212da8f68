/**
 * Properties of what the agent forwards, for any header map a job may carry: no hop-by-hop
 * header, none named in `connection`, never the job's own content-length or expect, the
 * host apart, every other header value kept in order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { HOP_BY_HOP_HEADERS, prepareHeaders } from '../../worker-agent/request-headers.ts';

const RUNS = { numRuns: Number(process.env.FUZZ_RUNS ?? 400) };

const randomCase = (name: string) => fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }).map((flags) => [...name].map((c, i) => (flags[i] ? c.toUpperCase() : c)).join(''));
const plainName = fc.stringMatching(/^x-[a-z0-9-]{1,12}$/);
const headerName = fc.oneof(plainName, fc.constantFrom(...HOP_BY_HOP_HEADERS, 'content-length', 'expect', 'authorization').chain(randomCase));
const value = fc.stringMatching(/^[ -~]{0,20}$/);
const headers = fc.dictionary(headerName, fc.oneof(value, fc.array(value, { minLength: 1, maxLength: 3 })), { maxKeys: 12 });
const connectionValue = fc.array(fc.oneof(plainName, fc.constantFrom('close', 'keep-alive', 'authorization')), { maxLength: 4 }).map((names) => names.join(', '));

test('no hop-by-hop header, none named in connection, no content-length or expect is ever forwarded', () => {
  fc.assert(
    fc.property(headers, fc.option(connectionValue), (map, connection) => {
      const job = connection === null ? map : { ...map, Connection: connection };
      const prepared = prepareHeaders(job, new URL('http://t.example/'));
      assert.ok(typeof prepared !== 'string');
      const named = new Set((connection ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));
      const sent = prepared.list.filter((_, i) => i % 2 === 0);
      for (const name of sent) {
        assert.equal(name, name.toLowerCase());
        assert.ok(!HOP_BY_HOP_HEADERS.has(name) && name !== 'content-length' && name !== 'expect' && name !== 'host', name);
        assert.ok(!named.has(name), `${name} was named in connection`);
      }
      // Everything else arrives, values in order.
      for (const [raw, v] of Object.entries(job)) {
        const name = raw.toLowerCase();
        if (HOP_BY_HOP_HEADERS.has(name) || name === 'content-length' || name === 'expect' || named.has(name)) continue;
        const values = Array.isArray(v) ? v : [v];
        const got = prepared.list.filter((_, i) => i % 2 === 1 && prepared.list[i - 1] === name);
        for (const one of values) assert.ok(got.includes(one), `${name}: ${one}`);
      }
    }),
    RUNS,
  );
});
