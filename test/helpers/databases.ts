/**
 * Real test databases on the local PostgreSQL and MariaDB servers: URLs, fixtures with
 * awkward data (all byte values, emoji, combining marks, NULLs, big decimals, JSON, a
 * view, routines, a trigger), and content fingerprints to prove a restore is identical.
 *
 * This file talks to the servers with the drivers directly and never through
 * src/engines, so it checks the engines instead of repeating their mistakes.
 *
 * Servers (override with environment variables; the database part is replaced):
 *   STRONGBOX_TEST_PG_URL     default postgresql://postgres@127.0.0.1:5432/postgres
 *   STRONGBOX_TEST_MYSQL_URL  default mysql://root@127.0.0.1:3306/mysql
 */
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import mysql2 from 'mysql2/promise';

export type Kind = 'postgresql' | 'mysql';

const PG_SERVER_URL = process.env.STRONGBOX_TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const MYSQL_SERVER_URL = process.env.STRONGBOX_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/mysql';

function withDatabase(serverUrl: string, db: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${db}`;
  return url.toString();
}

/** URL of database `db` on the test PostgreSQL server, as the admin user. */
export function pgUrl(db: string): string {
  return withDatabase(PG_SERVER_URL, db);
}

/** URL of database `db` on the test MariaDB server, as the admin user. */
export function mysqlUrl(db: string): string {
  return withDatabase(MYSQL_SERVER_URL, db);
}

/** URL of database `db` on the test server of `kind`. */
export function urlFor(kind: Kind, db: string): string {
  return kind === 'postgresql' ? pgUrl(db) : mysqlUrl(db);
}

/**
 * A fresh database (or role) name: `<prefix>_<time>_<random>`, lower-case, only
 * `[a-z0-9_]`, at most 63 characters, so it is valid on both servers unquoted.
 */
export function uniqueName(prefix: string): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 30) || 'sbx';
  return `${clean}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`.slice(0, 63);
}

/** Run `work` with a pg client connected to `url`; always disconnects. */
export async function withPgClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Run `work` with a mysql2 connection to `url` (multiple statements allowed); always disconnects. */
export async function withMysqlConnection<T>(url: string, work: (c: mysql2.Connection) => Promise<T>): Promise<T> {
  const c = await mysql2.createConnection({ uri: url, multipleStatements: true });
  c.on('error', () => undefined);
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

/**
 * Hold a named lock on the test MariaDB server (GET_LOCK) until the returned release: for
 * tests that take server-wide locks there, whose timings the same test in the other leg of
 * `npm test` would disturb. The lock is the connection's, so a killed test process frees it.
 */
export async function holdMysqlLock(name: string, seconds = 300): Promise<() => Promise<void>> {
  const c = await mysql2.createConnection({ uri: mysqlUrl('mysql') });
  c.on('error', () => undefined);
  const [rows] = await c.query<mysql2.RowDataPacket[]>('SELECT GET_LOCK(?, ?) AS got', [name, seconds]);
  if (rows[0].got !== 1) {
    await c.end();
    throw new Error(`the test lock ${name} on MariaDB was still held by another test process after ${seconds} s`);
  }
  return () => c.end();
}

/** Quote a PostgreSQL identifier. */
export function pgIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Quote a MySQL identifier. */
export function mysqlIdent(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/** Create an empty database `name` on the test server of `kind`. */
export async function createDatabase(kind: Kind, name: string): Promise<void> {
  if (kind === 'postgresql') {
    await withPgClient(pgUrl('postgres'), (c) => c.query(`CREATE DATABASE ${pgIdent(name)} TEMPLATE template0`));
  } else {
    await withMysqlConnection(mysqlUrl('mysql'), (c) => c.query(`CREATE DATABASE ${mysqlIdent(name)} CHARACTER SET utf8mb4`));
  }
}

/**
 * Drop database `name` if it exists. On PostgreSQL, sessions still connected to it are
 * ended first (WITH FORCE), so a failed test cannot leave an undroppable database.
 */
export async function dropDatabase(kind: Kind, name: string): Promise<void> {
  if (kind === 'postgresql') {
    await withPgClient(pgUrl('postgres'), (c) => c.query(`DROP DATABASE IF EXISTS ${pgIdent(name)} WITH (FORCE)`));
  } else {
    await withMysqlConnection(mysqlUrl('mysql'), (c) => c.query(`DROP DATABASE IF EXISTS ${mysqlIdent(name)}`));
  }
}

/** Every byte value 0..255 once, in order. */
export const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

/** Text that breaks naive encoders: emoji (with modifiers and ZWJ), CJK, combining marks, RTL, escapes. No NUL. */
export const TRICKY_TEXTS: readonly string[] = [
  'plain ascii',
  'emoji 😀🎉👍🏽 family 👨‍👩‍👧‍👦 flag 🇺🇦',
  'CJK 漢字 かな カナ 한국어 中文 𠜎𠜱',
  'combining e\u0301 a\u0308 n\u0303 (decomposed, not NFC)',
  'RTL العربية עברית',
  'quotes \' " ` backslash \\ tab\t newline\n CR\r end',
  'copy null marker \\N and \\\\N',
  'mathematical 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, BOM \uFEFF, ZWJ \u200D, NBSP \u00A0',
  "'); DROP TABLE items; --",
  '',
];

