/**
 * Every `strongbox` command as data: its arguments, options, help text and which request
 * fields its flags set. The usage text, each `--help`, the parser and the error messages
 * are all made from these, so they cannot drift apart.
 */
import type { CommandSpec } from './args.js';

const BACKUP_STATES = ['pending', 'running', 'success', 'failed', 'canceled', 'ignored'] as const;

const CONNECTION_ENV = { STRONGBOX_CONNECTION_URL: 'the connection URL (or give it on stdin); never an argument, where `ps` would show its password' };

export const SERVER_COMMANDS: CommandSpec[] = [
  { name: 'serve', args: [], summary: 'run the API and the job runner', options: {}, details: 'Configured by STRONGBOX_* environment variables (see the README). Stops on SIGINT or SIGTERM.' },
  { name: 'worker', args: [], summary: 'run only the job runner (scale-out: PostgreSQL catalog)', options: {} },
  {
    name: 'token create',
    args: [],
    summary: 'create a service token offline and print <id>:<secret> (SQLite catalog: with the server stopped)',
    options: {
      name: { type: 'string', value: 'NAME', help: 'the token\'s name (default "cli")' },
      org: { type: 'string', value: 'ORG', help: 'its organization (default "default")' },
      admin: { type: 'boolean', help: 'a superuser token' },
    },
  },
  { name: 'secrets rotate-key', args: [], summary: 're-encrypt every stored secret under a new key (every process stopped)', options: {}, env: { STRONGBOX_NEW_SECRET_KEY: 'the new key (64 hex characters; default: a new key file)' } },
  { name: 'secrets fingerprint', args: [], summary: "print the fingerprint of this process's secret key", options: {} },
  {
    name: 'catalog rebuild',
    args: [],
    summary: "rebuild the catalog's backups from the manifests in a destination",
    options: {
      destination: { type: 'string', value: 'NAME', help: 'the storage destination to read', required: true },
      org: { type: 'string', value: 'ORG', help: 'its organization (default "default")' },
    },
  },
];

