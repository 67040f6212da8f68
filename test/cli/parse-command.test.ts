import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseCommand, parseHeaders, type Command, type Env } from '../../cli/parse-command.ts';
import { COMMANDS, envName, fieldName, splitHeaderList } from '../../cli/option-table.ts';
import { DEFAULTS } from '../../shared/limits.ts';
import { serverConfigSchema } from '../../server/config.ts';

const DISPATCH = ['dispatch', '--server', 'http://127.0.0.1:8080', '--suite', 'acme', '--pool', 'staging'];
const AGENT = ['agent', '--server', 'ws://127.0.0.1:8080', '--suite', 'acme', '--name', 'staging'];

function command(argv: string[], env: Env = {}): Command {
  const result = parseCommand(argv, env);
  if (!result.ok) assert.fail(`expected a command, got: ${result.message}`);
  return result.command;
}

function usageError(argv: string[], env: Env = {}): string {
  const result = parseCommand(argv, env);
  if (result.ok) assert.fail(`expected a usage error, got ${JSON.stringify(result.command)}`);
  assert.doesNotMatch(result.message, /\n/, 'one line');
  return result.message;
}

function as<K extends Command['kind']>(c: Command, kind: K): Extract<Command, { kind: K }> {
  assert.equal(c.kind, kind);
  return c as Extract<Command, { kind: K }>;
}

describe('names', () => {
  test('kebab-case options map to camelCase fields and FLOWTEST_ variables', () => {
    assert.equal(fieldName('max-payload-bytes'), 'maxPayloadBytes');
    assert.equal(envName('max-payload-bytes'), 'FLOWTEST_MAX_PAYLOAD_BYTES');
    assert.equal(envName('token'), 'FLOWTEST_TOKEN');
  });

  test('server options are exactly the config fields', () => {
    const fields = COMMANDS.server.options.map((o) => fieldName(o.name)).sort();
    assert.deepEqual(fields, Object.keys(serverConfigSchema.shape).sort());
  });
});

describe('server', () => {
  test('defaults fill in when nothing is given', () => {
    const { options } = as(command(['server']), 'server');
    assert.equal(options.port, DEFAULTS.port);
    assert.equal(options.heartbeatMs, DEFAULTS.heartbeatMs);
    assert.deepEqual(options.consoleOrigin, []);
  });

  test('every option reads its variable; a flag wins over it', () => {
    const env = { FLOWTEST_PORT: '9000', FLOWTEST_HEARTBEAT_MS: '500', FLOWTEST_TOKENS_FILE: '/etc/t.json', FLOWTEST_SHUTDOWN_GRACE_MS: '100' };
    const fromEnv = as(command(['server'], env), 'server').options;
    assert.equal(fromEnv.port, 9000);
    assert.equal(fromEnv.heartbeatMs, 500);
    assert.equal(fromEnv.tokensFile, '/etc/t.json');
    assert.equal(fromEnv.shutdownGraceMs, 100);
    const flagged = as(command(['server', '--port', '9100', '--heartbeat-ms=700'], env), 'server').options;
    assert.equal(flagged.port, 9100);
    assert.equal(flagged.heartbeatMs, 700);
  });

  test('a repeatable option takes a comma list from its variable, the flags replace it', () => {
    const env = { FLOWTEST_CONSOLE_ORIGIN: 'https://a.example, https://b.example' };
    assert.deepEqual(as(command(['server'], env), 'server').options.consoleOrigin, ['https://a.example', 'https://b.example']);
    const flagged = command(['server', '--console-origin', 'https://c.example', '--console-origin', 'https://d.example'], env);
    assert.deepEqual(as(flagged, 'server').options.consoleOrigin, ['https://c.example', 'https://d.example']);
  });

  test('an empty variable counts as unset', () => {
    assert.equal(as(command(['server'], { FLOWTEST_PORT: '' }), 'server').options.port, DEFAULTS.port);
  });

  test('variables of other commands are ignored', () => {
    assert.ok(command(['server'], { FLOWTEST_TOKEN: 'x', FLOWTEST_SUITE: '!!' }));
  });
});

