import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** The data key of the shared cache: 32 random bytes (AES-256). */
export const DATA_KEY_BYTES = 32;
/** A fresh random IV per sealed value: 96 bits, the size GCM is made for. */
export const IV_BYTES = 12;
/** The full 128-bit GCM tag; shorter tags are refused when opening. */
export const TAG_BYTES = 16;

const ALGORITHM = 'aes-256-gcm';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A value encrypted with AES-256-GCM: only all three parts, the key and the same AAD open it. */
export interface SealedValue {
  readonly iv: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly tag: Uint8Array;
}

/** Where a sealed secret belongs: bound into its AAD, so it opens nowhere else. */
export interface SealingContext {
  /** The broker that stored it (`WEBSITE_SITE_NAME`, or a fixed local name): brokers sharing storage and key never read each other's rows. */
  readonly broker: string;
  /**
   * The vault's URI as `vaultIdentity` (config.ts) normalises it: lower-case scheme and host, no
   * default port, ending in one `/`. Never an alias, which each broker maps on its own.
   */
  readonly vault: string;
  /** Secret name (compared without case, as Key Vault does). */
  readonly name: string;
  /** What was asked for: `latest` or the pinned version. */
  readonly slot: string;
  /** The version the value is, or '' when unknown. */
  readonly version: string;
  /** When the stored copy stops being served (ISO 8601). */
  readonly expiresAt: string;
  /** The secret's rotation mark when the copy was filled ('' for none, and for pinned versions). */
  readonly generation: string;
}

/** Bumped if the AAD's layout ever changes, so old rows read as misses instead of as errors of meaning. */
const CONTEXT_FORMAT = 'secretbroker.sharedcache.v2';

/**
 * The AAD of a sealed secret: broker, vault URI, name, slot, version, expiry and rotation mark. A
 * row copied to another broker, vault, secret or slot, with its expiry pushed out, or relabelled
 * with a newer rotation mark, then fails to open. A JSON array, so no choice of separators can
 * make two contexts read the same.
 */
export function sealingContext(context: SealingContext): Buffer {
  return Buffer.from(
    JSON.stringify([
      CONTEXT_FORMAT,
      context.broker,
      context.vault,
      context.name.toLowerCase(),
      context.slot.toLowerCase(),
      context.version.toLowerCase(),
      context.expiresAt,
      context.generation,
    ]),
    'utf8',
  );
}

/**
 * The secret named by `CACHE_SHARED_KEY_SECRET` does not hold a usable data key. The message
 * says what is wrong with it, never what it holds.
 */
export class SharedCacheKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SharedCacheKeyError';
  }
}

/**
 * A sealed value did not authenticate: another data key, or an altered IV, ciphertext, tag or
 * context (AAD). Nothing of the value is returned.
 */
export class SharedCacheDecryptError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SharedCacheDecryptError';
  }
}

/**
 * The data key from the value of the `CACHE_SHARED_KEY_SECRET` secret: 32 bytes, base64 encoded
 * (`openssl rand -base64 32`); surrounding white space (a trailing newline) is ignored.
 * @throws SharedCacheKeyError naming the setting, when the value is not base64 or not 32 bytes.
 */
export function parseDataKey(secretValue: string): Buffer {
  const text = secretValue.trim();
  if (!BASE64.test(text) || text.length === 0) {
    throw new SharedCacheKeyError(
      'CACHE_SHARED_KEY_SECRET: the secret must hold 32 random bytes, base64 encoded (openssl rand -base64 32); its value is not base64',
    );
  }
  const key = Buffer.from(text, 'base64');
  if (key.length !== DATA_KEY_BYTES) {
    throw new SharedCacheKeyError(
      `CACHE_SHARED_KEY_SECRET: the secret must hold 32 random bytes, base64 encoded (openssl rand -base64 32); its value decodes to ${key.length} bytes`,
    );
  }
  return key;
}

/**
 * Reads the data key at most once per process: `readSecretValue` (the Key Vault read of
 * `CACHE_SHARED_KEY_SECRET`) runs on the first call, and every later call shares its result. A
 * failed read or an unusable value is not remembered, so the next call tries again.
 */
export function dataKeyLoader(readSecretValue: () => Promise<string>): () => Promise<Buffer> {
  let key: Promise<Buffer> | undefined;
  return () => {
    key ??= readSecretValue()
      .then(parseDataKey)
      .catch((err: unknown) => {
        key = undefined;
        throw err;
      });
    return key;
  };
}

/**
 * Encrypts `plaintext` under `key` with a fresh random IV; `aad` is authenticated, not stored:
 * {@link openValue} needs the same bytes.
 * @throws SharedCacheKeyError when the key is not 32 bytes.
 */
export function sealValue(key: Uint8Array, plaintext: string, aad: Uint8Array): SealedValue {
  checkKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { iv, ciphertext, tag: cipher.getAuthTag() };
}

/**
 * Decrypts and authenticates a sealed value.
 * @throws SharedCacheDecryptError when it does not authenticate (wrong key, anything altered,
 *   other AAD, wrong IV or tag length); never a partial or wrong value.
 * @throws SharedCacheKeyError when the key is not 32 bytes.
 */
export function openValue(key: Uint8Array, sealed: SealedValue, aad: Uint8Array): string {
  checkKey(key);
  if (sealed.iv.length !== IV_BYTES || sealed.tag.length !== TAG_BYTES) {
    throw new SharedCacheDecryptError(`A sealed value needs a ${IV_BYTES}-byte IV and a ${TAG_BYTES}-byte tag`);
  }
  try {
    const decipher = createDecipheriv(ALGORITHM, key, sealed.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.tag);
    // GCM releases nothing until final() has checked the tag; update's output is only used after.
    const plaintext = Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
    return plaintext.toString('utf8');
  } catch (err: unknown) {
    throw new SharedCacheDecryptError('A sealed value did not authenticate: another data key, or the row was altered', {
      cause: err,
    });
  }
}

function checkKey(key: Uint8Array): void {
  if (key.length !== DATA_KEY_BYTES) {
    throw new SharedCacheKeyError(`The shared cache's data key must be ${DATA_KEY_BYTES} bytes, got ${key.length}`);
  }
}