export const CLIENT_COMMANDS: CommandSpec[] = [
  {
    name: 'database add',
    args: ['ORG/DB'],
    summary: 'register a database',
    client: true,
    options: { kind: { type: 'string', value: 'KIND', help: 'postgresql or mysql (MariaDB too)', required: true, choices: ['postgresql', 'mysql'] } },
    fields: { name: 'the database name (ORG/DB)', kind: '--kind' },
    examples: ['strongbox database add default/shop --kind postgresql'],
  },
  { name: 'database list', args: ['ORG'], summary: "list an organization's databases", client: true, options: { page: { type: 'string', value: 'N', help: 'page number' } } },
  {
    name: 'branch add',
    args: ['ORG/DB/BRANCH'],
    summary: 'register a branch: the real database to back up',
    client: true,
    options: { production: { type: 'boolean', help: 'a production branch (production backup policies cover it)' } },
    env: CONNECTION_ENV,
    fields: { name: 'the branch name (ORG/DB/BRANCH)', connection_url: '$STRONGBOX_CONNECTION_URL', production: '--production' },
    examples: ["STRONGBOX_CONNECTION_URL='postgresql://postgres:secret@127.0.0.1:5432/shop' strongbox branch add default/shop/main --production"],
  },
  { name: 'branch list', args: ['ORG/DB'], summary: "list a database's branches", client: true, options: { page: { type: 'string', value: 'N', help: 'page number' } } },
  {
    name: 'branch archiving',
    args: ['ORG/DB/BRANCH', 'on|off|status'],
    summary: 'switch continuous archiving (point-in-time recovery) on or off, or show its state',
    details:
      'on: the server is checked first (replication privilege, wal_level, WAL senders, a free replication slot, pg_hba.conf; MariaDB: log_bin) and every problem is named; then WAL segments (binlogs) are stored as they complete, and PostgreSQL backups become base backups. ' +
      'off: archiving stops and the replication slot is dropped; what was archived stays until retention removes it. status: print the state only.',
    client: true,
    options: {},
    fields: { archiving: 'on|off|status' },
    examples: ['strongbox branch archiving default/shop/main on', 'strongbox branch archiving default/shop/main status'],
  },
  {
    name: 'branch recovery-window',
    args: ['ORG/DB/BRANCH'],
    summary: 'the times a point-in-time restore of an archived branch can reach, and the gaps in its archive',
    details: 'Earliest and latest restorable times (UTC), and every gap a missing WAL segment or binlog makes, with the missing files named. Restore with strongbox restore --from BRANCH --restore-point TIME.',
    client: true,
    options: {},
    examples: ['strongbox branch recovery-window default/shop/main'],
  },
  {
    name: 'backup create',
    args: ['ORG/DB/BRANCH'],
    summary: 'take a backup now',
    client: true,
    options: {
      name: { type: 'string', value: 'NAME', help: 'its name (default: made from the time)' },
      retention: { type: 'string', value: 'AGE', help: 'keep it for 6h, 7d, 2w, 3m or 1y (default 7d)' },
      wait: { type: 'boolean', help: 'follow it until it ends (bytes, rate, ETA); Ctrl-C stops following, not the backup' },
      quiet: { type: 'boolean', short: 'q', help: 'print only the backup id on stdout (progress still goes to stderr)' },
    },
    fields: { name: '--name', retention_value: '--retention', retention_unit: '--retention' },
    examples: ['strongbox backup create default/shop/main --retention 14d --wait', 'ID=$(strongbox backup create default/shop/main --wait --quiet)'],
  },
  {
    name: 'backup list',
    args: ['ORG/DB/BRANCH'],
    summary: "list a branch's backups, newest first",
    client: true,
    options: {
      all: { type: 'boolean', help: 'include deleted backups' },
      state: { type: 'string', value: 'STATE', help: BACKUP_STATES.join(', '), choices: BACKUP_STATES },
      page: { type: 'string', value: 'N', help: 'page number (25 a page)' },
      quiet: { type: 'boolean', short: 'q', help: 'print only the ids' },
    },
    fields: { page: '--page', state: '--state' },
  },
  { name: 'backup get', args: ['ORG/DB/BRANCH', 'ID'], summary: 'show a backup, why it failed, and its stored copies', client: true, options: {} },
  { name: 'backup progress', args: ['ORG/DB/BRANCH', 'ID'], summary: 'follow a backup until it ends (bytes, rate, ETA)', client: true, options: {} },
  {
    name: 'backup download',
    args: ['ORG/DB/BRANCH', 'ID'],
    summary: 'download the stored artifact and check its sha256',
    details: 'The file is written under a temporary name beside FILE and renamed only once its sha256 matched: FILE never holds half a download.',
    client: true,
    options: {
      output: { type: 'string', short: 'o', value: 'FILE', help: 'where to write it', required: true },
      force: { type: 'boolean', help: 'replace FILE if it exists' },
    },
  },
  {
    name: 'backup verify',
    args: ['ORG/DB/BRANCH', 'ID'],
    summary: 'check every stored copy (sha256, readable)',
    client: true,
    options: {
      full: { type: 'boolean', help: 'restore into a scratch database too and compare its contents' },
      wait: { type: 'boolean', help: 'follow it until it ends' },
    },
    fields: { restore: '--full' },
  },
  { name: 'backup protect', args: ['ORG/DB/BRANCH', 'ID'], summary: 'keep a backup past its retention until unprotected', client: true, options: {} },
  { name: 'backup unprotect', args: ['ORG/DB/BRANCH', 'ID'], summary: 'let retention delete a backup again', client: true, options: {} },
  { name: 'backup delete', args: ['ORG/DB/BRANCH', 'ID'], summary: 'delete a backup and its stored copies everywhere', client: true, options: {} },
  { name: 'backup cancel', args: ['ORG/DB/BRANCH', 'ID'], summary: 'cancel a pending or running backup', client: true, options: {} },
  {
    name: 'restore',
    args: ['ORG/DB/NEW_BRANCH'],
    summary: 'restore a backup, or an archived branch to a point in time, into a new branch',
    details:
      "Default target: a new database named after NEW_BRANCH on the backup's server. To restore elsewhere, give the target's URL in $STRONGBOX_CONNECTION_URL (an empty database, or --overwrite). " +
      'Point in time (a branch with archiving on): --restore-point TIME|latest with --from BRANCH (Strongbox picks the newest backup before the time) or --backup ID; see strongbox branch recovery-window for the times it can reach.',
    client: true,
    options: {
      backup: { type: 'string', value: 'ID', help: 'the backup to restore (or to replay from, with --restore-point)' },
      'restore-point': { type: 'string', value: 'TIME|latest', help: 'restore to this time (ISO 8601 with its zone, e.g. 2024-05-01T13:45:00Z) or to the latest archived one' },
      from: { type: 'string', value: 'BRANCH', help: 'with --restore-point: the archived branch to restore (in the same database)' },
      'target-data-dir': { type: 'string', value: 'DIR', help: 'PostgreSQL disaster recovery: put the recovered data directory here (a folder that does not exist yet) instead of a database' },
      wait: { type: 'boolean', help: 'follow it until it ends; Ctrl-C stops following, not the restore' },
      overwrite: { type: 'boolean', help: 'restore over a target database that is not empty' },
      'preserve-ownership': { type: 'boolean', help: 'keep owners and grants (the roles must exist on the target)' },
      production: { type: 'boolean', help: 'the new branch is a production branch' },
    },
    env: CONNECTION_ENV,
    fields: {
      name: 'the new branch name (NEW_BRANCH)',
      backup_id: '--backup',
      restore_point: '--restore-point',
      parent_branch: '--from',
      target_data_dir: '--target-data-dir',
      overwrite: '--overwrite',
      preserve_ownership: '--preserve-ownership',
      production: '--production',
      connection_url: '$STRONGBOX_CONNECTION_URL',
    },
    examples: [
      'strongbox restore default/shop/shop_copy --backup ID --wait',
      'strongbox restore default/shop/before_mistake --from main --restore-point 2024-05-01T13:45:00Z --wait',
      'strongbox restore default/shop/now_copy --from main --restore-point latest',
    ],
  },
  { name: 'restore progress', args: ['ORG/DB/BRANCH'], summary: 'follow a restore into a branch until it ends', client: true, options: {} },
];

export const ALL_COMMANDS: CommandSpec[] = [...SERVER_COMMANDS, ...CLIENT_COMMANDS];

/** The spec named by the first one or two words of `argv`, and what follows them. */
export function findCommand(argv: readonly string[]): { spec: CommandSpec; rest: string[] } | null {
  const two = ALL_COMMANDS.find((s) => s.name === `${argv[0]} ${argv[1]}`);
  if (two) return { spec: two, rest: argv.slice(2) };
  const one = ALL_COMMANDS.find((s) => s.name === argv[0]);
  return one ? { spec: one, rest: argv.slice(1) } : null;
}

/** The commands of a group (first word), e.g. every `backup ...`. */
export function groupOf(word: string | undefined): CommandSpec[] {
  return ALL_COMMANDS.filter((s) => s.name.split(' ')[0] === word);
}
