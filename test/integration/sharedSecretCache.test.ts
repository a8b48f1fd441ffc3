/**
 * The shared, encrypted second-level cache against a real Azurite (in memory, on free ports)
 * through the real @azure/data-tables client. Each "instance" is a store object of its own, as
 * each instance of the function app would build one.
 */
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TableEntityResult } from '@azure/data-tables';
import { startAzurite } from '../../local/emulators/azurite';
import type { Azurite } from '../../local/emulators/azurite';
import type { SharedSecretCache } from '../../shared/secrets/sharedSecretCache';
import {
  createTableSharedSecretCache,
  LOCAL_BROKER,
  SHARED_CACHE_TABLE,
  sharedCachePartition,
} from '../../shared/secrets/tableSharedSecretCache';
import type { TableSharedSecretCacheOptions } from '../../shared/secrets/tableSharedSecretCache';
import type { VaultSecret } from '../../shared/secrets/vaultGateway';
import { createTableClient, developmentConnectionString, tableErrorStatus } from '../../shared/storage/tableStorage';

let azurite: Azurite;

beforeAll(async () => {
  azurite = await startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } });
});

afterAll(async () => {
  await azurite?.stop();
});

const KEY = randomBytes(32);
const TTL_MS = 300_000;
/** The vaults every instance knows unless a test gives its own: alias → URI. */
const VAULTS: ReadonlyMap<string, string> = new Map([
  ['default', 'https://contoso-vault2.vault.azure.net/'],
  ['partner', 'https://partner-vault.vault.azure.net/'],
]);

/** The PartitionKey of a local broker's rows of the vault an alias of {@link VAULTS} names. */
function partitionOf(alias: string, broker = LOCAL_BROKER): string {
  return sharedCachePartition(broker, VAULTS.get(alias) ?? alias);
}

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');
const uniqueName = (label: string): string => `${label}-${hex(5)}`;

function secretOf(name: string, value: string, overrides: Partial<VaultSecret> = {}): VaultSecret {
  return {
    name,
    vault: 'default',
    version: hex(16),
    value,
    contentType: 'text/plain',
    enabled: true,
    notBefore: null,
    expiresOn: '2031-06-30T00:00:00.000Z',
    updatedOn: '2025-01-02T03:04:05.000Z',
    ...overrides,
  };
}

/** One instance's store, with its log lines collected. */
function instance(
  options: Partial<TableSharedSecretCacheOptions> = {},
  connectionString = azurite.connectionString,
): { cache: SharedSecretCache; lines: string[] } {
  const lines: string[] = [];
  const cache = createTableSharedSecretCache(connectionString, {
    dataKey: () => Promise.resolve(KEY),
    vaults: VAULTS,
    ttlMs: TTL_MS,
    instanceId: `instance-${hex(3)}`,
    log: (line) => lines.push(line),
    ...options,
  });
  return { cache, lines };
}

function rawTable(): ReturnType<typeof createTableClient> {
  return createTableClient(azurite.connectionString, SHARED_CACHE_TABLE);
}

/** A stored row's columns (without the service's etag, timestamp and odata annotations), or undefined. */
async function rawRow(vault: string, rowKey: string, broker = LOCAL_BROKER): Promise<Record<string, unknown> | undefined> {
  let entity: TableEntityResult<Record<string, unknown>>;
  try {
    entity = await rawTable().getEntity(partitionOf(vault, broker), rowKey);
  } catch (err: unknown) {
    if (tableErrorStatus(err) === 404) return undefined;
    throw err;
  }
  return Object.fromEntries(Object.entries(entity).filter(([key]) => key !== 'etag' && key !== 'timestamp' && !key.startsWith('odata.')));
}

/**
 * Stores `secret` the only way the cache stores: a miss filled from a "vault" that answers with
 * it. Resolves with where the answer came from (`filled` when a row was written).
 */
async function storeCopy(
  cache: SharedSecretCache,
  vault: string,
  name: string,
  version: string | undefined,
  secret: VaultSecret,
): Promise<string> {
  return (await cache.getOrFill(vault, name, version, () => Promise.resolve(secret))).source;
}

