/** Backup policies of a database (PlanetScale's backup-policies endpoints). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../context.js';
import { newId, nowIso } from '../../catalog/ids.js';
import { computeNextRun } from '../../catalog/policies.js';
import type { BackupPolicy } from '../../catalog/schema.js';
import { nextSlotAfter, parseSchedule, validateSchedule, type Schedule } from '../../jobs/schedule.js';
import { requireAccess } from '../auth.js';
import { badRequest, conflict, invalidParams, notFound } from '../errors.js';
import { envelope } from '../paging.js';
import { resolveDatabase } from '../resolve.js';
import { presentPolicy } from './present.js';
import { BackupPolicyObject, DbParams, IdParam, ListEnvelope, NameParam, Nullable, PageQuery, RetentionUnit } from './schemas.js';

const PolicyParams = Type.Object({ organization: NameParam, database: NameParam, id: IdParam });
const Target = Type.Union([Type.Literal('production'), Type.Literal('development')]);
const FrequencyUnit = Type.Union([Type.Literal('hour'), Type.Literal('day'), Type.Literal('week'), Type.Literal('month')]);
const fields = {
  display_name: Type.String({ minLength: 1, maxLength: 255 }),
  target: Target,
  retention_value: Type.Integer({ minimum: 1, maximum: 1000 }),
  retention_unit: RetentionUnit,
  frequency_value: Type.Integer({ minimum: 1, maximum: 365 }),
  frequency_unit: FrequencyUnit,
  schedule_time: Type.String({ maxLength: 5, description: 'HH:MM, 24-hour UTC' }),
  schedule_day: Nullable(Type.Integer({ description: '0 = Sunday .. 6 = Saturday; weekly and monthly policies only' })),
  schedule_week: Nullable(Type.Integer({ description: '0..3: the 7-day window of the month (days 1-7, 8-14, 15-21, 22-28); monthly policies only' })),
  // Restore drills (our extension): full verifications the scheduler enqueues by itself.
  verify_every: Nullable(Type.Integer({ minimum: 1, maximum: 1000, description: 'restore drill: fully verify every Nth successful backup of each branch (null: off)' })),
  verification_frequency_value: Nullable(Type.Integer({ minimum: 1, maximum: 365, description: 'restore drill: at least one full verification per this many units (null: off)' })),
  verification_frequency_unit: Nullable(FrequencyUnit),
};

const CreateBody = Type.Object(
  {
    name: NameParam,
    display_name: Type.Optional(fields.display_name),
    target: fields.target,
    retention_value: fields.retention_value,
    retention_unit: fields.retention_unit,
    frequency_value: fields.frequency_value,
    frequency_unit: fields.frequency_unit,
    schedule_time: fields.schedule_time,
    schedule_day: Type.Optional(fields.schedule_day),
    schedule_week: Type.Optional(fields.schedule_week),
    verify_every: Type.Optional(fields.verify_every),
    verification_frequency_value: Type.Optional(fields.verification_frequency_value),
    verification_frequency_unit: Type.Optional(fields.verification_frequency_unit),
  },
  { additionalProperties: false },
);

const PatchBody = Type.Object(
  {
    name: Type.Optional(NameParam),
    display_name: Type.Optional(fields.display_name),
    target: Type.Optional(fields.target),
    retention_value: Type.Optional(fields.retention_value),
    retention_unit: Type.Optional(fields.retention_unit),
    frequency_value: Type.Optional(fields.frequency_value),
    frequency_unit: Type.Optional(fields.frequency_unit),
    schedule_time: Type.Optional(fields.schedule_time),
    schedule_day: Type.Optional(fields.schedule_day),
    schedule_week: Type.Optional(fields.schedule_week),
    verify_every: Type.Optional(fields.verify_every),
    verification_frequency_value: Type.Optional(fields.verification_frequency_value),
    verification_frequency_unit: Type.Optional(fields.verification_frequency_unit),
  },
  { additionalProperties: false },
);

/** A drill period needs both its value and its unit, or neither. */
function checkDrill(p: Pick<BackupPolicy, 'verification_frequency_value' | 'verification_frequency_unit'>): void {
  if ((p.verification_frequency_value === null) !== (p.verification_frequency_unit === null)) {
    throw invalidParams('verification_frequency_value and verification_frequency_unit must be set together (e.g. 1 and "week"), or both null');
  }
}

function checkSchedule(p: Pick<BackupPolicy, 'frequency_value' | 'frequency_unit' | 'schedule_time' | 'schedule_day' | 'schedule_week'>): void {
  const problems = validateSchedule({
    frequency_value: p.frequency_value,
    frequency_unit: p.frequency_unit,
    schedule_time: p.schedule_time,
    schedule_day: p.schedule_day,
    schedule_week: p.schedule_week,
  });
  if (problems.length) throw invalidParams(problems.join('; '));
}

