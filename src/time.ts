/** Calendar arithmetic in UTC shared by retention and scheduling, and strict timestamp parsing. */

export type IntervalUnit = 'hour' | 'day' | 'week' | 'month' | 'year';

/**
 * `date` + `value` `unit`s, in UTC. Months and years are calendar months: Jan 31 + 1 month
 * is the last day of February, not March 3 (the day is clamped to the month's length).
 */
export function addInterval(date: Date, value: number, unit: IntervalUnit): Date {
  const d = new Date(date.getTime());
  switch (unit) {
    case 'hour':
      return new Date(d.getTime() + value * 3_600_000);
    case 'day':
      return new Date(d.getTime() + value * 86_400_000);
    case 'week':
      return new Date(d.getTime() + value * 7 * 86_400_000);
    case 'month':
    case 'year': {
      const months = unit === 'month' ? value : value * 12;
      const y = d.getUTCFullYear();
      const m = d.getUTCMonth() + months;
      const targetYear = y + Math.floor(m / 12);
      const targetMonth = ((m % 12) + 12) % 12;
      const lastDay = new Date(Date.UTC(targetYear, targetMonth + 1, 0)).getUTCDate();
      const day = Math.min(d.getUTCDate(), lastDay);
      return new Date(Date.UTC(targetYear, targetMonth, day, d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()));
    }
  }
}

const ISO_RE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * Parse an ISO 8601 date or date-time strictly (no "yesterday", no "2023-02-30").
 * A time without a zone is taken as UTC. Returns null when malformed.
 */
export function parseTimestamp(text: string): Date | null {
  const s = text.trim();
  if (!ISO_RE.test(s)) return null;
  let normalized = s.replace(' ', 'T');
  if (/^\d{4}-\d{2}-\d{2}$/.test(normalized)) normalized += 'T00:00:00Z';
  else if (!/(Z|[+-]\d{2}:?\d{2})$/.test(normalized)) normalized += 'Z';
  const t = Date.parse(normalized);
  if (Number.isNaN(t)) return null;
  // Date.parse rolls 2023-02-30 over to March 2: reject dates that do not exist.
  const [y, mo, da] = s.slice(0, 10).split('-').map(Number);
  const probe = new Date(Date.UTC(y, mo - 1, da));
  if (probe.getUTCFullYear() !== y || probe.getUTCMonth() !== mo - 1 || probe.getUTCDate() !== da) return null;
  return new Date(t);
}
