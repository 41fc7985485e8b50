/**
 * What a MySQL/MariaDB database needs besides its dump: the character set, collation and
 * comment to create it with, the accounts its objects name (DEFINERs, grantees), and the
 * privileges granted on it, which a dump of one database never carries.
 */
import type mysql2 from 'mysql2/promise';
import { EngineError, type DatabaseProperties, type Ownership } from '../engine.js';

type Grant = NonNullable<Ownership['grants']>[number];

function tick(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

function sqlString(text: string): string {
  return "'" + text.replace(/\\/g, '\\\\').replace(/'/g, "''") + "'";
}

/** Character set and collation names are plain words; anything else is not one. */
const CHARSET_NAME = /^[A-Za-z0-9_]{1,64}$/;

/** CREATE DATABASE for `name`, like the recorded database when `properties` are known. */
export function createDatabaseSql(name: string, properties: DatabaseProperties | null): { sql: string; values: unknown[] } {
  if (properties === null || properties.character_set === undefined) return { sql: `CREATE DATABASE ${tick(name)} CHARACTER SET utf8mb4`, values: [] };
  const { character_set: charset, collation } = properties;
  if (!CHARSET_NAME.test(charset) || (collation !== undefined && !CHARSET_NAME.test(collation))) {
    throw new EngineError(`the recorded character set "${charset}" / collation "${collation}" is not a valid name`);
  }
  let sql = `CREATE DATABASE ${tick(name)} CHARACTER SET ${charset}`;
  if (collation) sql += ` COLLATE ${collation}`;
  const values: unknown[] = [];
  if (properties.comment) {
    sql += ' COMMENT ?';
    values.push(properties.comment);
  }
  return { sql, values };
}

/** Cycling sequences that have wrapped at least once, with their round (MariaDB's cycle_count). */
export async function readSequenceRounds(c: mysql2.Connection, database: string): Promise<Record<string, number>> {
  const [seqs] = await c.query<mysql2.RowDataPacket[]>(`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'SEQUENCE'`, [database]);
  const rounds: Record<string, number> = {};
  for (const { name } of seqs) {
    const [rows] = await c.query<mysql2.RowDataPacket[]>(`SELECT cycle_count AS n FROM ${tick(database)}.${tick(String(name))}`);
    const n = Number(rows[0]?.n ?? 0);
    if (n > 0) rounds[String(name)] = n;
  }
  return rounds;
}

/** `'user'@'host'` (the form grants use) from information_schema's `user@host` DEFINER text. */
export function accountFromDefiner(definer: string): string {
  const at = definer.lastIndexOf('@');
  const user = at < 0 ? definer : definer.slice(0, at);
  const host = at < 0 ? '' : definer.slice(at + 1);
  return host === '' ? sqlString(user) : `${sqlString(user)}@${sqlString(host)}`;
}

/** `'user'@'host'` or `'role'` → its parts (a role has the empty host, as in mysql.user). */
export function parseAccount(account: string): { user: string; host: string } {
  const m = /^'((?:[^'\\]|''|\\.)*)'(?:@'((?:[^'\\]|''|\\.)*)')?$/.exec(account);
  if (!m) throw new EngineError(`"${account}" is not an account name of the form 'user'@'host'`);
  const unquote = (s: string) => s.replace(/''/g, "'").replace(/\\(.)/g, '$1');
  return { user: unquote(m[1]), host: m[2] === undefined ? '' : unquote(m[2]) };
}

/** Privileges granted on the database, its tables and its columns, as this account can see them. */
export async function readGrants(c: mysql2.Connection, database: string): Promise<Grant[]> {
  const grants: Grant[] = [];
  const read = async (sql: string, table: boolean, column: boolean) => {
    const [rows] = await c.query<mysql2.RowDataPacket[]>(sql, [database]);
    for (const r of rows) {
      grants.push({
        grantee: String(r.grantee),
        privilege: String(r.privilege),
        table: table ? String(r.table_name) : null,
        column: column ? String(r.column_name) : null,
        grantable: String(r.grantable) === 'YES',
      });
    }
  };
  await read('SELECT grantee AS grantee, privilege_type AS privilege, is_grantable AS grantable FROM information_schema.schema_privileges WHERE table_schema = ? ORDER BY 1, 2', false, false);
  await read('SELECT grantee AS grantee, table_name AS table_name, privilege_type AS privilege, is_grantable AS grantable FROM information_schema.table_privileges WHERE table_schema = ? ORDER BY 1, 2, 3', true, false);
  await read('SELECT grantee AS grantee, table_name AS table_name, column_name AS column_name, privilege_type AS privilege, is_grantable AS grantable FROM information_schema.column_privileges WHERE table_schema = ? ORDER BY 1, 2, 3, 4', true, true);
  return grants;
}

/** Every account that is a DEFINER of an object of the database or a grantee of `grants`. */
export async function readOwnershipRoles(c: mysql2.Connection, database: string, grants: Grant[]): Promise<string[]> {
  const [rows] = await c.query<mysql2.RowDataPacket[]>(
    `SELECT definer AS definer FROM information_schema.routines WHERE routine_schema = ?
     UNION SELECT definer FROM information_schema.views WHERE table_schema = ?
     UNION SELECT definer FROM information_schema.triggers WHERE trigger_schema = ?
     UNION SELECT definer FROM information_schema.events WHERE event_schema = ?`,
    [database, database, database, database],
  );
  const roles = new Set<string>(grants.map((g) => g.grantee));
  for (const r of rows) if (r.definer) roles.add(accountFromDefiner(String(r.definer)));
  return [...roles].sort();
}

/** Re-create `grants` on `database` (the restored copy, whatever its name). */
export async function applyGrants(c: mysql2.Connection, database: string, grants: Grant[]): Promise<void> {
  for (const g of grants) {
    // Privilege names come from the server, but the record may have been edited: words only.
    if (!/^[A-Z][A-Z ]{0,40}$/.test(g.privilege)) throw new EngineError(`"${g.privilege}" is not a privilege name`);
    const { user, host } = parseAccount(g.grantee);
    const to = host === '' && !g.grantee.includes('@') ? sqlString(user) : `${sqlString(user)}@${sqlString(host)}`;
    const on = g.table === null ? `${tick(database)}.*` : `${tick(database)}.${tick(g.table)}`;
    const what = g.column === null ? g.privilege : `${g.privilege} (${tick(g.column)})`;
    await c.query(`GRANT ${what} ON ${on} TO ${to}${g.grantable ? ' WITH GRANT OPTION' : ''}`);
  }
}
