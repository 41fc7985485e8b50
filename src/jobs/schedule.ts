/**
 * ## When scheduled backups run
 *
 * A backup policy's schedule is `frequency_value` + `frequency_unit` (hour, day, week or
 * month), `schedule_time` ("HH:MM"), `schedule_day` (0 = Sunday … 6 = Saturday, or null) and
 * `schedule_week` (0 … 3, or null). Every time is in UTC: there is no daylight saving time, so
 * no slot is ever skipped or doubled by a clock change.
 *
 * A schedule defines a fixed grid of **slots**: the instants at which a backup is due. The
 * grid depends only on the schedule, never on when Strongbox was started, when the policy
 * was created or when the last backup ran, so every Strongbox process computes the same
 * slots and each slot gets exactly one backup. Slots are always on a whole minute.
 *
 * ### Allowed values
 *
 * | `frequency_unit` | `frequency_value`                       | `schedule_day` | `schedule_week` |
 * |------------------|-----------------------------------------|----------------|-----------------|
 * | `hour`           | 1, 2, 3, 4, 6, 8, 12 or 24 (divides 24) | must be null   | must be null    |
 * | `day`            | 1 to 365                                | must be null   | must be null    |
 * | `week`           | 1 to 52                                 | 0–6 or null    | must be null    |
 * | `month`          | 1 to 12                                 | 0–6 or null    | 0–3 or null     |
 *
 * `schedule_time` is required and is "HH:MM" in 24-hour UTC, 00:00 to 23:59, two digits each.
 *
 * ### The slots
 *
 * - **Every N hours**: at `schedule_time` and every N hours before and after it, every day.
 *   Because N divides 24, every day has the same slots. "Every 12 hours at 03:30" runs at
 *   03:30 and 15:30; "every 1 hour at 00:15" runs at a quarter past every hour.
 *
 * - **Every N days**: at `schedule_time` on every N-th day, counting days from
 *   1 January 1970 (day 0): a day is a slot day when its number is a multiple of N.
 *   The count runs straight through month and year ends, so "every 2 days at 03:30" runs on
 *   2024-02-25, 02-27, 02-29, 03-02, … (29 February is an ordinary day). "Every 1 day" is
 *   daily at `schedule_time`.
 *
 * - **Every N weeks**: on weekday `schedule_day` (Sunday when null) at `schedule_time`, in
 *   every N-th week. Weeks start on Sunday and are counted from Sunday 4 January 1970
 *   (week 0); a week is a slot week when its number is a multiple of N. "Weekly on Sunday at
 *   01:00" runs every Sunday at 01:00; every 2 weeks on Sunday runs on 2024-01-07, 01-21,
 *   02-04, …
 *
 * - **Every N months**: in every N-th month, counting months from January 1970 (month 0):
 *   a month is a slot month when its number is a multiple of N. When N divides 12 that means
 *   the same months every year, starting in January: every 2 months is Jan, Mar, May, Jul,
 *   Sep, Nov; every 3 months is Jan, Apr, Jul, Oct; every 6 months is Jan and Jul; every 12
 *   months is January. Within a slot month the slot is at `schedule_time` on:
 *   - `schedule_week` picks a 7-day window: 0 = days 1–7, 1 = days 8–14, 2 = days 15–21,
 *     3 = days 22–28. Null means window 0 (days 1–7).
 *   - `schedule_day` picks the weekday inside that window (each weekday occurs exactly
 *     once in it). Null means the first day of the window.
 *
 *   So with neither set the backup runs on the 1st of the month; "monthly in week 2 on
 *   Tuesday at 04:00" runs on the Tuesday between the 15th and the 21st (2024-01-16,
 *   2024-02-20, …); `schedule_day` alone gives the first such weekday of the month. No
 *   window goes past the 28th, so every month, February included, has its slot: there is
 *   no clamping for short months, and a monthly slot is never on the 29th, 30th or 31st.
 *
 * ### Running, catching up, and the first backup
 *
 * Strongbox checks its policies regularly. When it looks at a policy it takes the most recent
 * slot at or before the current time, and runs a backup for it when that slot is after the
 * policy's last run. That slot stays due until the next slot arrives, so:
 *
 * - a slot missed while Strongbox was down for less than one period (the gap up to the next
 *   slot) runs **once**, as soon as Strongbox is back;
 * - when several slots were missed, only the most recent one runs: missed slots are not
 *   replayed one by one, and a catch-up run never makes two backups for one slot;
 * - a backup is recorded with its slot, so two Strongbox processes checking at the same time
 *   agree on which slot they are running and only one of them runs it.
 *
 * A new policy does **not** back up immediately: its first backup is at its first slot after
 * the policy was created (a policy created exactly on a slot waits for the next one). To take
 * a backup right away, create one by hand.
 */
