/**
 * Server logs: one line per request (method, URL without query secrets, status, duration,
 * token id, request id), never the token's secret; JSON lines when stdout is not a terminal,
 * human lines when it is or when STRONGBOX_LOG_FORMAT=pretty says so.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { api, startServer, until, type TestServer } from './helpers/server.js';
import { newTestCatalog } from './helpers/catalog.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { createLogger } from '../src/context.js';
import { formatPretty, loggableUrl } from '../src/log.js';

const ROOT = path.resolve(import.meta.dirname, '..');

function jsonLines(file: string): Array<Record<string, any>> {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

describe('one log line per request', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({}, { runner: false });
  });
  after(async () => server?.close());

  test('each request is one JSON line with method, URL, status, duration, token id and request id; the secret is nowhere', async () => {
    const [tokenId, secret] = server.token.split(':') as [string, string];
    const marker = crypto.randomBytes(4).toString('hex');
    const requests: Array<{ method: string; url: string; token: string | null; status: number; headers?: Record<string, string> }> = [
      { method: 'GET', url: `/health?probe=${marker}`, token: null, status: 200 },
      { method: 'GET', url: `/v1/organizations/default?probe=${marker}`, token: server.token, status: 200 },
      { method: 'GET', url: `/v1/organizations/nosuch${marker}`, token: server.token, status: 404 },
      { method: 'GET', url: `/no/such/route/${marker}`, token: server.token, status: 404 },
      { method: 'GET', url: `/v1/organizations/default?why=${marker}`, token: null, status: 401 },
      { method: 'POST', url: `/v1/organizations/default/databases?probe=${marker}`, token: server.token, status: 422 },
      { method: 'GET', url: `/managed-postgresql/v1/backups/x${marker}`, token: null, status: 404, headers: { authorization: `Bearer ${server.token}` } },
      { method: 'GET', url: `/api/backups?probe=${marker}`, token: null, status: 200, headers: { 'x-api-key': server.token } },
      // A credential in the query is not logged (no route takes one; a script may still send it).
      { method: 'GET', url: `/health?probe=${marker}&api_key=${secret}&Token=${secret}`, token: null, status: 200 },
    ];
    for (const r of requests) {
      const res = await api(server, r.method, r.url, r.method === 'POST' ? { name: 'x', kind: 'oracle' } : undefined, r.token, r.headers ?? {});
      assert.equal(res.status, r.status, `${r.method} ${r.url}: ${JSON.stringify(res.body)}`);
    }
    // The line is written once the response is done, which the client may see first.
    const lines = await until('a log line for every request', async () => {
      const mine = jsonLines(server.logFile).filter((l) => JSON.stringify(l).includes(marker));
      return mine.length >= requests.length ? mine : undefined;
    }, 10_000, 50);
    await new Promise((r) => setTimeout(r, 200));
    const all = jsonLines(server.logFile);
    const mine = all.filter((l) => JSON.stringify(l).includes(marker));
    assert.equal(mine.length, requests.length, `one line per request, got:\n${mine.map((l) => JSON.stringify(l)).join('\n')}`);
    assert.equal(lines.length, requests.length);
    assert.deepEqual(all.filter((l) => /incoming request|request completed|not found/.test(String(l.msg))), [], "Fastify's own request lines are off");

    for (const [i, r] of requests.entries()) {
      const l = mine[i]!;
      assert.equal(l.msg, 'request');
      assert.equal(l.method, r.method);
      assert.equal(l.status, r.status);
      assert.equal(typeof l.ms, 'number');
      assert.ok(l.ms >= 0 && l.ms < 60_000, `ms ${l.ms}`);
      assert.match(String(l.reqId), /\S/, 'the request id');
      assert.equal(l.level, 30);
      const authenticated = r.status !== 401 && !r.url.startsWith('/health');
      assert.equal(l.token_id, authenticated ? tokenId : undefined, `${r.method} ${r.url}: token id`);
    }
    assert.equal(mine[0]!.url, `/health?probe=${marker}`);
    assert.equal(mine.at(-1)!.url, `/health?probe=${marker}&api_key=[redacted]&Token=[redacted]`);
    assert.ok(!fs.readFileSync(server.logFile, 'utf8').includes(secret), 'the token secret is never logged');
  });
});

describe('log formats', () => {
  test('STRONGBOX_LOG_FORMAT is auto, json or pretty; anything else stops with the variable named', () => {
    assert.equal(loadConfig({}).logFormat, 'auto');
    assert.equal(loadConfig({ STRONGBOX_LOG_FORMAT: 'json' }).logFormat, 'json');
    assert.equal(loadConfig({ STRONGBOX_LOG_FORMAT: 'pretty' }).logFormat, 'pretty');
    assert.throws(() => loadConfig({ STRONGBOX_LOG_FORMAT: 'fancy' }), (e: unknown) => e instanceof ConfigError && e.variable === 'STRONGBOX_LOG_FORMAT');
  });

  test('auto is pretty on a terminal and JSON elsewhere; json and pretty force one', () => {
    const written = (format: 'auto' | 'json' | 'pretty', isTTY: boolean) => {
      const out = Object.assign(new PassThrough(), { isTTY });
      let text = '';
      out.on('data', (c) => (text += c));
      const log = createLogger({ logLevel: 'info', logFormat: format }, out);
      log.info({ connection_url: 'postgresql://u:hunter2@h/db', n: 1 }, 'hello');
      log.flush?.();
      return text;
    };
    for (const [format, isTTY, pretty] of [['auto', true, true], ['auto', false, false], ['json', true, false], ['pretty', false, true]] as const) {
      const text = written(format, isTTY).replace(/\u001b\[[0-9;]*m/g, '');
      assert.ok(!text.includes('hunter2'), 'redacted in both forms');
      if (pretty) {
        assert.match(text, /^\d\d:\d\d:\d\d\.\d{3} .*INFO.* hello .*n=.*1/m, `${format} (tty ${isTTY}): ${text}`);
        assert.ok(!text.trimStart().startsWith('{'), `${format} (tty ${isTTY}) is not JSON`);
      } else assert.equal(JSON.parse(text).msg, 'hello', `${format} (tty ${isTTY}) is JSON`);
      assert.equal(text.trim().split('\n').length, 1);
    }
    // Colors only for a terminal.
    assert.match(written('auto', true), /\u001b\[/);
    assert.doesNotMatch(written('pretty', false), /\u001b\[/);
  });

  test('a pretty request line reads like a request; errors keep their stack', () => {
    const time = Date.parse('2026-05-02T08:00:03.112Z');
    const req = formatPretty(JSON.stringify({ level: 30, time, pid: 1, hostname: 'h', reqId: 'req-7', method: 'GET', url: '/v1/organizations', status: 200, ms: 3.1, token_id: 'tk01', msg: 'request' }));
    assert.equal(req, '08:00:03.112 INFO  GET /v1/organizations 200 3.1 ms token=tk01 req=req-7');
    const err = formatPretty(JSON.stringify({ level: 50, time, err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at f (x.ts:1:1)' }, msg: 'unhandled error' }));
    assert.equal(err, '08:00:03.112 ERROR unhandled error err=boom\n    at f (x.ts:1:1)');
    assert.equal(formatPretty('not json'), 'not json');
  });

  test('query values that may be credentials are not logged', () => {
    assert.equal(loggableUrl('/v1/x?page=2&per_page=5'), '/v1/x?page=2&per_page=5');
    assert.equal(loggableUrl('/x?access_token=abc&password=p&sig=s&pageToken=t&flag'), '/x?access_token=[redacted]&password=[redacted]&sig=[redacted]&pageToken=[redacted]&flag');
    assert.equal(loggableUrl('/x?%74oken=abc'), '/x?%74oken=[redacted]');
    assert.ok(loggableUrl('/' + 'a'.repeat(2000)).length <= 501);
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * `strongbox serve` as a user runs it, its stdout a pipe or (through script(1)) a terminal,
 * on a new catalog of the matrix's kind. Resolves once it answers /health.
 */
