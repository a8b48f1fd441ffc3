/**
 * The schedule of a timer trigger, as Azure Functions writes it: a six-field NCRONTAB expression
 * or a TimeSpan interval, so code outside the host (the local host, which fires timers itself) can
 * tell when a timer is due.
 *
 * Times are UTC, the Functions host's default. `WEBSITE_TIME_ZONE` (and so daylight saving) is out
 * of scope: an app that sets it runs its CRON schedules in that zone and this module will not agree.
 */

/** A parsed schedule. */
export interface Schedule {
  /** The expression as given (trimmed). */
  readonly expression: string;
  /**
   * The first occurrence strictly after `after`, in UTC. CRON occurrences fall on whole seconds;
   * a TimeSpan schedule answers `after` plus the interval, as the host's constant schedule does.
   * @throws RangeError when `after` is an invalid Date.
   */
  next(after: Date): Date;
}

/**
 * The six NCRONTAB fields, in order: their names in error messages, their ranges, where `*` and
 * `a/n` end (`top`), and the names their values may be written as.
 */
const FIELDS = [
  { name: 'second', min: 0, max: 59, top: 59 },
  { name: 'minute', min: 0, max: 59, top: 59 },
  { name: 'hour', min: 0, max: 23, top: 23 },
  { name: 'day', min: 1, max: 31, top: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    top: 12,
    names: ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'],
  },
  // 7 is Sunday too, as in most crons; it is folded into 0 once parsed, and `*` stops at 6 so
  // that steps count the week as NCrontab does.
  { name: 'day-of-week', min: 0, max: 7, top: 6, names: ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] },
] as const;

type FieldSpec = (typeof FIELDS)[number];

/** The longest each month can be; February counts its leap day, so `29 Feb` is possible. */
const MAX_DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

/**
 * Every valid expression occurs within one 400-year Gregorian cycle (the calendar, weekdays
 * included, repeats after it), so a search that passes it has a bug, not a rare date.
 */
const SEARCH_YEARS = 400;

/**
 * Parses a timer schedule.
 *
 * NCRONTAB: six fields `second minute hour day month day-of-week`, separated by spaces. Each field
 * is a comma-separated list of items: `*`, `n`, `a-b`, each optionally followed by a step `/n`
 * (`a/n` runs from `a` to the field's end). Months and weekdays may be named (`Jan`, `January`, `Mon`,
 * `Monday`, any case); weekdays are 0-7 with both 0 and 7 meaning Sunday. A day must match both
 * day fields, as in the host's NCrontab library (unlike Unix cron, where restricting both means
 * either): `0 0 12 13 * Fri` is Friday the 13th.
 *
 * TimeSpan: `hh:mm:ss` (hours 0-23), `d.hh:mm:ss` or `d:hh:mm:ss`, a positive interval.
 *
 * @throws Error naming the bad field and why, e.g. `minute field "61" is out of range 0-59`.
 */
export function parseSchedule(expression: string): Schedule {
  const trimmed = expression.trim();
  if (trimmed === '') throw new Error('Schedule is empty: expected an NCRONTAB expression or a TimeSpan');
  if (/^[\d.:]+$/.test(trimmed) && trimmed.includes(':')) return parseTimeSpan(trimmed);
  return parseCron(trimmed);
}

// ---- TimeSpan ----

function parseTimeSpan(expression: string): Schedule {
  const match = /^(?:(\d+)[.:])?(\d{1,2}):(\d{1,2}):(\d{1,2})$/.exec(expression);
  if (!match) throw new Error(`TimeSpan "${expression}" is not hh:mm:ss, d.hh:mm:ss or d:hh:mm:ss`);
  const [, days, hours, minutes, seconds] = match;
  // .NET reads "24:00:00" as 24 days, not one: the host documents it, but nobody means it.
  if (days === undefined && Number(hours) > 23) {
    throw new Error(
      `TimeSpan "${expression}" is ambiguous: the Functions host reads it as ${Number(hours)} days; write 1.00:00:00 for a day`,
    );
  }
  const parts: Array<[string, string | undefined, number]> = [
    ['hours', hours, 23],
    ['minutes', minutes, 59],
    ['seconds', seconds, 59],
  ];
  for (const [unit, value, max] of parts) {
    if (Number(value) > max) throw new Error(`TimeSpan "${expression}": ${unit} "${value}" is out of range 0-${max}`);
  }
  const intervalMs = (((Number(days ?? 0) * 24 + Number(hours)) * 60 + Number(minutes)) * 60 + Number(seconds)) * 1000;
  if (intervalMs === 0) throw new Error(`TimeSpan "${expression}" is not a positive interval`);
  return {
    expression,
    next(after) {
      return new Date(timeOf(after) + intervalMs);
    },
  };
}