/** Name of the table, in its schema, whose name needs quoting. */
export const PG_ODD_SCHEMA = 'Other Schema';
export const PG_ODD_TABLE = 'odd "name"';
export const MYSQL_ODD_TABLE = 'odd `name`';

/** Rows in the fixtures' `items` table. */
export const ITEM_ROWS = 400;

/**
 * Create database `name` on the test PostgreSQL server with the fixture tables
 * (public.items, blobs, texts, measures, docs, events with an identity column, and
 * "Other Schema"."odd ""name"""), the view item_totals, the plpgsql function
 * item_value(integer, numeric) and the trigger docs_guard. Returns its URL.
 */
export async function createPgFixture(name: string): Promise<string> {
  await createDatabase('postgresql', name);
  const url = pgUrl(name);
  await withPgClient(url, async (c) => {
    await c.query(`
      CREATE TABLE items (
        id integer PRIMARY KEY,
        name text NOT NULL,
        qty integer,
        price numeric(12,4),
        created_at timestamptz NOT NULL,
        note text
      );
      INSERT INTO items
        SELECT g, 'item ' || g, g % 17, (g * 1.2345)::numeric(12,4),
               timestamptz '2024-01-01 00:00:00+00' + g * interval '37 minutes',
               CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END
          FROM generate_series(1, ${ITEM_ROWS}) g;

      CREATE TABLE blobs (id integer PRIMARY KEY, data bytea);
      CREATE TABLE texts (id integer PRIMARY KEY, body text);

      CREATE TABLE measures (
        id integer PRIMARY KEY,
        exact numeric,
        money numeric(20,6),
        approx double precision,
        day date,
        at timestamp(6),
        at_tz timestamptz,
        span interval,
        flag boolean,
        uid uuid
      );
      INSERT INTO measures VALUES
        (1, 12345678901234567890.123456789012, 0.000001, 3.141592653589793, '2024-02-29',
            '1999-12-31 23:59:59.999999', '2038-01-19 03:14:08+00', '1 year 2 mons 3 days 04:05:06', true,
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
        (2, -0.5, -99999999999999.999999, 'Infinity', '0044-03-15 BC', '-infinity', 'infinity', '-1 day', false, NULL),
        (3, NULL, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL),
        (4, 0, 0, -0.0, '1970-01-01', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', '0', true,
            '00000000-0000-0000-0000-000000000000');

      CREATE TABLE docs (id integer PRIMARY KEY, body jsonb NOT NULL, raw json);
      INSERT INTO docs VALUES
        (1, '{"name": "ünïcødé 😀", "tags": ["a", "b"], "n": 1.5e300, "nested": {"deep": [null, true, {"x": 1}]}}',
            '{"kept":  "as written", "dup": 1, "dup": 2}'),
        (2, '[]', NULL),
        (3, '"a string with an escaped newline \\n"', '  [1,2,3]  ');

      CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, label text NOT NULL);
      INSERT INTO events (label) SELECT 'event ' || g FROM generate_series(1, 10) g;

      CREATE SCHEMA ${pgIdent(PG_ODD_SCHEMA)};
      CREATE TABLE ${pgIdent(PG_ODD_SCHEMA)}.${pgIdent(PG_ODD_TABLE)} (id integer PRIMARY KEY, "Value" text);
      INSERT INTO ${pgIdent(PG_ODD_SCHEMA)}.${pgIdent(PG_ODD_TABLE)} VALUES (1, 'one'), (2, NULL), (3, 'three');

      CREATE VIEW item_totals AS
        SELECT qty, count(*) AS n, sum(price) AS total FROM items GROUP BY qty;

      CREATE FUNCTION item_value(p_qty integer, p_price numeric) RETURNS numeric
        LANGUAGE plpgsql IMMUTABLE AS $$
        BEGIN
          RETURN p_qty * p_price;
        END
        $$;

      CREATE FUNCTION docs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          NEW.raw := COALESCE(NEW.raw, '{}'::json);
          RETURN NEW;
        END
        $$;
      CREATE TRIGGER docs_guard BEFORE INSERT OR UPDATE ON docs FOR EACH ROW EXECUTE FUNCTION docs_guard();
    `);
    // docs_guard exists now; had it existed during the inserts above it would have
    // replaced docs 2's NULL. A restore that fires it would change that row: good to catch.
    await c.query('INSERT INTO blobs VALUES (1, $1), (2, $2), (3, NULL), (4, $3)', [
      ALL_BYTES,
      Buffer.alloc(0),
      Buffer.concat(Array.from({ length: 64 }, () => ALL_BYTES)),
    ]);
    for (const [i, text] of TRICKY_TEXTS.entries()) {
      await c.query('INSERT INTO texts VALUES ($1, $2)', [i + 1, text]);
    }
    await c.query('INSERT INTO texts VALUES ($1, NULL)', [TRICKY_TEXTS.length + 1]);
  });
  return url;
}