function delay(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

describe('TableSharedSecretCache', () => {
  it('serves to a second instance what the first stored, from a row of vault, name, version, expiry and ciphertext', async () => {
    const now = Date.parse('2030-01-01T00:00:00.000Z');
    const name = uniqueName('erp-password');
    const secret = secretOf(name, 'first-instance-value');
    const a = instance({ now: () => now, instanceId: 'instance-a' });
    const b = instance({ now: () => now });

    await expect(storeCopy(a.cache, 'default', name, undefined, secret)).resolves.toBe('filled');
    await expect(b.cache.get('default', name.toUpperCase(), undefined)).resolves.toEqual(secret);

    const row = await rawRow('default', `${name}@latest`);
    expect(row).toBeDefined();
    const columns = row ?? {};
    expect(Object.keys(columns).sort()).toEqual(
      [
        'broker',
        'ciphertext',
        'expiresAt',
        'generation',
        'iv',
        'name',
        'partitionKey',
        'rowKey',
        'tag',
        'vault',
        'version',
        'writtenBy',
      ].sort(),
    );
    expect(columns).toMatchObject({
      partitionKey: partitionOf('default'),
      rowKey: `${name}@latest`,
      broker: LOCAL_BROKER,
      vault: 'https://contoso-vault2.vault.azure.net/',
      generation: '',
      name,
      version: secret.version,
      expiresAt: '2030-01-01T00:05:00.000Z',
      writtenBy: 'instance-a',
    });
    expect(columns.iv).toBeInstanceOf(Uint8Array);
    expect((columns.iv as Uint8Array).length).toBe(12);
    expect((columns.tag as Uint8Array).length).toBe(16);
    expect(a.lines).toEqual([]);
    expect(b.lines).toEqual([]);
  });

  it('keeps a pinned version in a row of its own, apart from the latest', async () => {
    const name = uniqueName('pinned');
    const pinned = secretOf(name, 'pinned-value');
    const { cache } = instance();
    await expect(storeCopy(cache, 'partner', name, pinned.version?.toUpperCase(), pinned)).resolves.toBe('filled');
    expect(await rawRow('partner', `${name}@${pinned.version}`)).toBeDefined();
    await expect(cache.get('partner', name, pinned.version ?? undefined)).resolves.toEqual({ ...pinned, vault: 'partner' });
    await expect(cache.get('partner', name, undefined)).resolves.toBeUndefined();
    await expect(cache.get('default', name, pinned.version ?? undefined)).resolves.toBeUndefined();
  });

  it('writes a canary value into no stored property, in plaintext or base64', async () => {
    const canary = `canary-${hex(12)}`;
    const name = uniqueName('canary');
    const secret = secretOf(name, canary, { contentType: 'application/x-canary' });
    const { cache } = instance();
    await expect(storeCopy(cache, 'default', name, undefined, secret)).resolves.toBe('filled');
    await expect(storeCopy(cache, 'default', name, secret.version ?? undefined, secret)).resolves.toBe('filled');
    const filled = await instance().cache.getOrFill('default', uniqueName('canary-fill'), undefined, () =>
      Promise.resolve(secretOf('x', canary)),
    );
    expect(filled.source).toBe('loaded'); // the vault answered another name: not stored

    const fillName = uniqueName('canary-fill');
    const fill = await instance().cache.getOrFill('default', fillName, undefined, () => Promise.resolve(secretOf(fillName, canary)));
    expect(fill.source).toBe('filled');

    const needles = [canary, Buffer.from(canary).toString('base64'), Buffer.from(canary).toString('base64url'), 'x-canary'];
    let scanned = 0;
    for await (const entity of rawTable().listEntities<Record<string, unknown>>()) {
      scanned++;
      for (const [column, value] of Object.entries(entity)) {
        const forms =
          value instanceof Uint8Array
            ? [Buffer.from(value).toString('latin1'), Buffer.from(value).toString('utf8'), Buffer.from(value).toString('base64')]
            : [typeof value === 'string' ? value : JSON.stringify(value)];
        for (const form of forms) {
          for (const needle of needles) {
            if (form.includes(needle)) throw new Error(`Column ${column} of ${String(entity.rowKey)} holds the canary`);
          }
        }
      }
    }
    expect(scanned).toBeGreaterThanOrEqual(3);
    await expect(cache.get('default', name, undefined)).resolves.toMatchObject({ value: canary });
  });

  it('serves a copy until its expiry (now + TTL), then misses', async () => {
    let now = Date.parse('2030-01-01T00:00:00.000Z');
    const name = uniqueName('expiring');
    const secret = secretOf(name, 'expiring-value');
    const { cache } = instance({ now: () => now, ttlMs: 60_000 });
    await expect(storeCopy(cache, 'default', name, undefined, secret)).resolves.toBe('filled');
    now += 59_999;
    await expect(cache.get('default', name, undefined)).resolves.toEqual(secret);
    now += 1;
    await expect(cache.get('default', name, undefined)).resolves.toBeUndefined();
  });

  it('does not serve a copy written under a longer TTL past its own TTL', async () => {
    const now = Date.parse('2030-01-01T00:00:00.000Z');
    const name = uniqueName('long-ttl');
    await expect(
      storeCopy(instance({ now: () => now, ttlMs: 3_600_000 }).cache, 'default', name, undefined, secretOf(name, 'v')),
    ).resolves.toBe('filled');
    await expect(instance({ now: () => now, ttlMs: 60_000 }).cache.get('default', name, undefined)).resolves.toBeUndefined();
  });

  it('misses, and logs, when a row had its expiry extended or was copied to another secret', async () => {
    const name = uniqueName('tampered');
    const secret = secretOf(name, 'tampered-value');
    const reader = instance();
    await expect(storeCopy(instance().cache, 'default', name, undefined, secret)).resolves.toBe('filled');
    const columns = (await rawRow('default', `${name}@latest`)) ?? {};

    const other = uniqueName('other');
    await rawTable().createEntity({ ...columns, partitionKey: partitionOf('default'), rowKey: `${other}@latest`, name: other });
    await expect(reader.cache.get('default', other, undefined)).resolves.toBeUndefined();

    const later = new Date(Date.parse(String(columns.expiresAt)) + 30_000).toISOString();
    await rawTable().updateEntity(
      { ...columns, partitionKey: partitionOf('default'), rowKey: `${name}@latest`, expiresAt: later },
      'Replace',
    );
    await expect(reader.cache.get('default', name, undefined)).resolves.toBeUndefined();

    expect(reader.lines).toHaveLength(2);
    for (const line of reader.lines) {
      expect(line).toMatch(/does not decrypt under this instance's data key \(CACHE_SHARED_KEY_SECRET differs, or the row was altered\)/);
      expect(line).not.toContain('tampered-value');
    }
  });

  it('stores no row for a disabled secret, latest or pinned', async () => {
    const name = uniqueName('disabled');
    const secret = secretOf(name, 'disabled-value', { enabled: false });
    const { cache } = instance();
    await expect(cache.getOrFill('default', name, undefined, () => Promise.resolve(secret))).resolves.toEqual({ secret, source: 'loaded' });
    await expect(cache.getOrFill('default', name, secret.version ?? undefined, () => Promise.resolve(secret))).resolves.toEqual({
      secret,
      source: 'loaded',
    });
    const rows: string[] = [];
    for await (const entity of rawTable().listEntities({ queryOptions: { filter: `PartitionKey eq '${partitionOf('default')}'` } })) {
      if (entity.rowKey?.startsWith(`${name}@`)) rows.push(entity.rowKey);
    }
    expect(rows).toEqual([]);
  });

  it('deletes the latest row and leaves pinned versions, for a new-version event', async () => {
    const name = uniqueName('rotated');
    const secret = secretOf(name, 'old-value');
    const { cache } = instance();
    await expect(storeCopy(cache, 'default', name, undefined, secret)).resolves.toBe('filled');
    await expect(storeCopy(cache, 'default', name, secret.version ?? undefined, secret)).resolves.toBe('filled');
    await instance().cache.delete('default', name.toUpperCase());
    expect(await rawRow('default', `${name}@latest`)).toBeUndefined();
    await expect(cache.get('default', name, undefined)).resolves.toBeUndefined();
    await expect(cache.get('default', name, secret.version ?? undefined)).resolves.toEqual(secret);
    await expect(cache.delete('default', name)).resolves.toBeUndefined();
  });

  it('gives an instance with a wrong data key a miss and a clear log line, never a wrong value', async () => {
    const name = uniqueName('wrong-key');
    await expect(storeCopy(instance().cache, 'default', name, undefined, secretOf(name, 'right-key-value'))).resolves.toBe('filled');
    const wrong = instance({ dataKey: () => Promise.resolve(randomBytes(32)) });
    await expect(wrong.cache.get('default', name, undefined)).resolves.toBeUndefined();
    expect(wrong.lines).toHaveLength(1);
    expect(wrong.lines[0]).toMatch(
      new RegExp(
        `^Shared cache: default/${name}@latest written by instance-[0-9a-f]{6} does not decrypt under this instance's data key \\(CACHE_SHARED_KEY_SECRET differs, or the row was altered\\); treated as a miss: SharedCacheDecryptError`,
      ),
    );
    expect(wrong.lines[0]).not.toContain('right-key-value');
  });

  it('reads the vault once for 20 instances that miss the same secret at once', async () => {
    const name = uniqueName('cold-start');
    const secret = secretOf(name, 'fleet-value');
    let loads = 0;
    const load = async (): Promise<VaultSecret> => {
      loads++;
      await delay(300);
      return secret;
    };
    const fleet = Array.from({ length: 20 }, () => instance());
    const results = await Promise.all(fleet.map(({ cache }) => cache.getOrFill('default', name, undefined, load)));

    expect(loads).toBe(1);
    for (const result of results) expect(result.secret).toEqual(secret);
    const sources = results.map((r) => r.source);
    expect(sources.filter((s) => s === 'filled')).toHaveLength(1);
    expect(sources.every((s) => s === 'filled' || s === 'waited' || s === 'hit')).toBe(true);
    expect(fleet.flatMap((i) => i.lines)).toEqual([]);
    expect(await rawRow('default', `${name}@latest:lease`)).toBeUndefined();
    await expect(instance().cache.getOrFill('default', name, undefined, load)).resolves.toMatchObject({ secret, source: 'hit' });
    expect(loads).toBe(1);
  });

  it('does not store what a filling instance read when a new-version event deleted the entry meanwhile', async () => {
    const name = uniqueName('raced');
    const old = secretOf(name, 'old-value');
    const { cache, lines } = instance();
    const result = await cache.getOrFill('default', name, undefined, async () => {
      await instance().cache.delete('default', name);
      return old;
    });
    expect(result).toEqual({ secret: old, source: 'loaded' });
    expect(await rawRow('default', `${name}@latest`)).toBeUndefined();
    expect(lines).toEqual([
      `Shared cache: default/${name}@latest changed while it was read from the vault (its fill lease was deleted); not stored`,
    ]);
  });

  it('lets the waiting instances read the vault themselves when the filling instance fails', async () => {
    const name = uniqueName('failed-fill');
    const secret = secretOf(name, 'after-failure');
    let calls = 0;
    const load = async (): Promise<VaultSecret> => {
      calls++;
      await delay(200);
      if (calls === 1) throw new Error('vault unavailable');
      return secret;
    };
    const first = instance().cache.getOrFill('default', name, undefined, load);
    while (!(await rawRow('default', `${name}@latest:lease`))) await delay(10);
    // A lease far longer than the test may run: the waiter must see the failed fill, not wait it out.
    const second = instance({ fillLeaseMs: 600_000 }).cache.getOrFill('default', name, undefined, load);
    await expect(first).rejects.toThrow('vault unavailable');
    await expect(second).resolves.toEqual({ secret, source: 'loaded' });
    expect(calls).toBe(2);
  });

  it('takes over a lease left by a stopped instance, and reads the vault itself while a live one never delivers', async () => {
    const stale = uniqueName('stale-lease');
    await rawTable().createEntity({
      partitionKey: partitionOf('default'),
      rowKey: `${stale}@latest:lease`,
      leaseUntil: '2020-01-01T00:00:00.000Z',
      writtenBy: 'gone',
    });
    const staleSecret = secretOf(stale, 'v1');
    await expect(instance().cache.getOrFill('default', stale, undefined, () => Promise.resolve(staleSecret))).resolves.toEqual({
      secret: staleSecret,
      source: 'filled',
    });

    const stuck = uniqueName('stuck-lease');
    await rawTable().createEntity({
      partitionKey: partitionOf('default'),
      rowKey: `${stuck}@latest:lease`,
      leaseUntil: new Date(Date.now() + 60_000).toISOString(),
      writtenBy: 'slow',
    });
    const stuckSecret = secretOf(stuck, 'v2');
    const started = Date.now();
    const result = await instance({ fillLeaseMs: 600, fillPollMs: 100 }).cache.getOrFill('default', stuck, undefined, () =>
      Promise.resolve(stuckSecret),
    );
    expect(result).toEqual({ secret: stuckSecret, source: 'loaded' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
  });

  it('never fails a caller when storage refuses the app: it logs and reads the vault', async () => {
    // A storage account that answers 403 to everything, as one does to an identity without a role.
    const refusing = createHttpServer((_req, res) => {
      res.writeHead(403, {
        'content-type': 'application/json;odata=minimalmetadata',
        'x-ms-error-code': 'AuthorizationPermissionMismatch',
      });
      res.end('{"odata.error":{"code":"AuthorizationPermissionMismatch","message":{"lang":"en-US","value":"Not allowed"}}}');
    });
    await new Promise<void>((done) => refusing.listen(0, '127.0.0.1', done));
    try {
      const { port } = refusing.address() as AddressInfo;
      const { cache, lines } = instance({}, developmentConnectionString({ blob: port, queue: port, table: port }));
      const name = uniqueName('refused');
      const secret = secretOf(name, 'refused-value');
      await expect(cache.getOrFill('default', name, undefined, () => Promise.resolve(secret))).resolves.toEqual({
        secret,
        source: 'loaded',
      });
      await expect(cache.get('default', name, undefined)).resolves.toBeUndefined();
      expect(lines).toEqual([
        `Shared cache: default/${name}@latest unavailable, reading the vault: 403 AuthorizationPermissionMismatch`,
        `Shared cache: reading default/${name}@latest failed; treated as a miss: 403 AuthorizationPermissionMismatch`,
      ]);
      await expect(cache.delete('default', name)).rejects.toMatchObject({ statusCode: 403 });
    } finally {
      refusing.closeAllConnections();
      await new Promise((done) => refusing.close(done));
    }
  });

  it('passes straight through when the data key cannot be read', async () => {
    const name = uniqueName('no-key');
    const secret = secretOf(name, 'no-key-value');
    const { cache, lines } = instance({ dataKey: () => Promise.reject(new Error('CACHE_SHARED_KEY_SECRET: not found')) });
    await expect(cache.getOrFill('default', name, undefined, () => Promise.resolve(secret))).resolves.toEqual({ secret, source: 'loaded' });
    expect(lines.join('\n')).toContain('CACHE_SHARED_KEY_SECRET: not found');
    expect(await rawRow('default', `${name}@latest`)).toBeUndefined();
  });

  it('refuses a latest row put back after a rotation (new version + the event drop): a fresh instance reads the vault', async () => {
    const name = uniqueName('replayed');
    const v1 = secretOf(name, `old-${hex(8)}`);
    const v2 = secretOf(name, `new-${hex(8)}`);
    let latest = v1;
    let reads = 0;
    const load = (): Promise<VaultSecret> => {
      reads++;
      return Promise.resolve(latest);
    };
    await expect(instance().cache.getOrFill('default', name, undefined, load)).resolves.toEqual({ secret: v1, source: 'filled' });
    const captured = (await rawRow('default', `${name}@latest`)) ?? {};
    expect(captured.generation).toBe('');

    // The rotation: a new version in the vault, and the event's drop of the stored copy.
    latest = v2;
    await instance().cache.delete('default', name);
    expect(await rawRow('default', `${name}@latest`)).toBeUndefined();
    const mark = (await rawRow('default', `${name}:rotation`)) ?? {};
    expect(mark.generation).toMatch(/^[0-9a-f]{32}$/);

    // Someone who can write the storage account puts the captured row back.
    const putBack = { ...captured, partitionKey: partitionOf('default'), rowKey: `${name}@latest` };
    await rawTable().upsertEntity(putBack, 'Replace');
    const fresh = instance();
    await expect(fresh.cache.getOrFill('default', name, undefined, load)).resolves.toEqual({ secret: v2, source: 'filled' });
    expect(reads).toBe(2);
    expect(fresh.lines).toHaveLength(1);
    expect(fresh.lines[0]).toMatch(
      new RegExp(
        `^Shared cache: default/${name}@latest written by instance-[0-9a-f]{6} was stored before the secret's latest new version \\(its rotation mark differs\\); treated as a miss$`,
      ),
    );
    // The fill replaced it, under the new mark: the next instance takes v2 from storage.
    await expect(instance().cache.getOrFill('default', name, undefined, load)).resolves.toMatchObject({ secret: v2, source: 'hit' });
    expect(reads).toBe(2);

    // Put back again, relabelled with the current mark: it no longer authenticates (the mark is in the AAD).
    await rawTable().upsertEntity({ ...putBack, generation: mark.generation }, 'Replace');
    const another = instance();
    await expect(another.cache.get('default', name, undefined)).resolves.toBeUndefined();
    expect(another.lines).toHaveLength(1);
    expect(another.lines[0]).toContain('does not decrypt');
    for (const line of [...fresh.lines, ...another.lines]) {
      expect(line).not.toContain(v1.value);
      expect(line).not.toContain(v2.value);
    }
  });

  it('refuses every copy stored under an older rotation mark, even one the drop left in place', async () => {
    const name = uniqueName('older-mark');
    const old = secretOf(name, `old-${hex(8)}`);
    const { cache, lines } = instance();
    await instance().cache.delete('default', name); // a first rotation: the mark exists
    await expect(storeCopy(cache, 'default', name, undefined, old)).resolves.toBe('filled');
    const row = (await rawRow('default', `${name}@latest`)) ?? {};
    const mark = (await rawRow('default', `${name}:rotation`)) ?? {};
    expect(row.generation).toBe(mark.generation); // stored under the current mark: served
    await expect(instance().cache.get('default', name, undefined)).resolves.toEqual(old);
    // The mark moves (as a new-version event moves it) while the row stays: the row is a miss.
    await rawTable().upsertEntity({ partitionKey: partitionOf('default'), rowKey: `${name}:rotation`, generation: hex(16) }, 'Replace');
    const reader = instance();
    await expect(reader.cache.get('default', name, undefined)).resolves.toBeUndefined();
    expect(reader.lines).toHaveLength(1);
    expect(reader.lines[0]).toContain('was stored before the secret');
    expect([...lines, ...reader.lines].join('\n')).not.toContain(old.value);
  });

  it('keeps two brokers on one storage account and data key apart, whatever vault their alias names', async () => {
    const name = uniqueName('partner-secret');
    const inA = secretOf(name, `vault-a-${hex(8)}`);
    const inB = secretOf(name, `vault-b-${hex(8)}`);
    const vaultA = 'https://vault-a.vault.azure.net/';
    const vaultB = 'https://vault-b.vault.azure.net/';
    const one = instance({ broker: 'broker-one', vaults: new Map([['partner', vaultA]]) });
    const two = instance({ broker: 'broker-two', vaults: new Map([['partner', vaultB]]) });
    const reads = { a: 0, b: 0 };
    const loadA = (): Promise<VaultSecret> => {
      reads.a++;
      return Promise.resolve(inA);
    };
    const loadB = (): Promise<VaultSecret> => {
      reads.b++;
      return Promise.resolve(inB);
    };

    await expect(one.cache.getOrFill('partner', name, undefined, loadA)).resolves.toEqual({ secret: inA, source: 'filled' });
    await expect(two.cache.getOrFill('partner', name, undefined, loadB)).resolves.toEqual({ secret: inB, source: 'filled' });
    expect(reads).toEqual({ a: 1, b: 1 });
    await expect(one.cache.get('partner', name, undefined)).resolves.toMatchObject({ value: inA.value });
    await expect(two.cache.get('partner', name, undefined)).resolves.toMatchObject({ value: inB.value });

    // The same vault under another broker's name: not this broker's row either.
    const three = instance({ broker: 'broker-three', vaults: new Map([['partner', vaultA]]) });
    await expect(three.cache.get('partner', name, undefined)).resolves.toBeUndefined();
    // broker-one with its alias remapped to vault B (a restart with new settings): none of vault A's rows.
    const remapped = instance({ broker: 'broker-one', vaults: new Map([['partner', vaultB]]) });
    await expect(remapped.cache.get('partner', name, undefined)).resolves.toBeUndefined();
    // broker-one with vault A under another alias and another spelling of its URI: the same vault, served.
    const renamed = instance({ broker: 'broker-one', vaults: new Map([['a', 'HTTPS://Vault-A.vault.azure.net']]) });
    await expect(renamed.cache.get('a', name, undefined)).resolves.toEqual({ ...inA, vault: 'a' });

    // broker-one's row copied into broker-two's partition does not authenticate there.
    const rowOfOne = await rawTable().getEntity<Record<string, unknown>>(sharedCachePartition('broker-one', vaultA), `${name}@latest`);
    // eslint-disable-next-line @typescript-eslint/no-unused-vars -- left out on purpose
    const { etag: _etag, timestamp: _timestamp, ...columns } = rowOfOne;
    await rawTable().upsertEntity(
      { ...columns, partitionKey: sharedCachePartition('broker-two', vaultB), rowKey: `${name}@latest` },
      'Replace',
    );
    await expect(two.cache.get('partner', name, undefined)).resolves.toBeUndefined();
    expect(two.lines).toHaveLength(1);
    expect(two.lines[0]).toContain('does not decrypt');
    for (const line of [one, two, three, remapped, renamed].flatMap((i) => i.lines)) {
      expect(line).not.toContain(inA.value);
      expect(line).not.toContain(inB.value);
    }
  });

  it("tells a taker when the stored copy expires: the row's own fill time plus the TTL, not a TTL from the taking", async () => {
    let now = Date.parse('2030-01-01T00:00:00.000Z');
    const filledAt = now;
    const name = uniqueName('row-expiry');
    const secret = secretOf(name, 'row-expiry-value');
    await expect(instance({ now: () => now }).cache.getOrFill('default', name, undefined, () => Promise.resolve(secret))).resolves.toEqual({
      secret,
      source: 'filled',
    });
    now += TTL_MS - 1_000;
    await expect(
      instance({ now: () => now }).cache.getOrFill('default', name, undefined, () => Promise.reject(new Error('no vault read'))),
    ).resolves.toEqual({
      secret,
      source: 'hit',
      expiresAt: filledAt + TTL_MS,
    });
  });

  it('stores and serves nothing with a TTL of 0', async () => {
    const name = uniqueName('ttl-zero');
    const secret = secretOf(name, 'v');
    const { cache } = instance({ ttlMs: 0 });
    await expect(cache.getOrFill('default', name, undefined, () => Promise.resolve(secret))).resolves.toEqual({ secret, source: 'loaded' });
    expect(await rawRow('default', `${name}@latest`)).toBeUndefined();
  });
});
