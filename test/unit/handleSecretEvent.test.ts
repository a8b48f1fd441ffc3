import type { VaultSettings } from '../../shared/config';
import { handleSecretEvent, rotationWroteVersion, type SecretEventDeps } from '../../shared/events/handleSecretEvent';
import { ConsumerDirectory } from '../../shared/notify/consumerDirectory';
import { createMemoryDeliveryLedger } from '../../shared/notify/deliveryLedger';
import { VaultStepError } from '../../shared/rotation/rotationErrors';
import { newRotationRecord } from '../../shared/rotation/rotationSteps';
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

describe('handleSecretEvent: rotation', () => {
  function nearExpiry(id = 'near-1'): Record<string, unknown> {
    return { ...event(DEMO_ID), id, eventType: 'Microsoft.KeyVault.SecretNearExpiry' };
  }
  type Start = NonNullable<ReturnType<NonNullable<SecretEventDeps['rotation']>>>['start'];
  const noTag = (): Promise<string | undefined> => Promise.resolve(undefined);

  it('starts the rotation of a secret near expiry, and logs a refusal without failing the event', async () => {
    const { deps, lines } = setup(DEMO_ID);
    const started: string[] = [];
    let answer: Awaited<ReturnType<Start>> = { outcome: 'refused', code: 'InvalidTags', message: 'Tag validityDays must be 1 to 730.' };
    const withRotation: SecretEventDeps = {
      ...deps,
      rotation: () => ({
        active: () => Promise.resolve(undefined),
        rotationIdOfVersion: () => Promise.resolve(undefined),
        start: (vault, secret, reason) => {
          started.push(`${vault}/${secret} ${reason}`);
          return Promise.resolve(answer);
        },
      }),
    };
    expect((await handleSecretEvent(nearExpiry(), withRotation, (l) => lines.push(l))).outcome).toBe('handled');
    expect(started).toEqual(['default/demo-api-key SecretNearExpiry']);
    expect(lines).toContainEqual('rotation of default/demo-api-key not started: InvalidTags: Tag validityDays must be 1 to 730.');

    answer = { outcome: 'refused', code: 'NotTagged', message: 'not tagged' };
    lines.length = 0;
    await handleSecretEvent(nearExpiry('near-2'), withRotation, (l) => lines.push(l));
    expect(lines.join('\n')).not.toContain('rotation');
  });

  it('logs, and does not fail the event, when the rotation identity cannot read the secret', async () => {
    const { deps, lines } = setup(DEMO_ID);
    const refused = new VaultStepError('Forbidden', 403, 'Caller is not authorized to perform action on resource.');
    const outcome = await handleSecretEvent(
      nearExpiry(),
      {
        ...deps,
        rotation: () => ({ active: () => Promise.resolve(undefined), start: () => Promise.reject(refused), rotationIdOfVersion: noTag }),
      },
      (l) => lines.push(l),
    );
    expect(outcome.outcome).toBe('handled');
    expect(lines).toContain('rotation of default/demo-api-key not started: the rotation identity cannot read it (Key Vault: Forbidden)');
    const storageDown = new Error('storage down');
    await expect(
      handleSecretEvent(
        nearExpiry('near-3'),
        {
          ...deps,
          rotation: () => ({
            active: () => Promise.resolve(undefined),
            start: () => Promise.reject(storageDown),
            rotationIdOfVersion: noTag,
          }),
        },
        () => undefined,
      ),
    ).rejects.toBe(storageDown);
  });

  it('starts nothing for a new version, or when rotation is off', async () => {
    const { deps, lines } = setup(DEMO_ID);
    const started: string[] = [];
    const start: Start = (vault, secret) => {
      started.push(`${vault}/${secret}`);
      return Promise.resolve({ outcome: 'refused', code: 'NotTagged', message: '' });
    };
    await handleSecretEvent(
      event(DEMO_ID),
      { ...deps, rotation: () => ({ start, active: () => Promise.resolve(undefined), rotationIdOfVersion: noTag }) },
      (l) => lines.push(l),
    );
    await handleSecretEvent(nearExpiry(), { ...deps, rotation: () => undefined }, (l) => lines.push(l));
    expect(started).toEqual([]);
  });

  it('notifies a new version once per consumer, whatever number of events tell of it', async () => {
    const { deps, acted, lines } = setup(DEMO_ID);
    await handleSecretEvent(event(DEMO_ID), deps, (l) => lines.push(l));
    // Another event id for the same version (the rotation's own notification shares the key): cache refreshed, nobody notified again.
    const again = await handleSecretEvent({ ...event(DEMO_ID), id: 'event-2' }, deps, (l) => lines.push(l));
    expect(acted.filter((a) => a.startsWith('send'))).toHaveLength(1);
    expect(acted.filter((a) => a.startsWith('invalidate'))).toHaveLength(2);
    expect(again).toMatchObject({ outcome: 'handled', deliveries: [{ consumer: 'demo-consumer', state: 'alreadyDelivered' }] });
  });

  it('refreshes caches for the version its rotation wrote but leaves the notification to the rotation', async () => {
    const { deps, acted, lines } = setup(DEMO_ID);
    const record = { ...rotationRecord(), state: 'stored' as const, newVersion: 'v2' };
    const withRotation: SecretEventDeps = {
      ...deps,
      rotation: () => ({
        active: () => Promise.resolve(record),
        start: () => Promise.reject(new Error('not called')),
        rotationIdOfVersion: noTag,
      }),
    };
    const outcome = await handleSecretEvent(event(DEMO_ID), withRotation, (l) => lines.push(l));
    expect(outcome).toMatchObject({ outcome: 'handled', deliveries: [] });
    expect(acted).toEqual(['invalidate default/demo-api-key', 'publish default/demo-api-key']);
    expect(lines).toContain('version v2 of default/demo-api-key was written by its rotation, which notifies consumers of it');
  });

  it("while the rotation's write is in flight, leaves to it only the version tagged with its id; a hand-written one is announced", async () => {
    const record = { ...rotationRecord(), state: 'passwordAdded' as const };
    const read: string[] = [];
    const withTag =
      (tag: string | undefined): SecretEventDeps['rotation'] =>
      () => ({
        active: () => Promise.resolve(record),
        start: () => Promise.reject(new Error('not called')),
        rotationIdOfVersion: (vault, secret, version) => {
          read.push(`${vault}/${secret}/${version}`);
          return Promise.resolve(tag);
        },
      });
    const own = setup(DEMO_ID);
    const ownOutcome = await handleSecretEvent(event(DEMO_ID), { ...own.deps, rotation: withTag(record.id) }, (l) => own.lines.push(l));
    expect(ownOutcome).toMatchObject({ outcome: 'handled', deliveries: [] });
    expect(own.acted.filter((a) => a.startsWith('send'))).toHaveLength(0);

    // An admin's version meanwhile (no brokerRotationId, or another rotation's): consumers hear of it.
    for (const tag of [undefined, 'rot-20261123T100000Z-000000']) {
      const admin = setup(DEMO_ID);
      const outcome = await handleSecretEvent(event(DEMO_ID), { ...admin.deps, rotation: withTag(tag) }, (l) => admin.lines.push(l));
      expect(outcome).toMatchObject({ outcome: 'handled', deliveries: [{ consumer: 'demo-consumer', state: 'delivered' }] });
      expect(admin.acted.filter((a) => a.startsWith('send'))).toHaveLength(1);
    }
    expect(read).toHaveLength(3);
    expect(read[0]).toMatch(/^default\/demo-api-key\/.+/);
  });
});

