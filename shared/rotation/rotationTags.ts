/**
 * The Key Vault tags that opt a secret into rotation (see docs/rotation.md):
 * `brokerRotation=entraApp`, `entraAppObjectId=<application object id>`, optional `validityDays`
 * (default 180, 1 to 730: Entra allows client secrets of at most 24 months). A new version carries
 * every tag of the old one forward (so the next rotation happens too), plus `entraKeyId` (the
 * password's keyId) and `brokerRotationId` (the rotation that wrote it).
 */

export const TAG_ROTATION = 'brokerRotation';
export const TAG_ROTATION_KIND = 'entraApp';
export const TAG_APP_OBJECT_ID = 'entraAppObjectId';
export const TAG_VALIDITY_DAYS = 'validityDays';
export const TAG_KEY_ID = 'entraKeyId';
export const TAG_ROTATION_ID = 'brokerRotationId';

/** Lifetime of a new password when `validityDays` is absent. */
export const DEFAULT_VALIDITY_DAYS = 180;
export const MIN_VALIDITY_DAYS = 1;
/** Entra ID client secrets last at most 24 months. */
export const MAX_VALIDITY_DAYS = 730;

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What the tags say about rotating the secret. */
export interface RotationTags {
  applicationObjectId: string;
  validityDays: number;
  /** The `entraKeyId` of this version, when a rotation wrote it. */
  keyId: string | undefined;
}

/** Why a secret cannot be rotated: not opted in at all, or opted in with a tag that is wrong. */
export interface TagRefusal {
  code: 'NotTagged' | 'InvalidTags';
  message: string;
}

/** Reads the rotation tags of a version; a refusal says which tag is missing or wrong. */
export function readRotationTags(tags: Readonly<Record<string, string>> | undefined): RotationTags | TagRefusal {
  const t = tags ?? {};
  const kind = t[TAG_ROTATION];
  if (kind === undefined) {
    return {
      code: 'NotTagged',
      message: `The secret is not tagged ${TAG_ROTATION}=${TAG_ROTATION_KIND}, so the broker does not rotate it.`,
    };
  }
  if (kind !== TAG_ROTATION_KIND) {
    return { code: 'InvalidTags', message: `Tag ${TAG_ROTATION} must be "${TAG_ROTATION_KIND}", got "${kind}".` };
  }
  const objectId = t[TAG_APP_OBJECT_ID];
  if (objectId === undefined || !GUID_RE.test(objectId)) {
    return {
      code: 'InvalidTags',
      message: `Tag ${TAG_APP_OBJECT_ID} must be the Entra application's object id (a GUID), got ${objectId === undefined ? 'none' : `"${objectId}"`}.`,
    };
  }
  let validityDays = DEFAULT_VALIDITY_DAYS;
  const validity = t[TAG_VALIDITY_DAYS];
  if (validity !== undefined) {
    validityDays = /^\d{1,4}$/.test(validity.trim()) ? Number(validity.trim()) : NaN;
    if (!Number.isInteger(validityDays) || validityDays < MIN_VALIDITY_DAYS || validityDays > MAX_VALIDITY_DAYS) {
      return {
        code: 'InvalidTags',
        message: `Tag ${TAG_VALIDITY_DAYS} must be a whole number of days from ${MIN_VALIDITY_DAYS} to ${MAX_VALIDITY_DAYS}, got "${validity}".`,
      };
    }
  }
  const keyId = t[TAG_KEY_ID];
  return {
    applicationObjectId: objectId.toLowerCase(),
    validityDays,
    keyId: keyId && GUID_RE.test(keyId) ? keyId.toLowerCase() : undefined,
  };
}

export function isTagRefusal(value: RotationTags | TagRefusal): value is TagRefusal {
  return 'code' in value;
}

/** The tags of the new version: the old version's, with this rotation's `entraKeyId` and `brokerRotationId`. */
export function newVersionTags(carried: Readonly<Record<string, string>>, keyId: string, rotationId: string): Record<string, string> {
  return { ...carried, [TAG_KEY_ID]: keyId, [TAG_ROTATION_ID]: rotationId };
}
