import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_SCHEDULE,
  FREQUENCY_LIMITS,
  HOURLY_FREQUENCY_VALUES,
  ScheduleError,
  dueSlot,
  nextRunAt,
  nextSlotAfter,
  parseSchedule,
  slotAtOrBefore,
  validateSchedule,
  type FrequencyUnit,
  type Schedule,
} from '../../src/jobs/schedule.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

function S(value: number, unit: FrequencyUnit, time: string, day: number | null = null, week: number | null = null): Schedule {
  return { frequency: { value, unit }, time, day, week };
}

/** '2024-03-10T10:20' → Date in UTC (seconds and milliseconds optional). */
function at(text: string): Date {
  const d = new Date(text.endsWith('Z') ? text : `${text}Z`);
  assert.ok(!Number.isNaN(d.getTime()), `bad test date ${text}`);
  return d;
}

function iso(d: Date | null): string | null {
  return d === null ? null : d.toISOString();
}

function describeSchedule(s: Schedule): string {
  const extra = [s.day === null ? '' : ` day=${s.day}`, s.week === null ? '' : ` week=${s.week}`].join('');
  return `every ${s.frequency.value} ${s.frequency.unit} at ${s.time}${extra}`;
}

// ---------------------------------------------------------------------------------------------
// slotAtOrBefore / nextSlotAfter: hand-computed expectations.

const SUN = 0;
const MON = 1;
const TUE = 2;
const WED = 3;
const THU = 4;
const FRI = 5;
const SAT = 6;

