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

/**
 * Every `FLOWTEST_*` variable as a Markdown table (the README's, kept equal by a test):
 * one row per variable and meaning, naming the commands that read it.
 */
export function envTable(): string {
  const rows = new Map<string, { variable: string; flag: string; commands: string[]; help: string }>();
  for (const spec of Object.values(COMMANDS)) {
    for (const o of spec.options) {
      const variable = envName(o.name);
      const key = `${variable}\0${o.help}`;
      const row = rows.get(key) ?? { variable, flag: `--${o.name}`, commands: [], help: o.help };
      row.commands.push(spec.name);
      rows.set(key, row);
    }
  }
  const sorted = [...rows.values()].sort((a, b) => a.variable.localeCompare(b.variable) || a.commands[0].localeCompare(b.commands[0]));
  const lines = ['| variable | flag | commands | meaning |', '| --- | --- | --- | --- |'];
  for (const r of sorted) lines.push(`| \`${r.variable}\` | \`${r.flag}\` | ${r.commands.join(', ')} | ${r.help.replaceAll('|', '\\|')} |`);
  return `${lines.join('\n')}\n`;
}
