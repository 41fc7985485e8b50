/**
 * Parsing a command line against a command's spec, and the help texts made from the same
 * specs. Our own small parser rather than node's parseArgs: every mistake gets one message
 * in our words that names the command and where its help is, and exits 2 like every other
 * usage error (parseArgs threw its own text, which exited 1).
 */
import { UsageError } from './errors.js';

export interface OptionSpec {
  type: 'boolean' | 'string';
  /** One-letter alias, e.g. "o" for `-o`. */
  short?: string;
  /** The value's placeholder in help texts, e.g. "FILE". */
  value?: string;
  help: string;
  required?: boolean;
  /** The only values accepted (checked before anything is sent). */
  choices?: readonly string[];
}

export interface CommandSpec {
  /** One or two words, e.g. "backup create". */
  name: string;
  /** Positional arguments in order, e.g. ["ORG/DB/BRANCH", "ID"]; all required. */
  args: readonly string[];
  summary: string;
  /** More paragraphs for `--help`. */
  details?: string;
  options: Record<string, OptionSpec>;
  /** A client command (talks to a server): gets --json and the client environment in its help. */
  client?: boolean;
  /** Environment variables this command reads, beyond the client's. */
  env?: Record<string, string>;
  examples?: readonly string[];
  /**
   * Request body fields and the CLI flag (or argument) that sets each: the API's messages
   * name body fields, and a CLI user should read the flag they can type.
   */
  fields?: Record<string, string>;
}

export type Values = Record<string, string | boolean | undefined>;

export interface Parsed {
  values: Values;
  positionals: string[];
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', help: 'show this help' };
const JSON_OPTION: OptionSpec = { type: 'boolean', help: "print the API's JSON instead of text (for scripts)" };

/** A command's options including the ones every command has (--help, and --json for client commands). */
export function optionsOf(spec: CommandSpec): Record<string, OptionSpec> {
  return { ...spec.options, ...(spec.client ? { json: JSON_OPTION } : {}), help: HELP };
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

/** The closest of `names` to `word`, when it is close enough to be a typo. */
export function closest(word: string, names: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const n of names) {
    const dd = distance(word, n);
    if (dd < bestD) {
      best = n;
      bestD = dd;
    }
  }
  return best !== null && bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : null;
}

function seeHelp(spec: CommandSpec): string {
  return `see strongbox ${spec.name} --help`;
}

/** Whether the command line asks for help (before a `--`). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/** Parse `argv` (what follows the command's words) against `spec`; every mistake is a UsageError. */
export function parseCommandArgs(spec: CommandSpec, argv: readonly string[]): Parsed {
  const options = optionsOf(spec);
  const values: Values = {};
  const positionals: string[] = [];
  const byShort = new Map(Object.entries(options).flatMap(([name, o]) => (o.short ? [[o.short, name] as const] : [])));
  const usage = (m: string, aside = '') => new UsageError(`${m} for "${spec.name}"${aside}; ${seeHelp(spec)}`);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    let shown = a;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      inline = eq < 0 ? undefined : a.slice(eq + 1);
      shown = `--${name}`;
      if (!options[name]) {
        const guess = closest(name, Object.keys(options));
        throw usage(`unknown option ${shown}`, guess ? ` (did you mean --${guess}?)` : '');
      }
    } else if (a.startsWith('-') && a.length > 1) {
      name = byShort.get(a[1]);
      shown = a.slice(0, 2);
      if (!name) throw usage(`unknown option ${shown}`);
      // `-oFILE` and `-o=FILE` as well as `-o FILE`.
      if (a.length > 2) inline = a[2] === '=' ? a.slice(3) : a.slice(2);
    } else {
      positionals.push(a);
      continue;
    }
    const opt = options[name];
    if (opt.type === 'boolean') {
      if (inline !== undefined) throw usage(`option ${shown} takes no value (got "${inline}")`);
      values[name] = true;
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      // A following option is a forgotten value, not the value: `--name --wait`.
      if (next === undefined || (next.startsWith('-') && next.length > 1)) throw usage(`option ${shown} needs a value${opt.value ? ` (${opt.value})` : ''}`);
      value = next;
      i++;
    }
    if (opt.choices && !opt.choices.includes(value)) throw new UsageError(`${shown} must be one of: ${opt.choices.join(', ')} (got "${value}"); ${seeHelp(spec)}`);
    values[name] = value;
  }
  if (values.help) return { values, positionals };
  if (positionals.length > spec.args.length) {
    const extra = positionals[spec.args.length];
    throw usage(`unexpected argument "${extra}"`, spec.args.length ? ` (it takes ${spec.args.join(' ')})` : ' (it takes no arguments)');
  }
  if (positionals.length < spec.args.length) throw usage(`missing ${spec.args.slice(positionals.length).join(' ')}`);
  for (const [n, o] of Object.entries(options)) {
    if (o.required && values[n] === undefined) throw usage(`missing option --${n}${o.value ? ` ${o.value}` : ''}`);
  }
  return { values, positionals };
}

function columns(rows: Array<[string, string]>, indent = 2, width = Math.min(34, Math.max(...rows.map(([a]) => a.length)))): string {
  return rows
    .map(([a, b]) => {
      const pad = ' '.repeat(indent);
      if (a.length > width) return `${pad}${a}\n${pad}${' '.repeat(width + 2)}${b.replace(/\n/g, `\n${pad}${' '.repeat(width + 2)}`)}`;
      return `${pad}${a.padEnd(width)}  ${b.replace(/\n/g, `\n${pad}${' '.repeat(width + 2)}`)}`;
    })
    .join('\n');
}

/** The client environment every client command's help shows. */
export const CLIENT_ENV: Record<string, string> = {
  STRONGBOX_URL: 'the server (default http://127.0.0.1:8080, or http://$STRONGBOX_HOST:$STRONGBOX_PORT)',
  STRONGBOX_TOKEN: 'the service token <id>:<secret> (default: the file $STRONGBOX_DATA_DIR/bootstrap-token, ./data/bootstrap-token)',
};

/** `strongbox <command> --help`. */
export function commandHelp(spec: CommandSpec): string {
  const opts = Object.entries(optionsOf(spec)).map(([n, o]): [string, string] => {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${n}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    return [flag, `${o.help}${o.required ? ' (required)' : ''}`];
  });
  const env = { ...(spec.client ? CLIENT_ENV : {}), ...spec.env };
  const sentence = `${spec.summary[0].toUpperCase()}${spec.summary.slice(1)}.`;
  let out = `Usage: strongbox ${[spec.name, ...spec.args].join(' ')}${Object.keys(spec.options).length ? ' [options]' : ''}\n\n${sentence}\n`;
  if (spec.details) out += `\n${spec.details.trim()}\n`;
  out += `\nOptions:\n${columns(opts)}\n`;
  if (Object.keys(env).length) out += `\nEnvironment:\n${columns(Object.entries(env))}\n`;
  if (spec.examples?.length) out += `\nExamples:\n${spec.examples.map((e) => `  ${e}`).join('\n')}\n`;
  return out;
}

/** The list of a group's commands, e.g. for `strongbox backup`. */
export function groupHelp(group: string, specs: readonly CommandSpec[]): string {
  return `Usage: strongbox ${group} <command>\n\nCommands:\n${columns(specs.map((s) => [[s.name, ...s.args].join(' '), s.summary]))}\n\nRun strongbox ${group} <command> --help for a command's options.\n`;
}

export { columns };