// ---- NCRONTAB ----

/** Allowed values of one field: a lookup by value and the values in ascending order. */
interface ValueSet {
  readonly has: readonly boolean[];
  readonly sorted: readonly number[];
  /** The field starts with `*`: unrestricted, for how the day fields combine. */
  readonly star: boolean;
}

function parseCron(expression: string): Schedule {
  const tokens = expression.split(/\s+/);
  if (tokens.length !== FIELDS.length) {
    throw new Error(
      `NCRONTAB expression "${expression}" has ${tokens.length} field${tokens.length === 1 ? '' : 's'}; ` +
        'expected 6 (second minute hour day month day-of-week) or a TimeSpan hh:mm:ss',
    );
  }
  const sets = FIELDS.map((spec, i) => parseField(spec, tokens[i] ?? ''));
  const [seconds, minutes, hours, days, months, weekdays] = sets as [ValueSet, ValueSet, ValueSet, ValueSet, ValueSet, ValueSet];
  const dayToken = tokens[3] ?? '';
  const monthToken = tokens[4] ?? '';
  // When both day fields must match, a day no chosen month has (30 Feb) never occurs: say so now
  // instead of searching 400 years at the first call.
  {
    const possible = months.sorted.some((month) => days.sorted.some((day) => day <= (MAX_DAYS_IN_MONTH[month - 1] ?? 31)));
    if (!possible) throw new Error(`day field "${dayToken}" never occurs in month field "${monthToken}"`);
  }
  const dayMatches = (year: number, month: number, day: number): boolean =>
    days.has[day] === true && weekdays.has[weekdayOf(year, month, day)] === true;

  return {
    expression,
    next(after) {
      // Whole seconds: the next candidate is the first second after `after`.
      const start = new Date(Math.floor(timeOf(after) / 1000) * 1000 + 1000);
      let year = start.getUTCFullYear();
      let month = start.getUTCMonth() + 1;
      let day = start.getUTCDate();
      let hour = start.getUTCHours();
      let minute = start.getUTCMinutes();
      let second = start.getUTCSeconds();
      const lastYear = year + SEARCH_YEARS;

      // Each step either accepts a field or moves to the start of the next value of a coarser
      // one, so the search visits at most every day of the matching months, never every second.
      while (year <= lastYear) {
        const nextMonth = firstFrom(months, month);
        if (nextMonth === undefined) {
          [year, month, day, hour, minute, second] = [year + 1, 1, 1, 0, 0, 0];
          continue;
        }
        if (nextMonth !== month) [month, day, hour, minute, second] = [nextMonth, 1, 0, 0, 0];

        const lastDay = daysInMonth(year, month);
        let nextDay = day;
        while (nextDay <= lastDay && !dayMatches(year, month, nextDay)) nextDay++;
        if (nextDay > lastDay) {
          [month, day, hour, minute, second] = [month + 1, 1, 0, 0, 0];
          if (month > 12) [year, month] = [year + 1, 1];
          continue;
        }
        if (nextDay !== day) [day, hour, minute, second] = [nextDay, 0, 0, 0];

        const nextHour = firstFrom(hours, hour);
        if (nextHour === undefined) {
          [day, hour, minute, second] = [day + 1, 0, 0, 0];
          continue;
        }
        if (nextHour !== hour) [hour, minute, second] = [nextHour, 0, 0];

        const nextMinute = firstFrom(minutes, minute);
        if (nextMinute === undefined) {
          [hour, minute, second] = [hour + 1, 0, 0];
          continue;
        }
        if (nextMinute !== minute) [minute, second] = [nextMinute, 0];

        const nextSecond = firstFrom(seconds, second);
        if (nextSecond === undefined) {
          [minute, second] = [minute + 1, 0];
          continue;
        }
        return utc(year, month, day, hour, minute, nextSecond);
      }
      throw new Error(`NCRONTAB expression "${expression}" has no occurrence within ${SEARCH_YEARS} years of ${start.toISOString()}`);
    },
  };
}

