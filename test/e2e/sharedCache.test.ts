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
import { ForbiddenError } from '../../shared/errors';
import { handleSecretEvent } from '../../shared/events/handleSecretEvent';
import type { Runtime } from '../../shared/runtime';
import { SHARED_CACHE_TABLE } from '../../shared/secrets/tableSharedSecretCache';
import type { InProcessFleet } from '../support/inProcessFleet';
import { startInProcessFleet } from '../support/inProcessFleet';

const VAULT = 'shared-vault';
const KEY_SECRET = 'broker-cache-key';
const CANARY = `canary-${randomBytes(16).toString('hex')}`;
const caller: Caller = { name: 'app', operator: false, method: 'apiKey', requestsPerMinute: 6000 };
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

function runtime(options: { instanceId: string }, settings = fleet.config): Runtime {
  return fleet.runtime(options, settings);
}

function gets(name: string): number {
  return fleet.gets(name);
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
    const event = {
      id: 'shared-rotation-1',
      topic: azure.keyVault.resourceId(VAULT),
      subject: name,
      eventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
      eventTime: new Date().toISOString(),
      data: { VaultName: VAULT, ObjectType: 'Secret', ObjectName: name, Version: version, NBF: null, EXP: null },
      dataVersion: '1',
      metadataVersion: '1',
    };
    expect(await handleSecretEvent(event, a.events(), log)).toMatchObject({ outcome: 'handled' });
    const before = gets(name);
    expect((await readBy(a, name)).value).toBe('v2');
    await Promise.all([b.pollCoherence(), c.pollCoherence()]);
    expect(await readBy(b, name)).toMatchObject({ value: 'v2', reads: 0, cache: 'shared' });
    expect(await readBy(c, name)).toMatchObject({ value: 'v2', reads: 0, cache: 'shared' });
    expect(gets(name) - before).toBe(1);
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
