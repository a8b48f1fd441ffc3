import { InvalidRequestError, TooManySecretsError } from '../errors';
import type { SecretRef } from './secretResolver';

/** Most secrets one batch may ask for (CONTRACT.md). */
export const MAX_BATCH_SECRETS = 100;
/**
 * Bytes of the longest valid item, `{"name":"<127>","version":"<32>","vault":"<63>"}`: a secret name
 * is at most 127 characters, a version 32 hex digits, a vault alias 63 characters, and the
 * punctuation and keys around them (`{"name":"","version":"","vault":""}`) are 35 bytes:
 * 35 + 127 + 32 + 63 = 257.
 */
export const LONGEST_BATCH_ITEM_BYTES = 35 + 127 + 32 + 63;
/**
 * Most bytes a batch body may have: twice the compact JSON of 100 of the longest items,
 * `{"secrets":[` + 100 × (257 + 1 for the comma) + `]}` = 12 + 25,800 + 2 = 25,814 bytes, so
 * 2 × 25,814 = 51,628 bytes. The second half is room for whitespace and escapes: pretty-printing
 * with 4-space indents and CRLF line ends adds about 65 bytes an item (about 25 %). A body past it
 * cannot be a valid batch, and is refused with 413 `TooManySecrets` before more of it is read.
 */
export const MAX_BATCH_BODY_BYTES = 2 * ('{"secrets":[]}'.length + MAX_BATCH_SECRETS * (LONGEST_BATCH_ITEM_BYTES + 1));

/** The error for a batch body past MAX_BATCH_BODY_BYTES: too many secrets, as the contract says. */
export function batchBodyTooLarge(): TooManySecretsError {
  return new TooManySecretsError(
    `A batch body may have at most ${MAX_BATCH_BODY_BYTES} bytes (${MAX_BATCH_SECRETS} secrets of the longest names, versions and vault aliases fit)`,
  );
}

/**
 * Reads `{"secrets": ["a", {"name":"b","version":"...","vault":"x"}]}`.
 * Only the shape is checked here; each item's name and version are checked when it is resolved,
 * so one bad item fails alone.
 * @throws InvalidRequestError when the body is not of that shape.
 * @throws TooManySecretsError past MAX_BATCH_SECRETS.
 */
export function parseBatchRequest(body: unknown): SecretRef[] {
  const secrets = (body as { secrets?: unknown } | null)?.secrets;
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !Array.isArray(secrets)) {
    throw new InvalidRequestError('The body must be {"secrets": [...]} with names or {"name","version","vault"} objects');
  }
  if (secrets.length === 0) throw new InvalidRequestError('"secrets" must name at least one secret');
  if (secrets.length > MAX_BATCH_SECRETS) {
    throw new TooManySecretsError(`A batch may ask for at most ${MAX_BATCH_SECRETS} secrets; this one asks for ${secrets.length}`);
  }
  return secrets.map((item: unknown, i): SecretRef => {
    if (typeof item === 'string') return { name: item };
    if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
      const { name, version, vault, ...rest } = item as Record<string, unknown>;
      const extra = Object.keys(rest);
      if (extra.length > 0) throw new InvalidRequestError(`secrets[${i}] has unknown field "${extra[0]}"`);
      if (typeof name !== 'string') throw new InvalidRequestError(`secrets[${i}].name must be a string`);
      if (version !== undefined && version !== null && typeof version !== 'string')
        throw new InvalidRequestError(`secrets[${i}].version must be a string`);
      if (vault !== undefined && vault !== null && typeof vault !== 'string')
        throw new InvalidRequestError(`secrets[${i}].vault must be a string`);
      return { name, version: version ?? undefined, vault: vault ?? undefined };
    }
    throw new InvalidRequestError(`secrets[${i}] must be a name or an object {"name","version","vault"}`);
  });
}
