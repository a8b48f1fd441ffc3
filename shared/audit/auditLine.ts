import type { Caller } from '../callers/accessPolicy';
import { AUDIT_LOG_PREFIX } from './auditLog';
import type { AuditEntry, AuditOrigin } from './auditRecord';
import { buildAuditRecord } from './auditRecord';

/**
 * An access's `audit {json}` log line with the fields that are the same for every request of one
 * caller and one served value (operation, caller, key id, vault, secret, version, outcome, status,
 * code, cache, validity) serialised once: each request fills in only its time, origin and
 * duration. The text is exactly `AUDIT_LOG_PREFIX + JSON.stringify(buildAuditRecord(...))` for the
 * same record: the template is cut out of that very serialisation, so fields, order and values
 * cannot drift from {@link buildAuditRecord}.
 */
export class AuditLineTemplate {
  /** The record's text around the per-request values: 7 pieces around 6 holes. */
  private readonly pieces: readonly string[];

  constructor(caller: Caller | undefined, entry: Omit<AuditEntry, 'durationMs'>) {
    const record = buildAuditRecord(NO_ORIGIN, caller, { ...entry, durationMs: 0 });
    // The spread keeps each field where the record has it; only the values become markers.
    const marked = JSON.stringify({
      ...record,
      time: MARKERS[0],
      clientAddress: MARKERS[1],
      requestId: MARKERS[2],
      invocationId: MARKERS[3],
      operationId: MARKERS[4],
      durationMs: MARKERS[5],
    });
    const pieces: string[] = [];
    let rest = AUDIT_LOG_PREFIX + marked;
    for (const marker of MARKERS) {
      const quoted = JSON.stringify(marker);
      const at = rest.indexOf(quoted);
      if (at < 0 || rest.indexOf(quoted, at + 1) >= 0) throw new Error('audit record layout changed');
      pieces.push(rest.slice(0, at));
      rest = rest.slice(at + quoted.length);
    }
    pieces.push(rest);
    this.pieces = pieces;
  }

  /**
   * The line for one request: `origin` as {@link auditOrigin} read it, `durationMs` unrounded
   * (rounded here as the record rounds it), `now` the record's time (ms since the epoch).
   */
  line(origin: AuditOrigin, durationMs: number, now: number = Date.now()): string {
    const p = this.pieces;
    return (
      p[0] +
      `"${isoTime(now)}"` +
      p[1] +
      json(origin.clientAddress) +
      p[2] +
      json(origin.requestId) +
      p[3] +
      json(origin.invocationId) +
      p[4] +
      json(origin.operationId) +
      p[5] +
      JSON.stringify(Math.round(durationMs * 10) / 10) +
      p[6]
    );
  }
}

const NO_ORIGIN: AuditOrigin = { clientAddress: null, requestId: null, invocationId: null, operationId: null };
/** Strings no record field holds (control characters, which JSON escapes), one per per-request value. */
const MARKERS = ['\u0001t', '\u0001c', '\u0001r', '\u0001i', '\u0001o', '\u0001d'] as const;

function json(value: string | null): string {
  return value === null ? 'null' : JSON.stringify(value);
}

let timeMs = NaN;
let timeText = '';

/** `new Date(ms).toISOString()`, made once per millisecond. */
export function isoTime(ms: number): string {
  if (ms !== timeMs) {
    timeText = new Date(ms).toISOString();
    timeMs = ms;
  }
  return timeText;
}