/**
 * Create database `name` on the test MariaDB server with the fixture tables (items,
 * blobs, texts, measures, docs, and `odd ``name```), the view item_totals, the stored
 * function item_value, the trigger items_note_default and the (disabled) event
 * nightly_noop. Returns its URL.
 */
export async function createMysqlFixture(name: string): Promise<string> {
  await createDatabase('mysql', name);
  const url = mysqlUrl(name);
  await withMysqlConnection(url, async (c) => {
    await c.query(`
      SET time_zone = '+00:00';
      CREATE TABLE digits (d TINYINT PRIMARY KEY);
      INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9);

      CREATE TABLE items (
        id INT PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        qty INT,
        price DECIMAL(12,4),
        created_at DATETIME(6) NOT NULL,
        note TEXT NULL
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
      INSERT INTO items
        SELECT n, CONCAT('item ', n), n % 17, n * 1.2345,
               TIMESTAMP '2024-01-01 00:00:00' + INTERVAL n * 37 MINUTE,
               IF(n % 5 = 0, NULL, CONCAT('note ', n))
          FROM (SELECT a.d + b.d * 10 + c.d * 100 AS n FROM digits a, digits b, digits c) seq
         WHERE n BETWEEN 1 AND ${ITEM_ROWS};

      CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB;
      CREATE TABLE texts (id INT PRIMARY KEY, body TEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin;

      CREATE TABLE measures (
        id INT PRIMARY KEY,
        exact DECIMAL(38,12),
        approx DOUBLE,
        day DATE,
        at DATETIME(6),
        stamp TIMESTAMP(6) NULL,
        span TIME(3),
        flag TINYINT(1),
        bits BIT(5),
        big BIGINT UNSIGNED,
        size ENUM('small', 'large'),
        perms SET('r', 'w', 'x'),
        yr YEAR
      ) ENGINE=InnoDB;
      INSERT INTO measures VALUES
        (1, 12345678901234567890.123456789012, 3.141592653589793, '2024-02-29', '1999-12-31 23:59:59.999999',
            '2038-01-19 03:14:07.000001', '-838:59:59.000', 1, b'10101', 18446744073709551615, 'large', 'r,x', 2155),
        (2, -0.5, -1.7976931348623157e308, '1000-01-01', '9999-12-31 23:59:59.999999',
            '1970-01-01 00:00:01', '00:00:00', 0, b'00000', 0, 'small', '', 1901),
        (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

      CREATE TABLE docs (id INT PRIMARY KEY, body JSON NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
      INSERT INTO docs VALUES
        (1, '{"name": "ünïcødé 😀", "tags": ["a", "b"], "n": 1.5e300, "nested": {"deep": [null, true, {"x": 1}]}}'),
        (2, '[]'),
        (3, '"a string"');

      CREATE TABLE ${mysqlIdent(MYSQL_ODD_TABLE)} (id INT PRIMARY KEY, \`Value\` TEXT) ENGINE=InnoDB;
      INSERT INTO ${mysqlIdent(MYSQL_ODD_TABLE)} VALUES (1, 'one'), (2, NULL), (3, 'three');

      CREATE VIEW item_totals AS
        SELECT qty, COUNT(*) AS n, SUM(price) AS total FROM items GROUP BY qty;

      CREATE FUNCTION item_value(p_qty INT, p_price DECIMAL(12,4)) RETURNS DECIMAL(24,4)
        DETERMINISTIC
        RETURN p_qty * p_price;

      -- After the items rows on purpose: they hold NULL notes that this trigger would
      -- have replaced, so a restore that loads data after creating triggers is caught.
      CREATE TRIGGER items_note_default BEFORE INSERT ON items
        FOR EACH ROW SET NEW.note = COALESCE(NEW.note, 'n/a');

      CREATE EVENT nightly_noop ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1;
    `);
    await c.query('INSERT INTO blobs VALUES (1, ?), (2, ?), (3, NULL), (4, ?)', [
      ALL_BYTES,
      Buffer.alloc(0),
      Buffer.concat(Array.from({ length: 64 }, () => ALL_BYTES)),
    ]);
    for (const [i, text] of TRICKY_TEXTS.entries()) {
      await c.query('INSERT INTO texts VALUES (?, ?)', [i + 1, text]);
    }
    await c.query('INSERT INTO texts VALUES (?, NULL)', [TRICKY_TEXTS.length + 1]);
  });
  return url;
}

