import type { Caller } from '../callers/accessPolicy';
import type { Telemetry } from '../telemetry';
import type { AuditEntry, AuditOrigin, AuditRecord } from './auditRecord';
import { buildAuditRecord } from './auditRecord';

/** The Application Insights custom event that carries each audit record. */
export const AUDIT_EVENT = 'SecretAudit';
/** What starts an audit line in the host log (where telemetry is off); the JSON record follows. */
export const AUDIT_LOG_PREFIX = 'audit ';

/** Where finished records go. */
export type AuditSink = (record: AuditRecord) => void;

/**
 * Audit records go to Application Insights as custom events when telemetry is on: the SDK
 * batches them, and this app's telemetry client samples nothing. Otherwise each is one host log
 * line, `audit ` then the record as JSON (so no field can break out of its quotes or its line).
 */
export function auditSink(telemetry: Telemetry, log: (line: string) => void): AuditSink {
  if (telemetry.enabled) return (record) => telemetry.trackEvent(AUDIT_EVENT, { ...record });
  return (record) => log(AUDIT_LOG_PREFIX + JSON.stringify(record));
}

/** Records the accesses of one request. */
export interface AuditRecorder {
  record(entry: AuditEntry): void;
}

/**
 * The audit trail of one request: knows where it came from and, once authenticated, who the
 * caller is; counts what it wrote so the request itself is recorded when nothing else was.
 */
export class AuditTrail implements AuditRecorder {
  caller: Caller | undefined;
  private written = 0;

  constructor(
    private readonly origin: AuditOrigin,
    private readonly sink: AuditSink,
  ) {}

  /** How many records this request has written. */
  get count(): number {
    return this.written;
  }

  record(entry: AuditEntry): void {
    this.written++;
    this.sink(buildAuditRecord(this.origin, this.caller, entry));
  }
}
