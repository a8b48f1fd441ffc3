import { createHash } from 'node:crypto';
import type { TableClient, TransactionAction } from '@azure/data-tables';
import { odata } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { StorageSettings } from '../config';
import { createTableClient, ensureTable, tableErrorStatus } from '../storage/tableStorage';

/** Table of delivery records, one per (event id, consumer). */
export const DELIVERIES_TABLE = 'brokerdeliveries';
/** Table of dead-letter records, partitioned by UTC day. */
export const DEAD_LETTERS_TABLE = 'brokerdeadletters';
/** `lastError` and dead-letter reasons are cut to this length: they are summaries, not logs. */
export const MAX_MESSAGE_CHARS = 300;
/** Read-modify-write rounds lost to concurrent writers before giving up. */
const MAX_CONFLICT_RETRIES = 10;
/** Records remembered from `forEvent` for the writes that follow it. */
const MAX_HINTS = 10_000;

/** Where a delivery to one consumer stands. `delivered` is final. */
export type DeliveryState = 'pending' | 'delivered' | 'deadLettered';

/** What the ledger knows about delivering one event to one consumer. Times are ISO 8601 UTC. */
export interface DeliveryRecord {
  eventId: string;
  consumer: string;
  webhookId: string;
  state: DeliveryState;
  attempts: number;
  firstAttemptAt: string | null;
  lastAttemptAt: string | null;
  /** HTTP status of the last attempt; null when it got no answer. */
  lastStatus: number | null;
  /** Short, safe description of the last failure (never a body, value or key). */
  lastError: string | null;
  deliveredAt: string | null;
  eventType: string;
  subject: string;
}

/** One finished attempt to POST an event to a consumer. */
export interface DeliveryAttempt {
  eventId: string;
  consumer: string;
  webhookId: string;
  eventType: string;
  subject: string;
  /** HTTP status the consumer answered with; null when there was no answer. */
  status: number | null;
  /** Short, safe failure description; null on success. */
  error: string | null;
  at: Date;
}

/** A delivery given up on, as written to {@link DEAD_LETTERS_TABLE}. */
export interface DeadLetter {
  eventId: string;
  consumer: string;
  webhookId: string;
  eventType: string;
  subject: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  reason: string;
  /** When it was dead-lettered, ISO 8601 UTC. */
  at: string;
}

/**
 * Who was sent which event, so that a duplicated Event Grid delivery notifies nobody twice and a
 * consumer that is down is retried until it answers 2xx or is dead-lettered.
 *
 * Safe under concurrency: every change is a read-modify-write guarded by the record's ETag, so two
 * instances handling the same event never lose each other's writes, and once `delivered` a record
 * stays delivered whatever arrives late.
 */
export interface DeliveryLedger {
  /** The record of delivering `eventId` to `consumer`, if any attempt or mark was recorded. */
  get(eventId: string, consumer: string): Promise<DeliveryRecord | undefined>;
  /**
   * Counts an attempt: creates the record (pending) or increments `attempts`, sets the first and
   * last attempt times and the last status/error. A record already `delivered` is returned
   * unchanged; a `deadLettered` one counts the attempt but stays dead-lettered.
   */
  recordAttempt(attempt: DeliveryAttempt): Promise<DeliveryRecord>;
  /** Marks the delivery done (idempotent: the first `deliveredAt` is kept). Wins over dead-lettered. */
  markDelivered(eventId: string, consumer: string, at: Date, status: number): Promise<void>;
  /**
   * Gives up on a delivery: the record becomes `deadLettered` and a row naming event, consumer,
   * webhook id, type, subject, attempts, last status/error and `reason` is written to
   * {@link DEAD_LETTERS_TABLE}. A delivered record is left alone (no dead letter). Calling it again
   * rewrites the same row, so a crash between the two writes is repaired by a retry.
   */
  markDeadLettered(eventId: string, consumer: string, at: Date, reason: string): Promise<void>;
  /** Dead letters, oldest first; with `since`, only those from that UTC day on. */
  listDeadLetters(opts?: { since?: Date }): Promise<DeadLetter[]>;
  /**
   * Every record of one event, by consumer, in one query. The records read are also remembered
   * for the next `recordResult` of each, which then writes without reading first.
   */
  forEvent(eventId: string): Promise<Map<string, DeliveryRecord>>;
  /**
   * Records one attempt and what came of it in one write: `delivered` when the consumer answered
   * 2xx, else pending, or dead-lettered once `attempts` reaches `maxAttempts` (then the dead-letter
   * row is written too). Same rules as `recordAttempt` + `markDelivered` / `markDeadLettered`.
   */
  recordResult(attempt: DeliveryAttempt, result: DeliveryResult): Promise<DeliveryRecord>;
  /**
   * `recordResult` for several consumers of one event. After `forEvent` this is one batch write
   * (an entity group transaction); if another writer got there first, each is retried on its own.
   */
  recordResults(entries: readonly { attempt: DeliveryAttempt; result: DeliveryResult }[]): Promise<DeliveryRecord[]>;
}

