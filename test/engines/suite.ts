/**
 * The conformance suite every source engine must pass, against a real server. An
 * engine's test file only says how to make fixtures and users on its server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { EngineError, parseConnectionUrl, type ConnectionInfo, type DumpProcess, type Engine } from '../../src/engines/index.js';
import {
  addLargeTable,
  createDatabase,
  dropDatabase,
  objectNames,
  tableFingerprints,
  uniqueName,
  urlFor,
  type Kind,
} from '../helpers/databases.js';
import { childrenNamed, isAlive, processEnvironment, processesMentioning, waitFor } from '../helpers/processes.js';

export interface EngineSuiteOptions {
  kind: Kind;
  engine: Engine;
  /** Process name of the dump tool, as /proc shows it. */
  dumpTool: string;
  /** Environment variable that must carry the password to the tools. */
  passwordVariable: string;
  /** Create database `name` with the standard fixture; returns its URL. */
  createFixture(name: string): Promise<string>;
  /** Create login `user` with `password`, allowed to dump database `db`. */
  createUser(user: string, password: string, db: string): Promise<void>;
  /** Drop login `user` and whatever it was granted in database `db`. */
  dropUser(user: string, db: string): Promise<void>;
  /** Engine-specific checks on a restored fixture (it may be modified). */
  checkRestored(url: string): Promise<void>;
  /**
   * Credentials the server refuses. With trust authentication (the local PostgreSQL) a
   * wrong password alone is accepted, so an engine may use an unknown user instead.
   */
  refusedLogin(password: string): { user: string; password: string };
}

const BIG_TABLE_ROWS = 300_000;

/** Client tools an engine may start (the server's own backends also show database names). */
const TOOL_NAMES = new Set(['pg_dump', 'pg_restore', 'mariadb-dump', 'mysqldump', 'mariadb', 'mysql']);

/** Live dump/restore tools anywhere on the machine working on database `name`. */
function toolsWorkingOn(name: string): string[] {
  return processesMentioning(name)
    .filter((p) => TOOL_NAMES.has(p.name))
    .map((p) => `${p.pid} ${p.argv.join(' ')}`);
}

function info(url: string): ConnectionInfo {
  return parseConnectionUrl(url).info;
}

/** Wait until the dump has produced output (so the tool has exec'd and is mid-stream), then pause it. */
async function firstChunk(dump: DumpProcess): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    dump.stdout.once('data', () => {
      dump.stdout.pause();
      resolve();
    });
    dump.stdout.once('error', reject);
    dump.done.then(() => reject(new Error('dump finished before the test could interrupt it')), reject);
  });
}

/** A password with every character class that could break quoting or URL parsing. */
function awkwardPassword(): string {
  return `Pw ${uniqueName('x').slice(-8)} :@/?#%&"'$\`\\ ü😀`;
}

