/**
 * The child-process plumbing under every dump and restore, exercised with real child
 * processes (small Node scripts standing in for a tool that misbehaves on purpose).
 */
import fs from 'node:fs';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { EngineError } from '../../src/engines/index.js';
import { KILL_GRACE_MS, feedTool, runTool, scrubSecrets, startTool, toolEnvironment, type ToolRun } from '../../src/engines/process.js';
import { isAlive } from '../helpers/processes.js';

const SECRET = 'hunter2-sekret';

/** A "tool" that runs `script` in a fresh Node process. */
function node(script: string, stdin: 'pipe' | 'ignore' = 'ignore', signal?: AbortSignal): ToolRun {
  return runTool({
    name: 'faketool',
    path: process.execPath,
    args: ['-e', script],
    env: toolEnvironment({}),
    secrets: [SECRET],
    stdin,
    signal,
  });
}

/** Wait until the child has printed something, i.e. its script is running. */
function started(run: ToolRun): Promise<void> {
  return new Promise((resolve) => run.child.stdout!.once('data', () => resolve()));
}

describe('scrubSecrets', () => {
  test('removes plain and percent-encoded occurrences', () => {
    const secret = 'p@ss word';
    assert.equal(scrubSecrets(`a p@ss word b p%40ss%20word c`, [secret]), 'a *** b *** c');
  });
  test('ignores empty secrets', () => {
    assert.equal(scrubSecrets('text', ['']), 'text');
  });
  test('masks the password where it stands alone, never inside other words', () => {
    // The password `x` once turned "does not exist" into "does not e***ist".
    const text = 'connect to postgresql://u:x@db:5432/shop failed: database "shop" does not exist; password=x; tried \'x\' (x)';
    assert.equal(scrubSecrets(text, ['x']), 'connect to postgresql://u:***@db:5432/shop failed: database "shop" does not exist; password=***; tried \'***\' (***)');
    assert.equal(scrubSecrets('role "admin" does not exist (user admin2, password admin)', ['admin']), 'role "***" does not exist (user admin2, password ***)');
    // Secrets that begin or end with punctuation match wherever they appear.
    assert.equal(scrubSecrets('url u:!x@h and x!y', ['!x']), 'url u:***@h and x!y');
    assert.equal(scrubSecrets('u:p@ss!@h', ['p@ss!']), 'u:***@h');
    // Regular-expression characters in a password are plain characters.
    assert.equal(scrubSecrets('u:a.b*c@h aXbbc', ['a.b*c']), 'u:***@h aXbbc');
    assert.equal(scrubSecrets('pässwörd=süß; süßer', ['süß']), 'pässwörd=***; süßer');
  });
});

describe('toolEnvironment', () => {
  test('drops inherited connection settings and sets only non-empty values', () => {
    const saved = { ...process.env };
    try {
      process.env.PGPASSWORD = 'inherited';
      process.env.PGHOST = 'elsewhere';
      process.env.MYSQL_PWD = 'inherited';
      const env = toolEnvironment({ PGPASSWORD: '', MYSQL_PWD: 'mine' });
      assert.equal(env.PGPASSWORD, undefined);
      assert.equal(env.PGHOST, undefined);
      assert.equal(env.MYSQL_PWD, 'mine');
      assert.equal(env.PATH, process.env.PATH);
    } finally {
      process.env = saved;
    }
  });
});

