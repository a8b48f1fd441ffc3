import { VaultAccessDeniedError, VaultFirewallError, SecretNotFoundError, VaultThrottledError } from '../../shared/errors';
import type { Telemetry } from '../../shared/telemetry';
import type { SecretReader } from '../../shared/secrets/vaultGateway';
import { VaultGateway } from '../../shared/secrets/vaultGateway';
import { MAX_LISTED_VERSIONS, VERSION_RELIST_MAX_MS, VERSION_RELIST_MS } from '../../shared/secrets/versionList';
import { everything, PINNED, secret, setup, version } from '../support/resolverFixture';

describe('Version lists: versions of a name from its version list', () => {
  it('answers 100 random versions of one name 404 from one listing, without reading a version', async () => {
    const { resolver, calls, lists, audit, entries } = setup();
    for (let i = 0; i < 100; i++) {
      const err = await resolver.resolve(everything, { name: 'erp-token', version: version(i) }, audit).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SecretNotFoundError);
      expect(err).toMatchObject({ status: 404, code: 'SecretNotFound' });
      if (i === 0) expect((err as Error).message).toBe(`No version "${version(0)}" of secret "erp-token" in vault "default"`);
    }
    expect(lists).toEqual(['erp-token']);
    expect(calls).toEqual([]);
    expect(entries.every((e) => e.status === 404 && e.code === 'SecretNotFound' && e.cache === 'miss')).toBe(true);
    // A listed version is read as before.
    expect((await resolver.resolve(everything, { name: 'erp-token', version: PINNED }, audit)).secret.version).toBe(PINNED);
    expect(calls).toEqual([`erp-token@${PINNED}`]);
    expect(lists).toEqual(['erp-token']);
  });

  it('re-lists a name for an unknown version at most once per 5 s, and backs off to 30 s while re-lists find nothing new', async () => {
    const { resolver, calls, lists, audit, advance } = setup();
    let n = 0;
    const probe = () => resolver.resolve(everything, { name: 'erp-token', version: version(++n) }, audit).catch(() => undefined);
    await probe();
    expect(lists).toHaveLength(1);
    advance(VERSION_RELIST_MS - 1);
    await probe();
    expect(lists).toHaveLength(1);
    advance(1);
    await Promise.all([probe(), probe(), probe()]);
    expect(lists).toHaveLength(2); // one re-list, shared
    // It found nothing new: the next waits 10 s, then 20 s.
    advance(VERSION_RELIST_MS);
    await probe();
    expect(lists).toHaveLength(2);
    advance(VERSION_RELIST_MS);
    await probe();
    expect(lists).toHaveLength(3);
    advance(2 * VERSION_RELIST_MS);
    await probe();
    expect(lists).toHaveLength(3);
    advance(2 * VERSION_RELIST_MS);
    await probe();
    expect(lists).toHaveLength(4);
    // Then every 30 s at most: within one TTL (300 s) of probing every second, at most a listing
    // and a dozen re-lists.
    advance(2 * VERSION_RELIST_MS);
    await probe();
    expect(lists).toHaveLength(4);
    advance(VERSION_RELIST_MAX_MS - 2 * VERSION_RELIST_MS);
    await probe();
    expect(lists).toHaveLength(5);
    for (let i = 0; i < 300; i++) {
      advance(1000);
      await probe();
    }
    expect(lists.length).toBeLessThanOrEqual(5 + 1 + 300_000 / VERSION_RELIST_MAX_MS);
    expect(calls).toEqual([]);
  });

  it('finds a new version at once after its event, and within 5 s without one', async () => {
    const { resolver, defaults, calls, audit, advance } = setup();
    const announced = 'c'.repeat(32);
    const silent = 'd'.repeat(32);
    await expect(resolver.resolve(everything, { name: 'erp-token', version: announced }, audit)).rejects.toBeInstanceOf(
      SecretNotFoundError,
    );
    defaults.set(`erp-token@${announced}`, secret('erp-token', announced));
    // The SecretNewVersionCreated event drops the list and the cached "not found".
    resolver.invalidate('default', 'erp-token', announced);
    expect((await resolver.resolve(everything, { name: 'erp-token', version: announced }, audit)).secret.version).toBe(announced);

    // Without an event: the list is fresh, so 404 for now; 5 s on, one re-list finds it.
    defaults.set(`erp-token@${silent}`, secret('erp-token', silent));
    await expect(resolver.resolve(everything, { name: 'erp-token', version: silent }, audit)).rejects.toBeInstanceOf(SecretNotFoundError);
    advance(VERSION_RELIST_MS);
    expect((await resolver.resolve(everything, { name: 'erp-token', version: silent }, audit)).secret.version).toBe(silent);
    expect(calls).toEqual([`erp-token@${announced}`, `erp-token@${silent}`]);
  });

  it('keeps the cached version list when the event names a version it already holds', async () => {
    const { resolver, lists, audit } = setup();
    await resolver.resolve(everything, { name: 'erp-token', version: PINNED }, audit);
    resolver.invalidate('default', 'erp-token', PINNED.toUpperCase());
    await resolver.resolve(everything, { name: 'erp-token', version: version(1) }, audit).catch(() => undefined);
    expect(lists).toEqual(['erp-token']);
  });
});

