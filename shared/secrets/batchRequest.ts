import { InvalidRequestError, TooManySecretsError } from '../errors';
import type { SecretRef } from './secretResolver';

/** Most secrets one batch may ask for (CONTRACT.md). */
export const MAX_BATCH_SECRETS = 100;
/** Most bytes a batch body may have: 100 items with long names fit many times over. */
export const MAX_BATCH_BODY_BYTES = 64 * 1024;

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