/** What the dashboard's policy form sends to see a schedule in words before saving it. */
const PreviewBody = Type.Object(
  {
    frequency_value: fields.frequency_value,
    frequency_unit: fields.frequency_unit,
    schedule_time: fields.schedule_time,
    schedule_day: Type.Optional(fields.schedule_day),
    schedule_week: Type.Optional(fields.schedule_week),
    retention_value: Type.Optional(fields.retention_value),
    retention_unit: Type.Optional(fields.retention_unit),
  },
  { additionalProperties: false },
);
const PreviewAnswer = Type.Object(
  {
    description: Type.String({ description: 'the schedule (and retention) in plain words, e.g. "Every day at 02:00 UTC, kept for 2 days"' }),
    next_runs: Type.Array(Type.String(), { description: 'the next five runs of a policy saved now (ISO 8601, UTC)' }),
  },
  { additionalProperties: false },
);

const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const ORDINALS = ['first', 'second', 'third', 'fourth'];
const plural = (n: number, unit: string) => (n === 1 ? `1 ${unit}` : `${n} ${unit}s`);
const hhmm = (minutes: number) => `${String(Math.floor(minutes / 60) % 24).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
const listed = (items: string[]) => (items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`);

/**
 * A schedule in plain words, as jobs/schedule.ts defines its slots (UTC; a monthly
 * schedule_week is a 7-day window, so window k on a weekday is that weekday's (k+1)th
 * occurrence in the month).
 */
export function describeSchedule(s: Schedule): string {
  const [h, m] = s.time.split(':').map(Number);
  const n = s.frequency.value;
  switch (s.frequency.unit) {
    case 'hour': {
      if (n === 1) return `Every hour at :${s.time.slice(3)}`;
      if (n === 24) return `Every 24 hours at ${s.time} UTC`;
      const first = (h % n) * 60 + m;
      const perDay = 24 / n;
      if (perDay > 4) return `Every ${n} hours at :${s.time.slice(3)}, from ${hhmm(first)} UTC`;
      return `Every ${n} hours at :${s.time.slice(3)} (${listed(Array.from({ length: perDay }, (_, i) => hhmm(first + i * n * 60)))} UTC)`;
    }
    case 'day':
      return `${n === 1 ? 'Every day' : `Every ${n} days`} at ${s.time} UTC`;
    case 'week':
      return `${n === 1 ? 'Every week' : `Every ${n} weeks`} on ${WEEKDAYS[s.day ?? 0]} at ${s.time} UTC`;
    case 'month': {
      const window = s.week ?? 0;
      const on = s.day === null ? `the ${['1st', '8th', '15th', '22nd'][window]}` : `the ${ORDINALS[window]} ${WEEKDAYS[s.day]}`;
      // Months are counted from January 1970, so when n divides 12 they are the same every year.
      const months = n === 1 ? '' : 12 % n === 0 ? ` (${listed(MONTHS.filter((_, i) => i % n === 0))})` : '';
      return `${n === 1 ? 'Every month' : `Every ${n} months`}${months} on ${on} at ${s.time} UTC`;
    }
  }
}