describe('usage errors exit 2 with one line naming the cause', () => {
  const cases: [string, string[], Env, RegExp][] = [
    ['unknown flag', ['dispatch', '--bogus'], {}, /^flowtest dispatch: unknown option --bogus$/],
    ['unknown short flag', ['server', '-x'], {}, /^flowtest server: unknown option -x$/],
    ['flag without value', ['server', '--port'], {}, /^flowtest server: --port needs a value$/],
    ['non-numeric flag', ['server', '--port', '80a'], {}, /^flowtest server: --port must be an integer, got "80a"$/],
    ['non-numeric variable', ['server'], { FLOWTEST_MAX_QUEUE: '1.5' }, /^flowtest server: FLOWTEST_MAX_QUEUE must be an integer/],
    ['out of the config range', ['server', '--heartbeat-ms', '3'], {}, /^flowtest server: --heartbeat-ms: .*10/],
    ['config range, from a variable', ['server'], { FLOWTEST_PORT: '70000' }, /^flowtest server: FLOWTEST_PORT: /],
    ['missing required', ['agent', '--server', 'ws://h:1', '--name', 'p'], {}, /^flowtest agent: missing --suite \(or FLOWTEST_SUITE\)$/],
    ['bad suite name', [...AGENT.slice(0, 3), '--suite', 'a b', '--name', 'p'], {}, /^flowtest agent: --suite must match/],
    ['bad pool name, from a variable', ['dispatch', '--server', 'http://h:1', '--suite', 's', 'GET', 'http://t/'], { FLOWTEST_POOL: '-x' }, /^flowtest dispatch: FLOWTEST_POOL must match/],
    ['concurrency below 1', [...AGENT, '--concurrency', '0'], {}, /^flowtest agent: --concurrency must be at least 1/],
    ['bad allow-host pattern', [...AGENT, '--allow-host', '10.0.0.0/99'], {}, /^flowtest agent: .*10\.0\.0\.0\/99/],
    ['agent server not a URL', ['agent', '--server', 'nope', '--suite', 's', '--name', 'p'], {}, /^flowtest agent: --server is not a URL/],
    ['missing METHOD URL', DISPATCH, {}, /^flowtest dispatch: missing METHOD URL$/],
    ['missing URL', [...DISPATCH, 'GET'], {}, /^flowtest dispatch: missing URL$/],
    ['extra positional', [...DISPATCH, 'GET', 'http://t/', 'extra'], {}, /^flowtest dispatch: unexpected argument "extra"$/],
    ['bad URL', [...DISPATCH, 'GET', 'ftp://t/'], {}, /^flowtest dispatch: URL: must be an absolute http/],
    ['bad METHOD', [...DISPATCH, 'G T', 'http://t/'], {}, /^flowtest dispatch: METHOD: /],
    ['header without colon', [...DISPATCH, 'GET', 'http://t/', '-H', 'nocolon'], {}, /^flowtest dispatch: -H expects 'Name: value'$/],
    ['header name not a token', [...DISPATCH, 'GET', 'http://t/', '-H', 'a b: c'], {}, /^flowtest dispatch: -H/],
    ['timeout not positive', [...DISPATCH, '--timeout-ms', '0', 'GET', 'http://t/'], {}, /^flowtest dispatch: --timeout-ms must be at least 1/],
    ['boolean with a value', [...DISPATCH, '--include=yes', 'GET', 'http://t/'], {}, /^flowtest dispatch: --include takes no value$/],
    ['bad boolean variable', [...DISPATCH, 'GET', 'http://t/'], { FLOWTEST_INCLUDE: 'maybe' }, /^flowtest dispatch: FLOWTEST_INCLUDE must be true or false/],
    ['workers positional', ['workers', '--server', 'http://h:1', 'x'], {}, /^flowtest workers: unexpected argument "x"$/],
    ['no command', [], {}, /^flowtest: missing command/],
    ['unknown command', ['serve'], {}, /^flowtest: unknown command "serve"/],
    ['top-level unknown flag', ['--bogus'], {}, /^flowtest: unknown option --bogus/],
  ];
  for (const [name, argv, env, expected] of cases) {
    test(name, () => assert.match(usageError(argv, env), expected));
  }

  test('a token is never echoed in a reason', () => {
    const message = usageError([...DISPATCH, '--token', 'sekret', '--bogus']);
    assert.doesNotMatch(message, /sekret/);
  });
});

