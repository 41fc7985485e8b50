/**
 * What a dump holds, as the row counters record it while it streams: every table keyed by
 * (schema, table) with its rows and a digest of its data as it appears in the dump, an
 * inventory of the other objects (kind, schema, name, digest of the definition) and, on
 * PostgreSQL, the large objects (count and digest). Two dumps of the same database give
 * equal contents; `compareContents` names every difference between two of them.
 *
 * Tables are a list of records, never an object keyed by a joined "schema.table" string:
 * `x."y.z"` and `"x.y".z` are two tables and must stay two (issue 11, defect 3).
 */

/** One table: its rows and the sha256 of its data as the dump writes it. */
export interface TableContents {
  /** PostgreSQL schema; null on MySQL, whose dump is of one database restored under any name. */
  schema: string | null;
  table: string;
  rows: number;
  sha256: string;
}

/** One object of the inventory. */
export interface InventoryEntry {
  /** The dump's own word for it: TABLE, INDEX, CONSTRAINT, FUNCTION, TRIGGER, VIEW, SEQUENCE SET, EVENT... */
  kind: string;
  schema: string | null;
  name: string;
  /** sha256 of its definition as the dump writes it. */
  sha256: string;
}

export interface DumpContents {
  format: 'strongbox-contents/1';
  engine: 'postgresql' | 'mysql';
  tables: TableContents[];
  objects: InventoryEntry[];
  /** PostgreSQL large objects: how many, and a sha256 over their oids and bytes; null on MySQL. */
  large_objects: { count: number; sha256: string } | null;
  /** Dump options a copy must be dumped with again to compare (MySQL --dump-history). */
  dump_options?: { dump_history?: boolean };
}

export type DifferenceProblem = 'missing' | 'unexpected' | 'rows' | 'data' | 'definition' | 'count';

/** One way in which a restored copy differs from what the backup recorded. */
export interface ContentDifference {
  /** 'table data', 'large objects', or the inventory kind (TABLE, INDEX, FUNCTION...). */
  kind: string;
  schema: string | null;
  name: string;
  /**
   * missing: recorded, not in the copy; unexpected: in the copy, not recorded; rows: a
   * table's row count differs; data: same count, other bytes; definition: the object's
   * definition differs; count: the number of large objects differs.
   */
  problem: DifferenceProblem;
  expected: number | string | null;
  actual: number | string | null;
}

/** Options of the dump readers. */
export interface ReaderOptions {
  /**
   * Digest each table's data (default true). Off, tables get no digest ('') and only
   * counts and the inventory are recorded: for measuring what digesting costs (bench/).
   */
  digests?: boolean;
}

/** The row hash of a reader whose digests are off: takes bytes, keeps nothing. */
export function noDigest(): import('node:crypto').Hash {
  const none = { update: () => none, digest: () => '' };
  return none as unknown as import('node:crypto').Hash;
}

/** A key that keeps (schema, name) apart whatever characters the names hold. */
function keyOf(...parts: Array<string | null>): string {
  return JSON.stringify(parts);
}

/**
 * Every difference between what a backup recorded (`expected`) and what a restored
 * copy holds (`actual`), tables first, in a stable order. Empty when they are the same.
 */
export function compareContents(expected: DumpContents, actual: DumpContents): ContentDifference[] {
  const out: ContentDifference[] = [];
  const byKey = <T extends { schema: string | null }>(list: T[], name: (t: T) => string, kind: (t: T) => string = () => '') => {
    const map = new Map<string, T[]>();
    for (const t of list) {
      const k = keyOf(kind(t), t.schema, name(t));
      const same = map.get(k);
      if (same) same.push(t);
      else map.set(k, [t]);
    }
    return map;
  };

  const et = byKey(expected.tables, (t) => t.table);
  const at = byKey(actual.tables, (t) => t.table);
  for (const [k, list] of et) {
    const e = list[0];
    const a = at.get(k)?.[0];
    const where = { kind: 'table data', schema: e.schema, name: e.table };
    if (!a) out.push({ ...where, problem: 'missing', expected: e.rows, actual: null });
    else if (a.rows !== e.rows) out.push({ ...where, problem: 'rows', expected: e.rows, actual: a.rows });
    else if (a.sha256 !== e.sha256) out.push({ ...where, problem: 'data', expected: e.sha256, actual: a.sha256 });
  }
  for (const [k, list] of at) {
    if (!et.has(k)) out.push({ kind: 'table data', schema: list[0].schema, name: list[0].table, problem: 'unexpected', expected: null, actual: list[0].rows });
  }

  const eo = byKey(expected.objects, (o) => o.name, (o) => o.kind);
  const ao = byKey(actual.objects, (o) => o.name, (o) => o.kind);
  for (const [k, list] of eo) {
    const e = list[0];
    const other = ao.get(k);
    const where = { kind: e.kind, schema: e.schema, name: e.name };
    if (!other) {
      out.push({ ...where, problem: 'missing', expected: e.sha256, actual: null });
      continue;
    }
    // The same name may be there more than once (pg_dump's tags are not unique for every kind).
    const want = list.map((x) => x.sha256).sort();
    const got = other.map((x) => x.sha256).sort();
    if (want.join() !== got.join()) out.push({ ...where, problem: 'definition', expected: want.join(' '), actual: got.join(' ') });
  }
  for (const [k, list] of ao) {
    if (!eo.has(k)) out.push({ kind: list[0].kind, schema: list[0].schema, name: list[0].name, problem: 'unexpected', expected: null, actual: list[0].sha256 });
  }

  const el = expected.large_objects;
  const al = actual.large_objects;
  if (el && al) {
    if (el.count !== al.count) out.push({ kind: 'large objects', schema: null, name: 'large objects', problem: 'count', expected: el.count, actual: al.count });
    else if (el.sha256 !== al.sha256) out.push({ kind: 'large objects', schema: null, name: 'large objects', problem: 'data', expected: el.sha256, actual: al.sha256 });
  }
  return out;
}

/** "public"."a.b": a name as people can read it back, with the parts kept apart. */
export function displayName(d: Pick<ContentDifference, 'schema' | 'name'>): string {
  const quote = (s: string) => (/^[\p{L}\p{N}_$]+$/u.test(s) ? s : `"${s.replace(/"/g, '""')}"`);
  return d.schema === null ? quote(d.name) : `${quote(d.schema)}.${quote(d.name)}`;
}

/** One line per difference, for an error message. */
export function describeDifference(d: ContentDifference): string {
  const what = d.kind === 'table data' ? `table ${displayName(d)}` : d.kind === 'large objects' ? 'large objects' : `${d.kind.toLowerCase()} ${displayName(d)}`;
  switch (d.problem) {
    case 'missing':
      return `${what} is missing`;
    case 'unexpected':
      return `${what} was not in the backup`;
    case 'rows':
      return `${what} has ${d.actual} rows, ${d.expected} recorded`;
    case 'data':
      return d.kind === 'large objects' ? 'large objects differ in content' : `${what} holds other data (same ${'row'} count)`;
    case 'definition':
      return `${what} has another definition`;
    case 'count':
      return `${d.actual} large objects, ${d.expected} recorded`;
  }
}

/** Parse stored contents JSON (the `backup_contents` table, or a manifest's `contents`); null when absent or not ours. */
export function parseContents(json: string | null | undefined): DumpContents | null {
  if (!json) return null;
  try {
    const c = JSON.parse(json) as DumpContents;
    if (c?.format !== 'strongbox-contents/1' || !Array.isArray(c.tables) || !Array.isArray(c.objects)) return null;
    return c;
  } catch {
    return null;
  }
}