describe('Version lists while the vault fails', () => {
  const throttled = () => new VaultThrottledError('Vault "default" is throttling requests', { retryAfterSeconds: 30 });

  it('lets the version read decide when the list is served stale: 429 VaultThrottled, not a cached 404', async () => {
    const { resolver, defaults, listing, calls, lists, audit, advance } = setup();
    await expect(resolver.resolve(everything, { name: 'erp-token', version: version(1) }, audit)).rejects.toBeInstanceOf(
      SecretNotFoundError,
    );
    // Past the list's TTL (within its stale window) a version is created while the vault throttles.
    advance(300_001);
    const created = version(2);
    defaults.set(`erp-token@${created}`, secret('erp-token', created));
    listing.fail = throttled;
    const err = await resolver.resolve(everything, { name: 'erp-token', version: created }, audit).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 429, code: 'VaultThrottled' });
    expect(lists).toHaveLength(2);
    // Not remembered as missing: once the vault answers, the version is read.
    listing.fail = undefined;
    advance(60_000);
    expect((await resolver.resolve(everything, { name: 'erp-token', version: created }, audit)).secret.version).toBe(created);
    expect(calls).toContain(`erp-token@${created}`);
  });

  it('lets the version read decide when a re-list is throttled: 429 VaultThrottled, not 404', async () => {
    const { resolver, defaults, listing, audit, advance } = setup();
    await expect(resolver.resolve(everything, { name: 'erp-token', version: version(1) }, audit)).rejects.toBeInstanceOf(
      SecretNotFoundError,
    );
    advance(VERSION_RELIST_MS);
    const created = version(2);
    defaults.set(`erp-token@${created}`, secret('erp-token', created));
    listing.fail = throttled;
    const err = await resolver.resolve(everything, { name: 'erp-token', version: created }, audit).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultThrottledError);
    expect(err).toMatchObject({ status: 429, code: 'VaultThrottled' });
  });

  it('reads the version when a re-list fails with any vault error', async () => {
    const { resolver, defaults, listing, calls, audit, advance } = setup();
    await expect(resolver.resolve(everything, { name: 'erp-token', version: version(1) }, audit)).rejects.toBeInstanceOf(
      SecretNotFoundError,
    );
    advance(VERSION_RELIST_MS);
    const created = version(2);
    defaults.set(`erp-token@${created}`, secret('erp-token', created));
    listing.fail = () => new VaultFirewallError('Vault "default" refuses the function app');
    expect((await resolver.resolve(everything, { name: 'erp-token', version: created }, audit)).secret.version).toBe(created);
    expect(calls).toEqual([`erp-token@${created}`]);
  });
});

