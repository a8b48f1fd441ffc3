/**
 * The pure decisions of a rotation (see docs/rotation.md): which step comes next, what to do about
 * the new password given what Graph and Key Vault show now, which password is the old one, and when
 * the old one may be retired. No I/O here: the runner (rotationRunner.ts) reads the services and acts.
 */
import { ADOPTION_FLUSH_INTERVAL_MS } from '../adoption/adoptionRules';
import type { AdoptionRow } from '../adoption/adoptionTypes';
import type {
  OldKeyIdSource,
  ResumableState,
  RetirementSettings,
  RotationReason,
  RotationRecord,
  RotationState,
  RotationStep,
} from './rotationTypes';
import { passwordDisplayName } from './rotationTypes';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Retirement happens at the latest this long before the old version expires. */
export const RETIRE_BEFORE_EXPIRY_MS = DAY_MS;
/**
 * How long after the new version the adoption table may still lack reads of the old version: each
 * instance writes what it saw every flush interval, so a read another instance served just before
 * (or, from a stale cache, just after) the rotation is in the table two intervals later at most.
 * "Every caller moved" is believed only from then on; the deadline is not held back by it.
 */
export const ADOPTION_SETTLE_MS = 2 * ADOPTION_FLUSH_INTERVAL_MS;
/** How long a run's lease on a record lasts; each save of the holder renews it. */
export const LEASE_MS = 2 * 60_000;

/** Whether another run than `runId` holds an unexpired lease on the record (an expired one may be taken over). */
export function leaseHeldByOther(record: Pick<RotationRecord, 'claimedBy' | 'claimedUntil'>, runId: string, now: Date): boolean {
  if (!record.claimedBy || record.claimedBy === runId || !record.claimedUntil) return false;
  const until = Date.parse(record.claimedUntil);
  return Number.isNaN(until) || until > now.getTime();
}

/** At most this many passwords on an application at any time (the old one and the new one). */
export const MAX_PASSWORDS = 2;

/** A password as Graph lists it (no secret text). */
export interface PasswordView {
  keyId: string;
  displayName: string | null;
  hint: string | null;
}

/** A rotation id: sortable by start time, unique enough for one secret (`rot-20260301T100000Z-3f9a1c`). */
export function rotationIdOf(now: Date, randomHex: string): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  return `rot-${stamp}-${randomHex}`;
}

/** A new record in state `started`. */
export function newRotationRecord(init: {
  id: string;
  vault: string;
  secret: string;
  applicationObjectId: string;
  validityDays: number;
  reason: RotationReason;
  oldVersion: string;
  oldExpiresOn: Date | null | undefined;
  carriedTags: Record<string, string>;
  now: Date;
}): RotationRecord {
  const at = init.now.toISOString();
  return {
    id: init.id,
    vault: init.vault,
    secret: init.secret,
    applicationObjectId: init.applicationObjectId,
    validityDays: init.validityDays,
    displayName: passwordDisplayName(init.id),
    reason: init.reason,
    state: 'started',
    createdAt: at,
    updatedAt: at,
    oldVersion: init.oldVersion,
    oldExpiresOn: init.oldExpiresOn ? init.oldExpiresOn.toISOString() : null,
    carriedTags: { ...init.carriedTags },
    holders: [],
  };
}

/** The step that moves a rotation on from `state`; undefined for `retired` and `failed`. */
export function stepOf(state: RotationState): RotationStep | undefined {
  switch (state) {
    case 'started':
    case 'passwordAdded':
      return 'newPassword';
    case 'stored':
      return 'announce';
    case 'awaitingAdoption':
      return 'awaitAdoption';
    case 'retiring':
      return 'removeOldPassword';
    case 'passwordRemoved':
      return 'disableOldVersion';
    case 'oldVersionDisabled':
      return 'notifyRetired';
    case 'retired':
    case 'failed':
      return undefined;
  }
}

/** The state a failed rotation resumes from; the record itself when it has not failed. */
export function resumeState(record: RotationRecord): ResumableState | undefined {
  if (record.state === 'failed') return record.failure?.resumeState ?? 'started';
  return record.state === 'retired' ? undefined : record.state;
}

