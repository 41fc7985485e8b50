/**
 * The CLI's two kinds of failure, told apart by their exit status so scripts can too:
 * 1 when the operation failed (the API refused it, the server is unreachable, a backup
 * failed), 2 when the command line itself is wrong (a usage error; nothing was sent).
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** The command line is wrong: unknown command or option, a missing or malformed argument. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

/** Exit statuses, as the usage text documents them. */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;
