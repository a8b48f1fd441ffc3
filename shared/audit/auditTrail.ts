import type { Caller } from '../callers/accessPolicy';
import type { Telemetry } from '../telemetry';
import type { AuditEntry, AuditOrigin, AuditRecord } from './auditRecord';
import { buildAuditRecord } from './auditRecord';
import type { AuditLog } from './auditLog';
import { processAuditLog } from './auditLog';

export { AUDIT_LOG_PREFIX } from './auditLog';

/** The Application Insights custom event that carries each audit record. */
export const AUDIT_EVENT = 'SecretAudit';
/** Where finished records go. */
export type AuditSink = (record: AuditRecord) => void;

/**
 * Audit records go to Application Insights as custom events when telemetry is on: the SDK
 * batches them, and this app's telemetry client samples nothing. Otherwise they go to the host
 * log through the process's {@link AuditLog}: batched, one `audit {json}` line per record.
 */
export function auditSink(telemetry: Telemetry, log: Pick<AuditLog, 'add'> = processAuditLog()): AuditSink {
  if (telemetry.enabled) return (record) => telemetry.trackEvent(AUDIT_EVENT, { ...record });
  return (record) => log.add(record);
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