/**
 * The end date of a new password: `validityDays` after `now`, in whole seconds, so the vault
 * version's `exp` (whole seconds in Key Vault) is exactly the password's end.
 */
export function passwordEndDate(now: Date, validityDays: number): Date {
  return new Date(Math.floor((now.getTime() + validityDays * DAY_MS) / 1000) * 1000);
}

/**
 * What to do about the rotation's new password, given the application's passwords and the keyIds
 * the secret's vault versions carry (tag `entraKeyId` → version):
 * - `adopt`: one of ours (by display name) is already stored in a version: the rotation is at `stored`
 *   (a crash came after the write); `remove` lists our other passwords, if a retried add made two.
 * - `add`: none of ours is stored; `remove` lists ours whose text is lost (added, then a crash before
 *   the write): they go first, so the application never holds more than two.
 * - `refuse`: adding would make more than {@link MAX_PASSWORDS}, counting passwords the broker did not
 *   add (`foreign`), which it never deletes.
 */
export type PasswordPlan =
  | { kind: 'adopt'; keyId: string; version: string; remove: string[] }
  | { kind: 'add'; remove: string[] }
  | { kind: 'refuse'; foreign: string[] };

export function planPassword(
  displayName: string,
  passwords: readonly PasswordView[],
  storedKeyIds: ReadonlyMap<string, string>,
): PasswordPlan {
  const ours = passwords.filter((p) => p.displayName === displayName);
  const stored = ours.find((p) => storedKeyIds.has(p.keyId.toLowerCase()));
  if (stored) {
    return {
      kind: 'adopt',
      keyId: stored.keyId,
      version: storedKeyIds.get(stored.keyId.toLowerCase()) ?? '',
      remove: ours.filter((p) => p !== stored).map((p) => p.keyId),
    };
  }
  const foreign = passwords.filter((p) => p.displayName !== displayName).map((p) => p.keyId);
  if (foreign.length + 1 > MAX_PASSWORDS) return { kind: 'refuse', foreign };
  return { kind: 'add', remove: ours.map((p) => p.keyId) };
}

/**
 * The old password's keyId: the old version's `entraKeyId` tag, only when that password's `hint`
 * equals the old value's first three characters (the tag is anyone's with write access to the vault
 * to set; else unknown, and the password is kept); else (the first rotation of a secret written by hand) the one password, other than this rotation's, whose `hint` (Graph's first three
 * characters of the secret) equals the old value's first three; else unknown (none or several match).
 * `oldValue` is only compared here, never kept or logged.
 */
export function findOldKeyId(
  tagKeyId: string | undefined,
  passwords: readonly PasswordView[],
  ownDisplayName: string,
  oldValue: string | undefined,
): { keyId: string | undefined; source: OldKeyIdSource } {
  if (oldValue === undefined || oldValue.length < 3) return { keyId: undefined, source: 'unknown' };
  const prefix = oldValue.slice(0, 3);
  if (tagKeyId) {
    // The tag is anyone's to write: it names the old password only if that password's hint is the old value's.
    const tagged = passwords.find((p) => p.keyId.toLowerCase() === tagKeyId.toLowerCase());
    return tagged && tagged.hint === prefix ? { keyId: tagKeyId, source: 'tag' } : { keyId: undefined, source: 'unknown' };
  }
  const matches = passwords.filter((p) => p.displayName !== ownDisplayName && p.hint === prefix);
  const only = matches.length === 1 ? matches[0] : undefined;
  return only ? { keyId: only.keyId, source: 'hint' } : { keyId: undefined, source: 'unknown' };
}

/**
 * The latest moment of retirement: `retireAfterHours` after the new version, but never later than
 * a day before the old version expires (when it has an expiry).
 */
export function retirementDeadline(newVersionCreatedAt: Date, oldExpiresOn: Date | null, retireAfterHours: number): Date {
  const afterNew = newVersionCreatedAt.getTime() + retireAfterHours * HOUR_MS;
  if (!oldExpiresOn) return new Date(afterNew);
  return new Date(Math.min(afterNew, oldExpiresOn.getTime() - RETIRE_BEFORE_EXPIRY_MS));
}

