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
 *
 * A refusal of the request as a whole (401 / 403 outside a batch) is held, not written: the
 * pipeline asks the refusal limit first, then {@link settle}s it, writing it, or dropping it when
 * the request is answered 429 past that limit (its window's `refusals` record counts it instead).
 */
export class AuditTrail implements AuditRecorder {
  caller: Caller | undefined;
  private written = 0;
  private refusal: AuditRecord | undefined;

  constructor(
    private readonly origin: AuditOrigin,
    private readonly sink: AuditSink,
  ) {}

  /** How many records this request has written (a held refusal counts). */
  get count(): number {
    return this.written;
  }

  /** The client address the records carry (the last `X-Forwarded-For` hop), the refusal limit's key. */
  get clientAddress(): string | null {
    return this.origin.clientAddress;
  }

  record(entry: AuditEntry): void {
    this.written++;
    const record = buildAuditRecord(this.origin, this.caller, entry);
    if (entry.item === undefined && (entry.status === 401 || entry.status === 403)) {
      if (this.refusal) this.sink(this.refusal);
      this.refusal = record;
      return;
    }
    this.sink(record);
  }

  /** Writes the held refusal, or, when `suppress`, drops it. Call once the request's answer is known. */
  settle(suppress: boolean): void {
    const refusal = this.refusal;
    if (!refusal) return;
    this.refusal = undefined;
    if (!suppress) this.sink(refusal);
  }
}
