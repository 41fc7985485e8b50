import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionUrlError, isSafeDatabaseName, parseConnectionUrl, redactConnectionUrl } from '../../src/engines/index.js';

const SECRET = 's3cr:t/p@ss?#%word';
const ENCODED = encodeURIComponent(SECRET);

describe('parseConnectionUrl', () => {
  test('reads every part of a PostgreSQL URL and percent-decodes the credentials', () => {
    assert.deepEqual(parseConnectionUrl(`postgresql://us%40er:${ENCODED}@db.example.com:6543/app_db`), {
      kind: 'postgresql',
      info: { host: 'db.example.com', port: 6543, database: 'app_db', user: 'us@er', password: SECRET },
    });
  });

  test('accepts every scheme alias and applies default ports', () => {
    assert.deepEqual(parseConnectionUrl('postgres://u@h/d').info.port, 5432);
    assert.equal(parseConnectionUrl('postgres://u@h/d').kind, 'postgresql');
    assert.deepEqual(parseConnectionUrl('mysql://u:p@h/d'), {
      kind: 'mysql',
      info: { host: 'h', port: 3306, database: 'd', user: 'u', password: 'p' },
    });
    assert.equal(parseConnectionUrl('mariadb://u@h/d').kind, 'mysql');
    assert.equal(parseConnectionUrl('MySQL://u@h/d').kind, 'mysql');
  });

  test('allows an empty password and IPv6 literals', () => {
    assert.equal(parseConnectionUrl('mysql://root@127.0.0.1/d').info.password, '');
    assert.equal(parseConnectionUrl('mysql://root:@127.0.0.1/d').info.password, '');
    const v6 = parseConnectionUrl('postgresql://u@[::1]:5433/d').info;
    assert.equal(v6.host, '::1');
    assert.equal(v6.port, 5433);
    assert.equal(parseConnectionUrl('postgresql://u@[::1]/d').info.port, 5432);
  });

  test('splits credentials from the host at the last "@", so unencoded "@" in a password works', () => {
    const info = parseConnectionUrl('postgresql://u:p@ss@h/d').info;
    assert.equal(info.password, 'p@ss');
    assert.equal(info.host, 'h');
  });

  const refused: [string, RegExp][] = [
    [`http://u:${ENCODED}@h/d`, /unsupported connection URL scheme "http"/],
    [`u:${ENCODED}@h/d`, /must start with postgresql:\/\//],
    ['postgresql://h/d', /no user/],
    [`postgresql://:${ENCODED}@h/d`, /no user/],
    [`postgresql://u:${ENCODED}@/d`, /no host/],
    [`postgresql://u:${ENCODED}@:5432/d`, /no host/],
    [`postgresql://u:${ENCODED}@h`, /no database name/],
    [`postgresql://u:${ENCODED}@h/`, /no database name/],
    [`postgresql://u:${ENCODED}@h:0/d`, /invalid port/],
    [`postgresql://u:${ENCODED}@h:65536/d`, /invalid port/],
    [`postgresql://u:${ENCODED}@h:54x/d`, /invalid port/],
    [`postgresql://u:${ENCODED}@h:/d`, /invalid port/],
    [`postgresql://u:${ENCODED}@h/d?sslmode=require`, /options \(\?\.\.\.\) are not supported/],
    [`postgresql://u:${ENCODED}@h/d#x`, /must not contain "#"/],
    [`postgresql://u:${ENCODED}@h/a;drop`, /database name "a;drop" is not allowed/],
    [`postgresql://u:${ENCODED}@h/a/b`, /is not allowed/],
    [`postgresql://u:${ENCODED}@h/-d`, /is not allowed/],
    [`postgresql://u:${ENCODED}@-oProxy/d`, /invalid host/],
    [`postgresql://u:${ENCODED}@h h/d`, /invalid host/],
    [`postgresql://u:${ENCODED}@[::1/d`, /unterminated IPv6/],
    ['postgresql://u:%E0%A4%A@h/d', /password is not correctly percent-encoded/],
    [`postgresql://u:${ENCODED}%00@h/d`, /password must not contain a NUL character/],
  ];
  for (const [url, expected] of refused) {
    test(`refuses ${redactConnectionUrl(url)} without showing the password`, () => {
      assert.throws(
        () => parseConnectionUrl(url),
        (err: unknown) => {
          assert.ok(err instanceof ConnectionUrlError);
          assert.match(err.message, expected);
          for (const secret of [SECRET, ENCODED, '%E0%A4%A']) assert.ok(!err.message.includes(secret), err.message);
          return true;
        },
      );
    });
  }
});

describe('isSafeDatabaseName', () => {
  test('accepts letters, digits, "_" and "-" up to 63 characters', () => {
    for (const name of ['a', 'A_b-9', '_x', '9lives', 'x'.repeat(63)]) assert.equal(isSafeDatabaseName(name), true, name);
  });
  test('refuses everything else', () => {
    for (const name of ['', '-a', 'a b', 'a;b', 'a.b', 'a/b', 'a"b', 'a`b', "a'b", 'ü', 'x'.repeat(64), 'a\nb']) {
      assert.equal(isSafeDatabaseName(name), false, JSON.stringify(name));
    }
  });
});

describe('redactConnectionUrl', () => {
  test('replaces the password and keeps the rest', () => {
    assert.equal(redactConnectionUrl(`postgresql://u:${ENCODED}@h:5432/d`), 'postgresql://u:***@h:5432/d');
    assert.equal(redactConnectionUrl('postgresql://u:p@ss@h/d'), 'postgresql://u:***@h/d');
  });
  test('leaves URLs without a password alone', () => {
    assert.equal(redactConnectionUrl('mysql://root@h/d'), 'mysql://root@h/d');
  });
  test('hides input that is not a URL at all', () => {
    assert.equal(redactConnectionUrl(SECRET), '***');
  });
});