/** The callers whose last read is the old version, within the adoption window before `now`; sorted. */
export function holdersOf(rows: readonly AdoptionRow[], oldVersion: string, now: Date, adoptionWindowHours: number): string[] {
  const since = now.getTime() - adoptionWindowHours * HOUR_MS;
  const holders = new Set<string>();
  for (const row of rows) {
    if (row.version !== oldVersion) continue;
    const last = Date.parse(row.lastRead);
    // An unreadable time counts as recent: holding back is the safe side.
    if (Number.isNaN(last) || last >= since) holders.add(row.caller);
  }
  return [...holders].sort();
}

/**
 * Whether to retire now: every caller moved (and every instance has written its reads since), or the
 * deadline passed; else who holds it back, until when (`settlesAt` while no caller does but the
 * instances' reads may not all be written yet).
 */
export type RetirementDecision =
  | { retire: true; reason: 'adopted' | 'deadline'; holders: string[]; deadline: Date }
  | { retire: false; holders: string[]; deadline: Date; settlesAt?: Date };

export function decideRetirement(
  record: Pick<RotationRecord, 'oldVersion' | 'oldExpiresOn' | 'newVersionCreatedAt' | 'updatedAt'>,
  rows: readonly AdoptionRow[],
  now: Date,
  settings: RetirementSettings,
): RetirementDecision {
  const created = new Date(record.newVersionCreatedAt ?? record.updatedAt);
  const deadline = retirementDeadline(created, record.oldExpiresOn ? new Date(record.oldExpiresOn) : null, settings.retireAfterHours);
  const holders = holdersOf(rows, record.oldVersion, now, settings.adoptionWindowHours);
  const settlesAt = new Date(created.getTime() + ADOPTION_SETTLE_MS);
  if (holders.length === 0 && now.getTime() >= settlesAt.getTime()) return { retire: true, reason: 'adopted', holders, deadline };
  if (now.getTime() >= deadline.getTime()) return { retire: true, reason: 'deadline', holders, deadline };
  return holders.length === 0 ? { retire: false, holders, deadline, settlesAt } : { retire: false, holders, deadline };
}

/** One sentence an admin can act on, for a failure's service and code. */
export function remedyOf(
  service: 'graph' | 'keyVault' | 'broker',
  code: string,
  record: Pick<RotationRecord, 'applicationObjectId'>,
): string {
  if (service === 'graph') {
    if (code === 'Authorization_RequestDenied') {
      return `Grant the rotation identity Graph's Application.ReadWrite.OwnedBy app role and make it an owner of application ${record.applicationObjectId} (Graph: ${code}).`;
    }
    if (code === 'Request_ResourceNotFound') {
      return `Application ${record.applicationObjectId} does not exist: correct the secret's entraAppObjectId tag (Graph: ${code}).`;
    }
    if (code === 'TooManyAppPasswords') {
      return `Application ${record.applicationObjectId} allows no further password: remove one it no longer needs (Graph: ${code}).`;
    }
    return `Microsoft Graph refused or failed (${code}); the next run retries, and if it persists check Graph's service health.`;
  }
  if (service === 'keyVault') {
    if (code === 'Forbidden' || code === 'ForbiddenByRbac' || code === 'AccessDenied') {
      return `Grant the rotation identity Key Vault Secrets Officer on the vault (Key Vault: ${code}).`;
    }
    if (code === 'ForbiddenByFirewall' || code === 'ForbiddenByConnection') {
      return `Allow the function app through the vault's firewall (Key Vault: ${code}).`;
    }
    return `Key Vault refused or failed (${code}); the next run retries, and if it persists check the vault's access and health.`;
  }
  if (code === 'TooManyPasswords') {
    return `Application ${record.applicationObjectId} already holds ${MAX_PASSWORDS} passwords the broker did not add: remove the one no integration uses, then rotate again.`;
  }
  return `The rotation stopped (${code}); the next run retries.`;
}
