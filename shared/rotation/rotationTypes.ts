/**
 * The rotation of an Entra application's client secret held in Key Vault, as one record in table
 * storage (see docs/rotation.md). The record never holds a secret value or secret text: only ids,
 * versions, key ids, times and the services' error codes.
 *
 * States, in order (each persisted before the next step acts):
 *
 * - `started`: the secret's active marker is held; nothing done yet.
 * - `passwordAdded`: Graph `addPassword` answered (`newKeyId`, `newEndDateTime`); its text lives only
 *   in the running step's local variable until it is stored.
 * - `stored`: the new vault version exists (`newVersion`, tagged `entraKeyId`).
 * - `awaitingAdoption`: caches refreshed and consumers notified (`rotated`); waiting for callers.
 * - `retiring`: retirement decided (every caller moved, or the deadline passed); decided once, never undone.
 * - `passwordRemoved`: the old password is gone (or was kept, when its keyId is unknown: `oldPassword`).
 * - `oldVersionDisabled`: the old vault version is disabled.
 * - `retired`: consumers notified (`retired`); the active marker is released. Terminal.
 * - `failed`: a step could not proceed; `failure` names the step, the service's code and message.
 *   The marker stays held, so the next start (or timer run) resumes the step that failed.
 */

/** Why a rotation started: Key Vault's `SecretNearExpiry` event, or an operator. */
export type RotationReason = 'SecretNearExpiry' | 'manual';

export const ROTATION_STATES = [
  'started',
  'passwordAdded',
  'stored',
  'awaitingAdoption',
  'retiring',
  'passwordRemoved',
  'oldVersionDisabled',
  'retired',
  'failed',
] as const;
export type RotationState = (typeof ROTATION_STATES)[number];
/** The states a rotation can resume from (all but the terminal and the failed one). */
export type ResumableState = Exclude<RotationState, 'retired' | 'failed'>;

/**
 * The steps the runner performs, named after what they do; a failure names one.
 * - `newPassword`: find or add the password and store its text as a new version (`started`/`passwordAdded` → `stored`).
 * - `announce`: refresh caches, notify `rotated` (`stored` → `awaitingAdoption`).
 * - `awaitAdoption`: read adoption, decide retirement (`awaitingAdoption` → `retiring`).
 * - `removeOldPassword`: `retiring` → `passwordRemoved`.
 * - `disableOldVersion`: `passwordRemoved` → `oldVersionDisabled`.
 * - `notifyRetired`: `oldVersionDisabled` → `retired`.
 */
export type RotationStep = 'newPassword' | 'announce' | 'awaitAdoption' | 'removeOldPassword' | 'disableOldVersion' | 'notifyRetired';

/** Which service refused or failed: Graph, Key Vault, or the broker's own rule (e.g. the two-password limit). */
export type RotationService = 'graph' | 'keyVault' | 'broker';

/** Why a rotation stopped; never a secret. */
export interface RotationFailure {
  step: RotationStep;
  /** The state the rotation resumes from when it is retried. */
  resumeState: ResumableState;
  service: RotationService;
  /** The service's error code, e.g. Graph's `Authorization_RequestDenied`, Key Vault's `Forbidden`, or the broker's `TooManyPasswords`. */
  code: string;
  /** HTTP status of the service's answer, when there was one. */
  status?: number;
  /** The service's message (one sentence), never a body or a secret. */
  message: string;
  /** One sentence an admin can act on. */
  remedy: string;
  /** ISO 8601. */
  at: string;
}

/** How the old password's keyId was found: the old version's `entraKeyId` tag, the password hint, or not at all. */
export type OldKeyIdSource = 'tag' | 'hint' | 'unknown';

/** What became of the old password at retirement. */
export type OldPasswordOutcome = 'removed' | 'alreadyGone' | 'kept';

export interface RotationRecord {
  /** The rotation id, e.g. `rot-20260301T100000Z-3f9a1c`; also in the password's display name and the new version's tags. */
  readonly id: string;
  /** Vault alias (`default` or one of `KEY_VAULT_ALIASES`). */
  readonly vault: string;
  readonly secret: string;
  /** The Entra application's object id (tag `entraAppObjectId`). */
  readonly applicationObjectId: string;
  /** Lifetime of the new password in days (tag `validityDays`). */
  readonly validityDays: number;
  /** The new password's display name, `secret-broker <rotation id>`: how a resumed rotation finds it. */
  readonly displayName: string;
  readonly reason: RotationReason;
  state: RotationState;
  /** ISO 8601 times. */
  readonly createdAt: string;
  updatedAt: string;

  /** The version that was latest when the rotation started, and its expiry (null: none). */
  readonly oldVersion: string;
  readonly oldExpiresOn: string | null;
  /** The tags the new version carries forward (the old version's, rotation tags included; never a value). */
  readonly carriedTags: Record<string, string>;
  /** The old password's keyId and how it was found; set before the new password is added. */
  oldKeyId?: string;
  oldKeyIdSource?: OldKeyIdSource;

  newKeyId?: string;
  newEndDateTime?: string;
  newVersion?: string;
  /** When the new version was created (Key Vault's `createdOn`). */
  newVersionCreatedAt?: string;
  /** When caches were refreshed and `rotated` sent. */
  announcedAt?: string;

  /** The latest retirement deadline (ISO 8601), set once the new version exists. */
  deadline?: string;
  /** Callers still reading the old version within the adoption window, as last seen. */
  holders: string[];
  /** When retirement was decided, and why. */
  retiringAt?: string;
  retireReason?: 'adopted' | 'deadline';
  oldPassword?: OldPasswordOutcome;
  passwordRemovedAt?: string;
  oldVersionDisabledAt?: string;
  retiredAt?: string;

  failure?: RotationFailure;
  /**
   * The lease of the run moving the rotation on: a random run id, and until when (ISO 8601). Saved
   * with the ETag before a step writes to Graph or Key Vault; another run finding it unexpired does nothing.
   */
  claimedBy?: string;
  claimedUntil?: string;
  /** The store's ETag of the row this record was read from or written to (not a column). */
  etag?: string;
}

/** The settings retirement follows (`ROTATION_ADOPTION_WINDOW_HOURS`, `ROTATION_RETIRE_AFTER_HOURS`). */
export interface RetirementSettings {
  adoptionWindowHours: number;
  retireAfterHours: number;
}

/** The display name of a rotation's password: Graph shows it in the portal, and a resumed rotation finds its password by it. */
export function passwordDisplayName(rotationId: string): string {
  return `secret-broker ${rotationId}`;
}
