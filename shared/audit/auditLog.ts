import type { AuditRecord } from './auditRecord';

/** What starts an audit line in the host log (where telemetry is off); the JSON record follows. */
export const AUDIT_LOG_PREFIX = 'audit ';
/** The longest a record waits in the buffer before it is written. */
export const AUDIT_FLUSH_INTERVAL_MS = 1_000;
/** A buffer this full is written at once, so the buffer is bounded and nothing is dropped. */
export const AUDIT_FLUSH_RECORDS = 100;

/**
 * Where one record's `audit {json}` line goes: one call per record, so in Azure (where each worker
 * log call is one row of the host log) one row holds exactly one record.
 */
export type AuditLogWrite = (line: string) => void;

export interface AuditLogOptions {
  /** Default: one `console.info` call per record (see {@link processAuditLog}). */
  readonly write?: AuditLogWrite;
  /** Default {@link AUDIT_FLUSH_RECORDS}. */
  readonly maxRecords?: number;
  /** Default {@link AUDIT_FLUSH_INTERVAL_MS}. */
  readonly flushIntervalMs?: number;
}

/**
 * Audit records bound for the host log, written in batches: each flush writes every buffered
 * record, one `audit {json}` line per write call (JSON escapes line breaks, so no field can break
 * out of its quotes or its line, and a log row is one record). A flush happens when the buffer
 * holds `maxRecords`, `flushIntervalMs` after the first record of a batch, and on {@link flush}
 * (hosts, process exit). A write that throws keeps its record and those after it for the next
 * flush; nothing is dropped.
 */
export class AuditLog {
  /** Each record as its log line, serialised when added: one string per record holds less memory than the object. */
  private records: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly write: AuditLogWrite;
  private readonly maxRecords: number;
  private readonly flushIntervalMs: number;

  constructor(options: AuditLogOptions = {}) {
    // eslint-disable-next-line no-console -- the Functions host collects the worker's console output
    this.write = options.write ?? ((line) => console.info(line));
    this.maxRecords = options.maxRecords ?? AUDIT_FLUSH_RECORDS;
    this.flushIntervalMs = options.flushIntervalMs ?? AUDIT_FLUSH_INTERVAL_MS;
  }

  /** Records waiting to be written. */
  get pending(): number {
    return this.records.length;
  }

  /** Buffers a record, as its `audit {json}` line. */
  add(record: AuditRecord): void {
    this.addLine(AUDIT_LOG_PREFIX + JSON.stringify(record));
  }

  /**
   * Buffers a record already serialised as its `audit {json}` line (one line: JSON escapes line
   * breaks), exactly as {@link add} would have written it (shared/audit/auditLine.ts makes them).
   */
  addLine(line: string): void {
    this.records.push(line);
    if (this.records.length >= this.maxRecords) {
      this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.flushOnTimer(), this.flushIntervalMs);
      this.timer.unref();
    }
  }

  /**
   * Writes every buffered record now, one call to `write` (default: the log's own) per record, in order.
   * @throws what `write` throws; that record and the ones after it stay buffered.
   */
  flush(write: AuditLogWrite = this.write): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.records.length === 0) return;
    const batch = this.records;
    this.records = [];
    let written = 0;
    try {
      for (const line of batch) {
        write(line);
        written++;
      }
    } catch (err: unknown) {
      this.records = batch.slice(written).concat(this.records);
      throw err;
    }
  }

  private flushOnTimer(): void {
    this.timer = undefined;
    try {
      this.flush();
    } catch {
      // Kept for the next flush; retried after another interval.
      this.timer = setTimeout(() => this.flushOnTimer(), this.flushIntervalMs);
      this.timer.unref();
    }
  }
}

let processLog: AuditLog | undefined;

/**
 * The process's audit log: records of every request of this worker, written through
 * `console.info`, one call per record, outside the invocations that made them (the Node.js worker forwards console
 * output to the Functions host's log), at most {@link AUDIT_FLUSH_INTERVAL_MS} late. What is
 * still buffered when the process exits is written by an `exit` hook.
 */
export function processAuditLog(): AuditLog {
  if (!processLog) {
    const log = new AuditLog();
    process.once('exit', () => {
      try {
        log.flush();
      } catch {
        // Nothing is left to report to at exit.
      }
    });
    processLog = log;
  }
  return processLog;
}
