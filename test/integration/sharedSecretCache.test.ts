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
import { createTableSharedSecretCache, SHARED_CACHE_TABLE } from '../../shared/secrets/tableSharedSecretCache';
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
async function rawRow(vault: string, rowKey: string): Promise<Record<string, unknown> | undefined> {
  let entity: TableEntityResult<Record<string, unknown>>;
  try {
    entity = await rawTable().getEntity(vault, rowKey);
  } catch (err: unknown) {
    if (tableErrorStatus(err) === 404) return undefined;
    throw err;
  }
  return Object.fromEntries(Object.entries(entity).filter(([key]) => key !== 'etag' && key !== 'timestamp' && !key.startsWith('odata.')));
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

    await expect(a.cache.put('default', name, undefined, secret)).resolves.toBe(true);
    await expect(b.cache.get('default', name.toUpperCase(), undefined)).resolves.toEqual(secret);

    const row = await rawRow('default', `${name}@latest`);
    expect(row).toBeDefined();
    const columns = row ?? {};
    expect(Object.keys(columns).sort()).toEqual(
      ['ciphertext', 'expiresAt', 'iv', 'name', 'partitionKey', 'rowKey', 'tag', 'vault', 'version', 'writtenBy'].sort(),
    );
    expect(columns).toMatchObject({
      partitionKey: 'default',
      rowKey: `${name}@latest`,
      vault: 'default',
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
    await cache.put('partner', name, pinned.version?.toUpperCase(), pinned);
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
    await cache.put('default', name, undefined, secret);
    await cache.put('default', name, secret.version ?? undefined, secret);
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
    await cache.put('default', name, undefined, secret);
    now += 59_999;
    await expect(cache.get('default', name, undefined)).resolves.toEqual(secret);
    now += 1;
    await expect(cache.get('default', name, undefined)).resolves.toBeUndefined();
  });

  it('does not serve a copy written under a longer TTL past its own TTL', async () => {
    const now = Date.parse('2030-01-01T00:00:00.000Z');
    const name = uniqueName('long-ttl');
    await instance({ now: () => now, ttlMs: 3_600_000 }).cache.put('default', name, undefined, secretOf(name, 'v'));
    await expect(instance({ now: () => now, ttlMs: 60_000 }).cache.get('default', name, undefined)).resolves.toBeUndefined();
  });

  it('misses, and logs, when a row had its expiry extended or was copied to another secret', async () => {
    const name = uniqueName('tampered');
    const secret = secretOf(name, 'tampered-value');
    const reader = instance();
    await reader.cache.put('default', name, undefined, secret);
    const columns = (await rawRow('default', `${name}@latest`)) ?? {};

    const other = uniqueName('other');
    await rawTable().createEntity({ ...columns, partitionKey: 'default', rowKey: `${other}@latest`, name: other });
    await expect(reader.cache.get('default', other, undefined)).resolves.toBeUndefined();

    const later = new Date(Date.parse(String(columns.expiresAt)) + 30_000).toISOString();
    await rawTable().updateEntity({ ...columns, partitionKey: 'default', rowKey: `${name}@latest`, expiresAt: later }, 'Replace');
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
    await expect(cache.put('default', name, undefined, secret)).resolves.toBe(false);
    await expect(cache.put('default', name, secret.version ?? undefined, secret)).resolves.toBe(false);
    await expect(cache.getOrFill('default', name, secret.version ?? undefined, () => Promise.resolve(secret))).resolves.toEqual({
      secret,
      source: 'loaded',
    });
    const rows: string[] = [];
    for await (const entity of rawTable().listEntities({ queryOptions: { filter: `PartitionKey eq 'default'` } })) {
      if (entity.rowKey?.startsWith(`${name}@`)) rows.push(entity.rowKey);
    }
    expect(rows).toEqual([]);
  });

  it('deletes the latest row and leaves pinned versions, for a new-version event', async () => {
    const name = uniqueName('rotated');
    const secret = secretOf(name, 'old-value');
    const { cache } = instance();
    await cache.put('default', name, undefined, secret);
    await cache.put('default', name, secret.version ?? undefined, secret);
    await instance().cache.delete('default', name.toUpperCase());
    expect(await rawRow('default', `${name}@latest`)).toBeUndefined();
    await expect(cache.get('default', name, undefined)).resolves.toBeUndefined();
    await expect(cache.get('default', name, secret.version ?? undefined)).resolves.toEqual(secret);
    await expect(cache.delete('default', name)).resolves.toBeUndefined();
  });

  it('gives an instance with a wrong data key a miss and a clear log line, never a wrong value', async () => {
    const name = uniqueName('wrong-key');
    await instance().cache.put('default', name, undefined, secretOf(name, 'right-key-value'));
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
    await expect(instance().cache.getOrFill('default', name, undefined, load)).resolves.toEqual({ secret, source: 'hit' });
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
      partitionKey: 'default',
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
      partitionKey: 'default',
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
      await expect(cache.put('default', name, undefined, secret)).resolves.toBe(false);
      expect(lines).toEqual([
        `Shared cache: default/${name}@latest unavailable, reading the vault: 403 AuthorizationPermissionMismatch`,
        `Shared cache: reading default/${name}@latest failed; treated as a miss: 403 AuthorizationPermissionMismatch`,
        `Shared cache: storing default/${name}@latest failed: 403 AuthorizationPermissionMismatch`,
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

  it('stores and serves nothing with a TTL of 0', async () => {
    const name = uniqueName('ttl-zero');
    const secret = secretOf(name, 'v');
    const { cache } = instance({ ttlMs: 0 });
    await expect(cache.put('default', name, undefined, secret)).resolves.toBe(false);
    await expect(cache.getOrFill('default', name, undefined, () => Promise.resolve(secret))).resolves.toEqual({ secret, source: 'loaded' });
    expect(await rawRow('default', `${name}@latest`)).toBeUndefined();
  });
});
