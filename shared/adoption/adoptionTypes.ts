/**
 * Version adoption: for each vault, secret and caller, the version the caller read last and since
 * when. The resolve path records reads in memory (aggregated per instance); a store keeps one row
 * per vault, secret and caller, written at most once per flush interval.
 */

/** One caller's last read of one secret. */
export interface AdoptionRow {
  /** The vault alias (`default`, or one of `KEY_VAULT_ALIASES`). */
  readonly vault: string;
  readonly secret: string;
  /** The caller's name in `ACCESS_POLICY`. */
  readonly caller: string;
  /** The version the caller read last. */
  readonly version: string;
  /** When the caller was first seen reading this version (ISO 8601). */
  readonly since: string;
  /** When the caller last read it (ISO 8601; as fresh as the flush interval). */
  readonly lastRead: string;
}

/** Reads what callers read; the rotation's retirement and the health check's `adoption` check ask it. */
export interface AdoptionReader {
  /** Every caller's last read of a secret, as stored (what this instance holds unflushed is written first). */
  read(vault: string, secret: string): Promise<AdoptionRow[]>;
}
