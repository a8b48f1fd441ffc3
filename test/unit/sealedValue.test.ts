import { randomBytes } from 'node:crypto';
import {
  dataKeyLoader,
  openValue,
  parseDataKey,
  sealingContext,
  sealValue,
  SharedCacheDecryptError,
  SharedCacheKeyError,
} from '../../shared/secrets/sealedValue';
import type { SealedValue, SealingContext } from '../../shared/secrets/sealedValue';

const KEY = randomBytes(32);
const CONTEXT: SealingContext = {
  broker: 'contoso-broker',
  vault: 'https://contoso-vault2.vault.azure.net/',
  name: 'erp-password',
  slot: 'latest',
  version: '0123456789abcdef0123456789abcdef',
  expiresAt: '2030-01-01T00:00:05.000Z',
  generation: '',
};
const AAD = sealingContext(CONTEXT);
const VALUE = 'Pa55w0rd-ünïcode-✓';

/** A copy with one bit of one part flipped. */
function flip(sealed: SealedValue, part: keyof SealedValue): SealedValue {
  const bytes = Buffer.from(sealed[part]);
  bytes[0] = (bytes[0] ?? 0) ^ 0x01;
  return { ...sealed, [part]: bytes };
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err: unknown) {
    return err;
  }
  return undefined;
}

describe('sealValue / openValue', () => {
  it('round-trips a value under the same key and context', () => {
    const sealed = sealValue(KEY, VALUE, AAD);
    expect(sealed.iv).toHaveLength(12);
    expect(sealed.tag).toHaveLength(16);
    expect(Buffer.from(sealed.ciphertext).toString('utf8')).not.toContain('Pa55w0rd');
    expect(openValue(KEY, sealed, sealingContext({ ...CONTEXT }))).toBe(VALUE);
  });

  it('uses a fresh IV each time, so the same value never seals the same way twice', () => {
    const a = sealValue(KEY, VALUE, AAD);
    const b = sealValue(KEY, VALUE, AAD);
    expect(Buffer.from(a.iv).equals(Buffer.from(b.iv))).toBe(false);
    expect(Buffer.from(a.ciphertext).equals(Buffer.from(b.ciphertext))).toBe(false);
  });

  it('refuses to open under another key with SharedCacheDecryptError, never a wrong value', () => {
    const err = thrown(() => openValue(randomBytes(32), sealValue(KEY, VALUE, AAD), AAD));
    expect(err).toBeInstanceOf(SharedCacheDecryptError);
    expect((err as Error).message).toBe('A sealed value did not authenticate: another data key, or the row was altered');
  });

  it.each(['iv', 'ciphertext', 'tag'] as const)('refuses a sealed value whose %s was altered', (part) => {
    const sealed = sealValue(KEY, VALUE, AAD);
    expect(() => openValue(KEY, flip(sealed, part), AAD)).toThrow(SharedCacheDecryptError);
  });

  it.each([
    ['another vault', { vault: 'https://fabrikam-vault.vault.azure.net' }],
    ['another broker', { broker: 'fabrikam-broker' }],
    ['a later rotation mark', { generation: '9f86d081884c7d659a2feaa0c55ad015' }],
    ['another name', { name: 'erp-admin-password' }],
    ['another slot (a latest row copied to a pinned version)', { slot: '0123456789abcdef0123456789abcdef' }],
    ['another version', { version: 'fedcba9876543210fedcba9876543210' }],
    ['an extended expiry', { expiresAt: '2030-01-01T01:00:05.000Z' }],
  ])('refuses a value moved to %s (AAD)', (_label, change) => {
    const sealed = sealValue(KEY, VALUE, AAD);
    expect(() => openValue(KEY, sealed, sealingContext({ ...CONTEXT, ...change }))).toThrow(SharedCacheDecryptError);
  });

  it('ignores the case of the name and slot, as Key Vault does', () => {
    const sealed = sealValue(KEY, VALUE, AAD);
    expect(openValue(KEY, sealed, sealingContext({ ...CONTEXT, name: 'ERP-Password', slot: 'LATEST' }))).toBe(VALUE);
  });

  it('refuses a truncated tag or an IV of the wrong size', () => {
    const sealed = sealValue(KEY, VALUE, AAD);
    expect(() => openValue(KEY, { ...sealed, tag: sealed.tag.subarray(0, 4) }, AAD)).toThrow(
      'A sealed value needs a 12-byte IV and a 16-byte tag',
    );
    expect(() => openValue(KEY, { ...sealed, iv: randomBytes(16) }, AAD)).toThrow(SharedCacheDecryptError);
  });

  it('refuses a key that is not 32 bytes', () => {
    expect(() => sealValue(randomBytes(16), VALUE, AAD)).toThrow(
      new SharedCacheKeyError("The shared cache's data key must be 32 bytes, got 16"),
    );
  });
});

describe('parseDataKey', () => {
  it('reads 32 base64-encoded bytes, ignoring a trailing newline (openssl rand -base64 32)', () => {
    const key = randomBytes(32);
    expect(parseDataKey(`${key.toString('base64')}\n`).equals(key)).toBe(true);
  });

  it.each([
    ['is not base64', 'correct horse battery staple!!', 'its value is not base64'],
    ['is empty', '   ', 'its value is not base64'],
    ['is base64url', randomBytes(32).toString('base64url'), 'its value is not base64'],
    ['is 16 bytes', randomBytes(16).toString('base64'), 'its value decodes to 16 bytes'],
    ['is 64 bytes', randomBytes(64).toString('base64'), 'its value decodes to 64 bytes'],
    ['is hex', randomBytes(32).toString('hex'), 'its value decodes to 48 bytes'],
  ])('names CACHE_SHARED_KEY_SECRET and never the value when the secret %s', (_label, value, reason) => {
    const err = thrown(() => parseDataKey(value));
    expect(err).toBeInstanceOf(SharedCacheKeyError);
    const message = (err as Error).message;
    expect(message).toBe(
      `CACHE_SHARED_KEY_SECRET: the secret must hold 32 random bytes, base64 encoded (openssl rand -base64 32); ${reason}`,
    );
    if (value.trim()) expect(message).not.toContain(value.trim());
  });
});

describe('dataKeyLoader', () => {
  it('reads the key secret once and shares it between calls', async () => {
    const key = randomBytes(32);
    const read = jest.fn(() => Promise.resolve(key.toString('base64')));
    const dataKey = dataKeyLoader(read);
    const [a, b] = await Promise.all([dataKey(), dataKey()]);
    expect((await dataKey()).equals(key)).toBe(true);
    expect(a).toBe(b);
    expect(read).toHaveBeenCalledTimes(1);
  });

  it('forgets a failed read or an unusable value, so the next call tries again', async () => {
    const key = randomBytes(32).toString('base64');
    const read = jest
      .fn<Promise<string>, []>()
      .mockRejectedValueOnce(new Error('vault down'))
      .mockResolvedValueOnce('not a key')
      .mockResolvedValue(key);
    const dataKey = dataKeyLoader(read);
    await expect(dataKey()).rejects.toThrow('vault down');
    await expect(dataKey()).rejects.toThrow(SharedCacheKeyError);
    expect((await dataKey()).toString('base64')).toBe(key);
    expect(read).toHaveBeenCalledTimes(3);
  });
});
