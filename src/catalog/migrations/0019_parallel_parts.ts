import type { Kysely } from 'kysely';

/**
 * Parallel dump and restore (`jobs: N`, issue 14):
 * - artifacts.parts: JSON list of the part objects of a parallel backup's copy (pre-data,
 *   data parts, post-data: file, size, raw size, sha256, tables), all in the folder of the
 *   artifact's `path`, which is then the backup's SHA256SUMS file. Null for a single-stream
 *   dump, whose artifacts stay exactly as they were.
 * - backups.jobs: the parallelism a backup was requested with; null = the branch's option.
 * - branch_options.jobs: the branch's parallelism for its backups (1 = one stream).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('artifacts').addColumn('parts', 'text').execute();
  await db.schema.alterTable('backups').addColumn('jobs', 'integer').execute();
  await db.schema.alterTable('branch_options').addColumn('jobs', 'integer', (c) => c.notNull().defaultTo(1)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('branch_options').dropColumn('jobs').execute();
  await db.schema.alterTable('backups').dropColumn('jobs').execute();
  await db.schema.alterTable('artifacts').dropColumn('parts').execute();
}