const slotCases: Array<{ why: string; schedule: Schedule; t: string; before: string; after: string }> = [
  // hour
  { why: 'hourly at :15, mid-hour', schedule: S(1, 'hour', '00:15'), t: '2024-03-10T10:20', before: '2024-03-10T10:15', after: '2024-03-10T11:15' },
  { why: 'hourly at :15, exactly on a slot', schedule: S(1, 'hour', '00:15'), t: '2024-03-10T10:15', before: '2024-03-10T10:15', after: '2024-03-10T11:15' },
  { why: 'hourly at :15, 1 ms before a slot', schedule: S(1, 'hour', '00:15'), t: '2024-03-10T10:14:59.999', before: '2024-03-10T09:15', after: '2024-03-10T10:15' },
  { why: 'every 12 h at 03:30 (03:30 and 15:30)', schedule: S(12, 'hour', '03:30'), t: '2024-03-10T12:00', before: '2024-03-10T03:30', after: '2024-03-10T15:30' },
  { why: 'every 12 h at 03:30, before the first slot of the day', schedule: S(12, 'hour', '03:30'), t: '2024-03-10T02:00', before: '2024-03-09T15:30', after: '2024-03-10T03:30' },
  { why: 'every 12 h at 15:30 is the same grid as at 03:30', schedule: S(12, 'hour', '15:30'), t: '2024-03-10T02:00', before: '2024-03-09T15:30', after: '2024-03-10T03:30' },
  { why: 'every 8 h at 01:00 across the year boundary', schedule: S(8, 'hour', '01:00'), t: '2024-12-31T23:59', before: '2024-12-31T17:00', after: '2025-01-01T01:00' },
  { why: 'every 24 h at 23:45 into Feb 29', schedule: S(24, 'hour', '23:45'), t: '2024-02-29T00:00', before: '2024-02-28T23:45', after: '2024-02-29T23:45' },
  { why: 'every 6 h at 05:00, exactly on 23:00 of Feb 29', schedule: S(6, 'hour', '05:00'), t: '2024-02-29T23:00', before: '2024-02-29T23:00', after: '2024-03-01T05:00' },
  { why: 'every 3 h, end of February in a non-leap year', schedule: S(3, 'hour', '00:00'), t: '2023-02-28T22:00', before: '2023-02-28T21:00', after: '2023-03-01T00:00' },
  // day
  { why: 'daily at 03:30, a minute early', schedule: S(1, 'day', '03:30'), t: '2024-03-10T03:29', before: '2024-03-09T03:30', after: '2024-03-10T03:30' },
  { why: 'daily at 03:30, exactly on the slot', schedule: S(1, 'day', '03:30'), t: '2024-03-10T03:30', before: '2024-03-10T03:30', after: '2024-03-11T03:30' },
  { why: 'every 2 days at 03:30 runs on Feb 29 2024', schedule: S(2, 'day', '03:30'), t: '2024-02-28T12:00', before: '2024-02-27T03:30', after: '2024-02-29T03:30' },
  { why: 'every 2 days at 03:30, non-leap February', schedule: S(2, 'day', '03:30'), t: '2023-02-28T12:00', before: '2023-02-28T03:30', after: '2023-03-02T03:30' },
  { why: 'daily at midnight, last instant of the year', schedule: S(1, 'day', '00:00'), t: '2024-12-31T23:59:59.999', before: '2024-12-31T00:00', after: '2025-01-01T00:00' },
  { why: 'every 2 days across the year boundary', schedule: S(2, 'day', '03:30'), t: '2025-01-01T10:00', before: '2024-12-31T03:30', after: '2025-01-02T03:30' },
  { why: 'every 7 days falls on Thursdays (1970-01-01 was a Thursday)', schedule: S(7, 'day', '00:00'), t: '2024-01-01T00:00', before: '2023-12-28T00:00', after: '2024-01-04T00:00' },
  { why: 'every 365 days (day numbers that are multiples of 365)', schedule: S(365, 'day', '00:00'), t: '2024-06-01T00:00', before: '2023-12-19T00:00', after: '2024-12-18T00:00' },
  // week
  { why: 'weekly on Sunday at 01:00, exactly on the slot', schedule: S(1, 'week', '01:00', SUN), t: '2024-01-07T01:00', before: '2024-01-07T01:00', after: '2024-01-14T01:00' },
  { why: 'weekly on Sunday at 01:00, a minute early, across the year boundary', schedule: S(1, 'week', '01:00', SUN), t: '2024-01-07T00:59', before: '2023-12-31T01:00', after: '2024-01-07T01:00' },
  { why: 'weekly with schedule_day null is Sunday', schedule: S(1, 'week', '01:00'), t: '2024-01-10T00:00', before: '2024-01-07T01:00', after: '2024-01-14T01:00' },
  { why: 'weekly on Saturday at 23:59, exactly on the slot', schedule: S(1, 'week', '23:59', SAT), t: '2024-03-02T23:59', before: '2024-03-02T23:59', after: '2024-03-09T23:59' },
  { why: 'weekly on Thursday lands on Feb 29 2024', schedule: S(1, 'week', '12:00', THU), t: '2024-02-29T11:00', before: '2024-02-22T12:00', after: '2024-02-29T12:00' },
  { why: 'every 2 weeks on Sunday (even week numbers since 1970-01-04)', schedule: S(2, 'week', '01:00', SUN), t: '2024-01-14T12:00', before: '2024-01-07T01:00', after: '2024-01-21T01:00' },
  { why: 'every 2 weeks on Saturday, t on an off-week Saturday', schedule: S(2, 'week', '00:00', SAT), t: '2024-01-20T00:00', before: '2024-01-13T00:00', after: '2024-01-27T00:00' },
  { why: 'every 4 weeks on Monday across the year boundary', schedule: S(4, 'week', '08:00', MON), t: '2024-01-01T00:00', before: '2023-12-25T08:00', after: '2024-01-22T08:00' },
  // month
  { why: 'monthly on the 1st, exactly on the slot', schedule: S(1, 'month', '00:00'), t: '2024-03-01T00:00', before: '2024-03-01T00:00', after: '2024-04-01T00:00' },
  { why: 'monthly on the 1st at 06:00, across the year boundary', schedule: S(1, 'month', '06:00'), t: '2024-01-01T05:59', before: '2023-12-01T06:00', after: '2024-01-01T06:00' },
  { why: 'monthly in week 2 on Tuesday at 04:00', schedule: S(1, 'month', '04:00', TUE, 2), t: '2024-02-01T00:00', before: '2024-01-16T04:00', after: '2024-02-20T04:00' },
  { why: 'week 3 (22nd) in a non-leap February', schedule: S(1, 'month', '02:00', null, 3), t: '2023-02-28T23:00', before: '2023-02-22T02:00', after: '2023-03-22T02:00' },
  { why: 'week 3 on Saturday in a non-leap February', schedule: S(1, 'month', '12:00', SAT, 3), t: '2023-02-26T00:00', before: '2023-02-25T12:00', after: '2023-03-25T12:00' },
  { why: 'week 3 on Thursday never reaches Feb 29', schedule: S(1, 'month', '12:00', THU, 3), t: '2024-02-29T12:00', before: '2024-02-22T12:00', after: '2024-03-28T12:00' },
  { why: 'week 3 on Wednesday is Feb 28 2024, exactly on the slot', schedule: S(1, 'month', '00:00', WED, 3), t: '2024-02-28T00:00', before: '2024-02-28T00:00', after: '2024-03-27T00:00' },
  { why: 'first Sunday of the month when the 1st is a Sunday', schedule: S(1, 'month', '00:00', SUN, 0), t: '2024-09-01T00:00', before: '2024-09-01T00:00', after: '2024-10-06T00:00' },
  { why: 'schedule_day without schedule_week is the first such weekday', schedule: S(1, 'month', '09:00', MON), t: '2025-01-01T00:00', before: '2024-12-02T09:00', after: '2025-01-06T09:00' },
  { why: 'every 3 months is Jan, Apr, Jul, Oct', schedule: S(3, 'month', '00:00'), t: '2024-05-15T00:00', before: '2024-04-01T00:00', after: '2024-07-01T00:00' },
  { why: 'every 3 months across the year boundary', schedule: S(3, 'month', '00:00'), t: '2024-12-31T23:59', before: '2024-10-01T00:00', after: '2025-01-01T00:00' },
  { why: 'every 12 months is January 1st', schedule: S(12, 'month', '00:00', null, 0), t: '2024-02-29T00:00', before: '2024-01-01T00:00', after: '2025-01-01T00:00' },
  { why: 'every 2 months in week 1 on Friday (Jan, Mar, …)', schedule: S(2, 'month', '18:00', FRI, 1), t: '2024-02-10T00:00', before: '2024-01-12T18:00', after: '2024-03-08T18:00' },
  { why: 'every 5 months (months since Jan 1970 divisible by 5)', schedule: S(5, 'month', '00:00'), t: '2024-06-01T00:00', before: '2024-03-01T00:00', after: '2024-08-01T00:00' },
  { why: 'every 5 months across the year boundary', schedule: S(5, 'month', '00:00'), t: '2024-12-01T00:00', before: '2024-08-01T00:00', after: '2025-01-01T00:00' },
  { why: 'monthly on the 1st, from the 31st', schedule: S(1, 'month', '00:00'), t: '2024-01-31T12:00', before: '2024-01-01T00:00', after: '2024-02-01T00:00' },
  { why: 'week 3 at 23:59, from the last minute of March 31', schedule: S(1, 'month', '23:59', null, 3), t: '2024-03-31T23:59', before: '2024-03-22T23:59', after: '2024-04-22T23:59' },
  { why: 'monthly week 1 Tuesday, t earlier in the month than the slot', schedule: S(1, 'month', '04:00', TUE, 1), t: '2024-03-05T00:00', before: '2024-02-13T04:00', after: '2024-03-12T04:00' },
  { why: 'monthly on the 1st from before 1970 (negative times)', schedule: S(1, 'month', '00:00'), t: '1969-12-15T00:00', before: '1969-12-01T00:00', after: '1970-01-01T00:00' },
];

