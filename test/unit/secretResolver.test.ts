import type { AuditEntry } from '../../shared/audit/auditRecord';
import { AccessPolicy } from '../../shared/callers/accessPolicy';
import type { Caller } from '../../shared/callers/accessPolicy';
import { ForbiddenError, SecretDisabledError, SecretNotFoundError } from '../../shared/errors';
import { NEGATIVE_CACHE_SECONDS, SecretResolver } from '../../shared/secrets/secretResolver';
import type { SecretMetadata, VaultGateway, VaultSecret } from '../../shared/secrets/vaultGateway';

const PINNED = 'a'.repeat(32);
const everything: Caller = { name: 'everything', operator: false, method: 'apiKey', requestsPerMinute: 600 };

function secret(name: string, version = 'b'.repeat(32), vault = 'default'): VaultSecret {
  return {
    name,
    vault,
    version,
    value: `value-of-${name}`,
    contentType: null,
    enabled: true,
    notBefore: null,
    expiresOn: null,
    updatedOn: null,
  };
}

/** A vault of names; `getSecret` counts its calls and answers from `state`. */
function fakeVault(alias: string, state: Map<string, VaultSecret | Error>) {
  const calls: string[] = [];
  const gateway = {
    alias,
    getSecret: (name: string, version?: string) => {
      calls.push(`${name}@${version ?? 'latest'}`);
      const found = state.get(version ? `${name}@${version}` : name);
      if (!found) return Promise.reject(new SecretNotFoundError(`Secret "${name}" was not found`));
      return found instanceof Error ? Promise.reject(found) : Promise.resolve(found);
    },
    listSecrets: (): Promise<SecretMetadata[]> =>
      Promise.resolve([...state.entries()].filter(([k, v]) => !k.includes('@') && !(v instanceof Error)).map(([, v]) => v as VaultSecret)),
  };
  return { gateway: gateway as unknown as VaultGateway, calls };
}

function setup(opts: { signingVault?: string } = {}) {
  let now = 1_000_000;
  const defaults = new Map<string, VaultSecret | Error>([
    ['erp-token', secret('erp-token')],
    ['whsec-erp', secret('whsec-erp')],
    [`erp-token@${PINNED}`, secret('erp-token', PINNED)],
  ]);
  const keys = new Map<string, VaultSecret | Error>([['whsec-erp', secret('whsec-erp', 'c'.repeat(32), 'keys')]]);
  const main = fakeVault('default', defaults);
  const keyVault = fakeVault('keys', keys);
  const audit: AuditEntry[] = [];
  const resolver = new SecretResolver({
    vaults: new Map([
      ['default', main.gateway],
      ['keys', keyVault.gateway],
    ]),
    policy: new AccessPolicy({
      callers: [
        {
          name: 'everything',
          identities: [{ apiKeySha256: '0'.repeat(64) }],
          allow: ['*', 'keys/*'],
          deny: [],
          operator: false,
          roles: [],
          rateLimit: { requestsPerMinute: 600 },
        },
      ],
    }),
    cache: { ttlSeconds: 300, maxEntries: 100, staleIfErrorSeconds: 3600 },
    signingKeys: { vault: opts.signingVault ?? 'default', names: ['whsec-erp'] },
    now: () => now,
  });
  return {
    resolver,
    defaults,
    calls: main.calls,
    keyCalls: keyVault.calls,
    audit: { record: (entry: AuditEntry) => audit.push(entry) },
    entries: audit,
    advance: (ms: number) => (now += ms),
  };
}