describe('Version lists: the re-list backoff', () => {
  it('finds a version created without its event within 30 s, however long the name was probed', async () => {
    const { resolver, defaults, audit, advance } = setup();
    let n = 0;
    const probe = () => resolver.resolve(everything, { name: 'erp-token', version: version(++n) }, audit).catch(() => undefined);
    // 200 s of probes every second: re-lists find nothing new and back off as far as they may.
    for (let i = 0; i < 200; i++) {
      await probe();
      advance(1000);
    }
    const silent = 'd'.repeat(32);
    defaults.set(`erp-token@${silent}`, secret('erp-token', silent));
    let waited = 0;
    for (;;) {
      const found = await resolver.resolve(everything, { name: 'erp-token', version: silent }, audit).then(
        () => true,
        () => false,
      );
      if (found) break;
      advance(1000);
      waited += 1000;
      expect(waited).toBeLessThanOrEqual(VERSION_RELIST_MAX_MS);
    }
    expect(VERSION_RELIST_MAX_MS).toBe(30_000);
  });
});

describe('Version lists: a vault that refuses listing, and long lists', () => {
  const refused = () =>
    new VaultAccessDeniedError('The function app\'s identity lacks Get/List in the access policy of vault "default"', 'ForbiddenByPolicy');

  it('reads versions as before when listing is refused (403), remembers it for a TTL and logs it once', async () => {
    const { resolver, listing, calls, lists, logs, audit, advance } = setup();
    listing.fail = refused;
    expect((await resolver.resolve(everything, { name: 'erp-token', version: PINNED }, audit)).secret.version).toBe(PINNED);
    for (let i = 1; i <= 5; i++) {
      const err = await resolver.resolve(everything, { name: 'erp-token', version: version(i) }, audit).catch((e: unknown) => e);
      expect(err).toMatchObject({ status: 404, code: 'SecretNotFound' });
    }
    await resolver.resolve(everything, { name: 'other', version: version(9) }, audit).catch(() => undefined);
    // One refused listing, then none for the TTL; each version was read from the vault.
    expect(lists).toEqual(['erp-token']);
    expect(calls).toEqual([`erp-token@${PINNED}`, ...[1, 2, 3, 4, 5].map((i) => `erp-token@${version(i)}`), `other@${version(9)}`]);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain('Vault "default" refuses to list secret versions (ForbiddenByPolicy)');
    expect(logs.join('\n')).not.toContain('value-of-');
    // Past the TTL, still refused: tried once more, not logged again.
    advance(300_001);
    await resolver.resolve(everything, { name: 'erp-token', version: version(6) }, audit).catch(() => undefined);
    expect(lists).toHaveLength(2);
    expect(logs).toHaveLength(1);
    // Past another TTL the permission is fixed: the list answers again.
    listing.fail = undefined;
    advance(300_001);
    calls.length = 0;
    await expect(resolver.resolve(everything, { name: 'erp-token', version: version(7) }, audit)).rejects.toBeInstanceOf(
      SecretNotFoundError,
    );
    expect(lists).toHaveLength(3);
    expect(calls).toEqual([]);
  });

  it('lists a name with more versions than it keeps once per TTL, announced versions included', async () => {
    const { resolver, listing, lists, calls, audit } = setup();
    listing.maxVersions = 1;
    for (let i = 1; i <= 5; i++) {
      await resolver.resolve(everything, { name: 'erp-token', version: version(i) }, audit).catch(() => undefined);
      // An incomplete list cannot tell a version missing: the events of new versions keep it.
      resolver.invalidate('default', 'erp-token', version(100 + i));
    }
    expect(lists).toEqual(['erp-token']);
    expect(calls).toHaveLength(5);
  });

  it(`reads at most ${MAX_LISTED_VERSIONS / 25} pages of 25 versions per listing`, async () => {
    let pages = 0;
    async function* versions() {
      for (let page = 0; page < 20; page++) {
        pages++;
        await Promise.resolve();
        for (let i = 0; i < 25; i++) yield { name: 'erp-token', version: version(page * 25 + i) };
      }
    }
    const client = { listPropertiesOfSecretVersions: () => versions() } as unknown as SecretReader;
    const telemetry = { trackDependency: () => undefined } as unknown as Telemetry;
    const gateway = new VaultGateway('default', 'https://contoso.vault.azure.net/', client, telemetry);
    const listed = await gateway.listSecretVersions('erp-token', MAX_LISTED_VERSIONS);
    expect(listed.complete).toBe(false);
    expect(listed.versions.size).toBe(MAX_LISTED_VERSIONS);
    expect(pages).toBe(MAX_LISTED_VERSIONS / 25);
  });
});