export function policyRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  const base = '/organizations/:organization/databases/:database/backup-policies';

  async function findPolicy(databaseId: string, id: string): Promise<BackupPolicy> {
    const p = await ctx.db.selectFrom('backup_policies').selectAll().where('id', '=', id).where('database_id', '=', databaseId).where('deleted_at', 'is', null).executeTakeFirst();
    if (!p) throw notFound(`Backup policy "${id}" not found`);
    return p;
  }

  async function nameTaken(databaseId: string, name: string, except?: string): Promise<boolean> {
    let q = ctx.db.selectFrom('backup_policies').select('id').where('database_id', '=', databaseId).where('name', '=', name).where('deleted_at', 'is', null);
    if (except) q = q.where('id', '!=', except);
    return (await q.executeTakeFirst()) !== undefined;
  }

  return async (app) => {
    app.get(
      base,
      { schema: { tags: ['BackupPolicies'], summary: 'List backup policies', params: DbParams, querystring: Type.Object(PageQuery, { additionalProperties: false }), response: { 200: ListEnvelope(BackupPolicyObject) } } },
      async (req) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id });
        const page = req.query.page ?? 1;
        const perPage = req.query.per_page ?? 25;
        const rows = await ctx.db.selectFrom('backup_policies').selectAll().where('database_id', '=', database.id).where('deleted_at', 'is', null).orderBy('created_at').orderBy('name').execute();
        return envelope(req, rows.slice((page - 1) * perPage, page * perPage).map(presentPolicy), page, perPage, rows.length);
      },
    );

    app.post(
      base,
      { schema: { tags: ['BackupPolicies'], summary: 'Create a backup policy', params: DbParams, body: CreateBody, response: { 201: BackupPolicyObject } } },
      async (req, reply) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        requireAccess(req.principal, 'write_backups', { organizationId: org.id, databaseId: database.id });
        const b = req.body;
        const now = ctx.clock();
        const row: BackupPolicy = {
          id: newId(),
          organization_id: org.id,
          database_id: database.id,
          name: b.name,
          display_name: b.display_name ?? b.name,
          target: b.target,
          retention_value: b.retention_value,
          retention_unit: b.retention_unit as BackupPolicy['retention_unit'],
          frequency_value: b.frequency_value,
          frequency_unit: b.frequency_unit,
          schedule_time: b.schedule_time,
          schedule_day: b.schedule_day ?? null,
          schedule_week: b.schedule_week ?? null,
          required: 0,
          created_at: nowIso(now),
          updated_at: nowIso(now),
          last_ran_at: null,
          next_run_at: null,
          deleted_at: null,
          verify_every: b.verify_every ?? null,
          verification_frequency_value: b.verification_frequency_value ?? null,
          verification_frequency_unit: b.verification_frequency_unit ?? null,
        };
        checkSchedule(row);
        checkDrill(row);
        if (await nameTaken(database.id, row.name)) throw conflict(`Backup policy "${row.name}" already exists`);
        row.next_run_at = computeNextRun(row, now);
        await ctx.db.insertInto('backup_policies').values(row).execute();
        return reply.status(201).send(presentPolicy(row));
      },
    );

    app.post(
      `${base}/preview`,
      {
        // The dashboard asks for a preview as the user types: not one audit entry per keystroke.
        config: { readOnly: true },
        schema: {
          tags: ['BackupPolicies'],
          summary: 'A schedule in plain words and its next five runs, without saving anything',
          description: 'The schedule fields of a policy (and, optionally, its retention). A schedule that cannot be used is a 400 naming every problem.',
          operationId: 'preview_backup_policy',
          params: DbParams,
          body: PreviewBody,
          response: { 200: PreviewAnswer },
        },
      },
      async (req) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id });
        const b = req.body;
        const problems = validateSchedule(b);
        if ((b.retention_value === undefined) !== (b.retention_unit === undefined)) problems.push('retention_value and retention_unit go together: give both or neither');
        if (problems.length) throw badRequest(problems.join('; '));
        const schedule = parseSchedule(b);
        const next: string[] = [];
        // A policy saved now runs first at its first slot after now (schedule.ts).
        for (let t = ctx.clock(); next.length < 5; ) {
          t = nextSlotAfter(schedule, t);
          next.push(t.toISOString());
        }
        const kept = b.retention_value !== undefined && b.retention_unit !== undefined ? `, kept for ${plural(b.retention_value, b.retention_unit)}` : '';
        return { description: describeSchedule(schedule) + kept, next_runs: next };
      },
    );

    app.get(`${base}/:id`, { schema: { tags: ['BackupPolicies'], summary: 'Get a backup policy', params: PolicyParams, response: { 200: BackupPolicyObject } } }, async (req) => {
      const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
      requireAccess(req.principal, 'read_backups', { organizationId: org.id, databaseId: database.id });
      return presentPolicy(await findPolicy(database.id, req.params.id));
    });

    app.patch(
      `${base}/:id`,
      { schema: { tags: ['BackupPolicies'], summary: 'Update a backup policy (required ones too)', params: PolicyParams, body: PatchBody, response: { 200: BackupPolicyObject } } },
      async (req) => {
        const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
        requireAccess(req.principal, 'write_backups', { organizationId: org.id, databaseId: database.id });
        const current = await findPolicy(database.id, req.params.id);
        const b = req.body;
        const next: BackupPolicy = {
          ...current,
          ...(b as Partial<BackupPolicy>),
          retention_unit: (b.retention_unit ?? current.retention_unit) as BackupPolicy['retention_unit'],
          updated_at: nowIso(ctx.clock()),
        };
        // A unit change leaves day/week fields that may no longer apply: clear them unless given.
        if (b.frequency_unit !== undefined && b.frequency_unit !== current.frequency_unit) {
          if (b.schedule_day === undefined && b.frequency_unit !== 'week' && b.frequency_unit !== 'month') next.schedule_day = null;
          if (b.schedule_week === undefined && b.frequency_unit !== 'month') next.schedule_week = null;
        }
        checkSchedule(next);
        checkDrill(next);
        if (b.name !== undefined && (await nameTaken(database.id, b.name, current.id))) throw conflict(`Backup policy "${b.name}" already exists`);
        next.next_run_at = computeNextRun(next, ctx.clock());
        const { id, ...changes } = next;
        await ctx.db.updateTable('backup_policies').set(changes).where('id', '=', id).execute();
        return presentPolicy(next);
      },
    );

    app.delete(`${base}/:id`, { schema: { tags: ['BackupPolicies'], summary: 'Delete a backup policy (not a required one)', params: PolicyParams } }, async (req, reply) => {
      const { org, database } = await resolveDatabase(ctx.db, req.principal, req.params.organization, req.params.database);
      requireAccess(req.principal, 'write_backups', { organizationId: org.id, databaseId: database.id });
      const p = await findPolicy(database.id, req.params.id);
      if (p.required === 1) throw conflict('a required backup policy can be edited but not deleted');
      const now = nowIso(ctx.clock());
      await ctx.db.updateTable('backup_policies').set({ deleted_at: now, updated_at: now }).where('id', '=', p.id).execute();
      return reply.status(204).send();
    });
  };
}
