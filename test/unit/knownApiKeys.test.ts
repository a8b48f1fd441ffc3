import { createHash } from 'node:crypto';
import { AccessPolicy, KNOWN_API_KEYS } from '../../shared/callers/accessPolicy';
import { CallerAuthenticator } from '../../shared/callers/authenticateCaller';

const sha = (key: string): string => createHash('sha256').update(key).digest('hex');

function policyOf(keys: string[]): AccessPolicy {
  return new AccessPolicy({
    callers: [
      {
        name: 'erp',
        identities: keys.map((key) => ({ apiKeySha256: sha(key) })),
        allow: ['*'],
        deny: [],
        operator: false,
        roles: [],
        rateLimit: { requestsPerMinute: 60 },
      },
    ],
  });
}

function headers(values: Record<string, string>) {
  return { get: (name: string) => values[name] ?? null };
}

describe('known API keys', () => {
  it('remembers a key once it proved valid, with the caller the hashing found, and never an invalid key', () => {
    const policy = policyOf(['erp-key']);
    expect(policy.knownApiKey('erp-key')).toBeUndefined();
    const found = policy.findByApiKey('erp-key');
    expect(found).toMatchObject({ name: 'erp', method: 'apiKey', keyId: sha('erp-key').slice(0, 12) });
    expect(policy.knownApiKey('erp-key')).toBe(found);
    expect(policy.findByApiKey('erp-key')).toBe(found);
    expect(Object.isFrozen(found)).toBe(true);
    expect(policy.findByApiKey('erp-key ')).toBeUndefined();
    expect(policy.knownApiKey('erp-key ')).toBeUndefined();
    // A policy of its own (a new runtime) knows nothing of it.
    expect(policyOf(['erp-key']).knownApiKey('erp-key')).toBeUndefined();
  });

  it(`keeps at most ${KNOWN_API_KEYS} keys, dropping the least recently used`, () => {
    const keys = Array.from({ length: KNOWN_API_KEYS + 1 }, (_, i) => `key-${i}`);
    const policy = policyOf(keys);
    for (const key of keys.slice(0, KNOWN_API_KEYS)) policy.findByApiKey(key);
    // key-0 used again: key-1 is now the least recently used.
    expect(policy.knownApiKey('key-0')).toBeDefined();
    policy.findByApiKey(keys[KNOWN_API_KEYS]!);
    expect(policy.knownApiKey('key-1')).toBeUndefined();
    expect(policy.knownApiKey('key-0')).toBeDefined();
    expect(policy.knownApiKey(keys[KNOWN_API_KEYS]!)).toBeDefined();
    // Forgotten is not refused: it is hashed again.
    expect(policy.findByApiKey('key-1')).toMatchObject({ name: 'erp' });
  });

  it('finds a known caller only for a request with a known x-api-key and no Authorization', () => {
    const policy = policyOf(['erp-key']);
    const authenticator = new CallerAuthenticator(policy, undefined);
    expect(authenticator.knownApiKeyCaller(headers({ 'x-api-key': 'erp-key' }))).toBeUndefined();
    const caller = policy.findByApiKey('erp-key');
    expect(authenticator.knownApiKeyCaller(headers({ 'x-api-key': 'erp-key' }))).toBe(caller);
    expect(authenticator.knownApiKeyCaller(headers({ 'x-api-key': 'erp-key', authorization: 'Bearer x' }))).toBeUndefined();
    expect(authenticator.knownApiKeyCaller(headers({ 'x-api-key': '' }))).toBeUndefined();
    expect(authenticator.knownApiKeyCaller(headers({}))).toBeUndefined();
  });
});