describe('slotAtOrBefore / nextSlotAfter', () => {
  assert.ok(slotCases.length >= 40);
  for (const c of slotCases) {
    test(`${c.why} (${describeSchedule(c.schedule)}, t=${c.t})`, () => {
      const t = at(c.t);
      assert.equal(iso(slotAtOrBefore(c.schedule, t)), iso(at(c.before)), 'slotAtOrBefore');
      assert.equal(iso(nextSlotAfter(c.schedule, t)), iso(at(c.after)), 'nextSlotAfter');
    });
  }
});

// ---------------------------------------------------------------------------------------------
// dueSlot / nextRunAt: the catch-up rule.

const HOURLY = S(1, 'hour', '00:00');
const DAILY = S(1, 'day', '03:30');
const MONTHLY_W2_TUE = S(1, 'month', '04:00', TUE, 2);

const catchUpCases: Array<{ why: string; schedule: Schedule; last: string | null; now: string; due: string | null; next: string }> = [
  { why: 'ran this hour: nothing due', schedule: HOURLY, last: '2024-03-10T10:00', now: '2024-03-10T10:05', due: null, next: '2024-03-10T11:00' },
  { why: 'now exactly on the next slot: due', schedule: HOURLY, last: '2024-03-10T10:00', now: '2024-03-10T11:00', due: '2024-03-10T11:00', next: '2024-03-10T11:00' },
  { why: 'missed by less than one period: runs once, late', schedule: HOURLY, last: '2024-03-10T10:00', now: '2024-03-10T11:59:59', due: '2024-03-10T11:00', next: '2024-03-10T11:00' },
  { why: 'several slots missed: only the most recent runs', schedule: HOURLY, last: '2024-03-10T10:00', now: '2024-03-10T15:20', due: '2024-03-10T15:00', next: '2024-03-10T15:00' },
  { why: 'after the catch-up: nothing more', schedule: HOURLY, last: '2024-03-10T15:00', now: '2024-03-10T15:20', due: null, next: '2024-03-10T16:00' },
  { why: 'never ran, no reference point: nothing now, next slot', schedule: HOURLY, last: null, now: '2024-03-10T10:30', due: null, next: '2024-03-10T11:00' },
  { why: 'never ran, created 10:30: not immediately', schedule: HOURLY, last: '2024-03-10T10:30', now: '2024-03-10T10:59', due: null, next: '2024-03-10T11:00' },
  { why: 'never ran, created 10:30: first backup at 11:00', schedule: HOURLY, last: '2024-03-10T10:30', now: '2024-03-10T11:02', due: '2024-03-10T11:00', next: '2024-03-10T11:00' },
  { why: 'created exactly on a slot: waits for the next one', schedule: HOURLY, last: '2024-03-10T11:00', now: '2024-03-10T11:00', due: null, next: '2024-03-10T12:00' },
  { why: 'last run in the future (clock skew): nothing due', schedule: HOURLY, last: '2024-03-10T12:00', now: '2024-03-10T11:30', due: null, next: '2024-03-10T13:00' },
  { why: 'daily: a minute before the slot', schedule: DAILY, last: '2024-03-09T03:30', now: '2024-03-10T03:29', due: null, next: '2024-03-10T03:30' },
  { why: 'daily: missed yesterday by less than a day', schedule: DAILY, last: '2024-03-09T03:30', now: '2024-03-11T03:29', due: '2024-03-10T03:30', next: '2024-03-10T03:30' },
  { why: 'daily: ten days down, one run for today', schedule: DAILY, last: '2024-03-01T03:30', now: '2024-03-11T04:00', due: '2024-03-11T03:30', next: '2024-03-11T03:30' },
  { why: 'daily: lastRanAt as the start time rather than the slot', schedule: DAILY, last: '2024-03-10T03:31', now: '2024-03-10T05:00', due: null, next: '2024-03-11T03:30' },
  { why: 'daily at midnight across the year boundary', schedule: S(1, 'day', '00:00'), last: '2024-12-30T00:00', now: '2025-01-01T00:00', due: '2025-01-01T00:00', next: '2025-01-01T00:00' },
  { why: 'every 2 days: Feb 29 2024 caught up on Mar 1', schedule: S(2, 'day', '03:30'), last: '2024-02-27T03:30', now: '2024-03-01T00:00', due: '2024-02-29T03:30', next: '2024-02-29T03:30' },
  { why: 'every 2 weeks: off-week Saturday', schedule: S(2, 'week', '01:00', SUN), last: '2024-01-07T01:00', now: '2024-01-20T00:00', due: null, next: '2024-01-21T01:00' },
  { why: 'monthly: before this month\'s slot', schedule: MONTHLY_W2_TUE, last: '2024-01-16T04:00', now: '2024-02-19T00:00', due: null, next: '2024-02-20T04:00' },
  { why: 'monthly: missed slot stays due until the next one (35-day gap)', schedule: MONTHLY_W2_TUE, last: '2024-01-16T04:00', now: '2024-03-19T03:59', due: '2024-02-20T04:00', next: '2024-02-20T04:00' },
  { why: 'monthly: several months down, one run', schedule: MONTHLY_W2_TUE, last: '2023-10-17T04:00', now: '2024-02-01T00:00', due: '2024-01-16T04:00', next: '2024-01-16T04:00' },
];

