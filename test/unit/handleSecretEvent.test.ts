import type { VaultSettings } from '../../shared/config';
import { handleSecretEvent, type SecretEventDeps } from '../../shared/events/handleSecretEvent';
import { ConsumerDirectory } from '../../shared/notify/consumerDirectory';
import { createMemoryDeliveryLedger } from '../../shared/notify/deliveryLedger';
import type { VaultSecret } from '../../shared/secrets/vaultGateway';
import type { EventProperties, Telemetry } from '../../shared/telemetry';

const DEMO_ID = '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/Microsoft.KeyVault/vaults/demo';

function vault(resourceId: string | undefined): VaultSettings {
  return { alias: 'default', uri: 'https://demo.vault.azure.net/', resourceId, expectations: { firewall: 'any', readers: [] } };
}

function event(topic: string, vaultName = 'demo'): Record<string, unknown> {
  return {
    id: 'event-1',
    topic,
    subject: 'demo-api-key',
    eventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
    eventTime: '2026-01-01T00:00:00Z',
    data: { VaultName: vaultName, ObjectType: 'Secret', ObjectName: 'demo-api-key', Version: 'v2' },
    dataVersion: '1',
    metadataVersion: '1',
  };
}

/** Dependencies that record what the handler did: invalidations, publications, webhooks, telemetry. */
function setup(resourceId: string | undefined): { deps: SecretEventDeps; acted: string[]; tracked: EventProperties[]; lines: string[] } {
  const acted: string[] = [];
  const tracked: EventProperties[] = [];
  const lines: string[] = [];
  const telemetry: Telemetry = {
    enabled: true,
    trackEvent: (_name, properties) => void tracked.push(properties),
    trackDependency: () => undefined,
    trackRequest: () => undefined,
    trackAvailability: () => undefined,
    trackMetric: () => undefined,
    trackException: () => undefined,
    flush: () => Promise.resolve(),
  };
  const deps: SecretEventDeps = {
    vaults: new Map([['default', vault(resourceId)]]),
    resolver: {
      invalidate: (alias, name) => {
        acted.push(`invalidate ${alias}/${name}`);
        return 1;
      },
      // Only its value is used, to sign; `send` below does not check the signature.
      readSigningKey: () => Promise.resolve({ value: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' } as VaultSecret),
    },
    coherence: {
      publish: (alias, name) => {
        acted.push(`publish ${alias}/${name}`);
        return Promise.resolve();
      },
    },
    consumers: new ConsumerDirectory([
      {
        name: 'demo-consumer',
        secrets: ['demo-api-key'],
        events: ['SecretNewVersionCreated'],
        webhook: 'http://127.0.0.1:9/hook',
        signingSecret: 'demo-consumer-signing-key',
      },
    ]),
    ledger: createMemoryDeliveryLedger(),
    telemetry,
    topic: undefined,
    send: (request) => {
      acted.push(`send ${request.url}`);
      return Promise.resolve({ status: 204, ok: true, error: null, durationMs: 1 });
    },
  };
  return { deps, acted, tracked, lines };
}

describe('handleSecretEvent: which vault an event comes from', () => {
  it('acts on an event whose topic is the configured resource id (compared without case)', async () => {
    const { deps, acted, lines } = setup(DEMO_ID);
    const outcome = await handleSecretEvent(event(DEMO_ID.toLowerCase()), deps, (l) => lines.push(l));
    expect(outcome).toMatchObject({ outcome: 'handled', vault: 'default', secret: 'demo-api-key' });
    expect(acted).toEqual(['invalidate default/demo-api-key', 'publish default/demo-api-key', 'send http://127.0.0.1:9/hook']);
    // The lines read in the order things happen: received, cache, handled.
    expect(lines[0]).toBe('received Microsoft.KeyVault.SecretNewVersionCreated for demo/demo-api-key version v2 (event event-1)');
    expect(lines[1]).toMatch(
      /^cache refreshed for default\/demo-api-key, new version v2: dropped 1 stale version\(s\) here, told the other instances/,
    );
    expect(lines.at(-1)).toBe(
      'handled default/demo-api-key: demo-consumer=delivered (event event-1 Microsoft.KeyVault.SecretNewVersionCreated)',
    );
  });

  it('refuses a vault of the configured name whose topic is another resource id, saying so', async () => {
    const { deps, acted, tracked, lines } = setup(DEMO_ID);
    const outcome = await handleSecretEvent(event('/t'), deps, (l) => lines.push(l));
    const reason = `the topic "/t" is not the resource id of vault "default" (KEY_VAULT_RESOURCE_IDS: ${DEMO_ID})`;
    expect(outcome).toEqual({ outcome: 'refused', reason });
    expect(acted).toEqual([]);
    expect(lines.at(-1)).toBe(`refused: ${reason} (event event-1 Microsoft.KeyVault.SecretNewVersionCreated)`);
    expect(tracked).toEqual([expect.objectContaining({ outcome: 'refused', reason })]);
  });

  it('refuses a vault that is not configured, naming it', async () => {
    const { deps, acted } = setup(DEMO_ID);
    const outcome = await handleSecretEvent(event(DEMO_ID.replace(/demo$/, 'other'), 'other'), deps, () => undefined);
    expect(outcome).toEqual({ outcome: 'refused', reason: 'vault "other" is not configured here' });
    expect(acted).toEqual([]);
  });

  it('matches by name alone without KEY_VAULT_RESOURCE_IDS', async () => {
    const { deps } = setup(undefined);
    expect(await handleSecretEvent(event('/t'), deps, () => undefined)).toMatchObject({ outcome: 'handled' });
  });

  it('keeps control characters of a forged event out of the log line', async () => {
    const { deps, lines } = setup(DEMO_ID);
    await handleSecretEvent(event('/t\nforged line'), deps, (l) => lines.push(l));
    expect(lines.every((l) => !l.includes('\n'))).toBe(true);
    expect(lines.at(-1)).toContain('the topic "/t?forged line" is not the resource id');
  });
});
