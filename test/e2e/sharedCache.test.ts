/**
 * End to end, in the jest process: real runtimes with the shared cache on (`CACHE_SHARED=table`)
 * against the Key Vault emulator and one Azurite. What one instance read, the next takes from the
 * table; the table holds no plaintext; a rotation deletes the row before anyone is told; the data
 * key is never a caller's; a wrong data key is a miss, never a wrong value.
 */
import { randomBytes } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import type { AuditEntry } from '../../shared/audit/auditRecord';
import type { Caller } from '../../shared/callers/accessPolicy';
import { ForbiddenError, SecretDisabledError } from '../../shared/errors';
import { handleSecretEvent } from '../../shared/events/handleSecretEvent';
import type { Runtime, RuntimeOptions } from '../../shared/runtime';
import { SHARED_CACHE_TABLE } from '../../shared/secrets/tableSharedSecretCache';
import type { InProcessFleet } from '../support/inProcessFleet';
import { startInProcessFleet } from '../support/inProcessFleet';
import { newVersionEvent } from '../support/keyVaultEvents';

const VAULT = 'shared-vault';
const KEY_SECRET = 'broker-cache-key';
const CANARY = `canary-${randomBytes(16).toString('hex')}`;
const caller: Caller = { name: 'app', operator: false, method: 'apiKey', requestsPerMinute: 6000, missesPerMinute: 100 };
const log = (): void => undefined;

let fleet: InProcessFleet;
let azure: InProcessFleet['azure'];
let azurite: InProcessFleet['azurite'];

beforeAll(async () => {
  fleet = await startInProcessFleet(VAULT, { CACHE_SHARED: 'table', CACHE_SHARED_KEY_SECRET: KEY_SECRET });
  ({ azure, azurite } = fleet);
  azure.keyVault.setSecret(VAULT, KEY_SECRET, randomBytes(32).toString('base64'));
});

afterAll(async () => {
  await fleet?.stop();
});

function runtime(options: RuntimeOptions & { instanceId: string }, settings = fleet.config): Runtime {
  return fleet.runtime(options, settings);
}

function gets(name: string): number {
  return fleet.gets(name);
}

function table(): TableClient {
  return TableClient.fromConnectionString(azurite.connectionString, SHARED_CACHE_TABLE, { allowInsecureConnection: true });
}

/** The latest rows of `name` in storage, whatever their partition, without the service's etag and timestamp. */
async function latestRows(name: string): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for await (const entity of table().listEntities<Record<string, unknown>>({ queryOptions: { filter: `RowKey eq '${name}@latest'` } })) {
    // eslint-disable-next-line @typescript-eslint/no-unused-vars -- left out on purpose
    const { etag: _etag, timestamp: _timestamp, ...columns } = entity;
    rows.push(columns);
  }
  return rows;
}

/** What a read ended with: a vault error's class name, or the value. */
async function outcomeOf(r: Runtime, name: string): Promise<{ outcome: string; reads: number }> {
  const before = gets(name);
  const outcome = await r.resolver.resolve(caller, { name }, { record: () => undefined }).then(
    (resolution) => resolution.secret.value,
    (err: unknown) => (err instanceof SecretDisabledError ? 'SecretDisabled' : String(err)),
  );
  return { outcome, reads: gets(name) - before };
}

async function readBy(r: Runtime, name: string): Promise<{ value: string; reads: number; cache: string | undefined }> {
  const before = gets(name);
  const entries: AuditEntry[] = [];
  const resolution = await r.resolver.resolve(caller, { name }, { record: (e) => entries.push(e) });
  return { value: resolution.secret.value, reads: gets(name) - before, cache: entries[0]?.cache };
}