/** What came of an attempt, for `recordResult`. */
export interface DeliveryResult {
  delivered: boolean;
  maxAttempts: number;
  /** Why, should this attempt dead-letter the delivery. */
  reason: string;
}

/**
 * The ledger in Azure Table storage (`AzureWebJobsStorage`); tables are created on first use.
 * `credential` serves identity-based storage (default `DefaultAzureCredential`).
 */
export function createTableDeliveryLedger(storage: StorageSettings | string, credential?: TokenCredential): DeliveryLedger {
  return createLedger(new TableLedgerStore(storage, credential));
}

/** The ledger in this process's memory, with the same semantics; for tests and local runs. */
export function createMemoryDeliveryLedger(): DeliveryLedger {
  return createLedger(new MemoryLedgerStore());
}

/** A delivery record plus what the dead-letter row is rebuilt from. */
interface StoredRecord extends DeliveryRecord {
  deadLetteredAt: string | null;
  deadLetterReason: string | null;
}

/** Storage with optimistic concurrency: `create` and `replace` answer false when they lose a race. */
interface LedgerStore {
  read(eventId: string, consumer: string): Promise<{ record: StoredRecord; etag: string } | undefined>;
  /** Every record of one event (one partition). */
  readEvent(eventId: string): Promise<{ record: StoredRecord; etag: string }[]>;
  /** Creates or replaces (with its etag) records of one event at once; false if any lost a race (nothing written). */
  writeBatch(rows: readonly { record: StoredRecord; etag: string | undefined }[]): Promise<boolean>;
  create(record: StoredRecord): Promise<boolean>;
  replace(record: StoredRecord, etag: string): Promise<boolean>;
  /** Idempotent: the same dead letter always lands on the same row. */
  writeDeadLetter(deadLetter: DeadLetter): Promise<void>;
  listDeadLetters(sinceDay: string | undefined): Promise<DeadLetter[]>;
}

/** A state change: the new record, or undefined to leave the current one as it is. */
type Transition = (current: StoredRecord | undefined) => StoredRecord | undefined;