describe('help', () => {
  test('top level: --help, -h, help', () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      const c = as(command(argv), 'help');
      assert.match(c.text, /flowtest dispatch/);
    }
  });

  test('each command, even with other bad options around it', () => {
    for (const name of ['server', 'agent', 'dispatch', 'workers'] as const) {
      for (const argv of [[name, '--help'], [name, '-h'], [name, '--bogus', '--help'], ['help', name]]) {
        const c = as(command(argv), 'help');
        assert.match(c.text, new RegExp(`^Usage: flowtest ${name}`));
        for (const o of COMMANDS[name].options) assert.ok(c.text.includes(`--${o.name}`) && c.text.includes(envName(o.name)), o.name);
      }
    }
  });

  test('-h as the value of an option or after -- is not help', () => {
    assert.match(usageError(['server', '--port', '-h']), /--port must be an integer/);
    const c = as(command([...DISPATCH, 'GET', 'http://t/', '--data', '-h']), 'dispatch');
    assert.equal(c.body.request.body, '-h');
  });
});

describe('agent', () => {
  test('builds AgentOptions with defaults; http is mapped to ws', () => {
    const c = as(command(['agent', '--server', 'https://h.example/base', '--suite', 'acme', '--name', 'staging']), 'agent');
    assert.deepEqual(c.options, {
      server: 'wss://h.example/base',
      suite: 'acme',
      name: 'staging',
      concurrency: DEFAULTS.agentConcurrency,
      allowHost: [],
      maxResponseBytes: DEFAULTS.maxResponseBytes,
      drainTimeoutMs: DEFAULTS.drainTimeoutMs,
    });
    assert.deepEqual(c.warnings, []);
  });

  test('everything from the environment, allow-host as a comma list', () => {
    const env = {
      FLOWTEST_SERVER: 'ws://h:1',
      FLOWTEST_SUITE: 'acme',
      FLOWTEST_NAME: 'p',
      FLOWTEST_TOKEN: 'T',
      FLOWTEST_CONCURRENCY: '2',
      FLOWTEST_ALLOW_HOST: 'api.internal,*.svc.local, 10.0.0.0/8',
      FLOWTEST_MAX_RESPONSE_BYTES: '1024',
      FLOWTEST_DRAIN_TIMEOUT_MS: '0',
    };
    const c = as(command(['agent'], env), 'agent');
    assert.deepEqual(c.options, {
      server: 'ws://h:1',
      suite: 'acme',
      name: 'p',
      token: 'T',
      concurrency: 2,
      allowHost: ['api.internal', '*.svc.local', '10.0.0.0/8'],
      maxResponseBytes: 1024,
      drainTimeoutMs: 0,
    });
    assert.deepEqual(c.warnings, [], 'a token from the environment is the recommended way');
  });

  test('a token on argv works but warns', () => {
    const c = as(command([...AGENT, '--token', 'T']), 'agent');
    assert.equal(c.options.token, 'T');
    assert.match(c.warnings[0], /FLOWTEST_TOKEN/);
  });
});

