import { parseSchedule } from '../../shared/health/ncrontab';

describe('parseSchedule', () => {
  // 2025-03-01 is a Saturday; 2025-03-14 a Friday.
  it.each([
    ['every quarter hour', '0 */15 * * * *', '2025-03-10T10:07:30.000Z', '2025-03-10T10:15:00.000Z'],
    ['every quarter hour, strictly after an occurrence', '0 */15 * * * *', '2025-03-10T10:15:00.000Z', '2025-03-10T10:30:00.000Z'],
    ['every quarter hour, from inside the occurrence second', '0 */15 * * * *', '2025-03-10T10:15:00.500Z', '2025-03-10T10:30:00.000Z'],
    ['every quarter hour, across midnight', '0 */15 * * * *', '2025-03-10T23:50:00.000Z', '2025-03-11T00:00:00.000Z'],
    [
      'weekdays at nine, from Friday after nine across the weekend',
      '0 0 9 * * Mon-Fri',
      '2025-03-14T09:00:00.000Z',
      '2025-03-17T09:00:00.000Z',
    ],
    ['weekdays at nine, from Saturday', '0 0 9 * * Mon-Fri', '2025-03-15T12:00:00.000Z', '2025-03-17T09:00:00.000Z'],
    ['weekdays at nine, from a Tuesday morning', '0 0 9 * * mon-FRI', '2025-03-11T08:59:59.999Z', '2025-03-11T09:00:00.000Z'],
    ['the leap day, from a common year', '0 30 2 29 Feb *', '2025-01-01T00:00:00.000Z', '2028-02-29T02:30:00.000Z'],
    ['the leap day, from one leap day to the next', '0 30 2 29 Feb *', '2028-02-29T02:30:00.000Z', '2032-02-29T02:30:00.000Z'],
    ['the leap day, over 2100 which is not a leap year', '0 30 2 29 Feb *', '2096-03-01T00:00:00.000Z', '2104-02-29T02:30:00.000Z'],
    ['every ten seconds', '*/10 * * * * *', '2025-03-10T10:00:05.000Z', '2025-03-10T10:00:10.000Z'],
    ['every ten seconds, into the next minute', '*/10 * * * * *', '2025-03-10T10:00:59.999Z', '2025-03-10T10:01:00.000Z'],
    ['the first of the month, from the last day of January', '0 0 0 1 * *', '2025-01-31T12:00:00.000Z', '2025-02-01T00:00:00.000Z'],
    ['the first of the month, into the next year', '0 0 0 1 * *', '2025-12-15T00:00:00.000Z', '2026-01-01T00:00:00.000Z'],
    ['the 31st, skipping months that have no 31st', '0 0 0 31 * *', '2025-03-31T00:00:00.000Z', '2025-05-31T00:00:00.000Z'],
    ['Friday the 13th only, as the host reads both day fields', '0 0 12 13 * Fri', '2025-03-01T00:00:00.000Z', '2025-06-13T12:00:00.000Z'],
    [
      'odd days that are Mondays (a day field starting with * must match too)',
      '0 0 12 */2 * Mon',
      '2025-03-04T00:00:00.000Z',
      '2025-03-17T12:00:00.000Z',
    ],
    ['Sundays written as 7', '0 0 0 * * 7', '2025-03-15T01:00:00.000Z', '2025-03-16T00:00:00.000Z'],
    ['Sundays written as a range ending in 7', '0 0 0 * * 6-7', '2025-03-15T01:00:00.000Z', '2025-03-16T00:00:00.000Z'],
    ['full names in upper case', '0 0 0 1 JANUARY *', '2025-03-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'],
    ['lists and stepped ranges', '0 15,45 9-17/4 * * *', '2025-03-10T09:50:00.000Z', '2025-03-10T13:15:00.000Z'],
    ['a start with a step running to the end of the field', '5/20 * * * * *', '2025-03-10T10:00:26.000Z', '2025-03-10T10:00:45.000Z'],
    ['a weekday start with a step, which stops at Saturday', '0 0 0 * * 5/2', '2025-03-15T00:00:00.000Z', '2025-03-21T00:00:00.000Z'],
    ['extra spaces between fields', '  0  0   9 * *  Mon ', '2025-03-14T00:00:00.000Z', '2025-03-17T09:00:00.000Z'],
    ['a TimeSpan of five minutes', '00:05:00', '2025-03-10T10:07:30.250Z', '2025-03-10T10:12:30.250Z'],
    ['a TimeSpan of a day with a day part', '1.00:00:00', '2025-03-10T10:07:30.000Z', '2025-03-11T10:07:30.000Z'],
    ['a TimeSpan of 25 days written d:hh:mm:ss', '25:00:00:00', '2025-03-01T00:00:00.000Z', '2025-03-26T00:00:00.000Z'],
  ])('finds the next time of %s (%s after %s is %s)', (_label, expression, after, expected) => {
    expect(parseSchedule(expression).next(new Date(after)).toISOString()).toBe(expected);
  });

  it('keeps the trimmed expression it was given', () => {
    expect(parseSchedule(' 0 */5 * * * * ').expression).toBe('0 */5 * * * *');
  });

  it('walks a schedule occurrence by occurrence without repeating or skipping one', () => {
    const schedule = parseSchedule('0 0 9,17 * * Mon-Fri');
    const seen: string[] = [];
    let at = new Date('2025-03-13T18:00:00.000Z');
    for (let i = 0; i < 5; i++) {
      at = schedule.next(at);
      seen.push(at.toISOString());
    }
    expect(seen).toEqual([
      '2025-03-14T09:00:00.000Z',
      '2025-03-14T17:00:00.000Z',
      '2025-03-17T09:00:00.000Z',
      '2025-03-17T17:00:00.000Z',
      '2025-03-18T09:00:00.000Z',
    ]);
  });

  it('rejects an invalid Date as the starting point', () => {
    expect(() => parseSchedule('0 * * * * *').next(new Date('not a date'))).toThrow(RangeError);
  });

  it.each([
    ['0 61 * * * *', 'minute field "61" is out of range 0-59'],
    ['60 * * * * *', 'second field "60" is out of range 0-59'],
    ['0 0 24 * * *', 'hour field "24" is out of range 0-23'],
    ['0 0 0 0 * *', 'day field "0" is out of range 1-31'],
    ['0 0 0 1 13 *', 'month field "13" is out of range 1-12'],
    ['0 0 0 * * 8', 'day-of-week field "8" is out of range 0-7'],
    ['0 5,70-80 * * * *', 'minute field "70-80" is out of range 0-59'],
    ['0 0 0 * Foo *', 'month field "Foo" is not a number 1-12 or a month name (Jan-Dec)'],
    ['0 0 0 * * Mon-Fun', 'day-of-week field "Mon-Fun" is not a number 0-7 or a day name (Sun-Sat)'],
    ['0 x * * * *', 'minute field "x" is not a number 0-59'],
    ['0 -5 * * * *', 'minute field "-5" is not a number 0-59'],
    ['0 */0 * * * *', 'minute field "*/0" needs a step that is a whole number of 1 or more'],
    ['0 5/ * * * *', 'minute field "5/" needs a step that is a whole number of 1 or more'],
    ['0 0 17-9 * * *', 'hour field "17-9" is a range that ends before it starts'],
    ['0 1,,2 * * * *', 'minute field "1,,2" has an empty list item'],
    ['0 0 0 30 Feb *', 'day field "30" never occurs in month field "Feb"'],
    ['0 0 0 31 Apr,Jun *', 'day field "31" never occurs in month field "Apr,Jun"'],
    [
      '*/5 * * * *',
      'NCRONTAB expression "*/5 * * * *" has 5 fields; expected 6 (second minute hour day month day-of-week) or a TimeSpan hh:mm:ss',
    ],
    ['  ', 'Schedule is empty: expected an NCRONTAB expression or a TimeSpan'],
    ['00:60:00', 'TimeSpan "00:60:00": minutes "60" is out of range 0-59'],
    ['00:00:75', 'TimeSpan "00:00:75": seconds "75" is out of range 0-59'],
    ['24:00:00', 'TimeSpan "24:00:00" is ambiguous: the Functions host reads it as 24 days; write 1.00:00:00 for a day'],
    ['00:00:00', 'TimeSpan "00:00:00" is not a positive interval'],
    ['1:30', 'TimeSpan "1:30" is not hh:mm:ss, d.hh:mm:ss or d:hh:mm:ss'],
  ])('rejects %j with: %s', (expression, message) => {
    expect(() => parseSchedule(expression)).toThrow(new Error(message));
  });
});