function parseField(spec: FieldSpec, token: string): ValueSet {
  const has: boolean[] = [];
  const fail = (item: string, why: string): never => {
    throw new Error(`${spec.name} field "${item}" ${why}`);
  };
  for (const item of token.split(',')) {
    if (item === '') fail(token, 'has an empty list item');
    const slash = item.indexOf('/');
    const base = slash === -1 ? item : item.slice(0, slash);
    let step = 1;
    if (slash !== -1) {
      const stepText = item.slice(slash + 1);
      if (!/^\d+$/.test(stepText) || Number(stepText) < 1) fail(item, 'needs a step that is a whole number of 1 or more');
      step = Number(stepText);
    }
    let first: number;
    let last: number;
    if (base === '*') {
      [first, last] = [spec.min, spec.top];
    } else {
      const dash = base.indexOf('-');
      if (dash === -1) {
        first = parseValue(spec, base, item);
        // `a/n` runs from a to the end of the field, as in NCrontab.
        last = slash === -1 ? first : Math.max(first, spec.top);
      } else {
        first = parseValue(spec, base.slice(0, dash), item);
        last = parseValue(spec, base.slice(dash + 1), item);
        if (first > last) fail(item, 'is a range that ends before it starts');
      }
    }
    for (let value = first; value <= last; value += step) has[value] = true;
  }
  if (spec.name === 'day-of-week' && has[7]) [has[0], has[7]] = [true, false];
  const sorted: number[] = [];
  for (let value = spec.min; value <= spec.max; value++) if (has[value]) sorted.push(value);
  return { has, sorted, star: token.startsWith('*') };
}

function parseValue(spec: FieldSpec, text: string, item: string): number {
  const range = `${spec.min}-${spec.max}`;
  if (/^\d+$/.test(text)) {
    const value = Number(text);
    if (value < spec.min || value > spec.max) throw new Error(`${spec.name} field "${item}" is out of range ${range}`);
    return value;
  }
  if ('names' in spec) {
    // The three-letter abbreviation or the whole English name, in any case.
    const lower = text.toLowerCase();
    const index = spec.names.findIndex((name) => lower === name || lower === name.slice(0, 3));
    if (index !== -1) return index + spec.min;
    const kind = spec.name === 'month' ? 'month name (Jan-Dec)' : 'day name (Sun-Sat)';
    throw new Error(`${spec.name} field "${item}" is not a number ${range} or a ${kind}`);
  }
  throw new Error(`${spec.name} field "${item}" is not a number ${range}`);
}

// ---- calendar ----

function firstFrom(set: ValueSet, from: number): number | undefined {
  return set.sorted.find((value) => value >= from);
}

function daysInMonth(year: number, month: number): number {
  // Day 0 of the next month is the last day of this one.
  return utc(year, month + 1, 0, 0, 0, 0).getUTCDate();
}

function weekdayOf(year: number, month: number, day: number): number {
  return utc(year, month, day, 0, 0, 0).getUTCDay();
}

/** `Date.UTC` reads years 0-99 as 1900-1999; setting the year afterwards does not. */
function utc(year: number, month: number, day: number, hour: number, minute: number, second: number): Date {
  const date = new Date(Date.UTC(2000, 0, 1, hour, minute, second));
  date.setUTCFullYear(year, month - 1, day);
  return date;
}

function timeOf(after: Date): number {
  const time = after.getTime();
  if (Number.isNaN(time)) throw new RangeError('Schedule.next: `after` is an invalid Date');
  return time;
}