async function runServe(env: Record<string, string>, terminal: boolean): Promise<{ url: string; token: string; output: () => string; stop: () => Promise<void> }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strongbox-logging-'));
  const port = await freePort();
  const token = `tk${crypto.randomBytes(4).toString('hex')}:${crypto.randomBytes(24).toString('base64url')}`;
  const catalog = await newTestCatalog();
  const childEnv = { ...process.env, STRONGBOX_DATA_DIR: dataDir, STRONGBOX_PORT: String(port), STRONGBOX_BOOTSTRAP_TOKEN: token, STRONGBOX_CATALOG_URL: catalog.url, NO_COLOR: '', ...env };
  const node = [process.execPath, '--import', 'tsx', 'src/main.ts', 'serve'];
  // script(1) gives the child a pseudo-terminal; the command line holds no secret.
  const child: ChildProcess = terminal
    ? spawn('script', ['-qfec', node.map((a) => `'${a}'`).join(' '), '/dev/null'], { cwd: ROOT, env: childEnv, detached: true, stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(node[0]!, node.slice(1), { cwd: ROOT, env: childEnv, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const stopped = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
    if (!stopped) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
      await exited;
    }
    await catalog.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await until(`strongbox serve on ${url} (output so far: ${out.slice(-500)})`, async () => {
      if (child.exitCode !== null) throw new Error(`strongbox serve exited ${child.exitCode}: ${out}`);
      return (await fetch(`${url}/health`).catch(() => null))?.ok ? true : undefined;
    }, 60_000, 200);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, token, output: () => out, stop };
}

describe('strongbox serve logs', () => {
  test('JSON lines when stdout is not a terminal; pretty ones with STRONGBOX_LOG_FORMAT=pretty', async () => {
    for (const format of ['auto', 'pretty'] as const) {
      const s = await runServe({ STRONGBOX_LOG_FORMAT: format }, false);
      try {
        const r = await fetch(`${s.url}/v1/organizations?page=1`, { headers: { authorization: s.token } });
        assert.equal(r.status, 200);
        const line = await until('the request line', async () => s.output().split('\n').find((l) => l.includes('/v1/organizations?page=1')), 10_000, 50);
        if (format === 'auto') {
          const o = JSON.parse(line);
          assert.deepEqual([o.msg, o.method, o.status, o.token_id], ['request', 'GET', 200, s.token.split(':')[0]]);
        } else {
          assert.match(line, new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} INFO  GET /v1/organizations\\?page=1 200 [\\d.]+ ms token=${s.token.split(':')[0]} req=\\S+$`));
        }
        assert.equal(s.output().split('\n').filter((l) => l.includes('/v1/organizations?page=1')).length, 1, 'one line');
        assert.ok(!s.output().includes(s.token.split(':')[1]!), 'no secret');
      } finally {
        await s.stop();
      }
    }
  });

  test('pretty lines on a terminal, by default', async () => {
    const s = await runServe({}, true);
    try {
      await fetch(`${s.url}/health?from=terminal`);
      const line = await until('the request line', async () => s.output().split(/\r?\n/).find((l) => l.includes('/health?from=terminal')), 10_000, 50);
      // A terminal gets colors: strip them to read the line.
      const plain = line.replace(/\u001b\[[0-9;]*m/g, '');
      assert.match(plain, /^\d\d:\d\d:\d\d\.\d{3} INFO  GET \/health\?from=terminal 200 [\d.]+ ms req=\S+$/, JSON.stringify(line));
      assert.ok(!s.output().includes('"level":'), 'no JSON lines on a terminal');
    } finally {
      await s.stop();
    }
  });
});