describe('rotationWroteVersion', () => {
  it("is true for the rotation's new version, or for a version tagged with its id while its write is in flight; false otherwise", async () => {
    const r = rotationRecord();
    const reads: string[] = [];
    const tagOf =
      (tag: string | undefined) =>
      (version: string): Promise<string | undefined> => {
        reads.push(version);
        return Promise.resolve(tag);
      };
    const never = (): Promise<string | undefined> => Promise.reject(new Error('no read expected'));
    expect(await rotationWroteVersion(undefined, 'v2', never)).toBe(false);
    expect(await rotationWroteVersion({ ...r, state: 'stored', newVersion: 'v2' }, 'v2', never)).toBe(true);
    expect(await rotationWroteVersion({ ...r, state: 'awaitingAdoption', newVersion: 'v2' }, 'v3', never)).toBe(false);
    expect(await rotationWroteVersion({ ...r, state: 'passwordAdded' }, 'v2', tagOf(r.id))).toBe(true);
    expect(await rotationWroteVersion({ ...r, state: 'passwordAdded' }, 'v2', tagOf(undefined))).toBe(false);
    expect(await rotationWroteVersion({ ...r, state: 'passwordAdded' }, 'v2', tagOf('rot-other'))).toBe(false);
    expect(await rotationWroteVersion({ ...r, state: 'started' }, 'v2', never)).toBe(false);
    const failure = { step: 'newPassword', service: 'keyVault', code: 'Forbidden', message: 'm', remedy: 'r', at: r.createdAt } as const;
    expect(
      await rotationWroteVersion({ ...r, state: 'failed', failure: { ...failure, resumeState: 'passwordAdded' } }, 'v2', tagOf(r.id)),
    ).toBe(true);
    expect(
      await rotationWroteVersion({ ...r, state: 'failed', failure: { ...failure, resumeState: 'passwordAdded' } }, 'v2', tagOf(undefined)),
    ).toBe(false);
    expect(await rotationWroteVersion({ ...r, state: 'failed', failure: { ...failure, resumeState: 'started' } }, 'v2', never)).toBe(false);
    expect(await rotationWroteVersion({ ...r, state: 'stored', newVersion: 'v2' }, undefined, never)).toBe(false);
    expect(reads).toEqual(['v2', 'v2', 'v2', 'v2', 'v2']);
  });
});

function rotationRecord() {
  return newRotationRecord({
    id: 'rot-20261123T100000Z-3f9a1c',
    vault: 'default',
    secret: 'demo-api-key',
    applicationObjectId: '0b5b7bd2-0000-4000-8000-000000000001',
    validityDays: 90,
    reason: 'SecretNearExpiry',
    oldVersion: 'v1',
    oldExpiresOn: null,
    carriedTags: {},
    now: new Date('2026-11-23T10:00:00Z'),
  });
}
