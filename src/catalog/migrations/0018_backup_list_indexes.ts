import { PostgresAdapter, sql, type Kysely } from 'kysely';

/**
 * The backups list at 100,000 backups on one branch (issue 14, bench/list-api.ts).
 *
 * 1. Indexes that end in (created_at, id), the list's order, after every filter it takes
 *    (none, state, policy; each with deleted_at, which the default list always tests), so
 *    that a page is a seek into one index and the next page a continuation, never a sort.
 *    (branch_id, created_at) lacked deleted_at and id: every request looked up 100k rows.
 *    An expression index serves from/to, which compare coalesce(started_at, created_at), and
 *    holds the keys of the rows it finds (created_at, id) so that they are read from it alone.
 *    branches.restored_from_backup_id is read for every listed page (restored_branches).
 *
 * 2. backup_counts: how many backups each branch has per (policy, state, live or deleted,
 *    month of created_at), kept exact by triggers in the same transaction as the change to
 *    `backups`, whatever code makes it (API, scheduler, runner, retention, rebuild). Summing
 *    a branch's few hundred rows gives total_count (PlanetScale's list shape needs it) in
 *    well under a millisecond instead of count(*) over the branch; the per-month sums also
 *    locate page N (the month that holds its first row and the offset inside that month), so
 *    a deep page skips at most one month of index entries instead of N × per_page rows.
 *    Triggers fire only when one of those keys changes (not on progress or lease updates).
 *    `policy_key` is '' for backups without a policy (a primary key column cannot be null).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('backups_branch_created').execute();
  await db.schema.createIndex('backups_branch_created_id').on('backups').columns(['branch_id', 'created_at', 'id']).execute();
  await db.schema.createIndex('backups_branch_live_created').on('backups').columns(['branch_id', 'deleted_at', 'created_at', 'id']).execute();
  await db.schema.createIndex('backups_branch_state_created').on('backups').columns(['branch_id', 'state', 'deleted_at', 'created_at', 'id']).execute();
  await db.schema.createIndex('backups_branch_policy_created').on('backups').columns(['branch_id', 'backup_policy_id', 'deleted_at', 'created_at', 'id']).execute();
  await db.schema
    .createIndex('backups_branch_live_started')
    .on('backups')
    .columns(['branch_id', 'deleted_at'])
    .expression(sql`coalesce(started_at, created_at), created_at, id`)
    .execute();
  await db.schema.createIndex('branches_restored_from').on('branches').column('restored_from_backup_id').execute();
  // Reads that other parts run every minute or so over every backup, each of which held the
  // event loop (and so every request) for 0.2–0.45 s at 100k backups on SQLite: the newest
  // success per branch (jobs/overdue.ts; an index-only read now), and retention's look for
  // deleted backups that still have a stored copy (jobs/retention.ts: the deleted ones'
  // ids, then a look-up of each one's copies in the index alone).
  await db.schema.createIndex('backups_state_branch_completed').on('backups').columns(['state', 'branch_id', 'completed_at']).execute();
  await db.schema.createIndex('backups_deleted_id').on('backups').columns(['deleted_at', 'id']).execute();
  // (backup_id, state) serves everything (backup_id) did.
  await db.schema.createIndex('artifacts_backup_state').on('artifacts').columns(['backup_id', 'state']).execute();
  await db.schema.dropIndex('artifacts_backup').execute();

  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  // Keyed in the order the list reads it (a branch's live rows, month by month, newest first)
  // so that the sums per month need no sort; on SQLite the rows live in that key (WITHOUT
  // ROWID): 66 instead of 107 µs a list at 100k backups.
  let counts = db.schema
    .createTable('backup_counts')
    .addColumn('branch_id', 'text', (c) => c.notNull())
    .addColumn('live', 'integer', (c) => c.notNull())
    .addColumn('month', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('policy_key', 'text', (c) => c.notNull())
    .addColumn('n', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('backup_counts_pk', ['branch_id', 'live', 'month', 'state', 'policy_key']);
  if (!postgres) counts = counts.modifyEnd(sql`without rowid`);
  await counts.execute();

  // The key of a backup row (NEW or OLD), in each dialect's spelling.
  const key = (r: 'new' | 'old') =>
    postgres
      ? `${r}.branch_id, (${r}.deleted_at is null)::int, ${r}.state, coalesce(${r}.backup_policy_id, ''), substr(${r}.created_at, 1, 7)`
      : `${r}.branch_id, ${r}.deleted_at is null, ${r}.state, coalesce(${r}.backup_policy_id, ''), substr(${r}.created_at, 1, 7)`;
  const match = (r: 'new' | 'old') =>
    `branch_id = ${r}.branch_id and live = ${postgres ? `(${r}.deleted_at is null)::int` : `(${r}.deleted_at is null)`} and state = ${r}.state and policy_key = coalesce(${r}.backup_policy_id, '') and month = substr(${r}.created_at, 1, 7)`;
  const add = (r: 'new') => `insert into backup_counts (branch_id, live, state, policy_key, month, n) values (${key(r)}, 1) on conflict (branch_id, live, month, state, policy_key) do update set n = backup_counts.n + 1;`;
  const remove = (r: 'old') => `update backup_counts set n = n - 1 where ${match(r)};`;
  const changed =
    'old.branch_id is distinct from new.branch_id or old.backup_policy_id is distinct from new.backup_policy_id or old.state is distinct from new.state' +
    ' or (old.deleted_at is null) <> (new.deleted_at is null) or substr(old.created_at, 1, 7) is distinct from substr(new.created_at, 1, 7)';
  if (postgres) {
    await sql
      .raw(
        `create function backup_counts_track() returns trigger language plpgsql as $$
         begin
           if tg_op in ('UPDATE', 'DELETE') then ${remove('old')} end if;
           if tg_op in ('UPDATE', 'INSERT') then ${add('new')} end if;
           return null;
         end $$`,
      )
      .execute(db);
    await sql.raw('create trigger backup_counts_insert_delete after insert or delete on backups for each row execute function backup_counts_track()').execute(db);
    await sql.raw(`create trigger backup_counts_update after update on backups for each row when (${changed}) execute function backup_counts_track()`).execute(db);
  } else {
    // SQLite spells "is distinct from" as "is not".
    const sqliteChanged = changed.replaceAll('is distinct from', 'is not');
    await sql.raw(`create trigger backup_counts_insert after insert on backups begin ${add('new')} end`).execute(db);
    await sql.raw(`create trigger backup_counts_delete after delete on backups begin ${remove('old')} end`).execute(db);
    await sql.raw(`create trigger backup_counts_update after update on backups when ${sqliteChanged} begin ${remove('old')} ${add('new')} end`).execute(db);
  }
  await sql
    .raw(
      `insert into backup_counts (branch_id, live, state, policy_key, month, n)
       select branch_id, case when deleted_at is null then 1 else 0 end, state, coalesce(backup_policy_id, ''), substr(created_at, 1, 7), count(*)
       from backups group by branch_id, case when deleted_at is null then 1 else 0 end, state, coalesce(backup_policy_id, ''), substr(created_at, 1, 7)`,
    )
    .execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  if (postgres) {
    await sql.raw('drop trigger backup_counts_insert_delete on backups').execute(db);
    await sql.raw('drop trigger backup_counts_update on backups').execute(db);
    await sql.raw('drop function backup_counts_track()').execute(db);
  } else {
    for (const t of ['backup_counts_insert', 'backup_counts_delete', 'backup_counts_update']) await sql.raw(`drop trigger ${t}`).execute(db);
  }
  await db.schema.dropTable('backup_counts').execute();
  for (const i of ['backups_branch_created_id', 'backups_branch_live_created', 'backups_branch_state_created', 'backups_branch_policy_created', 'backups_branch_live_started']) await db.schema.dropIndex(i).execute();
  for (const i of ['branches_restored_from', 'backups_state_branch_completed', 'backups_deleted_id', 'artifacts_backup_state']) await db.schema.dropIndex(i).execute();
  await db.schema.createIndex('backups_branch_created').on('backups').columns(['branch_id', 'created_at']).execute();
  await db.schema.createIndex('artifacts_backup').on('artifacts').column('backup_id').execute();
}
