import { ADOPTION_FLUSH_INTERVAL_MS } from './adoptionRules';
import type { AdoptionReader, AdoptionRow } from './adoptionTypes';

/** Where rows are kept across instances (tableAdoptionStore.ts). */
export interface AdoptionStore {
  /**
   * Writes this instance's rows, merged with what is stored (adoptionRules.ts `mergeAdoption`).
   * @throws the storage error; nothing is lost, the caller writes the rows again later.
   */
  write(rows: readonly AdoptionRow[]): Promise<void>;
  /** Every caller's row of one secret (the secret's name in any case). */
  read(vault: string, secret: string): Promise<AdoptionRow[]>;
  /** Every row of every secret (the health check's `adoption` check). */
  readAll(): Promise<AdoptionRow[]>;
}

export interface AdoptionTrackerOptions {
  /** The store, built on first flush or read (it loads the storage SDK). */
  readonly store: () => AdoptionStore;
  /** Where a failed flush is reported. */
  readonly log: (line: string) => void;
  /** Default `Date.now`. */
  readonly now?: () => number;
  /** Default {@link ADOPTION_FLUSH_INTERVAL_MS}. */
  readonly flushIntervalMs?: number;
}

/** One caller's reads of one secret on this instance. Mutated in place: a read allocates nothing once its entry exists. */
interface Entry {
  readonly vault: string;
  readonly secret: string;
  readonly caller: string;
  version: string;
  since: number;
  lastRead: number;
  /** Read since the last flush took it. */
  dirty: boolean;
}

/**
 * Version adoption on this instance: {@link record} is called on every successful value read and
 * updates an in-memory aggregate (vault → secret → caller: three Map lookups and two number writes,
 * no I/O). Every flush interval, the entries read since the last flush are written to the store,
 * one row per vault, secret and caller however often they were read; a failed flush is logged and
 * its entries are written with the next one. Nothing here ever fails a request.
 */
export class AdoptionTracker implements AdoptionReader {
  private readonly byVault = new Map<string, Map<string, Map<string, Entry>>>();
  private dirty: Entry[] = [];
  private readonly now: () => number;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private storeBuilt: AdoptionStore | undefined;
  private flushing: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: AdoptionTrackerOptions) {
    this.now = options.now ?? Date.now;
    this.intervalMs = options.flushIntervalMs ?? ADOPTION_FLUSH_INTERVAL_MS;
  }

  /** A successful read of `version` of `secret` (the name as the vault answered it) by `caller`. */
  record(vault: string, secret: string, caller: string, version: string | null): void {
    if (version === null) return;
    let secrets = this.byVault.get(vault);
    if (secrets === undefined) {
      secrets = new Map();
      this.byVault.set(vault, secrets);
    }
    let callers = secrets.get(secret);
    if (callers === undefined) {
      callers = new Map();
      secrets.set(secret, callers);
    }
    const now = this.now();
    const entry = callers.get(caller);
    if (entry === undefined) {
      const created: Entry = { vault, secret, caller, version, since: now, lastRead: now, dirty: true };
      callers.set(caller, created);
      this.markDirty(created);
      return;
    }
    if (entry.version !== version) {
      entry.version = version;
      entry.since = now;
    }
    entry.lastRead = now;
    if (!entry.dirty) {
      entry.dirty = true;
      this.markDirty(entry);
    }
  }

  /** Entries read since the last flush (what the next flush writes). */
  get pending(): number {
    return this.dirty.length;
  }

  /**
   * Writes the entries read since the last flush, one row each; after a flush already running, when
   * reads came in meanwhile.
   * @throws the store's error (the entries stay pending for the next flush).
   */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    if (this.dirty.length === 0) return Promise.resolve();
    const taken = this.dirty;
    this.dirty = [];
    const rows = taken.map((e) => {
      e.dirty = false;
      return toRow(e);
    });
    this.flushing = this.storeOf()
      .write(rows)
      .catch((err: unknown) => {
        for (const e of taken) {
          if (!e.dirty) {
            e.dirty = true;
            this.dirty.push(e);
          }
        }
        throw err;
      })
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  /** Every caller's last read of a secret, as stored, after writing what this instance holds. */
  async read(vault: string, secret: string): Promise<AdoptionRow[]> {
    await this.flush();
    return this.storeOf().read(vault, secret);
  }

  /** Every stored row, after writing what this instance holds. */
  async readAll(): Promise<AdoptionRow[]> {
    await this.flush();
    return this.storeOf().readAll();
  }

  /** Stops the flush timer; a last {@link flush} is the caller's (the runtime's exit hooks). */
  dispose(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private markDirty(entry: Entry): void {
    this.dirty.push(entry);
    if (this.timer === undefined && !this.stopped) {
      this.timer = setInterval(() => this.flushInBackground(), this.intervalMs);
      this.timer.unref();
    }
  }

  private flushInBackground(): void {
    this.flush().catch((err: unknown) => {
      this.options.log(`adoption: flush of what callers read failed, retried in ${this.intervalMs / 1000} s: ${describe(err)}`);
    });
  }

  private storeOf(): AdoptionStore {
    this.storeBuilt ??= this.options.store();
    return this.storeBuilt;
  }
}

function toRow(e: Entry): AdoptionRow {
  return {
    vault: e.vault,
    secret: e.secret,
    caller: e.caller,
    version: e.version,
    since: new Date(e.since).toISOString(),
    lastRead: new Date(e.lastRead).toISOString(),
  };
}

/** The error's first line, short (storage errors are described by the store itself, never with a body). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return 'non-error value thrown';
  return `${err.name}: ${(err.message.split('\n')[0] ?? '').slice(0, 200)}`;
}