describe('runTool', () => {
  test('resolves when the tool exits 0', async () => {
    const run = node('process.stdout.write("ok")');
    run.child.stdout!.resume();
    await run.done;
  });

  test('rejects with the tail of stderr, secrets scrubbed, on a non-zero exit', async () => {
    const run = node(`
      process.stderr.write("x".repeat(100000) + "\\n");
      process.stderr.write("fatal: login with ${SECRET} refused\\n", () => process.exit(3));
    `);
    run.child.stdout!.resume();
    await assert.rejects(run.done, (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.match(err.message, /^faketool failed \(exit 3\): x+\nfatal: login with \*\*\* refused$/);
      assert.ok(err.message.length < 4_200, `message of ${err.message.length} characters`);
      return true;
    });
  });

  test('rejects when the executable cannot be started', async () => {
    const run = runTool({
      name: 'nothere',
      path: '/nonexistent/bin/nothere',
      args: [],
      env: toolEnvironment({}),
      secrets: [],
      stdin: 'ignore',
    });
    await assert.rejects(run.done, /^EngineError: cannot run nothere \(\/nonexistent\/bin\/nothere\): .*ENOENT/);
  });

  test('a NUL byte in the environment is refused without quoting the value', () => {
    assert.throws(
      () =>
        runTool({
          name: 'faketool',
          path: process.execPath,
          args: ['-e', ''],
          env: toolEnvironment({ PGPASSWORD: `${SECRET}\0x` }),
          secrets: [SECRET],
          stdin: 'ignore',
        }),
      (err: unknown) => {
        assert.ok(err instanceof EngineError);
        assert.match(err.message, /^cannot run faketool .*: an argument or environment value is invalid/);
        assert.ok(!err.message.includes(SECRET), err.message);
        return true;
      },
    );
  });

  test('kill() escalates to SIGKILL when the tool ignores SIGTERM', async () => {
    const run = node(`process.on("SIGTERM", () => {}); process.stdout.write("ready"); setInterval(() => {}, 1000);`);
    await started(run);
    const pid = run.child.pid!;
    const t0 = Date.now();
    run.kill();
    await assert.rejects(run.done, /faketool was stopped before it finished/);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= KILL_GRACE_MS - 100 && elapsed < KILL_GRACE_MS + 3_000, `took ${elapsed} ms`);
    assert.equal(run.child.signalCode, 'SIGKILL');
    assert.equal(isAlive(pid), false);
  });

  test('an abort signal stops the tool', async () => {
    const controller = new AbortController();
    const run = node(`process.stdout.write("ready"); setInterval(() => {}, 1000);`, 'ignore', controller.signal);
    await started(run);
    controller.abort(new Error('user canceled'));
    await assert.rejects(run.done, (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.equal(err.message, 'faketool was canceled before it finished');
      assert.equal((err.cause as Error).message, 'user canceled');
      return true;
    });
  });
});

describe('feedTool', () => {
  const big = (): Readable => Readable.from((function* () {
    for (let i = 0; i < 200; i++) yield Buffer.alloc(64 * 1024, i);
  })());

  test('a tool that exits 0 without reading everything still has its input drained', async () => {
    const input = big();
    const run = node('process.exit(0)', 'pipe');
    await feedTool(run, input, 'faketool', []);
    assert.equal(input.readableEnded, true);
  });

  test('a tool that fails early reports its own error, not EPIPE, and the input is destroyed', async () => {
    const input = big();
    const run = node('process.stderr.write("bad header", () => process.exit(2))', 'pipe');
    await assert.rejects(feedTool(run, input, 'faketool', []), /^EngineError: faketool failed \(exit 2\): bad header$/);
    assert.equal(input.destroyed, true);
  });

  test('an input error kills the tool and is the reason given', async () => {
    const input = new Readable({ read() {} });
    input.push('partial');
    const run = node('process.stdin.resume(); process.stdout.write("ready")', 'pipe');
    run.child.stdout!.resume();
    const feeding = feedTool(run, input, 'faketool', [SECRET]);
    setTimeout(() => input.destroy(new Error(`checksum mismatch near ${SECRET}`)), 100);
    await assert.rejects(feeding, (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.equal(err.message, 'faketool input failed: checksum mismatch near ***');
      return true;
    });
    assert.equal(isAlive(run.child.pid!), false);
  });

  test('an input that already failed before feeding began still kills the tool (no hang)', { timeout: 10_000 }, async () => {
    const input = new Readable({ read() {} });
    input.on('error', () => undefined);
    input.destroy(new Error('checksum mismatch'));
    await new Promise((r) => setImmediate(r));
    const run = node('process.stdin.resume()', 'pipe');
    await assert.rejects(feedTool(run, input, 'faketool', []), /faketool input failed: checksum mismatch/);
    assert.equal(isAlive(run.child.pid!), false);
  });

  test('the whole input reaches the tool', async () => {
    const input = big();
    const run = node(
      'let n = 0; process.stdin.on("data", (c) => n += c.length); process.stdin.on("end", () => process.stdout.write(String(n)));',
      'pipe',
    );
    let out = '';
    run.child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await feedTool(run, input, 'faketool', []);
    assert.equal(out, String(200 * 64 * 1024));
  });
});

