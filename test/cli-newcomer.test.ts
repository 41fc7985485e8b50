/**
 * The CLI as a first try meets it (issue 12): help for every command, usage errors in our
 * words with one exit status, API errors in terms of flags, tables by default and --json for
 * scripts, downloads that never clobber or leave half a file, `| head` without a crash, plain
 * progress lines in a log, and, in a real terminal (tmux), a progress bar and a Ctrl-C that
 * says the backup keeps running and how to follow or cancel it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import mysql2 from 'mysql2/promise';
import { api, startServer, until, waitForBackup, type TestServer } from './helpers/server.js';
import { addLargeTable, createDatabase, dropDatabase, mysqlUrl, uniqueName, withMysqlConnection } from './helpers/databases.js';
import { mainCommand } from './helpers/cluster.js';
import { translateApiMessage } from '../src/cli/client.js';

const root = path.resolve(import.meta.dirname, '..');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

describe('strongbox CLI, tried as a new user would', () => {
  let server: TestServer;
  let node: string[];
  let env: NodeJS.ProcessEnv;
  let work: string;
  const source = uniqueName('sbx_cli_ux');
  const branch = `default/ledger/main`;
  let backupId = '';

  /** Run a program to its end without blocking this process (the server answers from its event loop). */
  const run = (file: string, args: string[], extraEnv: Record<string, string> = {}, input = ''): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn(file, args, { cwd: work, env: { ...env, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
      child.stdin.end(input);
    });
  /** Run the CLI (transpiled once, see mainCommand) as a child process; stdin closed unless given. */
  const cli = (args: string[], extraEnv: Record<string, string> = {}, input = '') => run(process.execPath, [...node, ...args], extraEnv, input);

  /** `words` as one shell word each. */
  const shell = (words: string[]) => words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');

  before(async () => {
    server = await startServer();
    node = await mainCommand();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-cli-ux-'));
    env = { ...process.env, STRONGBOX_URL: server.url, STRONGBOX_TOKEN: server.token, STRONGBOX_DATA_DIR: work };
    delete env.STRONGBOX_HOST;
    delete env.STRONGBOX_PORT;
    // A MariaDB database whose dump produces some MiB, then stops at `z_locked` for as long
    // as a test holds a write lock on it: a backup that is reliably still running.
    await createDatabase('mysql', source);
    await addLargeTable('mysql', mysqlUrl(source), 20_000);
    await withMysqlConnection(mysqlUrl(source), (c) => c.query('CREATE TABLE z_locked (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO z_locked VALUES (1)'));
  });
  after(async () => {
    await server?.close();
    await dropDatabase('mysql', source);
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('help: for everything, a group, and each command; no arguments is a usage error', async () => {
    const [none, help, perCommand, viaHelp, group] = await Promise.all([
      cli([]),
      cli(['help']),
      cli(['backup', 'create', '--help']),
      cli(['help', 'backup', 'create']),
      cli(['backup', '--help']),
    ]);
    assert.equal(none.status, 2, 'no arguments: usage, exit 2');
    assert.match(none.stderr, /^Usage: strongbox <command>/);
    assert.equal(none.stdout, '');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Usage: strongbox <command>/);
    assert.match(help.stdout, /STRONGBOX_URL/, 'the usage names the server variable');
    assert.match(help.stdout, /STRONGBOX_TOKEN/);
    assert.equal(perCommand.status, 0, perCommand.stderr);
    assert.equal(perCommand.stdout, viaHelp.stdout, '`help backup create` is `backup create --help`');
    assert.match(perCommand.stdout, /^Usage: strongbox backup create ORG\/DB\/BRANCH \[options\]/);
    for (const flag of ['--name NAME', '--retention AGE', '--wait', '-q, --quiet', '--json', '-h, --help']) assert.ok(perCommand.stdout.includes(flag), `lists ${flag}`);
    assert.match(perCommand.stdout, /STRONGBOX_URL/);
    assert.equal(group.status, 0);
    for (const sub of ['create', 'list', 'get', 'progress', 'download', 'verify', 'cancel']) assert.match(group.stdout, new RegExp(`backup ${sub} `));
  });

  test('usage errors: our own words, the command and its help, exit 2, nothing sent', async () => {
    const runs = await Promise.all([
      cli(['backup', 'create', branch, '--foo']),
      cli(['backup', 'create', branch, '--nme', 'x']),
      cli(['backup', 'create', branch, '--name']),
      cli(['backup', 'create', branch, '--name', '--wait']),
      cli(['backup', 'create']),
      cli(['backup', 'create', branch, 'extra']),
      cli(['backup', 'list', branch, '--state', 'done']),
      cli(['backup', 'lst', branch]),
      cli(['backup', 'download', branch, 'x']),
      cli(['database', 'add', 'default/x', '--kind', 'oracle']),
      cli(['token', 'create', '--foo']),
    ]);
    const expected = [
      /^strongbox: unknown option --foo for "backup create"; see strongbox backup create --help\n$/,
      /^strongbox: unknown option --nme for "backup create" \(did you mean --name\?\); see strongbox backup create --help\n$/,
      /^strongbox: option --name needs a value \(NAME\) for "backup create"; see strongbox backup create --help\n$/,
      /^strongbox: option --name needs a value \(NAME\) for "backup create"/,
      /^strongbox: missing ORG\/DB\/BRANCH for "backup create"; see strongbox backup create --help\n$/,
      /^strongbox: unexpected argument "extra" for "backup create" \(it takes ORG\/DB\/BRANCH\)/,
      /^strongbox: --state must be one of: pending, running, success, failed, canceled, ignored \(got "done"\); see strongbox backup list --help\n$/,
      /^strongbox: unknown command "backup lst" \(did you mean "backup list"\?\); see strongbox backup --help\n$/,
      /^strongbox: missing option --output FILE for "backup download"/,
      /^strongbox: --kind must be one of: postgresql, mysql \(got "oracle"\)/,
      /^strongbox: unknown option --foo for "token create"; see strongbox token create --help\n$/,
    ];
    runs.forEach((r, i) => {
      assert.equal(r.status, 2, `run ${i}: ${r.stderr}`);
      assert.match(r.stderr, expected[i]);
      assert.equal(r.stdout, '');
    });
    // None of them reached the API.
    assert.equal((await api(server, 'GET', '/v1/organizations/default/databases')).body.data.length, 0);
  });

  test('API errors name the allowed values and the flags; they exit 1', async () => {
    // The server's own message for a union of literals names the values.
    const bad = await api(server, 'POST', '/v1/organizations/default/databases', { name: 'x', kind: 'oracle' });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.message, 'body.kind must be one of: postgresql, mysql');
    const badQuery = await api(server, 'GET', '/v1/organizations/default/databases/x/branches/y/backups?state=done');
    assert.match(badQuery.body.message, /^querystring\.state must be one of: pending, running, success, failed, canceled, ignored$/);

    let r = await cli(['database', 'add', 'default/ledger', '--kind', 'mysql']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^database ledger \(mysql\) id \w+\n$/);
    r = await cli(['branch', 'add', branch], { STRONGBOX_CONNECTION_URL: mysqlUrl(source) });
    assert.equal(r.status, 0, r.stderr);
    r = await cli(['backup', 'create', branch, '--name', 'n'.repeat(300)]);
    assert.equal(r.status, 1, 'the API refused it: a failure, not a usage error');
    assert.equal(r.stderr, 'strongbox: 422 invalid_params: --name must NOT have more than 255 characters\n');
    assert.doesNotMatch(r.stderr, /body\./);
    r = await cli(['backup', 'list', 'default/nope/main']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'strongbox: 404 not_found: Database "nope" not found\n');

    // Body fields the API names become the flags that set them.
    const restore = { name: 'the new branch name (NEW_BRANCH)', overwrite: '--overwrite', backup_id: '--backup', connection_url: '$STRONGBOX_CONNECTION_URL' };
    assert.equal(translateApiMessage('database "shop" is not empty; pass overwrite: true to restore over it', restore), 'database "shop" is not empty; pass --overwrite to restore over it');
    assert.equal(translateApiMessage('connection_url is required (or backup_id, to create the branch from a backup)', restore), '$STRONGBOX_CONNECTION_URL is required (or --backup, to create the branch from a backup)');
    assert.equal(translateApiMessage('body.name must match pattern "^[a-z]"', restore), 'the new branch name (NEW_BRANCH) must match pattern "^[a-z]"');
    assert.equal(translateApiMessage('a database named "x" already exists; choose another name, or overwrite nothing', restore), 'a database named "x" already exists; choose another name, or overwrite nothing', 'plain words stay');
    assert.equal(translateApiMessage('Branch "name" already exists', restore), 'Branch "name" already exists', 'a quoted value that looks like a field stays');
    assert.equal(translateApiMessage('body: missing required field "backup_id"', restore), 'body: missing required field --backup');
    assert.equal(translateApiMessage('querystring.state must be one of: a, b', { state: '--state' }), '--state must be one of: a, b');
  });

  test('a backup in a log: plain progress lines on stderr, the result on stdout; tables, plurals and --json', async () => {
    let r = await cli(['backup', 'create', branch, '--wait']);
    assert.equal(r.status, 0, r.stderr);
    backupId = /^backup (\w+) queued/.exec(r.stdout)![1];
    assert.match(r.stdout, new RegExp(`^backup ${backupId} queued \\(.+\\)\\nbackup ${backupId}: success, [\\d.]+ (KiB|MiB) stored\\n$`));
    assert.match(r.stderr, /^success\s+[\d.]+ (KiB|MiB) read\s+[\d.]+ (KiB|MiB) stored\s+[\d.]+ (B|KiB|MiB)\/s$/m, 'the last line: what was read and stored');
    assert.doesNotMatch(r.stderr, /\r|\x1b/, 'no terminal codes in a log');
    assert.doesNotMatch(r.stderr, /0 B of 0 B/);
    assert.match((await cli(['backup', 'list', branch])).stdout, /page 1 of 1, 1 backup\n$/, 'one backup, singular');

    const quiet = await cli(['backup', 'create', branch, '--wait', '--quiet']);
    assert.equal(quiet.status, 0, quiet.stderr);
    assert.match(quiet.stdout, /^\w+\n$/, '--quiet: only the id, for ID=$(...)');

    const [list, listJson, get, getJson, ids] = await Promise.all([
      cli(['backup', 'list', branch]),
      cli(['backup', 'list', branch, '--json']),
      cli(['backup', 'get', branch, backupId]),
      cli(['backup', 'get', branch, backupId, '--json']),
      cli(['backup', 'list', branch, '-q']),
    ]);
    assert.match(list.stdout, /^ID\s+NAME\s+STATE\s+SIZE\s+CREATED/);
    assert.match(list.stdout, /page 1 of 1, 2 backups\n$/);
    assert.equal(JSON.parse(listJson.stdout).total_count, 2);
    assert.deepEqual(ids.stdout.trim().split('\n').sort(), [backupId, quiet.stdout.trim()].sort());
    assert.match(get.stdout, new RegExp(`^id:\\s+${backupId}\\n`), 'a get is a readable list of fields, not raw JSON');
    assert.match(get.stdout, /^state:\s+success$/m);
    assert.match(get.stdout, /Stored copies:\nDESTINATION\s+PROVIDER\s+STATE\s+SIZE\s+SHA256/);
    const shown = JSON.parse(getJson.stdout);
    assert.deepEqual(Object.keys(shown).slice(0, 4), ['id', 'name', 'state', 'error']);
    assert.equal(shown.artifacts.length, 1);

    const dbs = await cli(['database', 'list', 'default']);
    assert.match(dbs.stdout, /1 database\n$/);
    const branches = await cli(['branch', 'list', 'default/ledger']);
    assert.match(branches.stdout, /1 branch\n$/);
  });

  test('download: never over an existing file without --force, never a half-written file', async () => {
    const target = path.join(work, 'ledger.sql.zst');
    fs.writeFileSync(target, 'keep me');
    let r = await cli(['backup', 'download', branch, backupId, '-o', target]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /ledger\.sql\.zst already exists; pass --force to replace it/);
    assert.equal(fs.readFileSync(target, 'utf8'), 'keep me');

    r = await cli(['backup', 'download', branch, backupId, '-o', target, '--force']);
    assert.equal(r.status, 0, r.stderr);
    const sha = crypto.createHash('sha256').update(fs.readFileSync(target)).digest('hex');
    assert.match(r.stdout, new RegExp(`sha256 ${sha}, verified`));

    const fresh = path.join(work, 'fresh.zst');
    r = await cli(['backup', 'download', branch, backupId, '-o', fresh, '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).sha256, sha);
    assert.deepEqual(fs.readdirSync(work).filter((f) => f.includes('partial')), [], 'no temporary file left');

    // A download that fails leaves nothing under the name.
    r = await cli(['backup', 'download', branch, 'nosuchbackup', '-o', path.join(work, 'missing.zst')]);
    assert.equal(r.status, 1);
    assert.ok(!fs.existsSync(path.join(work, 'missing.zst')));
  });

  test('`| head` and a reader that is gone: no EPIPE crash, a quiet exit', async () => {
    const cmd = shell([process.execPath, ...node]);
    // `true` reads nothing and is gone before the CLI writes: every write meets a closed pipe.
    for (const pipeline of [`${cmd} backup list ${branch} | head -n 1`, `${cmd} backup list ${branch} | true`, `${cmd} backup get ${branch} ${backupId} | true`, `${cmd} help | true`]) {
      // Not spawnSync: the server answers from this process's event loop.
      const r = await run('bash', ['-o', 'pipefail', '-c', `${pipeline.replace(' |', ` 2>${shell([`${work}/err`])} |`)}`]);
      assert.equal(r.status, 0, `${pipeline}: ${fs.readFileSync(`${work}/err`, 'utf8')}`);
      assert.equal(fs.readFileSync(`${work}/err`, 'utf8'), '', `${pipeline}: nothing on stderr`);
      if (pipeline.includes('head')) assert.match(r.stdout, /^ID\s+NAME/);
    }
  });

  test('in a terminal: a progress bar, and Ctrl-C says the backup keeps running and how to follow or cancel it', async (t) => {
    if (spawnSync('tmux', ['-V']).status !== 0) return t.skip('tmux is not installed');
    // A tmux server of its own, its socket in the test's folder (removed with it).
    const socket = path.join(work, 'tmux.sock');
    const tmux = (...args: string[]) => spawnSync('tmux', ['-S', socket, ...args], { encoding: 'utf8' });
    const locker = await mysql2.createConnection({ uri: mysqlUrl(source) });
    try {
      await locker.query('LOCK TABLES z_locked WRITE');
      const script = path.join(work, 'follow.sh');
      fs.writeFileSync(
        script,
        `export STRONGBOX_URL=${shell([server.url])} STRONGBOX_TOKEN=${shell([server.token])} TERM=xterm-256color\n` +
          `${shell([process.execPath, ...node])} backup create ${branch} --wait\necho "EXIT:$?"\nsleep 60\n`,
        { mode: 0o600 },
      );
      assert.equal(tmux('new-session', '-d', '-s', 'cli', '-x', '120', '-y', '30', `bash ${script}`).status, 0);
      const pane = () => tmux('capture-pane', '-p', '-t', 'cli').stdout;
      // The dump has read the big table and waits on the lock: the bar shows the bytes so far.
      const bar = await until(
        'a progress bar with bytes',
        async () => {
          const line = pane().split('\n').find((l) => /^running\s+\[#*-*\]\s+\d+%\s+[\d.]+ (KiB|MiB) \/ [\d.]+ (KiB|MiB)/.test(l));
          return line && !/ 0 B \//.test(line) ? line : undefined;
        },
        60_000,
        250,
      );
      assert.match(bar, /[\d.]+ (B|KiB|MiB) stored\s+[\d.]+ (B|KiB|MiB)\/s\s+ETA /, bar);
      assert.ok(bar.length <= 120, 'the bar fits the terminal');
      const id = /^backup (\w+) queued/m.exec(pane())![1];

      assert.equal(tmux('send-keys', '-t', 'cli', 'C-c').status, 0);
      const after = await until('the exit status', async () => (/EXIT:\d+/.test(pane()) ? pane() : undefined), 20_000, 100);
      assert.match(after, /EXIT:130/);
      assert.match(after, new RegExp(`strongbox: stopped following; backup ${id} keeps running on the server\\.`));
      assert.match(after, new RegExp(`follow it:  strongbox backup progress ${branch} ${id}`));
      const cancel = new RegExp(`cancel it:  strongbox backup cancel (${branch}) (${id})`).exec(after);
      assert.ok(cancel, after);
      assert.equal((await api(server, 'GET', `/v1/organizations/default/databases/ledger/branches/main/backups/${id}`)).body.state, 'running', 'the backup still runs');

      // The printed command does what it says.
      const r = await cli(['backup', 'cancel', cancel[1], cancel[2]]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`backup ${id}: cancel`));
      assert.equal((await waitForBackup(server, '/v1/organizations/default/databases/ledger/branches/main', id)).state, 'canceled');
    } finally {
      tmux('kill-server');
      await locker.query('UNLOCK TABLES').catch(() => {});
      await locker.end();
    }
  });
});
