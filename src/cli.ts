/**
 * The `strongbox` command line: finding the command in argv, help (`strongbox help backup
 * create`, `strongbox backup create --help`), usage errors (exit 2), and running the client
 * commands (src/cli/commands.ts). The server commands' own work stays in main.ts, which
 * hands its handlers to runCommandLine.
 */
import { closest, columns, commandHelp, groupHelp, parseCommandArgs, wantsHelp, CLIENT_ENV, type Values } from './cli/args.js';
import { runClient } from './cli/commands.js';
import { CliError, UsageError, EXIT } from './cli/errors.js';
import { exitQuietlyOnBrokenPipe } from './cli/output.js';
import { ALL_COMMANDS, CLIENT_COMMANDS, SERVER_COMMANDS, findCommand, groupOf } from './cli/specs.js';
import { VERSION } from './version.js';

export { CliError, UsageError, EXIT } from './cli/errors.js';

const listed = (specs: typeof ALL_COMMANDS) => specs.map((s): [string, string] => [[s.name, ...s.args].join(' '), s.summary]);
const WIDTH = Math.max(...listed(ALL_COMMANDS).map(([a]) => a.length));

export const USAGE = `Usage: strongbox <command> [options]

Server:
${columns(listed(SERVER_COMMANDS), 2, WIDTH)}

Client (talk to a running server's API):
${columns(listed(CLIENT_COMMANDS), 2, WIDTH)}

Every client command takes --json (the API's JSON, for scripts). Run
strongbox <command> --help (or strongbox help <command>) for a command's options.

Client environment:
${columns(Object.entries(CLIENT_ENV))}

Exit status: 0 done, 1 failed (the API refused, a backup failed, ...), 2 usage error,
130 interrupted (Ctrl-C; a backup or restore being followed keeps running).
`;

/** The server commands' work, given by main.ts (it owns the process's lifecycle). */
export type ServerHandlers = Record<string, (values: Values) => Promise<void>>;

function unknownCommand(argv: readonly string[]): UsageError {
  const group = groupOf(argv[0]);
  if (group.length && argv[1] === undefined) return new UsageError(`"${argv[0]}" needs a command\n\n${groupHelp(argv[0], group)}`);
  if (group.length) {
    const guess = closest(argv[1], group.map((s) => s.name.split(' ')[1]).filter(Boolean));
    return new UsageError(`unknown command "${argv[0]} ${argv[1]}"${guess ? ` (did you mean "${argv[0]} ${guess}"?)` : ''}; see strongbox ${argv[0]} --help`);
  }
  // `strongbox download`: the word is a sub-command of a group.
  const inGroup = ALL_COMMANDS.find((s) => s.name.split(' ')[1] === argv[0]);
  const guess = inGroup ? inGroup.name : closest(argv[0], [...new Set(ALL_COMMANDS.map((s) => s.name.split(' ')[0]))]);
  return new UsageError(`unknown command "${argv[0]}"${guess ? ` (did you mean "${guess}"?)` : ''}; see strongbox --help`);
}

/** `strongbox help [words...]`: the help of a command, a group, or everything. */
function help(words: readonly string[]): string {
  if (words.length === 0) return USAGE;
  const found = findCommand(words);
  if (found && found.rest.length === 0) return commandHelp(found.spec);
  const group = groupOf(words[0]);
  if (group.length && words.length === 1) return groupHelp(words[0], group);
  throw unknownCommand(words);
}

/** Run one command line: help, a server command (through `server`), or a client command. */
export async function runCommandLine(argv: readonly string[], server: ServerHandlers): Promise<void> {
  exitQuietlyOnBrokenPipe();
  const [first, ...rest] = argv;
  if (first === undefined) {
    // No command is a usage error (a script that lost its arguments must not look like success).
    process.stderr.write(USAGE);
    process.exitCode = EXIT.usage;
    return;
  }
  if (first === 'help' || first === '--help' || first === '-h') {
    process.stdout.write(help(rest));
    return;
  }
  if (first === '--version' || first === 'version') {
    process.stdout.write(`strongbox ${VERSION}\n`);
    return;
  }
  const found = findCommand(argv);
  if (!found) {
    // `strongbox backup --help`: the group's commands.
    if (groupOf(first).length && (rest[0] === '--help' || rest[0] === '-h')) {
      process.stdout.write(groupHelp(first, groupOf(first)));
      return;
    }
    throw unknownCommand(argv);
  }
  if (wantsHelp(found.rest)) {
    process.stdout.write(commandHelp(found.spec));
    return;
  }
  const { values, positionals } = parseCommandArgs(found.spec, found.rest);
  if (found.spec.client) return runClient(found.spec, values, positionals);
  const run = server[found.spec.name];
  if (!run) throw new CliError(`"${found.spec.name}" is not available here`);
  return run(values);
}