describe('SecretResolver', () => {
  it('remembers a missing secret for the negative TTL: repeated misses cost one vault read', async () => {
    const { resolver, calls, audit, entries, advance } = setup();
    for (let i = 0; i < 50; i++) {
      await expect(resolver.resolve(everything, { name: 'nope' }, audit)).rejects.toBeInstanceOf(SecretNotFoundError);
    }
    expect(calls.filter((c) => c === 'nope@latest')).toHaveLength(1);
    expect(entries.map((e) => e.cache)).toEqual(['miss', ...Array<string>(49).fill('negative')]);
    expect(entries.every((e) => e.status === 404 && e.code === 'SecretNotFound')).toBe(true);
    advance(NEGATIVE_CACHE_SECONDS * 1000 + 1);
    await expect(resolver.resolve(everything, { name: 'nope' }, audit)).rejects.toBeInstanceOf(SecretNotFoundError);
    expect(calls.filter((c) => c === 'nope@latest')).toHaveLength(2);
  });

  it('forgets a missing secret at once when its new version is announced', async () => {
    const { resolver, defaults, audit } = setup();
    await expect(resolver.resolve(everything, { name: 'late' }, audit)).rejects.toBeInstanceOf(SecretNotFoundError);
    defaults.set('late', secret('late'));
    resolver.invalidate('default', 'LATE');
    expect((await resolver.resolve(everything, { name: 'late' }, audit)).secret.value).toBe('value-of-late');
  });

  it('asks the vault again for a pinned version after the TTL, so a disabled version answers 409', async () => {
    const { resolver, defaults, audit, advance } = setup();
    expect((await resolver.resolve(everything, { name: 'erp-token', version: PINNED }, audit)).cache).toBe('miss');
    expect((await resolver.resolve(everything, { name: 'erp-token', version: PINNED }, audit)).cache).toBe('hit');
    defaults.set(`erp-token@${PINNED}`, new SecretDisabledError('Secret "erp-token" is disabled'));
    advance(300_001);
    await expect(resolver.resolve(everything, { name: 'erp-token', version: PINNED }, audit)).rejects.toBeInstanceOf(SecretDisabledError);
  });

  it('refuses a signing key to a caller allowed everything, in the same words as a policy refusal', async () => {
    const { resolver, calls, audit, entries } = setup();
    const err = await resolver.resolve(everything, { name: 'WHSEC-erp' }, audit, { operation: 'metadata' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForbiddenError);
    expect((err as Error).message).toBe('Caller "everything" may not read "WHSEC-erp"');
    expect(calls).toEqual([]);
    expect(entries[0]).toMatchObject({ operation: 'metadata', status: 403, code: 'Forbidden', secret: 'WHSEC-erp' });
  });

  it('leaves signing keys out of the list, and reads them for the broker from SIGNING_KEY_VAULT', async () => {
    const { resolver, audit } = setup();
    // The default vault's whsec-erp is a signing key; the keys vault's one is not (SIGNING_KEY_VAULT is default).
    expect((await resolver.list(everything, audit)).map((s) => `${s.vault}/${s.name}`)).toEqual(['default/erp-token', 'keys/whsec-erp']);
    expect((await resolver.readSigningKey('whsec-erp')).value).toBe('value-of-whsec-erp');

    const elsewhere = setup({ signingVault: 'keys' });
    await elsewhere.resolver.readSigningKey('whsec-erp');
    expect(elsewhere.keyCalls).toEqual(['whsec-erp@latest']);
    expect(elsewhere.calls).toEqual([]);
    // In another vault, the same name in the default vault is an ordinary secret again.
    expect((await elsewhere.resolver.resolve(everything, { name: 'whsec-erp' }, elsewhere.audit)).secret.name).toBe('whsec-erp');
    await expect(elsewhere.resolver.resolve(everything, { name: 'whsec-erp', vault: 'keys' }, elsewhere.audit)).rejects.toBeInstanceOf(
      ForbiddenError,
    );
  });

  it('audits one entry per resolve with its batch position, never the value', async () => {
    const { resolver, audit, entries } = setup();
    await resolver.resolve(everything, { name: 'erp-token' }, audit, { item: 3 });
    expect(entries).toEqual([
      expect.objectContaining({ operation: 'resolve', item: 3, vault: 'default', secret: 'erp-token', status: 200, code: 'OK' }),
    ]);
    expect(JSON.stringify(entries)).not.toContain('value-of-');
  });
});