export function engineSuite(options: EngineSuiteOptions): void {
  const { kind, engine } = options;
  const created: string[] = [];
  let fixtureName: string;
  let fixture: ConnectionInfo;
  let bigName: string;
  let big: ConnectionInfo;
  /** A complete dump of the fixture, for restore tests that need real input. */
  let fixtureDump: Buffer;

  const fresh = (prefix: string): string => {
    const name = uniqueName(prefix);
    created.push(name);
    return name;
  };

  describe(`${kind} engine`, () => {
    before(async () => {
      fixtureName = fresh('sbx_fixture');
      fixture = info(await options.createFixture(fixtureName));
      bigName = fresh('sbx_big');
      await createDatabase(kind, bigName);
      await addLargeTable(kind, urlFor(kind, bigName), BIG_TABLE_ROWS);
      big = info(urlFor(kind, bigName));

      const dump = await engine.dump(fixture);
      const chunks: Buffer[] = [];
      for await (const chunk of dump.stdout) chunks.push(chunk as Buffer);
      await dump.done;
      fixtureDump = Buffer.concat(chunks);
    });

    after(async () => {
      // Every drop is attempted even when one fails, so one problem does not leave the rest behind.
      const results = await Promise.allSettled(created.map((name) => dropDatabase(kind, name)));
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed.length) throw new AggregateError(failed.map((f) => f.reason), 'could not drop test databases');
    });

    test('probe reports the server version and a non-zero size', async () => {
      const server = await engine.probe(fixture);
      assert.match(server.version, /^\d+\.\d+/);
      assert.ok(server.version.startsWith(`${server.major}.`), `${server.version} vs major ${server.major}`);
      assert.ok(server.sizeBytes > 0, `size ${server.sizeBytes}`);
      // The package suffix is not part of the version.
      assert.doesNotMatch(server.version, /\s|deb|ubuntu/i);
    });

    test('tableRowCounts counts every base table exactly', async () => {
      const counts = await engine.tableRowCounts(fixture);
      const fingerprints = await tableFingerprints(kind, urlFor(kind, fixtureName));
      assert.deepEqual(counts, Object.fromEntries(Object.entries(fingerprints).map(([t, f]) => [t, f.rows])));
      assert.equal(Object.values(counts).find((n) => n === 400), 400);
      assert.equal((await engine.tableRowCounts(big))[kind === 'postgresql' ? 'public.big' : 'big'], BIG_TABLE_ROWS);
    });

    test('a dump restores into a new database with identical data, views and routines', async () => {
      const targetName = fresh('sbx_restore');
      const target = { ...fixture, database: targetName };
      assert.equal(await engine.databaseExists(fixture, targetName), false);
      await engine.createDatabase(fixture, targetName);
      assert.equal(await engine.databaseExists(fixture, targetName), true);
      assert.equal(await engine.databaseIsEmpty(target), true);
      assert.equal(await engine.databaseIsEmpty(fixture), false);

      const dump = await engine.dump(fixture);
      assert.match(dump.clientVersion, kind === 'postgresql' ? /^pg_dump \(PostgreSQL\) \d+/ : /dump.*\d+\.\d+/);
      // Streamed straight from one tool into the other, as the restore path does.
      await Promise.all([dump.done, engine.restore(target, dump.stdout)]);

      const sourceUrl = urlFor(kind, fixtureName);
      const targetUrl = urlFor(kind, targetName);
      assert.deepEqual(await tableFingerprints(kind, targetUrl), await tableFingerprints(kind, sourceUrl));
      assert.deepEqual(await objectNames(kind, targetUrl), await objectNames(kind, sourceUrl));
      assert.deepEqual(await engine.tableRowCounts(target), await engine.tableRowCounts(fixture));
      assert.equal(await engine.databaseIsEmpty(target), false);
      await options.checkRestored(targetUrl);

      await engine.dropDatabase(fixture, targetName);
      assert.equal(await engine.databaseExists(fixture, targetName), false);
    });

    test('a refused login is an EngineError that never shows the password', async () => {
      const password = awkwardPassword();
      const login = options.refusedLogin(password);
      const conn = { ...fixture, ...login };
      const messages: string[] = [];
      for (const attempt of [() => engine.probe(conn), () => engine.tableRowCounts(conn)]) {
        await assert.rejects(attempt(), (err: unknown) => {
          assert.ok(err instanceof EngineError, String(err));
          assert.equal(err.permanent, true);
          messages.push(err.message);
          return true;
        });
      }
      const dump = await engine.dump(conn);
      dump.stdout.resume();
      await assert.rejects(dump.done, (err: unknown) => {
        assert.ok(err instanceof EngineError, String(err));
        messages.push(err.message);
        return true;
      });
      for (const message of messages) {
        assert.ok(message.includes(`"${login.user}"`) || message.includes(`'${login.user}'`), message);
        assert.ok(!message.includes(password), `password leaked: ${message}`);
        assert.ok(!message.includes(encodeURIComponent(password)), `password leaked: ${message}`);
      }
      assert.match(messages[0], new RegExp(`^cannot connect to ${kind} at 127\\.0\\.0\\.1:\\d+ as "${login.user}": `));
    });

    test('dumping a database that does not exist rejects done with a readable message', async () => {
      const missing = uniqueName('sbx_missing');
      const dump = await engine.dump({ ...fixture, database: missing });
      dump.stdout.resume();
      await assert.rejects(dump.done, (err: unknown) => {
        assert.ok(err instanceof EngineError, String(err));
        assert.match(err.message, new RegExp(`^${options.dumpTool} failed \\(exit \\d+\\): `));
        assert.match(err.message, /does not exist|Unknown database/);
        assert.ok(err.message.includes(missing), err.message);
        assert.equal(err.permanent, true);
        return true;
      });
    });

    test('kill() mid-dump rejects done and leaves no dump process behind', async () => {
      const dump = await engine.dump(big);
      await firstChunk(dump);
      const [child] = await waitFor(`a running ${options.dumpTool}`, () => {
        const found = childrenNamed(options.dumpTool);
        return found.length ? found : undefined;
      });
      assert.ok(isAlive(child.pid));
      dump.kill();
      dump.kill(); // safe twice
      await assert.rejects(dump.done, /was stopped before it finished/);
      assert.equal(isAlive(child.pid), false);
      assert.deepEqual(toolsWorkingOn(bigName), []);
      dump.stdout.destroy();
    });

    test('aborting the signal mid-dump kills the tool', async () => {
      const controller = new AbortController();
      const dump = await engine.dump(big, { signal: controller.signal });
      await firstChunk(dump);
      const [child] = childrenNamed(options.dumpTool);
      assert.ok(child, `no ${options.dumpTool} child found`);
      controller.abort();
      await assert.rejects(dump.done, /was canceled before it finished/);
      assert.equal(isAlive(child.pid), false);
      assert.deepEqual(toolsWorkingOn(bigName), []);
      dump.stdout.destroy();

      await assert.rejects(engine.dump(big, { signal: controller.signal }), /canceled before it started/);
    });

    test('the password reaches the dump tool only through its environment', async () => {
      const user = uniqueName('sbx_test_user');
      const password = awkwardPassword();
      await options.createUser(user, password, bigName);
      try {
        const url = urlFor(kind, bigName).replace(/^(\w+:\/\/)[^@]*@/, `$1${encodeURIComponent(user)}:${encodeURIComponent(password)}@`);
        const conn = info(url);
        assert.equal(conn.password, password);
        const dump = await engine.dump(conn);
        await firstChunk(dump);
        const [child] = childrenNamed(options.dumpTool);
        assert.ok(child, `no ${options.dumpTool} child found`);
        assert.ok(child.argv.some((a) => a.includes(bigName)), `not the dump of ${bigName}: ${child.argv.join(' ')}`);
        for (const arg of child.argv) {
          assert.ok(!arg.includes(password), `password on the command line: ${arg}`);
          assert.ok(!arg.includes(encodeURIComponent(password)), `encoded password on the command line: ${arg}`);
        }
        // Positive control: this very process did get the password, through its environment.
        assert.ok(processEnvironment(child.pid).includes(`${options.passwordVariable}=${password}`));

        let bytes = 0;
        dump.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
        dump.stdout.resume();
        await dump.done;
        assert.ok(bytes > BIG_TABLE_ROWS * 96, `only ${bytes} bytes dumped`);
      } finally {
        await options.dropUser(user, bigName);
      }
    });

    test('restore rejects input that is not a dump, naming the tool', async () => {
      const targetName = fresh('sbx_garbage');
      await engine.createDatabase(fixture, targetName);
      const target = { ...fixture, database: targetName };
      const garbage = Readable.from([Buffer.from('this is not a dump\n'.repeat(10_000))]);
      await assert.rejects(engine.restore(target, garbage), (err: unknown) => {
        assert.ok(err instanceof EngineError, String(err));
        assert.match(err.message, /^(pg_restore|mariadb|mysql) failed \(exit \d+\): \S/);
        return true;
      });
      assert.ok(garbage.destroyed, 'input left open after a failed restore');
    });

    test('restore kills the tool and rejects when its input fails', async () => {
      const targetName = fresh('sbx_broken');
      await engine.createDatabase(fixture, targetName);
      const target = { ...fixture, database: targetName };
      // Half the dump, then an error such as a checksum mismatch further up the pipeline.
      const input = new Readable({ read() {} });
      input.push(fixtureDump.subarray(0, Math.floor(fixtureDump.length / 2)));
      const restoring = engine.restore(target, input);
      setTimeout(() => input.destroy(new Error('sha256 mismatch')), 200);
      await assert.rejects(restoring, (err: unknown) => {
        assert.ok(err instanceof EngineError, String(err));
        assert.match(err.message, /input failed: sha256 mismatch/);
        assert.equal((err.cause as Error).message, 'sha256 mismatch');
        return true;
      });
      assert.deepEqual(toolsWorkingOn(targetName), []);
    });

    test('restore into a database that does not exist fails clearly', async () => {
      const missing = uniqueName('sbx_missing');
      await assert.rejects(engine.restore({ ...fixture, database: missing }, Readable.from([fixtureDump])), (err: unknown) => {
        assert.ok(err instanceof EngineError, String(err));
        assert.ok(err.message.includes(missing), err.message);
        return true;
      });
    });

    test('database management refuses unsafe names and reports conflicts', async () => {
      for (const bad of ['', 'a;b', 'a b', '-a', 'a"b', 'a`b', 'x'.repeat(64), 'ü']) {
        await assert.rejects(engine.createDatabase(fixture, bad), EngineError);
        await assert.rejects(engine.dropDatabase(fixture, bad), EngineError);
        await assert.rejects(engine.databaseExists(fixture, bad), EngineError);
      }
      await assert.rejects(engine.createDatabase(fixture, fixtureName), (err: unknown) => {
        assert.ok(err instanceof EngineError);
        assert.match(err.message, /exists/);
        assert.ok(err.message.includes(fixtureName), err.message);
        return true;
      });
      // Dropping what is not there is not an error.
      await engine.dropDatabase(fixture, uniqueName('sbx_missing'));
      // A database name with "-" must be quoted as an identifier everywhere.
      const dashed = uniqueName('sbx').replace('_', '-');
      created.push(dashed);
      await engine.createDatabase(fixture, dashed);
      assert.equal(await engine.databaseExists(fixture, dashed), true);
      assert.equal(await engine.databaseIsEmpty({ ...fixture, database: dashed }), true);
      await engine.dropDatabase(fixture, dashed);
      assert.equal(await engine.databaseExists(fixture, dashed), false);
    });
  });
}
