import type { Caller } from '../../shared/callers/accessPolicy';
import { ForbiddenError, SecretDisabledError, SecretNotFoundError, TooManyRequestsError, VaultThrottledError } from '../../shared/errors';
import { NEGATIVE_CACHE_SECONDS } from '../../shared/secrets/secretResolver';
import { everything, PINNED, secret, setup, version } from '../support/resolverFixture';

describe('SecretResolver: the miss budget', () => {
  const tight: Caller = { ...everything, name: 'no-whsec', missesPerMinute: 3 };

  it('answers 429 TooManyRequests before the vault read past the budget; cache hits never spend it', async () => {
    const { resolver, defaults, calls, audit, entries, advance } = setup({ missBudget: true });
    for (const name of ['s1', 's2', 's3', 's4']) defaults.set(name, secret(name));
    for (const name of ['s1', 's2', 's3']) await resolver.resolve(tight, { name }, audit);
    const err = await resolver.resolve(tight, { name: 's4' }, audit).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TooManyRequestsError);
    expect(err).toMatchObject({ status: 429, code: 'TooManyRequests', retryAfterSeconds: 20 });
    expect((err as Error).message).toBe(
      'Caller "no-whsec" is over its budget of 3 vault reads per minute on this instance (reads the cache could not answer); retry after 20 s',
    );
    expect(entries.at(-1)).toMatchObject({ secret: 's4', status: 429, code: 'TooManyRequests' });
    expect(calls).toEqual(['s1@latest', 's2@latest', 's3@latest']);
    // Hits cost nothing, however many.
    for (let i = 0; i < 1000; i++) expect((await resolver.resolve(tight, { name: 's2' }, audit)).cache).toBe('hit');
    // Random versions are misses too (answered from the list, but not from the cache).
    await expect(resolver.resolve(tight, { name: 'erp-token', version: version(7) }, audit)).rejects.toBeInstanceOf(TooManyRequestsError);
    advance(20_000);
    expect((await resolver.resolve(tight, { name: 's4' }, audit)).secret.value).toBe('value-of-s4');
  });

  it('charges cold misses only: refreshing a value held past its TTL (within its stale window) costs nothing', async () => {
    const { resolver, defaults, calls, audit, advance } = setup({ missBudget: true });
    const names = ['s1', 's2', 's3', 's4', 's5'];
    for (const name of [...names, 'c1', 'c2', 'c3', 'c4']) defaults.set(name, secret(name));
    // Held by another caller's reads.
    for (const name of names) await resolver.resolve(everything, { name }, audit);
    advance(300_001);
    // Five refreshes by a caller whose budget is three misses a minute: none charged.
    for (const name of names) expect((await resolver.resolve(tight, { name }, audit)).cache).toBe('miss');
    expect(calls.filter((c) => c === 's1@latest')).toHaveLength(2);
    // Its cold misses are: three pass, the fourth is refused before the vault read.
    for (const name of ['c1', 'c2', 'c3']) await resolver.resolve(tight, { name }, audit);
    await expect(resolver.resolve(tight, { name: 'c4' }, audit)).rejects.toBeInstanceOf(TooManyRequestsError);
    expect(calls).not.toContain('c4@latest');
  });

  it("charges only the caller that misses: another caller's read of the same key is not refused with it", async () => {
    const { resolver, defaults, calls, audit } = setup({ missBudget: true });
    for (const name of ['s1', 's2', 's3', 'shared']) defaults.set(name, secret(name));
    for (const name of ['s1', 's2', 's3']) await resolver.resolve(tight, { name }, audit);
    const [refused, served] = await Promise.allSettled([
      resolver.resolve(tight, { name: 'shared' }, audit),
      resolver.resolve(everything, { name: 'shared' }, audit),
    ]);
    expect(refused).toMatchObject({ status: 'rejected', reason: expect.any(TooManyRequestsError) });
    expect(served).toMatchObject({ status: 'fulfilled', value: { cache: 'miss' } });
    // Once cached, the refused caller is served from the cache although its budget is spent.
    expect((await resolver.resolve(tight, { name: 'shared' }, audit)).cache).toBe('hit');
    expect(calls.filter((c) => c === 'shared@latest')).toHaveLength(1);
  });

  it('lets a default caller miss a whole batch of 100 at once after a cold start', async () => {
    const { resolver, defaults, audit } = setup({ missBudget: true });
    const names = Array.from({ length: 101 }, (_, i) => `cold-${i}`);
    for (const name of names) defaults.set(name, secret(name));
    const first = await Promise.allSettled(names.slice(0, 100).map((name) => resolver.resolve(everything, { name }, audit)));
    expect(first.every((r) => r.status === 'fulfilled')).toBe(true);
    await expect(resolver.resolve(everything, { name: 'cold-100' }, audit)).rejects.toBeInstanceOf(TooManyRequestsError);
  });
});

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

  it('reserves signing keys and the data key by vault URI and name: a second alias of the vault reaches neither', async () => {
    // The settings refuse such a twin (KEY_VAULT_ALIASES); the resolver holds the rule on its own.
    const { resolver, keyCalls, audit, entries } = setup({
      keysUri: 'https://CONTOSO.vault.azure.net:443',
      reserved: [{ vault: 'default', name: 'broker-cache-key' }],
    });
    for (const name of ['whsec-erp', 'WHSEC-ERP', 'broker-cache-key']) {
      const single = await resolver.resolve(everything, { name, vault: 'keys' }, audit).catch((e: unknown) => e);
      expect(single).toBeInstanceOf(ForbiddenError);
      expect((single as Error).message).toBe(`Caller "everything" may not read "keys/${name}"`);
      const metadata = resolver.resolve(everything, { name, vault: 'keys' }, audit, { operation: 'metadata' });
      await expect(metadata).rejects.toBeInstanceOf(ForbiddenError);
      const batchItem = resolver.resolve(everything, { name, vault: 'keys' }, audit, { item: 3, deadline: resolver.deadline() });
      await expect(batchItem).rejects.toBeInstanceOf(ForbiddenError);
    }
    expect(keyCalls).toEqual([]);
    expect(
      entries.map(
        (e) => `${e.operation} ${String(e.vault)}/${String(e.secret)} ${e.status} ${e.code}${e.item === undefined ? '' : ` #${e.item}`}`,
      ),
    ).toEqual(
      ['whsec-erp', 'WHSEC-ERP', 'broker-cache-key'].flatMap((name) => [
        `resolve keys/${name} 403 Forbidden`,
        `metadata keys/${name} 403 Forbidden`,
        `resolve keys/${name} 403 Forbidden #3`,
      ]),
    );
    // The keys vault lists whsec-erp, and it is the default vault's signing key: left out.
    expect((await resolver.list(everything, audit)).map((s) => `${s.vault}/${s.name}`)).toEqual(['default/erp-token']);
  });

  it("holds a caller's deny pattern however the default vault is named (no vault, default, DEFAULT)", async () => {
    const noWhsec: Caller = { ...everything, name: 'no-whsec' };
    const { resolver, calls, audit } = setup({ signingVault: 'keys' });
    for (const [vault, subject] of [
      [undefined, 'whsec-erp'],
      ['default', 'whsec-erp'],
      // Not an alias (aliases are exact): the subject is DEFAULT/whsec-erp, which no allow reaches.
      ['DEFAULT', 'DEFAULT/whsec-erp'],
    ] as const) {
      const err = await resolver.resolve(noWhsec, { name: 'whsec-erp', vault }, audit).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ForbiddenError);
      expect((err as Error).message).toBe(`Caller "no-whsec" may not read "${subject}"`);
    }
    expect(calls).toEqual([]);
    expect((await resolver.resolve(noWhsec, { name: 'erp-token' }, audit)).secret.name).toBe('erp-token');
  });

  it('audits one entry per resolve with its batch position, never the value', async () => {
    const { resolver, audit, entries } = setup();
    await resolver.resolve(everything, { name: 'erp-token' }, audit, { item: 3 });
    expect(entries).toEqual([
      expect.objectContaining({ operation: 'resolve', item: 3, vault: 'default', secret: 'erp-token', status: 200, code: 'OK' }),
    ]);
    expect(JSON.stringify(entries)).not.toContain('value-of-');
  });

  it('drops the cached latest value only when it is not the announced version', async () => {
    const { resolver, defaults, calls, audit } = setup();
    await resolver.resolve(everything, { name: 'erp-token' }, audit);
    expect(resolver.invalidate('default', 'erp-token', 'B'.repeat(32))).toBe(0);
    expect((await resolver.resolve(everything, { name: 'erp-token' }, audit)).cache).toBe('hit');
    defaults.set('erp-token', secret('erp-token', 'd'.repeat(32)));
    expect(resolver.invalidate('default', 'erp-token', 'd'.repeat(32))).toBe(1);
    expect((await resolver.resolve(everything, { name: 'erp-token' }, audit)).secret.version).toBe('d'.repeat(32));
    // The same announcement again (a redelivered event) costs nothing.
    expect(resolver.invalidate('default', 'erp-token', 'd'.repeat(32))).toBe(0);
    expect((await resolver.resolve(everything, { name: 'erp-token' }, audit)).cache).toBe('hit');
    expect(calls).toEqual(['erp-token@latest', 'erp-token@latest']);
  });

  it('drops the latest value when no version is named, keeps pinned values, and always forgets a "not found"', async () => {
    const { resolver, lists, audit } = setup();
    const unknown = 'e'.repeat(32);
    await resolver.resolve(everything, { name: 'erp-token' }, audit);
    await resolver.resolve(everything, { name: 'erp-token', version: PINNED }, audit);
    await expect(resolver.resolve(everything, { name: 'erp-token', version: unknown }, audit)).rejects.toBeInstanceOf(SecretNotFoundError);
    expect(resolver.invalidate('default', 'erp-token')).toBe(2);
    expect((await resolver.resolve(everything, { name: 'erp-token', version: PINNED }, audit)).cache).toBe('hit');
    expect((await resolver.resolve(everything, { name: 'erp-token' }, audit)).cache).toBe('miss');
    await resolver.resolve(everything, { name: 'erp-token', version: unknown }, audit).catch(() => undefined);
    expect(resolver.invalidate('default', 'erp-token', 'b'.repeat(32))).toBe(1);
    // The unknown version never reached the vault: the name's version list answered, listed again after the drop.
    expect(lists).toEqual(['erp-token', 'erp-token']);
  });

  it('serves the stale value at once while the vault throttles, without waiting', async () => {
    const { resolver, defaults, calls, audit, sleeps, advance } = setup();
    await resolver.resolve(everything, { name: 'erp-token' }, audit);
    advance(300_000);
    defaults.set('erp-token', new VaultThrottledError('Vault "default" is throttling requests', { retryAfterSeconds: 5 }));
    expect((await resolver.resolve(everything, { name: 'erp-token' }, audit)).cache).toBe('stale');
    // The vault is paused now: the next stale answer does not even ask it.
    expect((await resolver.resolve(everything, { name: 'erp-token' }, audit)).cache).toBe('stale');
    expect(calls).toEqual(['erp-token@latest', 'erp-token@latest']);
    expect(sleeps).toEqual([]);
  });

  it('waits out throttling for callers with nothing cached: concurrent misses cost one vault call per attempt', async () => {
    const { resolver, defaults, calls, audit, sleeps } = setup();
    let answered = 0;
    defaults.set('erp-token', () =>
      ++answered <= 2 ? new VaultThrottledError('Vault "default" is throttling requests', { retryAfterSeconds: 1 }) : secret('erp-token'),
    );
    const all = await Promise.all(Array.from({ length: 20 }, () => resolver.resolve(everything, { name: 'erp-token' }, audit)));
    expect(all.every((r) => r.secret.value === 'value-of-erp-token')).toBe(true);
    expect(calls).toEqual(['erp-token@latest', 'erp-token@latest', 'erp-token@latest']);
    expect(sleeps).toEqual([1000, 1000]);
  });

  it('answers 429 VaultThrottled with Retry-After when the wait would pass the deadline', async () => {
    const { resolver, defaults, calls, audit, entries, sleeps } = setup();
    defaults.set('erp-token', new VaultThrottledError('Vault "default" is throttling requests', { retryAfterSeconds: 30 }));
    const err = await resolver.resolve(everything, { name: 'erp-token' }, audit).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultThrottledError);
    expect(err).toMatchObject({ status: 429, code: 'VaultThrottled', retryAfterSeconds: 30 });
    expect(calls).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expect(entries[0]).toMatchObject({ status: 429, code: 'VaultThrottled' });
  });
});