function createLedger(store: LedgerStore): DeliveryLedger {
  /** Records read by `forEvent` (null: known to be absent), used once as the first round's read. */
  const hints = new Map<string, { record: StoredRecord; etag: string } | null>();
  /** Events `forEvent` read: a consumer with no row there is known to have none. */
  const eventsRead = new Set<string>();

  /** Applies `change` until it sticks, re-reading whenever another writer got there first. */
  async function mutate(eventId: string, consumer: string, change: Transition): Promise<StoredRecord> {
    const hintKey = memoryKey(eventId, consumer);
    let hint = hints.get(hintKey);
    hints.delete(hintKey);
    for (let round = 0; round < MAX_CONFLICT_RETRIES; round++) {
      // A stale hint only costs a lost race: the conditional write fails and the next round reads.
      const current = hint !== undefined ? (hint ?? undefined) : await store.read(eventId, consumer);
      hint = undefined;
      const next = change(current?.record);
      if (next === undefined) {
        if (current) return current.record;
        throw new Error('Delivery ledger: a transition left a missing record missing');
      }
      const written = current ? await store.replace(next, current.etag) : await store.create(next);
      if (written) return next;
    }
    throw new Error(`Delivery ledger: gave up after ${MAX_CONFLICT_RETRIES} concurrent updates of one record`);
  }

  return {
    async get(eventId, consumer) {
      const current = await store.read(eventId, consumer);
      return current && toDeliveryRecord(current.record);
    },
    async recordAttempt(attempt) {
      return toDeliveryRecord(await mutate(attempt.eventId, attempt.consumer, (cur) => withAttempt(cur, attempt)));
    },
    async markDelivered(eventId, consumer, at, status) {
      await mutate(eventId, consumer, (cur) => withDelivered(cur, eventId, consumer, at, status));
    },
    async markDeadLettered(eventId, consumer, at, reason) {
      const record = await mutate(eventId, consumer, (cur) => withDeadLettered(cur, eventId, consumer, at, reason));
      await writeDeadLetterOf(record, at);
    },
    async forEvent(eventId) {
      const rows = await store.readEvent(eventId);
      const byConsumer = new Map<string, DeliveryRecord>();
      // Hints are used once; a bound keeps unused ones (consumers since removed) from piling up.
      if (hints.size > MAX_HINTS) {
        hints.clear();
        eventsRead.clear();
      }
      eventsRead.add(eventId);
      for (const row of rows) {
        byConsumer.set(row.record.consumer, toDeliveryRecord(row.record));
        if (row.record.state === 'pending') hints.set(memoryKey(eventId, row.record.consumer), row);
      }
      return byConsumer;
    },
    async recordResult(attempt, result) {
      const record = await mutate(attempt.eventId, attempt.consumer, (cur) => withResult(cur, attempt, result));
      if (!result.delivered) await writeDeadLetterOf(record, attempt.at);
      return toDeliveryRecord(record);
    },
    async recordResults(entries) {
      const eventId = entries[0]?.attempt.eventId;
      const oneEvent = eventId !== undefined && entries.every((e) => e.attempt.eventId === eventId);
      if (oneEvent && entries.length > 1 && eventsRead.has(eventId)) {
        const planned = entries.map((e) => {
          const key = memoryKey(e.attempt.eventId, e.attempt.consumer);
          const hint = hints.get(key) ?? undefined;
          hints.delete(key);
          return { entry: e, current: hint, next: withResult(hint?.record, e.attempt, e.result) };
        });
        const rows = planned.flatMap((p) => (p.next ? [{ record: p.next, etag: p.current?.etag }] : []));
        if (await store.writeBatch(rows)) {
          const records = planned.map((p) => p.next ?? p.current?.record ?? blankRecord(p.entry.attempt.eventId, p.entry.attempt.consumer));
          await Promise.all(
            planned.map((p, i) => writeDeadLetterOf(records[i] ?? blankRecord(eventId, p.entry.attempt.consumer), p.entry.attempt.at)),
          );
          return records.map(toDeliveryRecord);
        }
      }
      return Promise.all(entries.map((e) => this.recordResult(e.attempt, e.result)));
    },
    async listDeadLetters(opts = {}) {
      const rows = await store.listDeadLetters(opts.since && utcDay(opts.since.toISOString()));
      return rows.sort((a, b) => compare(a.at, b.at) || compare(a.eventId, b.eventId) || compare(a.consumer, b.consumer));
    },
  };

  /** Writes the dead-letter row of a dead-lettered record (idempotent); does nothing otherwise. */
  async function writeDeadLetterOf(record: StoredRecord, at: Date): Promise<void> {
    if (record.state !== 'deadLettered') return;
    await store.writeDeadLetter({
      eventId: record.eventId,
      consumer: record.consumer,
      webhookId: record.webhookId,
      eventType: record.eventType,
      subject: record.subject,
      attempts: record.attempts,
      lastStatus: record.lastStatus,
      lastError: record.lastError,
      reason: record.deadLetterReason ?? '',
      at: record.deadLetteredAt ?? at.toISOString(),
    });
  }
}

// ---- transitions (shared by both stores, so they behave the same) ----