describe('dueSlot / nextRunAt', () => {
  for (const c of catchUpCases) {
    test(`${c.why} (${describeSchedule(c.schedule)}, last=${c.last}, now=${c.now})`, () => {
      const last = c.last === null ? null : at(c.last);
      const now = at(c.now);
      assert.equal(iso(dueSlot(c.schedule, last, now)), c.due === null ? null : iso(at(c.due)), 'dueSlot');
      assert.equal(iso(nextRunAt(c.schedule, last, now)), iso(at(c.next)), 'nextRunAt');
    });
  }

  test('nextRunAt is always a slot, and after a recorded run it is strictly after now', () => {
    const now = at('2024-03-10T15:20');
    for (const s of [HOURLY, DAILY, MONTHLY_W2_TUE, S(2, 'week', '01:00', SUN)]) {
      const due = dueSlot(s, at('2020-01-01T00:00'), now);
      assert.ok(due);
      const next = nextRunAt(s, due, now);
      assert.ok(next > now);
      assert.equal(iso(slotAtOrBefore(s, next)), iso(next));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Validation.

const base = { frequency_value: 1, frequency_unit: 'day', schedule_time: '03:30', schedule_day: null, schedule_week: null };

const invalid: Array<{ input: unknown; expect: string[] }> = [
  { input: { ...base, schedule_time: '25:00' }, expect: ['schedule_time must be HH:MM in 24-hour UTC, got "25:00"'] },
  { input: { ...base, schedule_time: '3:30' }, expect: ['schedule_time must be HH:MM in 24-hour UTC, got "3:30"'] },
  { input: { ...base, schedule_time: '12:60' }, expect: ['schedule_time must be HH:MM in 24-hour UTC, got "12:60"'] },
  { input: { ...base, schedule_time: '03:30:00' }, expect: ['schedule_time must be HH:MM in 24-hour UTC, got "03:30:00"'] },
  { input: { ...base, schedule_time: 330 }, expect: ['schedule_time must be HH:MM in 24-hour UTC, got 330'] },
  { input: { frequency_value: 1, frequency_unit: 'day' }, expect: ['schedule_time is required, as HH:MM in 24-hour UTC'] },
  { input: { ...base, frequency_unit: 'year' }, expect: ['frequency_unit must be one of hour, day, week, month, got "year"'] },
  { input: { ...base, frequency_unit: undefined }, expect: ['frequency_unit is required (hour, day, week or month)'] },
  { input: { ...base, frequency_value: 0 }, expect: ['frequency_value must be between 1 and 365 for frequency_unit "day", got 0'] },
  { input: { ...base, frequency_value: 366 }, expect: ['frequency_value must be between 1 and 365 for frequency_unit "day", got 366'] },
  { input: { ...base, frequency_value: 1.5 }, expect: ['frequency_value must be a whole number, got 1.5'] },
  { input: { ...base, frequency_value: '12' }, expect: ['frequency_value must be a whole number, got "12"'] },
  { input: { ...base, frequency_value: null }, expect: ['frequency_value is required'] },
  {
    input: { ...base, frequency_unit: 'hour', frequency_value: 5 },
    expect: ['frequency_value must divide 24 for frequency_unit "hour" (one of 1, 2, 3, 4, 6, 8, 12, 24) so that every day has the same slots, got 5'],
  },
  { input: { ...base, frequency_unit: 'hour', frequency_value: 48 }, expect: ['frequency_value must be between 1 and 24 for frequency_unit "hour", got 48'] },
  { input: { ...base, frequency_unit: 'week', frequency_value: 53 }, expect: ['frequency_value must be between 1 and 52 for frequency_unit "week", got 53'] },
  { input: { ...base, frequency_unit: 'month', frequency_value: 13 }, expect: ['frequency_value must be between 1 and 12 for frequency_unit "month", got 13'] },
  { input: { ...base, frequency_unit: 'year', frequency_value: 0 }, expect: ['frequency_unit must be one of hour, day, week, month, got "year"', 'frequency_value must be at least 1, got 0'] },
  { input: { ...base, frequency_unit: 'week', schedule_day: 7 }, expect: ['schedule_day must be 0 (Sunday) to 6 (Saturday), got 7'] },
  { input: { ...base, frequency_unit: 'month', schedule_day: -1 }, expect: ['schedule_day must be 0 (Sunday) to 6 (Saturday), got -1'] },
  { input: { ...base, frequency_unit: 'week', schedule_day: 'sunday' }, expect: ['schedule_day must be 0 (Sunday) to 6 (Saturday), got "sunday"'] },
  { input: { ...base, schedule_day: 1 }, expect: ['schedule_day is only meaningful for weekly or monthly policies; frequency_unit is "day", so set schedule_day to null'] },
  {
    input: { ...base, frequency_unit: 'hour', frequency_value: 12, schedule_day: 0 },
    expect: ['schedule_day is only meaningful for weekly or monthly policies; frequency_unit is "hour", so set schedule_day to null'],
  },
  { input: { ...base, frequency_unit: 'week', schedule_week: 1 }, expect: ['schedule_week is only meaningful for monthly policies; frequency_unit is "week", so set schedule_week to null'] },
  {
    input: { ...base, frequency_unit: 'month', schedule_week: 4 },
    expect: ['schedule_week must be 0 to 3 (0 = days 1-7, 1 = days 8-14, 2 = days 15-21, 3 = days 22-28), got 4'],
  },
  {
    input: { ...base, schedule_day: 9, schedule_week: 5 },
    expect: [
      'schedule_day must be 0 (Sunday) to 6 (Saturday), got 9',
      'schedule_day is only meaningful for weekly or monthly policies; frequency_unit is "day", so set schedule_day to null',
      'schedule_week must be 0 to 3 (0 = days 1-7, 1 = days 8-14, 2 = days 15-21, 3 = days 22-28), got 5',
      'schedule_week is only meaningful for monthly policies; frequency_unit is "day", so set schedule_week to null',
    ],
  },
  { input: null, expect: ['a schedule must be an object with frequency_value, frequency_unit and schedule_time, got null'] },
  { input: 'daily', expect: ['a schedule must be an object with frequency_value, frequency_unit and schedule_time, got "daily"'] },
];

const valid: unknown[] = [
  { frequency_value: 12, frequency_unit: 'hour', schedule_time: '00:00', schedule_day: null, schedule_week: null },
  { frequency_value: 2, frequency_unit: 'day', schedule_time: '03:30' },
  { frequency_value: 1, frequency_unit: 'week', schedule_time: '01:00', schedule_day: 0 },
  { frequency_value: 1, frequency_unit: 'week', schedule_time: '01:00', schedule_day: null },
  { frequency_value: 1, frequency_unit: 'month', schedule_time: '04:00', schedule_day: 2, schedule_week: 2 },
  { frequency_value: 12, frequency_unit: 'month', schedule_time: '23:59', schedule_day: 6, schedule_week: 3 },
  { frequency_value: 24, frequency_unit: 'hour', schedule_time: '23:59' },
  { frequency_value: 365, frequency_unit: 'day', schedule_time: '00:00' },
  { frequency_value: 52, frequency_unit: 'week', schedule_time: '12:00', schedule_day: 3 },
];

describe('validateSchedule', () => {
  assert.ok(invalid.length >= 10);
  for (const c of invalid) {
    test(`rejects ${JSON.stringify(c.input)}`, () => {
      assert.deepEqual(validateSchedule(c.input), c.expect);
    });
  }
  for (const v of valid) {
    test(`accepts ${JSON.stringify(v)}`, () => {
      assert.deepEqual(validateSchedule(v), []);
      parseSchedule(v);
    });
  }

  test('every allowed hourly value divides 24 and is accepted; the others in 1..24 are not', () => {
    for (let n = FREQUENCY_LIMITS.hour.min; n <= FREQUENCY_LIMITS.hour.max; n++) {
      const problems = validateSchedule({ frequency_value: n, frequency_unit: 'hour', schedule_time: '00:00' });
      assert.equal(problems.length === 0, 24 % n === 0, `every ${n} hours`);
      assert.equal(HOURLY_FREQUENCY_VALUES.includes(n), 24 % n === 0);
    }
  });

  test('parseSchedule fills nulls and throws ScheduleError with every problem', () => {
    assert.deepEqual(parseSchedule({ frequency_value: 2, frequency_unit: 'day', schedule_time: '03:30' }), S(2, 'day', '03:30'));
    assert.deepEqual(
      parseSchedule({ frequency_value: 1, frequency_unit: 'month', schedule_time: '04:00', schedule_day: 2, schedule_week: 2 }),
      S(1, 'month', '04:00', TUE, 2),
    );
    assert.throws(
      () => parseSchedule({ frequency_value: 0, frequency_unit: 'week', schedule_time: '24:00', schedule_week: 1 }),
      (e: unknown) => e instanceof ScheduleError && e.problems.length === 3 && e.message.includes('schedule_time must be HH:MM'),
    );
  });

  test('the slot functions refuse an invalid schedule and an invalid date', () => {
    assert.throws(() => slotAtOrBefore(S(5, 'hour', '00:00'), at('2024-01-01T00:00')), ScheduleError);
    assert.throws(() => nextSlotAfter(S(1, 'day', '24:00'), at('2024-01-01T00:00')), ScheduleError);
    assert.throws(() => dueSlot(S(1, 'day', '00:00', MON), null, at('2024-01-01T00:00')), ScheduleError);
    assert.throws(() => nextRunAt(S(0, 'month', '00:00'), null, at('2024-01-01T00:00')), ScheduleError);
    assert.throws(() => slotAtOrBefore(HOURLY, new Date('nope')), RangeError);
    assert.throws(() => dueSlot(HOURLY, new Date(NaN), at('2024-01-01T00:00')), RangeError);
  });

  test('the default schedule is PlanetScale\'s every 12 hours', () => {
    assert.deepEqual(validateSchedule({ frequency_value: 12, frequency_unit: 'hour', schedule_time: DEFAULT_SCHEDULE.time }), []);
    assert.equal(iso(nextSlotAfter(DEFAULT_SCHEDULE, at('2024-03-10T10:00'))), iso(at('2024-03-10T12:00')));
  });
});

// ---------------------------------------------------------------------------------------------
// Properties over simulated time, checked against an independent brute-force definition.

/** Is `d` a slot of `s`? Written from the user-facing rules, not from the implementation. */
function isSlotByRule(s: Schedule, d: Date): boolean {
  const [hh, mm] = s.time.split(':').map(Number);
  if (d.getUTCSeconds() !== 0 || d.getUTCMilliseconds() !== 0 || d.getUTCMinutes() !== mm) return false;
  const n = s.frequency.value;
  const dayNumber = Math.floor(d.getTime() / DAY); // days since 1970-01-01
  switch (s.frequency.unit) {
    case 'hour':
      return (((d.getUTCHours() - hh) % n) + n) % n === 0;
    case 'day':
      return d.getUTCHours() === hh && ((dayNumber % n) + n) % n === 0;
    case 'week': {
      const weekNumber = Math.floor((dayNumber - 3) / 7); // weeks since Sunday 1970-01-04
      return d.getUTCHours() === hh && d.getUTCDay() === (s.day ?? 0) && ((weekNumber % n) + n) % n === 0;
    }
    case 'month': {
      const monthNumber = (d.getUTCFullYear() - 1970) * 12 + d.getUTCMonth();
      const first = 1 + 7 * (s.week ?? 0);
      const date = d.getUTCDate();
      if (d.getUTCHours() !== hh || ((monthNumber % n) + n) % n !== 0) return false;
      if (date < first || date > first + 6) return false;
      return s.day === null ? date === first : d.getUTCDay() === s.day;
    }
  }
}

/** Every slot in [from, to), found by trying every whole minute at schedule_time's minute. */
function slotsByRule(s: Schedule, from: Date, to: Date): number[] {
  const mm = Number(s.time.split(':')[1]);
  const out: number[] = [];
  for (let h = Math.floor(from.getTime() / HOUR) * HOUR; h < to.getTime(); h += HOUR) {
    const candidate = h + mm * MINUTE;
    if (candidate >= from.getTime() && candidate < to.getTime() && isSlotByRule(s, new Date(candidate))) out.push(candidate);
  }
  return out;
}

const propertySchedules: Schedule[] = [
  S(1, 'hour', '00:00'),
  S(1, 'hour', '00:07'),
  S(12, 'hour', '03:30'),
  S(8, 'hour', '23:59'),
  S(24, 'hour', '12:34'),
  S(1, 'day', '03:30'),
  S(2, 'day', '03:30'),
  S(7, 'day', '00:00'),
  S(1, 'week', '01:00', SUN),
  S(1, 'week', '01:00'),
  S(2, 'week', '23:59', SAT),
  S(3, 'week', '10:00', WED),
  S(1, 'month', '00:00'),
  S(1, 'month', '04:00', TUE, 2),
  S(1, 'month', '02:00', null, 3),
  S(1, 'month', '23:59', SAT, 3),
  S(2, 'month', '18:00', FRI, 1),
  S(5, 'month', '06:00', SUN),
  S(12, 'month', '00:00'),
];

// From before a non-leap February, across 2023→2024, a leap February, and into 2025.
const RANGE_FROM = at('2022-12-01T00:00');
const RANGE_TO = at('2025-03-01T00:00');

describe('properties over simulated time', () => {
  for (const s of propertySchedules) {
    test(`${describeSchedule(s)}: matches the rules at hourly ticks over two years`, () => {
      const expected = slotsByRule(s, new Date(RANGE_FROM.getTime() - 400 * DAY), new Date(RANGE_TO.getTime() + 400 * DAY));
      assert.ok(expected.length >= 3, 'enough slots to compare');
      const largestGap = Math.max(...expected.slice(1).map((v, i) => v - expected[i]));

      // Walking with nextSlotAfter visits exactly the slots the rules give, strictly increasing.
      let slot = slotAtOrBefore(s, RANGE_FROM).getTime();
      let i = expected.indexOf(slot);
      assert.ok(i >= 0, `first slot ${new Date(slot).toISOString()} is a slot by the rules`);
      while (slot < RANGE_TO.getTime()) {
        const next = nextSlotAfter(s, new Date(slot)).getTime();
        assert.ok(next > slot, 'nextSlotAfter(slot) > slot');
        assert.equal(next, expected[++i], `slot after ${new Date(slot).toISOString()}`);
        slot = next;
      }

      // At hourly ticks (with a moving minute and some sub-minute offsets):
      let previous = -Infinity;
      let j = 0;
      for (let k = 0, t = RANGE_FROM.getTime(); t < RANGE_TO.getTime(); k++, t = RANGE_FROM.getTime() + k * HOUR + ((k * 17) % 60) * MINUTE + (k % 3) * 250) {
        const now = new Date(t);
        const before = slotAtOrBefore(s, now).getTime();
        const after = nextSlotAfter(s, now).getTime();
        while (expected[j + 1] <= t) j++;
        assert.equal(before, expected[j], `slotAtOrBefore(${now.toISOString()})`);
        assert.equal(after, expected[j + 1], `nextSlotAfter(${now.toISOString()})`);
        assert.ok(before <= t && t < after);
        assert.ok(after - before <= largestGap);
        assert.ok(before >= previous, 'slotAtOrBefore never goes backwards');
        previous = before;
        assert.equal(slotAtOrBefore(s, new Date(after)).getTime(), after, 'slotAtOrBefore(nextSlotAfter(t)) === nextSlotAfter(t)');
        assert.equal(slotAtOrBefore(s, new Date(before)).getTime(), before, 'a slot is its own slotAtOrBefore');
        assert.equal(nextSlotAfter(s, new Date(before)).getTime(), after, 'no slot between consecutive slots');
        assert.equal(slotAtOrBefore(s, new Date(after - 1)).getTime(), before, 'nothing between before and after');
      }
    });

    test(`${describeSchedule(s)}: an hourly-ticking scheduler runs every slot of a year exactly once`, () => {
      const created = at('2023-11-30T23:58:30');
      const end = created.getTime() + 366 * DAY;
      let last: Date | null = created;
      const runs: number[] = [];
      for (let t = Date.parse('2023-12-01T00:00:00Z'); t <= end; t += HOUR) {
        const slot = dueSlot(s, last, new Date(t));
        if (slot) {
          assert.ok(slot.getTime() <= t && t < nextSlotAfter(s, slot).getTime(), 'a due slot is less than one period old');
          runs.push(slot.getTime());
          last = slot;
        }
      }
      // Every slot after creation whose first tick at or after it is still within the year.
      const firstTick = Date.parse('2023-12-01T00:00:00Z');
      const expected = slotsByRule(s, new Date(created.getTime() + 1), new Date(end + 1)).filter(
        (v) => firstTick + Math.ceil((v - firstTick) / HOUR) * HOUR <= end,
      );
      assert.ok(expected.length >= 1, 'slots in the year');
      assert.deepEqual(runs, expected);
      assert.equal(new Set(runs).size, runs.length);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// A scheduler ticking every 5 minutes.

/** Deterministic PRNG (mulberry32), so a failure can be reproduced from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TICK = 5 * MINUTE;
const SIM_START = at('2024-02-19T00:00'); // three weeks that include Feb 29 2024
const SIM_TICKS = (21 * DAY) / TICK; // 6048
const CREATED = new Date(SIM_START.getTime() - 2 * MINUTE);

type Run = { tick: number; slot: number };

/** Tick every 5 minutes for 3 weeks, skipping ticks inside `outages`; record the slot of each run. */
function simulate(s: Schedule, outages: Array<[number, number]>, record: 'slot' | 'start' = 'slot'): Run[] {
  let last: Date | null = CREATED;
  const runs: Run[] = [];
  for (let k = 0; k < SIM_TICKS; k++) {
    const t = SIM_START.getTime() + k * TICK;
    if (outages.some(([from, to]) => t >= from && t < to)) continue;
    const now = new Date(t);
    const slot = dueSlot(s, last, now);
    // A second worker looking at the same moment agrees on the slot.
    assert.equal(iso(dueSlot(s, last, new Date(t))), iso(slot));
    if (slot) {
      runs.push({ tick: t, slot: slot.getTime() });
      last = record === 'slot' ? slot : now;
    }
  }
  return runs;
}

describe('a scheduler ticking every 5 minutes for 3 weeks', () => {
  for (const time of ['00:00', '00:07', '00:59']) {
    const s = S(1, 'hour', time);
    for (const record of ['slot', 'start'] as const) {
      test(`every hour at ${time}, recording the ${record}: 504 runs, each slot once and on time`, () => {
        const runs = simulate(s, [], record);
        assert.equal(runs.length, 504);
        assert.equal(new Set(runs.map((r) => r.slot)).size, 504);
        for (let i = 0; i < runs.length; i++) {
          if (i > 0) assert.ok(runs[i].slot > runs[i - 1].slot, 'slots strictly increase');
          assert.ok(runs[i].slot <= runs[i].tick && runs[i].tick < runs[i].slot + TICK, 'run on the first tick at or after its slot');
        }
        assert.equal(iso(new Date(runs[0].slot)), iso(nextSlotAfter(s, CREATED)), 'the first backup is the first slot after creation');
      });
    }
  }

  for (const seed of [1, 2, 3, 42, 2024]) {
    test(`every hour, with random outages (seed ${seed}): each outage yields at most one catch-up run`, () => {
      const random = prng(seed);
      const s = S(1, 'hour', seed % 2 === 0 ? '00:00' : '00:20');
      // 6 to 12 outages of 30 minutes to 8 hours, starting at any minute, apart from each other.
      const outages: Array<[number, number]> = [];
      let cursor = SIM_START.getTime() + HOUR;
      const count = 6 + Math.floor(random() * 7);
      for (let i = 0; i < count; i++) {
        const from = cursor + Math.floor(random() * 36 * 60) * MINUTE;
        const to = from + (30 + Math.floor(random() * 450)) * MINUTE;
        if (to >= SIM_START.getTime() + 21 * DAY) break;
        outages.push([from, to]);
        cursor = to + HOUR;
      }
      assert.ok(outages.length >= 3, 'some outages');

      const runs = simulate(s, outages);
      const slots = runs.map((r) => r.slot);
      assert.equal(new Set(slots).size, slots.length, 'no slot twice');
      for (let i = 1; i < slots.length; i++) assert.ok(slots[i] > slots[i - 1], 'slots strictly increase');
      for (const r of runs) {
        assert.equal(r.slot, slotAtOrBefore(s, new Date(r.tick)).getTime());
        assert.ok(r.tick - r.slot < HOUR, 'a slot is only run while it is less than one period old');
      }

      let lateRuns = 0;
      for (const [from, to] of outages) {
        // Runs that happened after the outage for a slot that fell inside it.
        const late = runs.filter((r) => r.slot >= from && r.slot < to && r.tick >= to);
        assert.ok(late.length <= 1, `outage ${new Date(from).toISOString()}–${new Date(to).toISOString()}: ${late.length} catch-up runs`);
        lateRuns += late.length;
      }

      // Every slot of the three weeks either ran exactly once, or had no live tick at all in its
      // hour (it fell wholly inside an outage) and was not replayed.
      const allSlots = slotsByRule(s, new Date(CREATED.getTime() + 1), new Date(SIM_START.getTime() + 21 * DAY));
      assert.equal(allSlots.length, 504);
      const ran = new Set(slots);
      let lost = 0;
      for (const slot of allSlots) {
        if (ran.has(slot)) continue;
        lost++;
        const live = runsOrTicksIn(slot, slot + HOUR, outages);
        assert.equal(live, 0, `slot ${new Date(slot).toISOString()} had a live tick in its hour but did not run`);
      }
      assert.equal(runs.length + lost, 504);
      assert.ok(lost > 0, 'the outages made some slots lost (not replayed)');
      assert.ok(lateRuns > 0, 'the outages made some catch-up runs');
    });
  }
});

/** Live (not in an outage) ticks of the simulation within [from, to). */
function runsOrTicksIn(from: number, to: number, outages: Array<[number, number]>): number {
  let live = 0;
  for (let k = 0; k < SIM_TICKS; k++) {
    const t = SIM_START.getTime() + k * TICK;
    if (t < from || t >= to) continue;
    if (!outages.some(([a, b]) => t >= a && t < b)) live++;
  }
  return live;
}