import { addInterval } from '../time.js';

export type FrequencyUnit = 'hour' | 'day' | 'week' | 'month';

export type Frequency = { value: number; unit: FrequencyUnit };

export interface Schedule {
  frequency: Frequency;
  /** "HH:MM", 24-hour, UTC. */
  time: string;
  /** 0 = Sunday … 6 = Saturday, or null. Only for weekly and monthly schedules. */
  day: number | null;
  /** 0 … 3 (days 1–7, 8–14, 15–21, 22–28), or null. Only for monthly schedules. */
  week: number | null;
}

/** A schedule as the API (PlanetScale's `backup_policy` object) spells it. */
export interface ScheduleFields {
  frequency_value: number;
  frequency_unit: string;
  schedule_time: string;
  schedule_day?: number | null;
  schedule_week?: number | null;
}

export const FREQUENCY_UNITS: readonly FrequencyUnit[] = ['hour', 'day', 'week', 'month'];

/** Inclusive bounds on `frequency_value` for each unit (see the table at the top of this file). */
export const FREQUENCY_LIMITS: Readonly<Record<FrequencyUnit, { readonly min: number; readonly max: number }>> = {
  hour: { min: 1, max: 24 },
  day: { min: 1, max: 365 },
  week: { min: 1, max: 52 },
  month: { min: 1, max: 12 },
};

/** Hourly frequencies must divide 24, so that every day has the same slots. */
export const HOURLY_FREQUENCY_VALUES: readonly number[] = [1, 2, 3, 4, 6, 8, 12, 24];

export const SCHEDULE_DAY_MIN = 0;
export const SCHEDULE_DAY_MAX = 6;
export const SCHEDULE_WEEK_MIN = 0;
export const SCHEDULE_WEEK_MAX = 3;

/** PlanetScale's default policy: every 12 hours (here at 00:00 and 12:00 UTC), kept 2 days. */
export const DEFAULT_SCHEDULE: Readonly<Schedule> = Object.freeze({
  frequency: Object.freeze({ value: 12, unit: 'hour' as const }),
  time: '00:00',
  day: null,
  week: null,
});
export const DEFAULT_RETENTION = Object.freeze({ value: 2, unit: 'day' as const });

