import { ConsumerDirectory } from '../../shared/notify/consumerDirectory';
import {
  newVersionSourceId,
  retiredSourceId,
  rotationNotification,
  secretEventSourceId,
  secretNotification,
  webhookIdFor,
} from '../../shared/notify/notification';
import type { KeyVaultEvent } from '../../shared/events/keyVaultEvent';

const consumer = (
  name: string,
  secrets: string[],
  events: ('SecretNewVersionCreated' | 'SecretNearExpiry' | 'SecretExpired' | 'HealthCheckFailed' | 'HealthCheckRecovered')[],
) => ({
  name,
  secrets,
  events,
  webhook: `https://${name}.example/hook`,
  signingSecret: `${name}-whsec`,
});

describe('ConsumerDirectory', () => {
  const directory = new ConsumerDirectory([
    consumer('erp', ['erp-*'], ['SecretNewVersionCreated', 'SecretNearExpiry']),
    consumer('partner', ['partner/*'], ['SecretNewVersionCreated', 'SecretExpired']),
    consumer('ops', ['*', '*/*'], ['SecretExpired', 'HealthCheckFailed']),
  ]);

  it.each([
    ['default', 'erp-token', 'SecretNewVersionCreated', ['erp']],
    ['default', 'ERP-token', 'SecretNearExpiry', ['erp']],
    ['default', 'erp-token', 'SecretExpired', ['ops']],
    ['partner', 'sftp', 'SecretNewVersionCreated', ['partner']],
    ['partner', 'sftp', 'SecretExpired', ['partner', 'ops']],
    ['partner', 'erp-token', 'SecretNearExpiry', []],
    ['default', 'crm-token', 'SecretNewVersionCreated', []],
  ] as const)('in vault %s, %s, %s notifies %j', (vault, name, event, expected) => {
    expect(directory.forSecret(vault, name, event).map((c) => c.name)).toEqual(expected);
  });

  it('finds health subscribers whatever their secrets', () => {
    expect(directory.forHealth('HealthCheckFailed').map((c) => c.name)).toEqual(['ops']);
    expect(directory.forHealth('HealthCheckRecovered')).toEqual([]);
  });
});

describe('secretNotification', () => {
  const event: KeyVaultEvent & { kind: 'SecretNewVersionCreated' } = {
    id: 'b3c1-event',
    type: 'Microsoft.KeyVault.SecretNewVersionCreated',
    kind: 'SecretNewVersionCreated',
    schema: 'EventGrid',
    time: '2026-11-23T10:00:00.000Z',
    source: '/subscriptions/x/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/contoso',
    vaultName: 'contoso',
    objectType: 'Secret',
    objectName: 'erp-token',
    version: 'a'.repeat(32),
    notBefore: null,
    expiresOn: '2027-01-01T00:00:00.000Z',
  };

  it('is a CloudEvent naming the secret and its version, never a value', () => {
    const n = secretNotification(event, { alias: 'default', uri: 'https://contoso.vault.azure.net/' }, 'erp-token', 'erp');
    expect(n).toEqual({
      specversion: '1.0',
      // A new version's webhook id is the version's (shared with the rotation that wrote it), not the event's.
      id: webhookIdFor(newVersionSourceId('default', 'erp-token', 'a'.repeat(32)), 'erp'),
      source: '/vaults/default',
      type: 'secretbroker.secret.rotated',
      subject: 'default/erp-token',
      time: '2026-11-23T10:00:00.000Z',
      datacontenttype: 'application/json',
      data: {
        vault: 'default',
        vaultUri: 'https://contoso.vault.azure.net/',
        secret: 'erp-token',
        version: 'a'.repeat(32),
        notBefore: null,
        expiresOn: '2027-01-01T00:00:00.000Z',
        sourceEventId: 'b3c1-event',
        sourceEventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
      },
    });
    expect(Object.keys(n.data)).not.toContain('value');
  });

  it('has a webhook id stable per event and consumer, different across consumers and events', () => {
    expect(webhookIdFor('e1', 'erp')).toBe(webhookIdFor('e1', 'erp'));
    expect(webhookIdFor('e1', 'erp')).not.toBe(webhookIdFor('e1', 'crm'));
    expect(webhookIdFor('e1', 'erp')).not.toBe(webhookIdFor('e2', 'erp'));
    expect(webhookIdFor('e1', 'erp')).toMatch(/^msg_[A-Za-z0-9_-]{32}$/);
  });

  it("keys a new version by the version, any other event by the event's id", () => {
    const version = 'a'.repeat(32);
    expect(secretEventSourceId(event, 'default', 'ERP-Token')).toBe(newVersionSourceId('default', 'erp-token', version));
    expect(secretEventSourceId({ ...event, id: 'another-delivery' }, 'default', 'erp-token')).toBe(
      secretEventSourceId(event, 'default', 'erp-token'),
    );
    expect(secretEventSourceId({ ...event, version: undefined }, 'default', 'erp-token')).toBe('b3c1-event');
    expect(secretEventSourceId({ ...event, kind: 'SecretNearExpiry' }, 'default', 'erp-token')).toBe('b3c1-event');
    expect(newVersionSourceId('default', 'erp-token', version)).not.toBe(newVersionSourceId('partner', 'erp-token', version));
  });
});

describe('rotationNotification', () => {
  const vault = { alias: 'default', uri: 'https://contoso.vault.azure.net/' };
  const change = {
    rotationId: 'rot-20261123T100000Z-3f9a1c',
    notBefore: null,
    expiresOn: '2027-05-22T10:00:00.000Z',
    at: '2026-11-23T10:00:01.000Z',
  };

  it("has the same webhook id as Key Vault's SecretNewVersionCreated for the version it wrote", () => {
    const version = 'b'.repeat(32);
    const fromRotation = rotationNotification({ ...change, kind: 'rotated', version }, vault, 'erp-token', 'erp');
    const fromKeyVault = secretNotification(
      {
        id: 'kv-event',
        type: 'Microsoft.KeyVault.SecretNewVersionCreated',
        kind: 'SecretNewVersionCreated',
        schema: 'EventGrid',
        time: change.at,
        source: '/subscriptions/x/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/contoso',
        vaultName: 'contoso',
        objectType: 'Secret',
        objectName: 'erp-token',
        version,
        notBefore: null,
        expiresOn: null,
      },
      vault,
      'erp-token',
      'erp',
    );
    expect(fromRotation.id).toBe(fromKeyVault.id);
    expect(fromRotation).toMatchObject({
      type: 'secretbroker.secret.rotated',
      subject: 'default/erp-token',
      data: { version, expiresOn: change.expiresOn, sourceEventId: change.rotationId, sourceEventType: 'SecretBroker.Rotation' },
    });
  });

  it('tells a retirement as secretbroker.secret.retired of the old version, with its own webhook id', () => {
    const old = 'c'.repeat(32);
    const retired = rotationNotification({ ...change, kind: 'retired', version: old }, vault, 'erp-token', 'erp');
    expect(retired).toMatchObject({ type: 'secretbroker.secret.retired', data: { vault: 'default', secret: 'erp-token', version: old } });
    expect(retired.id).toBe(webhookIdFor(retiredSourceId('default', 'erp-token', old), 'erp'));
    expect(retired.id).not.toBe(rotationNotification({ ...change, kind: 'rotated', version: old }, vault, 'erp-token', 'erp').id);
    expect(Object.keys(retired.data)).not.toContain('value');
  });
});