describe('dispatch', () => {
  test('builds the dispatch body; repeated headers become a list', () => {
    const c = as(
      command([...DISPATCH, '--timeout-ms', '5000', '-i', 'post', 'http://t.internal/x', '-H', 'Accept: a', '-H', 'X-Id:1', '-Haccept:  b ', '--data', '{"a":1}'], { FLOWTEST_TOKEN: 'T' }),
      'dispatch',
    );
    assert.deepEqual(c, {
      kind: 'dispatch',
      server: 'http://127.0.0.1:8080',
      token: 'T',
      suite: 'acme',
      body: {
        pool: 'staging',
        timeoutMs: 5000,
        request: { method: 'POST', url: 'http://t.internal/x', headers: { Accept: ['a', 'b'], 'X-Id': '1' }, body: '{"a":1}', bodyEncoding: 'utf8' },
      },
      include: true,
      warnings: [],
    });
  });

  test('a minimal request has no headers, body or timeout; ws server maps to http', () => {
    const c = as(command(['dispatch', 'GET', 'http://t/'], { FLOWTEST_SERVER: 'ws://h:1', FLOWTEST_SUITE: 's', FLOWTEST_POOL: 'p' }), 'dispatch');
    assert.equal(c.server, 'http://h:1');
    assert.deepEqual(c.body, { pool: 'p', request: { method: 'GET', url: 'http://t/' } });
    assert.equal(c.include, false);
    assert.equal(c.token, undefined);
  });

  test('non-standard methods are sent as written', () => {
    assert.equal(as(command([...DISPATCH, 'PROPFIND', 'http://t/']), 'dispatch').body.request.method, 'PROPFIND');
    assert.equal(as(command([...DISPATCH, 'Purge', 'http://t/']), 'dispatch').body.request.method, 'Purge');
  });

  test('headers and include from the environment', () => {
    const env = { FLOWTEST_HEADER: 'Accept: a, b,X-Id: 1', FLOWTEST_INCLUDE: 'true' };
    const c = as(command([...DISPATCH, 'GET', 'http://t/'], env), 'dispatch');
    assert.deepEqual(c.body.request.headers, { Accept: 'a, b', 'X-Id': '1' });
    assert.equal(c.include, true);
    const flagged = as(command([...DISPATCH, 'GET', 'http://t/', '-H', 'Y: 2'], env), 'dispatch');
    assert.deepEqual(flagged.body.request.headers, { Y: '2' }, 'flags replace the variable');
  });

  test('arguments after -- are positional', () => {
    const c = as(command([...DISPATCH, '--', 'GET', 'http://t/--x']), 'dispatch');
    assert.equal(c.body.request.url, 'http://t/--x');
  });
});

describe('workers', () => {
  test('suite is optional', () => {
    assert.deepEqual(command(['workers', '--server', 'http://h:1']), { kind: 'workers', server: 'http://h:1', warnings: [] });
    const c = as(command(['workers', '--server', 'http://h:1', '--suite', 'acme'], { FLOWTEST_TOKEN: 'T' }), 'workers');
    assert.equal(c.suite, 'acme');
    assert.equal(c.token, 'T');
  });
});

describe('header helpers', () => {
  test('splitHeaderList keeps commas inside values', () => {
    assert.deepEqual(splitHeaderList('A: 1, 2,B:3,,'), ['A: 1, 2', 'B:3']);
  });

  test('parseHeaders keeps empty values and the first spelling', () => {
    assert.deepEqual(parseHeaders(['X-A:', 'x-a: 2'], '--header'), { 'X-A': ['', '2'] });
    assert.equal(parseHeaders([], '--header'), undefined);
  });
});

describe('log level', () => {
  test('--log-level and FLOWTEST_LOG_LEVEL reach server and agent; a flag wins; a bad level is exit-2 material', () => {
    assert.equal(as(command(['server'], { FLOWTEST_LOG_LEVEL: 'debug' }), 'server').options.logLevel, 'debug');
    assert.equal(as(command(['server', '--log-level', 'warn'], { FLOWTEST_LOG_LEVEL: 'debug' }), 'server').options.logLevel, 'warn');
    assert.equal(as(command(['server']), 'server').options.logLevel, 'info');
    assert.equal(as(command([...AGENT], { FLOWTEST_LOG_LEVEL: 'error' }), 'agent').options.logLevel, 'error');
    assert.match(usageError(['server'], { FLOWTEST_LOG_LEVEL: 'loud' }), /FLOWTEST_LOG_LEVEL/);
    assert.match(usageError([...AGENT, '--log-level', 'loud']), /--log-level/);
  });
});