/** A schedule that cannot be used; `problems` are the messages of `validateSchedule`. */
export class ScheduleError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid schedule: ${problems.join('; ')}`);
    this.name = 'ScheduleError';
  }
}

const TIME_RE = /^([01]\d|2[0-3]):([0-5]\d)$/;
const WEEK_WINDOWS = '0 = days 1-7, 1 = days 8-14, 2 = days 15-21, 3 = days 22-28';

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function isWhole(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

/**
 * The problems with a schedule given as API fields (`frequency_value`, `frequency_unit`,
 * `schedule_time`, `schedule_day`, `schedule_week`), each naming its field; empty when the
 * schedule is valid. A missing `schedule_day` / `schedule_week` counts as null; the others are
 * required (merge a PATCH into the stored policy before validating it).
 */
export function validateSchedule(input: unknown): string[] {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return [`a schedule must be an object with frequency_value, frequency_unit and schedule_time, got ${show(input)}`];
  }
  const f = input as Record<string, unknown>;
  const problems: string[] = [];

  const unitRaw = f.frequency_unit;
  const unit = FREQUENCY_UNITS.find((u) => u === unitRaw);
  if (unitRaw === undefined || unitRaw === null) problems.push('frequency_unit is required (hour, day, week or month)');
  else if (!unit) problems.push(`frequency_unit must be one of hour, day, week, month, got ${show(unitRaw)}`);

  const value = f.frequency_value;
  if (value === undefined || value === null) problems.push('frequency_value is required');
  else if (!isWhole(value)) problems.push(`frequency_value must be a whole number, got ${show(value)}`);
  else if (unit) {
    const { min, max } = FREQUENCY_LIMITS[unit];
    if (value < min || value > max) {
      problems.push(`frequency_value must be between ${min} and ${max} for frequency_unit "${unit}", got ${value}`);
    } else if (unit === 'hour' && !HOURLY_FREQUENCY_VALUES.includes(value)) {
      problems.push(
        `frequency_value must divide 24 for frequency_unit "hour" (one of ${HOURLY_FREQUENCY_VALUES.join(', ')}) so that every day has the same slots, got ${value}`,
      );
    }
  } else if (value < 1) {
    problems.push(`frequency_value must be at least 1, got ${value}`);
  }

  const time = f.schedule_time;
  if (time === undefined || time === null) problems.push('schedule_time is required, as HH:MM in 24-hour UTC');
  else if (typeof time !== 'string' || !TIME_RE.test(time)) problems.push(`schedule_time must be HH:MM in 24-hour UTC, got ${show(time)}`);

  const day = f.schedule_day;
  if (day !== undefined && day !== null) {
    if (!isWhole(day) || day < SCHEDULE_DAY_MIN || day > SCHEDULE_DAY_MAX) {
      problems.push(`schedule_day must be 0 (Sunday) to 6 (Saturday), got ${show(day)}`);
    }
    if (unit && unit !== 'week' && unit !== 'month') {
      problems.push(`schedule_day is only meaningful for weekly or monthly policies; frequency_unit is "${unit}", so set schedule_day to null`);
    }
  }

  const week = f.schedule_week;
  if (week !== undefined && week !== null) {
    if (!isWhole(week) || week < SCHEDULE_WEEK_MIN || week > SCHEDULE_WEEK_MAX) {
      problems.push(`schedule_week must be 0 to 3 (${WEEK_WINDOWS}), got ${show(week)}`);
    }
    if (unit && unit !== 'month') {
      problems.push(`schedule_week is only meaningful for monthly policies; frequency_unit is "${unit}", so set schedule_week to null`);
    }
  }
  return problems;
}

/** The API fields of a schedule. */
export function scheduleToFields(schedule: Schedule): ScheduleFields {
  return {
    frequency_value: schedule.frequency.value,
    frequency_unit: schedule.frequency.unit,
    schedule_time: schedule.time,
    schedule_day: schedule.day,
    schedule_week: schedule.week,
  };
}

/** A `Schedule` from API fields; throws `ScheduleError` listing every problem. */
export function parseSchedule(input: unknown): Schedule {
  const problems = validateSchedule(input);
  if (problems.length > 0) throw new ScheduleError(problems);
  const f = input as ScheduleFields;
  return {
    frequency: { value: f.frequency_value, unit: f.frequency_unit as FrequencyUnit },
    time: f.schedule_time,
    day: f.schedule_day ?? null,
    week: f.schedule_week ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// The slot grid.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
/** Sunday 1970-01-04T00:00Z, the start of week 0. */
const FIRST_SUNDAY = 3 * DAY;

/** A schedule checked once and reduced to the numbers the grid needs. */
interface Grid {
  unit: FrequencyUnit;
  n: number;
  /** Milliseconds after midnight UTC of schedule_time. */
  timeMs: number;
  day: number | null;
  week: number;
}

function gridOf(schedule: Schedule): Grid {
  const problems = validateSchedule(scheduleToFields(schedule));
  if (problems.length > 0) throw new ScheduleError(problems);
  const [h, m] = schedule.time.split(':').map(Number);
  return {
    unit: schedule.frequency.unit,
    n: schedule.frequency.value,
    timeMs: h * HOUR + m * MINUTE,
    day: schedule.day,
    week: schedule.week ?? 0,
  };
}

function msOf(t: Date, name: string): number {
  const ms = t instanceof Date ? t.getTime() : NaN;
  if (!Number.isFinite(ms)) throw new RangeError(`${name} must be a valid Date`);
  return ms;
}

/** For hour, day and week units: the slots are anchor + k * period for every integer k. */
function fixedGrid(g: Grid): { anchor: number; period: number } {
  switch (g.unit) {
    case 'hour':
      return { anchor: g.timeMs, period: g.n * HOUR };
    case 'day':
      return { anchor: g.timeMs, period: g.n * DAY };
    case 'week':
      return { anchor: FIRST_SUNDAY + (g.day ?? 0) * DAY + g.timeMs, period: g.n * WEEK };
    case 'month':
      throw new Error('monthly slots are not a fixed grid');
  }
}

/** Months since January 1970 of the month containing `ms`. */
function monthIndex(ms: number): number {
  const d = new Date(ms);
  return (d.getUTCFullYear() - 1970) * 12 + d.getUTCMonth();
}

/** Midnight UTC on the 1st of month `index` (months since January 1970). */
function monthStart(index: number): Date {
  return addInterval(new Date(0), index, 'month');
}

/** The monthly slot inside the month that starts at `start`. */
function slotInMonth(g: Grid, start: Date): number {
  const windowStart = start.getTime() + g.week * WEEK;
  const weekday = new Date(windowStart).getUTCDay();
  const offset = g.day === null ? 0 : (g.day - weekday + 7) % 7;
  return windowStart + offset * DAY + g.timeMs;
}

function floorDiv(a: number, b: number): number {
  return Math.floor(a / b);
}

function slotAtOrBeforeMs(g: Grid, t: number): number {
  if (g.unit !== 'month') {
    const { anchor, period } = fixedGrid(g);
    return anchor + floorDiv(t - anchor, period) * period;
  }
  // The slot month at or before t's month; its slot may still be after t (e.g. t is on the
  // 3rd and the slot is on the 16th), and then the slot month before it is the answer.
  const k = floorDiv(monthIndex(t), g.n) * g.n;
  const start = monthStart(k);
  const slot = slotInMonth(g, start);
  return slot <= t ? slot : slotInMonth(g, addInterval(start, -g.n, 'month'));
}

function nextSlotAfterMs(g: Grid, t: number): number {
  const slot = slotAtOrBeforeMs(g, t);
  if (g.unit !== 'month') return addInterval(new Date(slot), g.n, g.unit).getTime();
  // A monthly slot is always inside its own month (never past the 28th).
  return slotInMonth(g, addInterval(monthStart(monthIndex(slot)), g.n, 'month'));
}

/** The latest slot at or before `t` (`t` itself when `t` is a slot). */
export function slotAtOrBefore(schedule: Schedule, t: Date): Date {
  return new Date(slotAtOrBeforeMs(gridOf(schedule), msOf(t, 't')));
}

/** The first slot strictly after `t`. */
export function nextSlotAfter(schedule: Schedule, t: Date): Date {
  return new Date(nextSlotAfterMs(gridOf(schedule), msOf(t, 't')));
}

/**
 * The catch-up rule, for a scheduler looking at a policy at `now`: the slot to run now, or
 * null when nothing is due.
 *
 * The most recent slot at or before `now` is due when it is after `lastRanAt`. It is always
 * less than one period old (a period being the gap to the next slot; for monthly policies on a
 * weekday that gap is 4 or 5 weeks), so a slot missed by less than one period runs once, and
 * older missed slots are not replayed: only the most recent one runs.
 *
 * `lastRanAt` is the slot of the policy's last run as returned here (recommended: then two
 * workers, and a run that started late, agree on which slot was covered), or the time the last
 * run started. For a policy that has never run, pass the time it was created (or its schedule
 * last changed): its first backup is then its first slot strictly after that. `null` means "no
 * reference point" and is taken as "everything up to now is covered": nothing is due, so a
 * caller that keeps passing null for a never-run policy never runs it.
 *
 * Run the returned slot, and record it as the run's slot (e.g. under a unique constraint on
 * (policy, slot)) so that two workers calling this at the same time run it only once.
 */
export function dueSlot(schedule: Schedule, lastRanAt: Date | null, now: Date): Date | null {
  const g = gridOf(schedule);
  const nowMs = msOf(now, 'now');
  if (lastRanAt === null) return null;
  const lastMs = msOf(lastRanAt, 'lastRanAt');
  const slot = slotAtOrBeforeMs(g, nowMs);
  // slot <= now < nextSlotAfter(slot): it is less than one period old by construction.
  return slot > lastMs ? new Date(slot) : null;
}

/**
 * When the policy's next backup runs (its `next_run_at`): the next slot strictly after
 * max(`lastRanAt`, the latest point at which nothing is due).
 *
 * - When a slot is due at `now` (see `dueSlot`), that slot: it is not after `now`, meaning the
 *   run is overdue and happens on the scheduler's next look.
 * - Otherwise the first slot strictly after `now` (or after `lastRanAt` when that is later than
 *   `now`, e.g. another worker with a clock ahead recorded it).
 *
 * `lastRanAt` is read as in `dueSlot`; with null (a policy just created at `now`) the answer is
 * the first slot strictly after `now`.
 */
export function nextRunAt(schedule: Schedule, lastRanAt: Date | null, now: Date): Date {
  const due = dueSlot(schedule, lastRanAt, now);
  if (due) return due;
  const nowMs = msOf(now, 'now');
  const from = lastRanAt !== null && lastRanAt.getTime() > nowMs ? lastRanAt.getTime() : nowMs;
  return new Date(nextSlotAfterMs(gridOf(schedule), from));
}