describe('the shared cache', () => {
  it('serves what one instance read to the others, and holds no plaintext in storage', async () => {
    azure.keyVault.setSecret(VAULT, 'erp-token', CANARY);
    const a = runtime({ instanceId: 'a' });
    const b = runtime({ instanceId: 'b' });
    expect(await readBy(a, 'erp-token')).toEqual({ value: CANARY, reads: 1, cache: 'miss' });
    expect(await readBy(b, 'erp-token')).toEqual({ value: CANARY, reads: 0, cache: 'shared' });
    expect(await readBy(b, 'erp-token')).toEqual({ value: CANARY, reads: 0, cache: 'hit' });

    const table = TableClient.fromConnectionString(azurite.connectionString, SHARED_CACHE_TABLE, { allowInsecureConnection: true });
    const rows = [];
    for await (const row of table.listEntities()) rows.push(row);
    expect(rows.length).toBeGreaterThan(0);
    const stored = JSON.stringify(rows, (_key, value: unknown) =>
      value instanceof Uint8Array ? Buffer.from(value).toString('latin1') : value,
    );
    for (const form of [CANARY, Buffer.from(CANARY).toString('base64'), Buffer.from(CANARY).toString('base64url')]) {
      expect(stored).not.toContain(form);
    }
  });

  it('deletes the row before the other instances are told of a rotation: the fleet reads the new version once', async () => {
    const name = 'rotating-token';
    azure.keyVault.setSecret(VAULT, name, 'v1');
    const a = runtime({ instanceId: 'rot-a' });
    const b = runtime({ instanceId: 'rot-b' });
    const c = runtime({ instanceId: 'rot-c' });
    await readBy(a, name);
    expect((await readBy(b, name)).reads).toBe(0);
    expect((await readBy(c, name)).reads).toBe(0);

    const { version } = azure.keyVault.setSecret(VAULT, name, 'v2');
    const event = newVersionEvent(azure.keyVault, VAULT, name, version, 'shared-rotation-1');
    expect(await handleSecretEvent(event, a.events(), log)).toMatchObject({ outcome: 'handled' });
    const before = gets(name);
    expect((await readBy(a, name)).value).toBe('v2');
    await Promise.all([b.pollCoherence(), c.pollCoherence()]);
    expect(await readBy(b, name)).toMatchObject({ value: 'v2', reads: 0, cache: 'shared' });
    expect(await readBy(c, name)).toMatchObject({ value: 'v2', reads: 0, cache: 'shared' });
    expect(gets(name) - before).toBe(1);
  });

  it('refuses a row put back after a rotation: a fresh instance reads the vault and serves the new version', async () => {
    const name = 'replayed-token';
    const old = `old-${CANARY}`;
    const warnings: string[] = [];
    const warn = jest.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => void warnings.push(args.map(String).join(' ')));
    try {
      azure.keyVault.setSecret(VAULT, name, old);
      const a = runtime({ instanceId: 'replay-a' });
      expect(await readBy(a, name)).toEqual({ value: old, reads: 1, cache: 'miss' });
      const captured = await latestRows(name);
      expect(captured).toHaveLength(1);

      const { version } = azure.keyVault.setSecret(VAULT, name, 'v2');
      expect(
        await handleSecretEvent(newVersionEvent(azure.keyVault, VAULT, name, version, 'replay-rotation-1'), a.events(), log),
      ).toMatchObject({
        outcome: 'handled',
      });
      expect(await latestRows(name)).toEqual([]);
      for (const row of captured)
        await table().upsertEntity({ ...row, partitionKey: String(row.partitionKey), rowKey: String(row.rowKey) }, 'Replace');

      const fresh = runtime({ instanceId: 'replay-fresh' });
      expect(await readBy(fresh, name)).toEqual({ value: 'v2', reads: 1, cache: 'miss' });
      expect(warnings.some((line) => line.includes(`default/${name}@latest`) && line.includes('rotation mark differs'))).toBe(true);
      expect(await readBy(runtime({ instanceId: 'replay-next' }), name)).toEqual({ value: 'v2', reads: 0, cache: 'shared' });
      for (const line of warnings) expect(line).not.toContain(CANARY);
    } finally {
      warn.mockRestore();
    }
  });

  it('keeps brokers with different app names (WEBSITE_SITE_NAME) apart on one storage account and data key', async () => {
    const name = 'sited-token';
    azure.keyVault.setSecret(VAULT, name, 'sited-value');
    const one = fleet.settings({ WEBSITE_SITE_NAME: 'broker-one' });
    const two = fleet.settings({ WEBSITE_SITE_NAME: 'broker-two' });
    expect(await readBy(runtime({ instanceId: 'one-a' }, one), name)).toMatchObject({ reads: 1, cache: 'miss' });
    expect(await readBy(runtime({ instanceId: 'two-a' }, two), name)).toMatchObject({ reads: 1, cache: 'miss' });
    expect(await readBy(runtime({ instanceId: 'one-b' }, one), name)).toMatchObject({ reads: 0, cache: 'shared' });
    expect(await readBy(runtime({ instanceId: 'two-b' }, two), name)).toMatchObject({ reads: 0, cache: 'shared' });
    expect((await latestRows(name)).map((row) => row.broker).sort()).toEqual(['broker-one', 'broker-two']);
  });

  it('keeps a value taken from storage only until the stored copy expires: a disabled version is gone everywhere within one TTL', async () => {
    // CACHE_TTL_SECONDS=10: rows live 9 s (90 %), memory entries at most 10 s; one clock for the whole fleet.
    const t0 = Date.parse('2031-01-01T00:00:00.000Z');
    let now = t0;
    const clock = (): number => now;
    const settings = fleet.settings({ CACHE_TTL_SECONDS: '10' });
    const name = 'ttl-token';
    const { version } = azure.keyVault.setSecret(VAULT, name, 'ttl-value');
    const filler = runtime({ instanceId: 'ttl-filler', now: clock }, settings);
    const taker = runtime({ instanceId: 'ttl-taker', now: clock }, settings);
    expect(await readBy(filler, name)).toMatchObject({ reads: 1, cache: 'miss' });

    now = t0 + 8_900; // the taker takes the row 0.1 s before it expires
    expect(await readBy(taker, name)).toMatchObject({ value: 'ttl-value', reads: 0, cache: 'shared' });
    azure.keyVault.updateSecret(VAULT, name, version, { enabled: false });
    now = t0 + 8_999;
    expect(await readBy(taker, name)).toMatchObject({ value: 'ttl-value', reads: 0, cache: 'hit' });

    now = t0 + 9_000; // the row's expiry: the taker's copy is gone with it, not a TTL after it took it
    expect(await outcomeOf(taker, name)).toEqual({ outcome: 'SecretDisabled', reads: 1 });
    now = t0 + 10_000; // one TTL after the vault read: the filler's own copy is gone too
    expect(await outcomeOf(filler, name)).toEqual({ outcome: 'SecretDisabled', reads: 1 });
    // A third instance finds nothing stored (a disabled secret is never stored) and asks the vault.
    expect(await outcomeOf(runtime({ instanceId: 'ttl-third', now: clock }, settings), name)).toEqual({
      outcome: 'SecretDisabled',
      reads: 1,
    });
  });

  it('refuses the data key to every caller, whatever the policy says', async () => {
    const r = runtime({ instanceId: 'curious' });
    const err = await r.resolver.resolve(caller, { name: KEY_SECRET }, { record: () => undefined }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForbiddenError);
    expect((await r.resolver.list(caller, { record: () => undefined })).map((s) => s.name)).not.toContain(KEY_SECRET);
  });

  it('with a wrong data key, takes nothing from storage and reads the vault: never a wrong value', async () => {
    azure.keyVault.setSecret(VAULT, 'other-key', randomBytes(32).toString('base64'));
    azure.keyVault.setSecret(VAULT, 'crm-token', 'crm-value');
    const writer = runtime({ instanceId: 'writer' });
    expect((await readBy(writer, 'crm-token')).reads).toBe(1);
    const wrongKey = fleet.settings({ CACHE_SHARED_KEY_SECRET: 'other-key' });
    const reader = runtime({ instanceId: 'reader' }, wrongKey);
    expect(await readBy(reader, 'crm-token')).toMatchObject({ value: 'crm-value', reads: 1, cache: 'miss' });
  });
});