describe('startTool: the same tools, started on the spawner thread', () => {
  const spec = (script: string, stdin: 'pipe' | 'fifo' | 'ignore' = 'ignore', env: NodeJS.ProcessEnv = toolEnvironment({})) => ({
    name: 'faketool',
    path: process.execPath,
    args: ['-e', script],
    env,
    secrets: [SECRET],
    stdin,
  });

  test('stdin fed, stdout read, through FIFOs; success is exit 0', async () => {
    const run = await startTool(spec(`process.stdin.pipe(process.stdout)`, 'pipe'));
    const out: Buffer[] = [];
    run.child.stdout!.on('data', (c: Buffer) => out.push(c));
    await feedTool(run, Readable.from([Buffer.from('rows\n')]), 'faketool', [SECRET]);
    assert.equal(Buffer.concat(out).toString(), 'rows\n');
  });

  test("stdin 'fifo': the writing end is a bare descriptor of the caller's, the tool reads an end of file once it is closed", async () => {
    const run = await startTool(spec(`process.stdin.pipe(process.stdout)`, 'fifo'));
    assert.equal(run.child.stdin, null);
    assert.equal(typeof run.stdinFd, 'number');
    const out: Buffer[] = [];
    run.child.stdout!.on('data', (c: Buffer) => out.push(c));
    fs.writeSync(run.stdinFd!, 'rows\n');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(run.child.exitCode, null, 'still reading while the descriptor is open');
    fs.closeSync(run.stdinFd!);
    await run.done;
    assert.equal(Buffer.concat(out).toString(), 'rows\n');
    assert.throws(() => runTool(spec('', 'fifo')), /stdin "fifo" needs startTool/);
  });

  test('a failure says the exit code and the end of stderr, with secrets scrubbed', async () => {
    const run = await startTool(spec(`process.stderr.write("FATAL: password ${SECRET} refused"); process.exit(3)`));
    run.child.stdout!.resume();
    await assert.rejects(run.done, (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.equal(err.message, 'faketool failed (exit 3): FATAL: password *** refused');
      return true;
    });
  });

  test('a tool that is not there, and a NUL byte in the environment, are refused plainly', async () => {
    const run = await startTool({ ...spec(''), name: 'nothere', path: '/nonexistent/bin/nothere' });
    await assert.rejects(run.done, /^EngineError: cannot run nothere \(\/nonexistent\/bin\/nothere\): .*ENOENT/);
    await assert.rejects(startTool(spec('', 'ignore', toolEnvironment({ PGPASSWORD: `${SECRET}\0x` }))), (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.match(err.message, /^cannot run faketool .*: an argument or environment value is invalid/);
      assert.ok(!err.message.includes(SECRET), err.message);
      return true;
    });
  });

  test('kill() stops it, and says so', async () => {
    const run = await startTool(spec(`process.stdout.write("ready"); setInterval(() => {}, 1000);`));
    await started(run);
    const pid = run.child.pid!;
    run.kill();
    await assert.rejects(run.done, /faketool was stopped before it finished/);
    assert.equal(isAlive(pid), false);
  });
});
