import { InvalidRequestError, RotationRefusedError, SecretNotFoundError, VaultAccessDeniedError, VaultUnavailableError } from '../errors';
import { VaultStepError } from '../rotation/rotationErrors';
import type { RotationRunner } from '../rotation/rotationRunner';
import type { RotationFailure, RotationReason, RotationRecord, RotationState } from '../rotation/rotationTypes';

/**
 * The answer of `POST /api/secrets/{name}/rotate` (docs/http-api.md) and what `broker rotate`
 * prints: a rotation's record without anything secret (no secret text exists in a record; key ids
 * are left out too). Times are ISO 8601, null until the step happened.
 */
export interface RotationAnswer {
  /** `started`: this request began it; `resumed`: it was already active (failed ones are retried). */
  readonly outcome: 'started' | 'resumed';
  readonly id: string;
  readonly vault: string;
  readonly secret: string;
  readonly reason: RotationReason;
  readonly state: RotationState;
  readonly applicationObjectId: string;
  readonly oldVersion: string;
  readonly newVersion: string | null;
  /** The new version's expiry: the new password's end date. */
  readonly newExpiresOn: string | null;
  /** Callers that read the old version within the adoption window and have not read the new one yet. */
  readonly holders: readonly string[];
  /** Retirement at the latest. */
  readonly deadline: string | null;
  readonly retireReason: 'adopted' | 'deadline' | null;
  readonly steps: {
    readonly startedAt: string;
    readonly storedAt: string | null;
    readonly announcedAt: string | null;
    readonly retiringAt: string | null;
    readonly passwordRemovedAt: string | null;
    readonly oldVersionDisabledAt: string | null;
    readonly retiredAt: string | null;
  };
  readonly updatedAt: string;
  readonly failure: Omit<RotationFailure, 'resumeState'> | null;
}

export function rotationAnswer(outcome: 'started' | 'resumed', r: RotationRecord): RotationAnswer {
  const f = r.failure;
  return {
    outcome,
    id: r.id,
    vault: r.vault,
    secret: r.secret,
    reason: r.reason,
    state: r.state,
    applicationObjectId: r.applicationObjectId,
    oldVersion: r.oldVersion,
    newVersion: r.newVersion ?? null,
    newExpiresOn: r.newVersion ? (r.newEndDateTime ?? null) : null,
    holders: [...r.holders],
    deadline: r.deadline ?? null,
    retireReason: r.retireReason ?? null,
    steps: {
      startedAt: r.createdAt,
      storedAt: r.newVersionCreatedAt ?? null,
      announcedAt: r.announcedAt ?? null,
      retiringAt: r.retiringAt ?? null,
      passwordRemovedAt: r.passwordRemovedAt ?? null,
      oldVersionDisabledAt: r.oldVersionDisabledAt ?? null,
      retiredAt: r.retiredAt ?? null,
    },
    updatedAt: r.updatedAt,
    failure: f
      ? {
          step: f.step,
          service: f.service,
          code: f.code,
          ...(f.status === undefined ? {} : { status: f.status }),
          message: f.message,
          remedy: f.remedy,
          at: f.at,
        }
      : null,
  };
}

/**
 * Starts (or resumes) a secret's rotation on an operator's request and runs every step that can run
 * now; the HTTP route and `broker rotate` share it.
 * @throws RotationRefusedError `RotationNotEnabled` (no runner: `ROTATION_IDENTITY_CLIENT_ID` unset)
 *   or `SecretNotRotatable` (not tagged, invalid tags, or not listed in ROTATION_TARGETS with its tagged application); SecretNotFoundError; InvalidRequestError
 *   for a vault without a writer; VaultAccessDeniedError / VaultUnavailableError when the rotation
 *   identity cannot read the secret.
 */
export async function startRotation(
  runner: Pick<RotationRunner, 'start'> | undefined,
  vault: string,
  secret: string,
  reason: RotationReason = 'manual',
): Promise<RotationAnswer> {
  if (!runner) {
    throw new RotationRefusedError('RotationNotEnabled', 'Rotation is off: ROTATION_IDENTITY_CLIENT_ID names no rotation identity.');
  }
  let result: Awaited<ReturnType<RotationRunner['start']>>;
  try {
    result = await runner.start(vault, secret, reason);
  } catch (err: unknown) {
    // The secret could not be read with the rotation identity: nothing was started.
    if (!(err instanceof VaultStepError)) throw err;
    const what = `The rotation identity cannot read secret ${secret} in vault "${vault}" (Key Vault: ${err.code})`;
    if (err.status === 403) throw new VaultAccessDeniedError(`${what}: grant it Key Vault Secrets Officer.`, 'ForbiddenByRbac');
    throw new VaultUnavailableError(`${what}.`);
  }
  if (result.outcome !== 'refused') return rotationAnswer(result.outcome, result.record);
  switch (result.code) {
    case 'NotTagged':
    case 'InvalidTags':
    case 'NotATarget':
      throw new RotationRefusedError('SecretNotRotatable', result.message);
    case 'SecretNotFound':
      throw new SecretNotFoundError(result.message);
    case 'UnknownVault':
      throw new InvalidRequestError(result.message);
  }
}