function withAttempt(current: StoredRecord | undefined, a: DeliveryAttempt): StoredRecord | undefined {
  const at = a.at.toISOString();
  if (!current) {
    return {
      ...blankRecord(a.eventId, a.consumer),
      webhookId: a.webhookId,
      eventType: a.eventType,
      subject: a.subject,
      attempts: 1,
      firstAttemptAt: at,
      lastAttemptAt: at,
      lastStatus: a.status,
      lastError: shorten(a.error),
    };
  }
  if (current.state === 'delivered') return undefined;
  // Attempts can be recorded out of order across instances: "last" means latest in time.
  const latest = current.lastAttemptAt === null || at >= current.lastAttemptAt;
  return {
    ...current,
    webhookId: a.webhookId,
    eventType: a.eventType,
    subject: a.subject,
    attempts: current.attempts + 1,
    firstAttemptAt: current.firstAttemptAt !== null && current.firstAttemptAt < at ? current.firstAttemptAt : at,
    lastAttemptAt: latest ? at : current.lastAttemptAt,
    lastStatus: latest ? a.status : current.lastStatus,
    lastError: latest ? shorten(a.error) : current.lastError,
  };
}

function withResult(current: StoredRecord | undefined, attempt: DeliveryAttempt, result: DeliveryResult): StoredRecord | undefined {
  const attempted = withAttempt(current, attempt);
  if (attempted === undefined) return undefined;
  if (result.delivered) return withDelivered(attempted, attempt.eventId, attempt.consumer, attempt.at, attempt.status ?? 200);
  if (attempted.attempts >= result.maxAttempts)
    return withDeadLettered(attempted, attempt.eventId, attempt.consumer, attempt.at, result.reason) ?? attempted;
  return attempted;
}

function withDelivered(
  current: StoredRecord | undefined,
  eventId: string,
  consumer: string,
  atDate: Date,
  status: number,
): StoredRecord | undefined {
  if (current?.state === 'delivered') return undefined;
  const at = atDate.toISOString();
  const base = current ?? blankRecord(eventId, consumer);
  return {
    ...base,
    state: 'delivered',
    // A delivery is an attempt, even when the caller marked it without recording one.
    attempts: Math.max(base.attempts, 1),
    firstAttemptAt: base.firstAttemptAt ?? at,
    lastAttemptAt: base.lastAttemptAt !== null && base.lastAttemptAt > at ? base.lastAttemptAt : at,
    lastStatus: status,
    lastError: null,
    deliveredAt: at,
  };
}

function withDeadLettered(
  current: StoredRecord | undefined,
  eventId: string,
  consumer: string,
  at: Date,
  reason: string,
): StoredRecord | undefined {
  if (current?.state === 'delivered' || current?.state === 'deadLettered') return undefined;
  return {
    ...(current ?? blankRecord(eventId, consumer)),
    state: 'deadLettered',
    deadLetteredAt: at.toISOString(),
    deadLetterReason: shorten(reason) ?? '',
  };
}

function blankRecord(eventId: string, consumer: string): StoredRecord {
  return {
    eventId,
    consumer,
    webhookId: '',
    state: 'pending',
    attempts: 0,
    firstAttemptAt: null,
    lastAttemptAt: null,
    lastStatus: null,
    lastError: null,
    deliveredAt: null,
    eventType: '',
    subject: '',
    deadLetteredAt: null,
    deadLetterReason: null,
  };
}

function toDeliveryRecord(r: StoredRecord): DeliveryRecord {
  return {
    eventId: r.eventId,
    consumer: r.consumer,
    webhookId: r.webhookId,
    state: r.state,
    attempts: r.attempts,
    firstAttemptAt: r.firstAttemptAt,
    lastAttemptAt: r.lastAttemptAt,
    lastStatus: r.lastStatus,
    lastError: r.lastError,
    deliveredAt: r.deliveredAt,
    eventType: r.eventType,
    subject: r.subject,
  };
}

function shorten(message: string | null): string | null {
  if (message === null) return null;
  return message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…` : message;
}

function utcDay(iso: string): string {
  return iso.slice(0, 10);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Table keys may not contain `/ \ # ?` or control characters, and event ids (CloudEvents ids,
 * subjects) may. A SHA-256 hex digest is always a valid, fixed-length key; the readable values
 * are kept in their own columns.
 */
