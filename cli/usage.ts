/** Usage texts, derived from the option tables. */
import { COMMANDS, envName, type CommandSpec, type OptionSpec } from './option-table.ts';

export function topUsage(): string {
  const lines = [
    'flowtest — run HTTP requests from inside private networks through worker agents',
    '',
    'Usage:',
    ...Object.values(COMMANDS).map((c) => `  ${c.synopsis}`),
    '',
    'Commands:',
    ...Object.values(COMMANDS).map((c) => `  ${c.name.padEnd(10)}${c.summary}`),
    '',
    'Run `flowtest <command> --help` for its options. Every option can also be set with an',
    'environment variable FLOWTEST_<OPTION> (e.g. FLOWTEST_TOKEN, FLOWTEST_HEARTBEAT_MS; a',
    'repeatable option takes a comma-separated list); a flag wins over its variable.',
    '',
    'Exit codes: 0 ok, 1 failed, 2 bad options, 3 agent refused by the server.',
  ];
  return `${lines.join('\n')}\n`;
}

function flagText(o: OptionSpec): string {
  const long = `--${o.name}${o.kind === 'boolean' ? '' : ` ${o.arg ?? 'VALUE'}`}`;
  return o.short ? `-${o.short}, ${long}` : `    ${long}`;
}

export function commandUsage(spec: CommandSpec): string {
  const options = [...spec.options, { name: 'help', short: 'h', kind: 'boolean', help: 'show this help' } satisfies OptionSpec];
  const width = Math.max(...options.map((o) => flagText(o).length)) + 2;
  const lines = [`Usage: ${spec.synopsis}`, '', spec.summary, '', 'Options:'];
  for (const o of options) {
    const extras = [o.required ? 'required' : '', o.name === 'help' ? '' : envName(o.name)].filter(Boolean).join(', ');
    lines.push(`  ${flagText(o).padEnd(width)}${o.help}${extras ? `  [${extras}]` : ''}`);
  }
  if (spec.notes) lines.push('', ...spec.notes);
  return `${lines.join('\n')}\n`;
}
