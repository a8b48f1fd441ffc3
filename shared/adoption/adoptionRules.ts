import { DEFAULT_VAULT_ALIAS } from '../config';
import { InvalidRequestError } from '../errors';
import type { AdoptionRow } from './adoptionTypes';

/**
 * The rules of version adoption, pure (no I/O, no clock): how a row is keyed in Table storage, how
 * this instance's view of a caller merges with what another instance stored, how the answer of
 * `GET /api/secrets/{name}/adoption` is ordered, and which callers the health check's `adoption`
 * check names (docs/operations.md, "StaleVersionInUse").
 */

/** How often an instance writes what its callers read, at most (30 s). */
export const ADOPTION_FLUSH_INTERVAL_MS = 30_000;

/**
 * Characters Table storage refuses in PartitionKey and RowKey (`/`, `\`, `#`, `?`, control
 * characters), and `%` itself so the encoding reverses.
 */
// eslint-disable-next-line no-control-regex -- control characters are exactly what Table keys refuse
const KEY_UNSAFE = /[%/\\#?\u0000-\u001f\u007f-\u009f]/g;

/** A string made safe for a Table key: refused characters as `%XX` (reversible). */
export function encodeKey(value: string): string {
  return value.replace(KEY_UNSAFE, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/**
 * One partition per secret: the vault alias and the lower-case name (Key Vault names ignore case),
 * so every caller of a secret is read with one query.
 */
export function adoptionPartition(vault: string, secret: string): string {
  return `${encodeKey(vault)}|${secret.toLowerCase()}`;
}

/** One row per caller within the secret's partition. */
export function adoptionRowKey(caller: string): string {
  return encodeKey(caller);
}

/**
 * What to store for a caller, given what is stored (another instance may have written it) and what
 * this instance saw; undefined when the stored row already says it all.
 *
 * - Same version: the earliest `since`, the latest `lastRead`.
 * - Another version, read later than this instance's last read: the stored row stands.
 * - Another version, read earlier: this instance's row replaces it.
 */
export function mergeAdoption(stored: AdoptionRow | undefined, local: AdoptionRow): AdoptionRow | undefined {
  if (!stored) return local;
  if (stored.version.toLowerCase() === local.version.toLowerCase()) {
    const since = stored.since < local.since ? stored.since : local.since;
    const lastRead = stored.lastRead > local.lastRead ? stored.lastRead : local.lastRead;
    if (since === stored.since && lastRead === stored.lastRead) return undefined;
    return { ...stored, since, lastRead };
  }
  return stored.lastRead > local.lastRead ? undefined : local;
}

/** Key Vault's rule for secret names. */
const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;

/**
 * The secret `GET /api/secrets/{name}/adoption` asks about: its name and vault alias (default
 * `default`), checked as the resolve routes check them.
 * @throws InvalidRequestError (400 `InvalidSecretName` / `InvalidRequest`).
 */
export function adoptionRef(
  name: string,
  vault: string | null,
  aliases: { has(alias: string): boolean },
): { vault: string; secret: string } {
  if (!SECRET_NAME.test(name)) throw new InvalidRequestError('A secret name is 1 to 127 letters, digits and dashes', 'InvalidSecretName');
  const alias = vault ?? DEFAULT_VAULT_ALIAS;
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(alias)) throw new InvalidRequestError('A vault is an alias of letters, digits, - or _');
  if (!aliases.has(alias)) throw new InvalidRequestError(`Vault "${alias}" is not configured`);
  return { vault: alias, secret: name };
}

/** The answer of `GET /api/secrets/{name}/adoption`. */
export interface AdoptionAnswer {
  readonly vault: string;
  readonly secret: string;
  readonly versions: readonly {
    readonly version: string;
    readonly callers: readonly { readonly caller: string; readonly since: string; readonly lastRead: string }[];
  }[];
}

/**
 * Rows grouped by version, newest version first: ordered by the latest `since` among its callers
 * (the version callers moved to last); callers within a version by name.
 */
export function adoptionAnswer(vault: string, secret: string, rows: readonly AdoptionRow[]): AdoptionAnswer {
  const byVersion = new Map<string, AdoptionRow[]>();
  for (const row of rows) {
    const key = row.version.toLowerCase();
    const group = byVersion.get(key);
    if (group) group.push(row);
    else byVersion.set(key, [row]);
  }
  const latestSince = (group: readonly AdoptionRow[]): string => group.reduce((max, r) => (r.since > max ? r.since : max), '');
  const versions = [...byVersion.values()]
    .sort((a, b) => {
      const order = latestSince(b).localeCompare(latestSince(a));
      return order !== 0 ? order : (a[0]?.version ?? '').localeCompare(b[0]?.version ?? '');
    })
    .map((group) => ({
      version: group[0]?.version ?? '',
      callers: [...group]
        .sort((a, b) => a.caller.localeCompare(b.caller))
        .map((r) => ({ caller: r.caller, since: r.since, lastRead: r.lastRead })),
    }));
  return { vault, secret, versions };
}

/** A caller that still reads an older version than the newest. */
export interface StaleReader {
  readonly caller: string;
  readonly version: string;
  readonly lastRead: string;
}

/**
 * The callers still on an older version: the newest version was created more than `warningHours`
 * ago (`createdAt`, ISO 8601), and they read another version after it appeared. Empty when the
 * newest version is younger than that, or every caller has moved.
 */
export function staleReaders(
  rows: readonly AdoptionRow[],
  latest: { readonly version: string; readonly createdAt: string },
  warningHours: number,
  now: number,
): StaleReader[] {
  const created = Date.parse(latest.createdAt);
  if (!Number.isFinite(created) || now - created <= warningHours * 3_600_000) return [];
  const current = latest.version.toLowerCase();
  return rows
    .filter((r) => r.version.toLowerCase() !== current && Date.parse(r.lastRead) > created)
    .map((r) => ({ caller: r.caller, version: r.version, lastRead: r.lastRead }))
    .sort((a, b) => a.caller.localeCompare(b.caller));
}

/** The remedy sentence of a `StaleVersionInUse` warning: who still reads what, and what to do. */
export function staleRemedy(secret: string, vault: string, latestVersion: string, stale: readonly StaleReader[]): string {
  const who = stale.map((s) => `${s.caller} (version ${s.version})`).join(', ');
  return (
    `Callers ${who} still read an older version of secret ${secret} in vault ${vault} than the newest, ${latestVersion}: ` +
    'have them stop pinning the old version (or restart them so they drop a value they keep) and resolve the latest before the old one is retired.'
  );
}