/**
 * Add a table `big` (id primary key, ~100-byte payload) with `rows` rows to the database
 * at `url`: large enough that a dump of it is still running when a test interrupts it.
 */
export async function addLargeTable(kind: Kind, url: string, rows: number): Promise<void> {
  if (kind === 'postgresql') {
    await withPgClient(url, (c) =>
      c.query(`
        CREATE TABLE big (id integer PRIMARY KEY, payload text NOT NULL);
        INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text)
          FROM generate_series(1, ${rows}) g;`),
    );
  } else {
    await withMysqlConnection(url, (c) =>
      c.query(`
        CREATE TABLE big_digits (d TINYINT PRIMARY KEY);
        INSERT INTO big_digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9);
        CREATE TABLE big (id INT PRIMARY KEY, payload TEXT NOT NULL) ENGINE=InnoDB;
        INSERT INTO big
          SELECT n, CONCAT(MD5(n), MD5(n * 7), MD5(n * 13))
            FROM (SELECT a.d + b.d * 10 + c.d * 100 + d.d * 1000 + e.d * 10000 + f.d * 100000 + 1 AS n
                    FROM big_digits a, big_digits b, big_digits c, big_digits d, big_digits e, big_digits f) seq
           WHERE n <= ${rows};
        DROP TABLE big_digits;`),
    );
  }
}