function keyOf(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

// ---- Azure Table storage ----

/** Columns of a delivery row. Null fields are left out (Table storage has no nulls). */
type DeliveryColumns = Partial<Record<keyof StoredRecord, string | number>>;

type DeadLetterColumns = Partial<Record<keyof DeadLetter, string | number>>;

class TableLedgerStore implements LedgerStore {
  private deliveriesClient: TableClient | undefined;
  private deadLettersClient: TableClient | undefined;

  constructor(
    private readonly storage: StorageSettings | string,
    private readonly credential: TokenCredential | undefined,
  ) {}

  async read(eventId: string, consumer: string): Promise<{ record: StoredRecord; etag: string } | undefined> {
    const client = await this.deliveries();
    try {
      const entity = await client.getEntity<DeliveryColumns>(keyOf(eventId), keyOf(consumer));
      return { record: fromDeliveryColumns(entity, eventId, consumer), etag: entity.etag };
    } catch (err: unknown) {
      if (tableErrorStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async readEvent(eventId: string): Promise<{ record: StoredRecord; etag: string }[]> {
    const client = await this.deliveries();
    const rows: { record: StoredRecord; etag: string }[] = [];
    for await (const entity of client.listEntities<DeliveryColumns>({
      queryOptions: { filter: odata`PartitionKey eq ${keyOf(eventId)}` },
    })) {
      rows.push({ record: fromDeliveryColumns(entity, eventId, ''), etag: entity.etag });
    }
    return rows;
  }

  async writeBatch(rows: readonly { record: StoredRecord; etag: string | undefined }[]): Promise<boolean> {
    const client = await this.deliveries();
    const actions: TransactionAction[] = rows.map((row) =>
      row.etag === undefined ? ['create', this.entityOf(row.record)] : ['update', this.entityOf(row.record), 'Replace', { etag: row.etag }],
    );
    // A transaction holds at most 100 operations; all rows of one event share its partition.
    for (let i = 0; i < actions.length; i += 100) {
      try {
        await client.submitTransaction(actions.slice(i, i + 100));
      } catch (err: unknown) {
        const status = tableErrorStatus(err);
        if (status === 409 || status === 412 || status === 404 || status === 400) return false;
        throw err;
      }
    }
    return true;
  }

  async create(record: StoredRecord): Promise<boolean> {
    const client = await this.deliveries();
    try {
      await client.createEntity(this.entityOf(record));
      return true;
    } catch (err: unknown) {
      if (tableErrorStatus(err) === 409) return false;
      throw err;
    }
  }

  async replace(record: StoredRecord, etag: string): Promise<boolean> {
    const client = await this.deliveries();
    try {
      // Replace, not Merge: columns that became null must disappear.
      await client.updateEntity(this.entityOf(record), 'Replace', { etag });
      return true;
    } catch (err: unknown) {
      // 412: someone wrote since we read; 404: someone deleted it. Either way, read again.
      const status = tableErrorStatus(err);
      if (status === 412 || status === 404) return false;
      throw err;
    }
  }

  async writeDeadLetter(d: DeadLetter): Promise<void> {
    const client = await this.deadLetters();
    await client.upsertEntity(
      {
        partitionKey: utcDay(d.at),
        // Time first so a day's rows list in order; the hash makes the row one per delivery.
        rowKey: `${d.at}_${keyOf(`${d.eventId}\u0000${d.consumer}`)}`,
        ...withoutNulls<DeadLetterColumns>(d),
      },
      'Replace',
    );
  }

  async listDeadLetters(sinceDay: string | undefined): Promise<DeadLetter[]> {
    const client = await this.deadLetters();
    const filter = sinceDay === undefined ? undefined : odata`PartitionKey ge ${sinceDay}`;
    const out: DeadLetter[] = [];
    for await (const e of client.listEntities<DeadLetterColumns>({ queryOptions: { filter } })) {
      out.push({
        eventId: text(e.eventId),
        consumer: text(e.consumer),
        webhookId: text(e.webhookId),
        eventType: text(e.eventType),
        subject: text(e.subject),
        attempts: count(e.attempts),
        lastStatus: numberOrNull(e.lastStatus),
        lastError: textOrNull(e.lastError),
        reason: text(e.reason),
        at: text(e.at),
      });
    }
    return out;
  }

  private entityOf(record: StoredRecord): { partitionKey: string; rowKey: string } & DeliveryColumns {
    return { partitionKey: keyOf(record.eventId), rowKey: keyOf(record.consumer), ...withoutNulls<DeliveryColumns>(record) };
  }

  private async deliveries(): Promise<TableClient> {
    this.deliveriesClient ??= createTableClient(this.storage, DELIVERIES_TABLE, this.credential);
    await ensureTable(this.deliveriesClient);
    return this.deliveriesClient;
  }

  private async deadLetters(): Promise<TableClient> {
    this.deadLettersClient ??= createTableClient(this.storage, DEAD_LETTERS_TABLE, this.credential);
    await ensureTable(this.deadLettersClient);
    return this.deadLettersClient;
  }
}

function fromDeliveryColumns(e: DeliveryColumns, eventId: string, consumer: string): StoredRecord {
  const state = e.state === 'delivered' || e.state === 'deadLettered' ? e.state : 'pending';
  return {
    // The keys are hashes of these; the columns are the readable copies.
    eventId: typeof e.eventId === 'string' ? e.eventId : eventId,
    consumer: typeof e.consumer === 'string' ? e.consumer : consumer,
    webhookId: text(e.webhookId),
    state,
    attempts: count(e.attempts),
    firstAttemptAt: textOrNull(e.firstAttemptAt),
    lastAttemptAt: textOrNull(e.lastAttemptAt),
    lastStatus: numberOrNull(e.lastStatus),
    lastError: textOrNull(e.lastError),
    deliveredAt: textOrNull(e.deliveredAt),
    eventType: text(e.eventType),
    subject: text(e.subject),
    deadLetteredAt: textOrNull(e.deadLetteredAt),
    deadLetterReason: textOrNull(e.deadLetterReason),
  };
}

function withoutNulls<T>(value: object): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null && v !== undefined)) as T;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function textOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : 0;
}

// ---- memory ----

class MemoryLedgerStore implements LedgerStore {
  private readonly records = new Map<string, { record: StoredRecord; version: number }>();
  private readonly deadLetters = new Map<string, DeadLetter>();
  private nextVersion = 1;

  read(eventId: string, consumer: string): Promise<{ record: StoredRecord; etag: string } | undefined> {
    const entry = this.records.get(memoryKey(eventId, consumer));
    return Promise.resolve(entry && { record: { ...entry.record }, etag: String(entry.version) });
  }

  readEvent(eventId: string): Promise<{ record: StoredRecord; etag: string }[]> {
    const rows = [...this.records.values()]
      .filter((e) => e.record.eventId === eventId)
      .map((e) => ({ record: { ...e.record }, etag: String(e.version) }));
    return Promise.resolve(rows);
  }

  create(record: StoredRecord): Promise<boolean> {
    const key = memoryKey(record.eventId, record.consumer);
    if (this.records.has(key)) return Promise.resolve(false);
    this.records.set(key, { record: { ...record }, version: this.nextVersion++ });
    return Promise.resolve(true);
  }

  replace(record: StoredRecord, etag: string): Promise<boolean> {
    const key = memoryKey(record.eventId, record.consumer);
    const entry = this.records.get(key);
    if (!entry || String(entry.version) !== etag) return Promise.resolve(false);
    this.records.set(key, { record: { ...record }, version: this.nextVersion++ });
    return Promise.resolve(true);
  }

  writeBatch(rows: readonly { record: StoredRecord; etag: string | undefined }[]): Promise<boolean> {
    // All or nothing, like an entity group transaction.
    for (const row of rows) {
      const entry = this.records.get(memoryKey(row.record.eventId, row.record.consumer));
      if (row.etag === undefined ? entry !== undefined : !entry || String(entry.version) !== row.etag) return Promise.resolve(false);
    }
    for (const row of rows)
      this.records.set(memoryKey(row.record.eventId, row.record.consumer), { record: { ...row.record }, version: this.nextVersion++ });
    return Promise.resolve(true);
  }

  writeDeadLetter(deadLetter: DeadLetter): Promise<void> {
    this.deadLetters.set(`${deadLetter.at}\u0000${memoryKey(deadLetter.eventId, deadLetter.consumer)}`, { ...deadLetter });
    return Promise.resolve();
  }

  listDeadLetters(sinceDay: string | undefined): Promise<DeadLetter[]> {
    const all = [...this.deadLetters.values()].map((d) => ({ ...d }));
    return Promise.resolve(sinceDay === undefined ? all : all.filter((d) => utcDay(d.at) >= sinceDay));
  }
}

function memoryKey(eventId: string, consumer: string): string {
  return `${eventId}\u0000${consumer}`;
}
