/**
 * What a PostgreSQL database is besides what pg_dump writes for a restore under another
 * name: its encoding, locale provider and locales (which decide how text sorts), its
 * `ALTER DATABASE … SET` settings, comment and connection limit; and the roles that own
 * its objects or are granted on them.
 */
import pg from 'pg';
import type { DatabaseProperties } from '../engine.js';

const PROVIDERS: Record<string, string> = { c: 'libc', i: 'icu', b: 'builtin' };

/** Schemas that belong to PostgreSQL itself. */
const USER_SCHEMA = `n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;

/** The database's own properties; columns differ by version, so read the row as JSON. */
export async function readDatabaseProperties(client: pg.Client, name: string): Promise<DatabaseProperties> {
  const res = await client.query<{ d: Record<string, unknown>; encoding: string; comment: string | null; settings: string[] | null }>(
    `SELECT to_jsonb(d) - 'datacl' AS d, pg_encoding_to_char(d.encoding) AS encoding,
            shobj_description(d.oid, 'pg_database') AS comment,
            (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0) AS settings
       FROM pg_database d WHERE d.datname = current_database()`,
  );
  const { d, encoding, comment, settings } = res.rows[0];
  const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
  return {
    name,
    encoding,
    locale_provider: PROVIDERS[String(d.datlocprovider ?? 'c')] ?? 'libc',
    lc_collate: String(d.datcollate),
    lc_ctype: String(d.datctype),
    // 15 and 16 call it daticulocale; 17 datlocale (also for the builtin provider).
    icu_locale: text(d.datlocale) ?? text(d.daticulocale),
    icu_rules: text(d.daticurules),
    settings: settings ?? [],
    connection_limit: typeof d.datconnlimit === 'number' ? d.datconnlimit : -1,
    comment: comment ?? null,
  };
}

/**
 * CREATE DATABASE `name` like `p` on a server of version `serverVersionNum`, then its
 * settings and comment. Returns notes on what could not be kept. Locale errors are the
 * server's to report (the caller turns them into a clear message).
 */
export async function createDatabaseLike(client: pg.Client, quotedName: string, p: DatabaseProperties | null, serverVersionNum: number): Promise<string[]> {
  const notes: string[] = [];
  // template0, because template1 may hold objects an administrator added, which would
  // collide with the objects of a restored dump (and only template0 takes any locale).
  let sql = `CREATE DATABASE ${quotedName} TEMPLATE template0`;
  if (p === null || p.encoding === undefined) {
    await client.query(sql);
    return notes;
  }
  const lit = (s: string) => client.escapeLiteral(s);
  sql += ` ENCODING ${lit(p.encoding)} LC_COLLATE ${lit(p.lc_collate!)} LC_CTYPE ${lit(p.lc_ctype!)}`;
  let provider = p.locale_provider ?? 'libc';
  if (provider === 'builtin' && serverVersionNum < 170000) {
    notes.push(`the builtin locale provider (locale ${p.icu_locale}) needs PostgreSQL 17; the database uses libc locale ${p.lc_collate}`);
    provider = 'libc';
  }
  if (provider === 'icu' && serverVersionNum < 150000) {
    notes.push(`ICU locale ${p.icu_locale} as the database default needs PostgreSQL 15; the database uses libc locale ${p.lc_collate}`);
    provider = 'libc';
  }
  if (provider === 'icu' && p.icu_locale) {
    sql += ` LOCALE_PROVIDER icu ICU_LOCALE ${lit(p.icu_locale)}`;
    if (p.icu_rules) {
      if (serverVersionNum >= 160000) sql += ` ICU_RULES ${lit(p.icu_rules)}`;
      else notes.push(`ICU rules ${JSON.stringify(p.icu_rules)} need PostgreSQL 16 and were not applied: text may sort differently`);
    }
  } else if (provider === 'builtin' && p.icu_locale) {
    sql += ` LOCALE_PROVIDER builtin BUILTIN_LOCALE ${lit(p.icu_locale)}`;
  } else if (serverVersionNum >= 150000) {
    sql += ' LOCALE_PROVIDER libc';
  }
  if (p.connection_limit !== undefined && p.connection_limit >= 0) sql += ` CONNECTION LIMIT ${Math.trunc(p.connection_limit)}`;
  await client.query(sql);
  for (const setting of p.settings ?? []) {
    const eq = setting.indexOf('=');
    if (eq <= 0) continue;
    const name = setting.slice(0, eq);
    const value = setting.slice(eq + 1);
    try {
      await client.query(`ALTER DATABASE ${quotedName} SET ${quoteIdent(name)} TO ${settingValue(client, name, value)}`);
    } catch (err) {
      notes.push(`setting ${name} = ${value} was not applied: ${(err as Error).message}`);
    }
  }
  if (p.comment) {
    try {
      await client.query(`COMMENT ON DATABASE ${quotedName} IS ${lit(p.comment)}`);
    } catch (err) {
      notes.push(`the database comment was not applied: ${(err as Error).message}`);
    }
  }
  return notes;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Settings whose stored value is a list of quoted items (GUC_LIST_QUOTE in PostgreSQL):
 * each item becomes its own literal, as pg_dump does, or "a, b" would become one name.
 */
const LIST_SETTINGS = new Set(['search_path', 'temp_tablespaces', 'session_preload_libraries', 'shared_preload_libraries', 'local_preload_libraries', 'unix_socket_directories']);

function settingValue(client: pg.Client, name: string, value: string): string {
  if (!LIST_SETTINGS.has(name.toLowerCase())) return client.escapeLiteral(value);
  const items = splitGucList(value);
  return items.length ? items.map((i) => client.escapeLiteral(i)).join(', ') : "''";
}

/** PostgreSQL's SplitGUCList: comma-separated, items optionally double-quoted ("" inside). */
export function splitGucList(value: string): string[] {
  const items: string[] = [];
  let i = 0;
  while (i < value.length) {
    while (i < value.length && /\s/.test(value[i])) i++;
    if (i >= value.length) break;
    let item = '';
    if (value[i] === '"') {
      i++;
      for (;;) {
        if (i >= value.length) break;
        if (value[i] === '"') {
          if (value[i + 1] === '"') {
            item += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        item += value[i++];
      }
    } else {
      while (i < value.length && value[i] !== ',' && !/\s/.test(value[i])) item += value[i++];
    }
    items.push(item);
    while (i < value.length && /\s/.test(value[i])) i++;
    if (value[i] === ',') i++;
  }
  return items;
}

/**
 * Every role that owns an object pg_dump writes for this database, is granted a privilege
 * on one (or granted it), is named in default privileges or a row-level policy. Objects
 * that belong to an extension are left out: CREATE EXTENSION makes them, owner and all.
 */
export async function readOwnershipRoles(client: pg.Client): Promise<string[]> {
  const notExtension = (catalog: string, oid: string) =>
    `NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '${catalog}'::regclass AND e.objid = ${oid} AND e.deptype = 'e')`;
  const res = await client.query<{ role: string }>(`
    WITH owned(owner, acl) AS (
      SELECT c.relowner, c.relacl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE ${USER_SCHEMA} AND ${notExtension('pg_class', 'c.oid')}
      UNION ALL SELECT n.nspowner, n.nspacl FROM pg_namespace n WHERE ${USER_SCHEMA} AND ${notExtension('pg_namespace', 'n.oid')}
      UNION ALL SELECT p.proowner, p.proacl FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE ${USER_SCHEMA} AND ${notExtension('pg_proc', 'p.oid')}
      UNION ALL SELECT t.typowner, t.typacl FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE ${USER_SCHEMA} AND ${notExtension('pg_type', 't.oid')}
      UNION ALL SELECT NULL::oid, a.attacl FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.attacl IS NOT NULL AND ${USER_SCHEMA}
      UNION ALL SELECT l.lomowner, l.lomacl FROM pg_largeobject_metadata l
      UNION ALL SELECT d.defaclrole, d.defaclacl FROM pg_default_acl d
      UNION ALL SELECT x.collowner, NULL FROM pg_collation x JOIN pg_namespace n ON n.oid = x.collnamespace WHERE ${USER_SCHEMA}
      UNION ALL SELECT x.conowner, NULL FROM pg_conversion x JOIN pg_namespace n ON n.oid = x.connamespace WHERE ${USER_SCHEMA}
      UNION ALL SELECT x.oprowner, NULL FROM pg_operator x JOIN pg_namespace n ON n.oid = x.oprnamespace
       WHERE ${USER_SCHEMA} AND ${notExtension('pg_operator', 'x.oid')}
      UNION ALL SELECT x.opcowner, NULL FROM pg_opclass x JOIN pg_namespace n ON n.oid = x.opcnamespace
       WHERE ${USER_SCHEMA} AND ${notExtension('pg_opclass', 'x.oid')}
      UNION ALL SELECT x.opfowner, NULL FROM pg_opfamily x JOIN pg_namespace n ON n.oid = x.opfnamespace
       WHERE ${USER_SCHEMA} AND ${notExtension('pg_opfamily', 'x.oid')}
      UNION ALL SELECT x.cfgowner, NULL FROM pg_ts_config x JOIN pg_namespace n ON n.oid = x.cfgnamespace WHERE ${USER_SCHEMA}
      UNION ALL SELECT x.dictowner, NULL FROM pg_ts_dict x JOIN pg_namespace n ON n.oid = x.dictnamespace WHERE ${USER_SCHEMA}
      UNION ALL SELECT x.stxowner, NULL FROM pg_statistic_ext x JOIN pg_namespace n ON n.oid = x.stxnamespace WHERE ${USER_SCHEMA}
      UNION ALL SELECT x.evtowner, NULL FROM pg_event_trigger x
      UNION ALL SELECT x.pubowner, NULL FROM pg_publication x
      UNION ALL SELECT x.fdwowner, x.fdwacl FROM pg_foreign_data_wrapper x WHERE ${notExtension('pg_foreign_data_wrapper', 'x.oid')}
      UNION ALL SELECT x.srvowner, x.srvacl FROM pg_foreign_server x
    )
    SELECT DISTINCT r.rolname AS role FROM (
      SELECT owner AS oid FROM owned
      UNION SELECT (aclexplode(acl)).grantee FROM owned WHERE acl IS NOT NULL
      UNION SELECT (aclexplode(acl)).grantor FROM owned WHERE acl IS NOT NULL
      UNION SELECT unnest(polroles) FROM pg_policy
    ) x JOIN pg_roles r ON r.oid = x.oid
    ORDER BY 1`);
  return res.rows.map((r) => r.role);
}