export interface TableFingerprint {
  rows: number;
  /** sha256 over the column names and every row in primary-key order, values as text (binary as hex). */
  sha256: string;
}

/** Feeds rows into a hash in a serialization that is stable across dump and restore. */
class RowHasher {
  private readonly hash = createHash('sha256');
  private readonly unordered: string[] | null;
  rows = 0;

  constructor(columns: string[], ordered: boolean) {
    this.hash.update(JSON.stringify(columns) + '\n');
    this.unordered = ordered ? null : [];
  }

  add(values: unknown[]): void {
    const line = JSON.stringify(values.map(serializeValue)) + '\n';
    this.rows++;
    if (this.unordered) this.unordered.push(line);
    else this.hash.update(line);
  }

  digest(): TableFingerprint {
    // Without a primary key there is no stable order to read in; sort instead.
    if (this.unordered) for (const line of this.unordered.sort()) this.hash.update(line);
    return { rows: this.rows, sha256: this.hash.digest('hex') };
  }
}

function serializeValue(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return { hex: v.toString('hex') };
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return { [typeof v]: String(v) };
  if (typeof v === 'bigint') return { bigint: v.toString() };
  return { json: JSON.stringify(v) };
}

/** Every value as the server's own text output, so nothing is lost to JavaScript numbers or dates. */
const RAW_TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export interface FingerprintOptions {
  /**
   * Keys as quoted identifiers (`"schema"."table"`, `` `table` ``), which cannot collide
   * the way "schema.table" does for x."y.z" and "x.y".z.
   */
  quotedKeys?: boolean;
  /** PostgreSQL: materialized views too (their contents are recomputed by a restore). */
  matviews?: boolean;
  /** MariaDB: every row version of system-versioned tables (FOR SYSTEM_TIME ALL), with row_start/row_end. */
  history?: boolean;
}

/**
 * Fingerprint every base table of the database at `url`: row count and a sha256 of all
 * rows read in primary-key order, computed here in Node (not with server-side
 * aggregates, which truncate). Keys are "schema.table" on PostgreSQL, "table" on MySQL,
 * like `Engine.tableRowCounts` (see FingerprintOptions for unambiguous keys). An
 * inheritance parent is read without its children (ONLY), which are tables of their own.
 * MariaDB system-versioned tables count as base tables (their current rows, or all of
 * them with `history`).
 */
export async function tableFingerprints(kind: Kind, url: string, options: FingerprintOptions = {}): Promise<Record<string, TableFingerprint>> {
  const result: Record<string, TableFingerprint> = {};
  if (kind === 'postgresql') {
    await withPgClient(url, async (c) => {
      // Fixed output formats, so the text of a value does not depend on server settings.
      await c.query(`SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
                     SET bytea_output = 'hex'; SET extra_float_digits = 1`);
      const tables = await c.query<{ schema: string; table: string; pk: string[] | null }>(`
        SELECT n.nspname AS schema, c.relname AS table,
               (SELECT array_agg(a.attname::text ORDER BY k.ord)
                  FROM pg_index i
                  CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE i.indrelid = c.oid AND i.indisprimary) AS pk
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r'${options.matviews ? ", 'm'" : ''}) AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
         ORDER BY 1, 2`);
      for (const { schema, table, pk } of tables.rows) {
        const order = pk?.length ? ` ORDER BY ${pk.map(pgIdent).join(', ')}` : '';
        const res = await c.query({
          text: `SELECT * FROM ONLY ${pgIdent(schema)}.${pgIdent(table)}${order}`,
          rowMode: 'array',
          types: RAW_TEXT_TYPES,
        });
        const hasher = new RowHasher(
          res.fields.map((f) => f.name),
          Boolean(pk?.length),
        );
        for (const row of res.rows as unknown[][]) hasher.add(row);
        result[options.quotedKeys ? `${pgIdent(schema)}.${pgIdent(table)}` : `${schema}.${table}`] = hasher.digest();
      }
    });
  } else {
    const database = new URL(url).pathname.slice(1);
    const c = await mysql2.createConnection({
      uri: url,
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      // The stored JSON text, not a re-serialization of a parsed value.
      jsonStrings: true,
      rowsAsArray: true,
    });
    try {
      await c.query(`SET time_zone = '+00:00'`);
      const [tables] = await c.query<mysql2.RowDataPacket[]>(
        `SELECT table_name, table_type FROM information_schema.tables
          WHERE table_schema = ? AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY table_name`,
        [database],
      );
      for (const [table, type] of tables as unknown as [string, string][]) {
        const allVersions = options.history === true && type === 'SYSTEM VERSIONED';
        const [pkRows] = await c.query<mysql2.RowDataPacket[]>(
          `SELECT column_name FROM information_schema.key_column_usage
            WHERE table_schema = ? AND table_name = ? AND constraint_name = 'PRIMARY'
            ORDER BY ordinal_position`,
          [database, table],
        );
        const pk = (pkRows as unknown as [string][]).map(([col]) => col);
        // Every version of a row shares its key; such rows are sorted instead.
        const ordered = pk.length > 0 && !allVersions;
        const order = ordered ? ` ORDER BY ${pk.map(mysqlIdent).join(', ')}` : '';
        const select = allVersions ? `SELECT *, row_start, row_end FROM ${mysqlIdent(table)} FOR SYSTEM_TIME ALL` : `SELECT * FROM ${mysqlIdent(table)}${order}`;
        const [rows, fields] = await c.query<mysql2.RowDataPacket[]>(select);
        const hasher = new RowHasher(
          fields.map((f) => f.name),
          ordered,
        );
        for (const row of rows as unknown as unknown[][]) hasher.add(row);
        result[options.quotedKeys ? mysqlIdent(table) : table] = hasher.digest();
      }
    } finally {
      await c.end();
    }
  }
  return result;
}

export interface ObjectNames {
  views: string[];
  routines: string[];
  triggers: string[];
  /** Scheduled events (MySQL only; always empty on PostgreSQL). */
  events: string[];
}

/**
 * Names of the non-table objects of the database at `url`, sorted, to check that a
 * restore brought them back. PostgreSQL names are "schema.name"; MySQL names are bare.
 */
export async function objectNames(kind: Kind, url: string): Promise<ObjectNames> {
  if (kind === 'postgresql') {
    return withPgClient(url, async (c) => {
      const filter = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`;
      const names = async (sql: string): Promise<string[]> =>
        (await c.query<{ name: string }>(sql)).rows.map((r) => r.name).sort();
      return {
        views: await names(`SELECT n.nspname || '.' || c.relname AS name FROM pg_class c
                              JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND ${filter}`),
        routines: await names(`SELECT n.nspname || '.' || p.proname AS name FROM pg_proc p
                                 JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${filter}`),
        triggers: await names(`SELECT n.nspname || '.' || c.relname || '.' || t.tgname AS name FROM pg_trigger t
                                 JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                                WHERE NOT t.tgisinternal AND ${filter}`),
        events: [],
      };
    });
  }
  const database = new URL(url).pathname.slice(1);
  return withMysqlConnection(url, async (c) => {
    const names = async (sql: string): Promise<string[]> => {
      const [rows] = await c.query<mysql2.RowDataPacket[]>(sql, [database]);
      return rows.map((r) => String(r.name)).sort();
    };
    return {
      views: await names('SELECT table_name AS name FROM information_schema.views WHERE table_schema = ?'),
      routines: await names('SELECT routine_name AS name FROM information_schema.routines WHERE routine_schema = ?'),
      triggers: await names('SELECT trigger_name AS name FROM information_schema.triggers WHERE trigger_schema = ?'),
      events: await names('SELECT event_name AS name FROM information_schema.events WHERE event_schema = ?'),
    };
  });
}
