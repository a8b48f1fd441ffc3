/**
 * The rotation engine end to end: the real GraphClient and SecretClient (with the rotation identity's
 * ManagedIdentityCredential, through the proxy) against the Graph and Key Vault emulators, and the
 * rotation store in Azurite through @azure/data-tables. Adoption is an in-memory AdoptionReader;
 * notifications and cache refreshes are recorded.
 */
import { inspect } from 'node:util';
import { ManagedIdentityCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import type { AdoptionReader, AdoptionRow } from '../../shared/adoption/adoptionTypes';
import { GraphClient } from '../../shared/graph/graphClient';
import { RotationRunner, type RotationNotifier, type RotationRunnerDeps, type RotationVault } from '../../shared/rotation/rotationRunner';
import type { RotationRecord } from '../../shared/rotation/rotationTypes';
import { ADOPTION_SETTLE_MS, LEASE_MS } from '../../shared/rotation/rotationSteps';
import { createTableClient } from '../../shared/storage/tableStorage';
import { createTableRotationStore, ROTATION_TABLE, type RotationStore } from '../../shared/rotation/tableRotationStore';
import { GRAPH_RESOURCE, startRotationEmulators, type RotationEmulators } from '../support/rotationEmulators';

const VAULT = 'rotvault';
const ALIAS = 'default';
const ROTATOR = { clientId: '61111111-1111-4111-8111-111111111111', principalId: 'b6111111-1111-4111-8111-111111111111' };
const FAST_RETRY = { retryDelayInMs: 5, maxRetryDelayInMs: 20 };
const HOUR = 3_600_000;
const SETTINGS = { adoptionWindowHours: 72, retireAfterHours: 72 };

let azure: RotationEmulators;
let store: RotationStore;
let secretNo = 0;
/** Every secret text or value this file saw: none may appear in a record, log line, notification or error. */
const seenSecrets: string[] = [];
/** Everything the engine said or handed out: log lines, notifications, records, errors. */
const emitted: string[] = [];
/** ROTATION_TARGETS of the runners: every seeded secret, with its application. */
const targets = new Map<string, string>();

beforeAll(async () => {
  azure = await startRotationEmulators({ vaults: [VAULT], identities: [ROTATOR] });
  azure.identity.setAppRoles(ROTATOR.principalId, GRAPH_RESOURCE, ['Application.ReadWrite.OwnedBy']);
  store = createTableRotationStore(azure.azurite.connectionString);
}, 120_000);

afterAll(async () => {
  await azure?.stop();
});

afterEach(() => {
  azure.graph.clearFaults();
  azure.graph.resetCounts();
});

function graphClient(): GraphClient {
  return new GraphClient({ credential: new ManagedIdentityCredential({ clientId: ROTATOR.clientId }), retry: FAST_RETRY });
}

function secretClient(): SecretClient {
  return new SecretClient(azure.keyVault.vaultUri(VAULT), new ManagedIdentityCredential({ clientId: ROTATOR.clientId }), {
    retryOptions: { maxRetries: 1, retryDelayInMs: 5 },
  });
}

/** An application owned by the rotation identity, one hand-made password, and a tagged secret holding its text. */
function seedSecret(opts: { owned?: boolean; passwords?: number; expiresInHours?: number; value?: string } = {}) {
  const app = azure.graph.createApplication({
    displayName: `app ${++secretNo}`,
    owners: opts.owned === false ? [] : [ROTATOR.principalId],
  });
  const seeded = Array.from({ length: opts.passwords ?? 1 }, (_, i) =>
    azure.graph.seedPassword(app.objectId, { displayName: `hand-made ${i}` }),
  );
  for (const p of seeded) seenSecrets.push(p.secretText);
  const name = `erp-client-secret-${secretNo}`;
  const value = opts.value ?? seeded[0]!.secretText;
  const { version } = azure.keyVault.setSecret(VAULT, name, value, {
    tags: { brokerRotation: 'entraApp', entraAppObjectId: app.objectId, validityDays: '90', owner: 'erp-team' },
    ...(opts.expiresInHours === undefined ? {} : { expiresOn: new Date(Date.now() + opts.expiresInHours * HOUR) }),
  });
  targets.set(`${ALIAS}/${name}`, app.objectId.toLowerCase());
  return { app, name, version, oldKeyId: seeded[0]!.keyId };
}

/** Adoption rows per secret, changed by the test. */
class MemoryAdoption implements AdoptionReader {
  readonly rows = new Map<string, AdoptionRow[]>();
  read(vault: string, secret: string): Promise<AdoptionRow[]> {
    return Promise.resolve([...(this.rows.get(`${vault}/${secret}`) ?? [])]);
  }
  set(secret: string, reads: Array<{ caller: string; version: string; lastRead: Date }>): void {
    this.rows.set(
      `${ALIAS}/${secret}`,
      reads.map((r) => ({
        vault: ALIAS,
        secret,
        caller: r.caller,
        version: r.version,
        since: r.lastRead.toISOString(),
        lastRead: r.lastRead.toISOString(),
      })),
    );
  }
}

/** Records notifications; `unique` dedupes by kind and rotation id, as the delivery ledger does. */
class RecordingNotifier implements RotationNotifier {
  readonly calls: Array<{ kind: 'rotated' | 'retired'; vault: string; secret: string; version: string; rotationId: string }> = [];
  rotated(vault: string, secret: string, version: string, rotationId: string): Promise<void> {
    this.calls.push({ kind: 'rotated', vault, secret, version, rotationId });
    emitted.push(JSON.stringify(this.calls.at(-1)));
    return Promise.resolve();
  }
  retired(vault: string, secret: string, version: string, rotationId: string): Promise<void> {
    this.calls.push({ kind: 'retired', vault, secret, version, rotationId });
    emitted.push(JSON.stringify(this.calls.at(-1)));
    return Promise.resolve();
  }
  unique(kind: 'rotated' | 'retired', secret: string): Array<{ version: string; rotationId: string }> {
    const seen = new Map<string, { version: string; rotationId: string }>();
    for (const c of this.calls)
      if (c.kind === kind && c.secret === secret) seen.set(c.rotationId, { version: c.version, rotationId: c.rotationId });
    return [...seen.values()];
  }
}

interface Harness {
  deps: RotationRunnerDeps;
  adoption: MemoryAdoption;
  notify: RecordingNotifier;
  refreshed: string[];
  clock: { offsetMs: number };
}

function harness(overrides: Partial<RotationRunnerDeps> = {}): Harness {
  const adoption = new MemoryAdoption();
  const notify = new RecordingNotifier();
  const refreshed: string[] = [];
  // The runner's clock runs past the adoption settle time of a version the vault writes now, as a
  // timer run would a minute later: "every caller moved" is believed at once (tests that need
  // another moment set offsetMs themselves).
  const clock = { offsetMs: ADOPTION_SETTLE_MS + 1_000 };
  const deps: RotationRunnerDeps = {
    graph: graphClient(),
    vaults: new Map<string, RotationVault>([[ALIAS, secretClient()]]),
    store,
    adoption,
    notify,
    refresh: (vault, secret, version) => {
      refreshed.push(`${vault}/${secret}/${version}`);
      return Promise.resolve();
    },
    settings: SETTINGS,
    targets,
    now: () => new Date(Date.now() + clock.offsetMs),
    log: (line) => emitted.push(line),
    ...overrides,
  };
  return { deps, adoption, notify, refreshed, clock };
}

async function versionsOf(
  name: string,
): Promise<Array<{ version: string; enabled: boolean; tags: Record<string, string>; expiresOn?: Date }>> {
  const out = [];
  for await (const p of secretClient().listPropertiesOfSecretVersions(name)) {
    out.push({ version: p.version ?? '', enabled: p.enabled ?? false, tags: p.tags ?? {}, expiresOn: p.expiresOn });
  }
  return out;
}

/** The latest value, remembered as seen. */
async function latestValue(name: string): Promise<{ value: string; version: string }> {
  const got = await secretClient().getSecret(name);
  seenSecrets.push(got.value ?? '');
  return { value: got.value ?? '', version: got.properties.version ?? '' };
}

/** The timer's run, as seen for one secret (other tests' rotations are not this one's business). */
async function advanceOne(runner: RotationRunner, secret: string): Promise<RotationRecord | undefined> {
  return (await runner.advanceAll()).find((r) => r.secret === secret);
}

function remember(record: RotationRecord): RotationRecord {
  emitted.push(JSON.stringify(record), inspect(record, { depth: 5 }));
  return record;
}

describe('a full rotation', () => {
  it('adds a password, stores it as a new version, waits for every caller, then removes the old password and disables the old version', async () => {
    const seeded = seedSecret();
    const h = harness();
    const events: string[] = [];
    const graph = graphClient();
    const vault = secretClient();
    h.deps.graph = {
      getApplication: (id) => graph.getApplication(id),
      addPassword: (id, p) => graph.addPassword(id, p),
      removePassword: (id, keyId) => {
        events.push(`removePassword ${keyId}`);
        return graph.removePassword(id, keyId);
      },
    };
    h.deps.vaults = new Map<string, RotationVault>([
      [
        ALIAS,
        {
          getSecret: (n, o) => vault.getSecret(n, o),
          setSecret: (n, v, o) => vault.setSecret(n, v, o),
          listPropertiesOfSecretVersions: (n, o) => vault.listPropertiesOfSecretVersions(n, o),
          updateSecretProperties: (n, v, o) => {
            events.push(`disable ${v}`);
            return vault.updateSecretProperties(n, v, o);
          },
        },
      ],
    ]);
    const runner = new RotationRunner(h.deps);
    const readAt = new Date();
    h.adoption.set(seeded.name, [
      { caller: 'erp', version: seeded.version, lastRead: readAt },
      { caller: 'bc', version: seeded.version, lastRead: readAt },
    ]);

    const started = await runner.start(ALIAS, seeded.name, 'SecretNearExpiry');
    expect(started.outcome).toBe('started');
    if (started.outcome === 'refused') throw new Error('refused');
    const first = remember(started.record);
    expect(first).toMatchObject({
      state: 'awaitingAdoption',
      reason: 'SecretNearExpiry',
      oldVersion: seeded.version,
      oldKeyId: seeded.oldKeyId,
      oldKeyIdSource: 'hint',
      holders: ['bc', 'erp'],
      validityDays: 90,
      displayName: `secret-broker ${first.id}`,
    });

    // Graph: the hand-made password and the new one, named after the rotation.
    const passwords = azure.graph.passwordCredentials(seeded.app.objectId);
    expect(passwords.map((p) => p.displayName)).toEqual(['hand-made 0', `secret-broker ${first.id}`]);
    const added = passwords[1]!;
    expect(first.newKeyId).toBe(added.keyId);
    // Key Vault: a new version holding the new password's text, expiring with it, tagged with its keyId.
    const latest = await latestValue(seeded.name);
    expect(latest.version).toBe(first.newVersion);
    expect(azure.graph.secretMatches(seeded.app.objectId, added.keyId, latest.value)).toBe(true);
    const versions = await versionsOf(seeded.name);
    const newer = versions.find((v) => v.version === first.newVersion)!;
    expect(newer.expiresOn?.getTime()).toBe(new Date(added.endDateTime).getTime());
    expect(new Date(added.endDateTime).getTime() - Date.now()).toBeGreaterThan(89 * 24 * HOUR);
    expect(newer.tags).toEqual({
      brokerRotation: 'entraApp',
      entraAppObjectId: seeded.app.objectId,
      validityDays: '90',
      owner: 'erp-team',
      entraKeyId: added.keyId,
      brokerRotationId: first.id,
    });
    expect(h.refreshed).toEqual([`${ALIAS}/${seeded.name}/${first.newVersion}`]);
    expect(h.notify.calls).toEqual([
      { kind: 'rotated', vault: ALIAS, secret: seeded.name, version: first.newVersion, rotationId: first.id },
    ]);

    // One caller moves: the other still holds retirement back.
    h.adoption.set(seeded.name, [
      { caller: 'erp', version: first.newVersion!, lastRead: new Date() },
      { caller: 'bc', version: seeded.version, lastRead: readAt },
    ]);
    const waiting = await advanceOne(runner, seeded.name);
    expect(remember(waiting!)).toMatchObject({ id: first.id, state: 'awaitingAdoption', holders: ['bc'] });
    expect(events).toEqual([]);

    // Both moved: the old password goes, then the old version, then consumers hear of it.
    h.adoption.set(seeded.name, [
      { caller: 'erp', version: first.newVersion!, lastRead: new Date() },
      { caller: 'bc', version: first.newVersion!, lastRead: new Date() },
    ]);
    const done = await advanceOne(runner, seeded.name);
    expect(remember(done!)).toMatchObject({ id: first.id, state: 'retired', retireReason: 'adopted', oldPassword: 'removed', holders: [] });
    expect(events).toEqual([`removePassword ${seeded.oldKeyId}`, `disable ${seeded.version}`]);
    expect(azure.graph.passwordCredentials(seeded.app.objectId).map((p) => p.keyId)).toEqual([added.keyId]);
    expect((await versionsOf(seeded.name)).map((v) => [v.version, v.enabled])).toEqual(
      expect.arrayContaining([
        [seeded.version, false],
        [first.newVersion, true],
      ]),
    );
    expect(h.notify.calls.map((c) => c.kind)).toEqual(['rotated', 'retired']);
    expect(h.notify.calls[1]).toEqual({
      kind: 'retired',
      vault: ALIAS,
      secret: seeded.name,
      version: seeded.version,
      rotationId: first.id,
    });
    expect(await store.active(ALIAS, seeded.name)).toBeUndefined();
    expect(await advanceOne(runner, seeded.name)).toBeUndefined();

    // The next rotation finds the old password by the entraKeyId tag the first one wrote, and waits
    // for the same callers, who now read what has become the old version.
    const again = await runner.start(ALIAS, seeded.name, 'manual');
    if (again.outcome === 'refused') throw new Error('refused');
    expect(remember(again.record)).toMatchObject({
      state: 'awaitingAdoption',
      oldVersion: first.newVersion,
      oldKeyId: added.keyId,
      oldKeyIdSource: 'tag',
      holders: ['bc', 'erp'],
    });
    expect(again.record.id).not.toBe(first.id);
    h.adoption.set(seeded.name, [
      { caller: 'erp', version: again.record.newVersion!, lastRead: new Date() },
      { caller: 'bc', version: again.record.newVersion!, lastRead: new Date() },
    ]);
    expect(remember((await advanceOne(runner, seeded.name))!)).toMatchObject({
      id: again.record.id,
      state: 'retired',
      oldPassword: 'removed',
    });
    const after = azure.graph.passwordCredentials(seeded.app.objectId);
    expect(after.map((p) => p.displayName)).toEqual([`secret-broker ${again.record.id}`]);
    await latestValue(seeded.name);
  });

  it.each([
    ['72 h after the new version', undefined, 72],
    ['a day before the old version expires', 30, 6],
  ])('retires at the deadline, %s, when a caller never moves', async (_label, expiresInHours, deadlineHours) => {
    const seeded = seedSecret(expiresInHours === undefined ? {} : { expiresInHours });
    const h = harness();
    const runner = new RotationRunner(h.deps);
    const stillReading = (): void => h.adoption.set(seeded.name, [{ caller: 'legacy', version: seeded.version, lastRead: h.deps.now!() }]);
    stillReading();
    const started = await runner.start(ALIAS, seeded.name, 'manual');
    if (started.outcome === 'refused') throw new Error('refused');
    const record = remember(started.record);
    expect(record).toMatchObject({ state: 'awaitingAdoption', holders: ['legacy'] });
    const expected =
      expiresInHours === undefined
        ? new Date(record.newVersionCreatedAt!).getTime() + 72 * HOUR
        : new Date(record.oldExpiresOn!).getTime() - 24 * HOUR;
    expect(new Date(record.deadline!).getTime()).toBe(expected);
    expect(Math.abs(expected - Date.now() - deadlineHours * HOUR)).toBeLessThan(HOUR);

    h.clock.offsetMs = expected - Date.now() - 60_000;
    stillReading();
    const waiting = await advanceOne(runner, seeded.name);
    expect(remember(waiting!)).toMatchObject({ state: 'awaitingAdoption', holders: ['legacy'] });
    expect(azure.graph.passwordCredentials(seeded.app.objectId)).toHaveLength(2);

    h.clock.offsetMs = expected - Date.now() + 60_000;
    stillReading();
    const retired = await advanceOne(runner, seeded.name);
    expect(remember(retired!)).toMatchObject({ state: 'retired', retireReason: 'deadline', holders: ['legacy'], oldPassword: 'removed' });
    expect(azure.graph.passwordCredentials(seeded.app.objectId).map((p) => p.keyId)).toEqual([record.newKeyId]);
    expect(h.notify.unique('retired', seeded.name)).toEqual([{ version: seeded.version, rotationId: record.id }]);
    await latestValue(seeded.name);
  });

  it('keeps every password when the old one cannot be told apart, and still retires the vault version', async () => {
    const seeded = seedSecret({ value: 'zz-not-the-text-of-any-password' });
    seenSecrets.push('zz-not-the-text-of-any-password');
    const h = harness();
    const started = await new RotationRunner(h.deps).start(ALIAS, seeded.name, 'manual');
    if (started.outcome === 'refused') throw new Error('refused');
    expect(remember(started.record)).toMatchObject({ state: 'retired', oldKeyIdSource: 'unknown', oldPassword: 'kept' });
    expect(started.record.oldKeyId).toBeUndefined();
    expect(azure.graph.passwordCredentials(seeded.app.objectId).map((p) => p.keyId)).toEqual([seeded.oldKeyId, started.record.newKeyId]);
    expect((await versionsOf(seeded.name)).find((v) => v.version === seeded.version)?.enabled).toBe(false);
    await latestValue(seeded.name);
  });
});

describe('refusals and failures', () => {
  it('refuses a secret that is not tagged, starting nothing', async () => {
    azure.keyVault.setSecret(VAULT, 'untagged-secret', 'plain-value-123');
    seenSecrets.push('plain-value-123');
    const h = harness();
    const runner = new RotationRunner(h.deps);
    expect(await runner.start(ALIAS, 'untagged-secret', 'manual')).toEqual({
      outcome: 'refused',
      code: 'NotTagged',
      message: 'The secret is not tagged brokerRotation=entraApp, so the broker does not rotate it.',
    });
    expect(await runner.start(ALIAS, 'no-such-secret', 'manual')).toMatchObject({ outcome: 'refused', code: 'SecretNotFound' });
    expect(await runner.start('other', 'untagged-secret', 'manual')).toMatchObject({ outcome: 'refused', code: 'UnknownVault' });
    expect(await store.list(ALIAS, 'untagged-secret')).toEqual([]);
    expect(azure.graph.requestCount()).toBe(0);
  });

  it('stops as failed with Graph’s code when it lacks permission, with nothing half-done, and resumes once granted', async () => {
    const seeded = seedSecret({ owned: false });
    const h = harness();
    const runner = new RotationRunner(h.deps);
    const started = await runner.start(ALIAS, seeded.name, 'SecretNearExpiry');
    if (started.outcome === 'refused') throw new Error('refused');
    const failed = remember(started.record);
    expect(failed.state).toBe('failed');
    expect(failed.failure).toEqual({
      step: 'newPassword',
      resumeState: 'started',
      service: 'graph',
      code: 'Authorization_RequestDenied',
      status: 403,
      message: 'Insufficient privileges to complete the operation.',
      remedy: expect.stringContaining('Authorization_RequestDenied'),
      at: expect.any(String),
    });
    expect(azure.graph.requestCount({ operation: 'addPassword' })).toBe(0);
    expect(azure.graph.passwordCredentials(seeded.app.objectId).map((p) => p.keyId)).toEqual([seeded.oldKeyId]);
    expect((await versionsOf(seeded.name)).map((v) => v.version)).toEqual([seeded.version]);
    expect(h.notify.calls).toEqual([]);
    expect((await store.active(ALIAS, seeded.name))?.id).toBe(failed.id);

    azure.graph.addOwner(seeded.app.objectId, ROTATOR.principalId);
    const resumed = await advanceOne(runner, seeded.name);
    expect(remember(resumed!)).toMatchObject({ id: failed.id, state: 'retired', oldPassword: 'removed' });
    expect(resumed!.failure).toBeUndefined();
    expect(azure.graph.passwordCredentials(seeded.app.objectId).map((p) => p.displayName)).toEqual([`secret-broker ${failed.id}`]);
    await latestValue(seeded.name);
  });

  it('refuses to add a third password, deleting none it did not add', async () => {
    const seeded = seedSecret({ passwords: 2 });
    const h = harness();
    const started = await new RotationRunner(h.deps).start(ALIAS, seeded.name, 'manual');
    if (started.outcome === 'refused') throw new Error('refused');
    expect(remember(started.record)).toMatchObject({
      state: 'failed',
      failure: { step: 'newPassword', service: 'broker', code: 'TooManyPasswords' },
    });
    expect(azure.graph.passwordCredentials(seeded.app.objectId)).toHaveLength(2);
    expect(azure.graph.requestCount({ operation: 'addPassword' })).toBe(0);
    expect(azure.graph.requestCount({ operation: 'removePassword' })).toBe(0);
  });

  it('absorbs Graph’s 429 and 5xx', async () => {
    const seeded = seedSecret();
    const h = harness();
    azure.graph.injectFault({ kind: 'throttle', count: 1, retryAfterSeconds: 0 });
    azure.graph.injectFault({ kind: 'unavailable', count: 1 });
    azure.graph.injectFault({ kind: 'unavailable', count: 1, status: 500 });
    const started = await new RotationRunner(h.deps).start(ALIAS, seeded.name, 'manual');
    if (started.outcome === 'refused') throw new Error('refused');
    expect(remember(started.record)).toMatchObject({ state: 'retired', oldPassword: 'removed' });
    expect(azure.graph.injectedCount()).toBe(3);
    expect(azure.graph.requestCount({ status: 429 })).toBe(1);
    expect(azure.graph.requestCount({ status: 503 }) + azure.graph.requestCount({ status: 500 })).toBe(2);
    expect(azure.graph.requestCount({ operation: 'addPassword', status: 200 })).toBe(1);
    expect(azure.graph.passwordCredentials(seeded.app.objectId).map((p) => p.keyId)).toEqual([started.record.newKeyId]);
    await latestValue(seeded.name);
  });

  it('lets one of two runs racing to start the same secret rotate it', async () => {
    const seeded = seedSecret();
    const [a, b] = await Promise.all([
      new RotationRunner(harness().deps).start(ALIAS, seeded.name, 'manual'),
      new RotationRunner(harness().deps).start(ALIAS, seeded.name, 'SecretNearExpiry'),
    ]);
    expect([a.outcome, b.outcome].sort()).toEqual(['resumed', 'started']);
    const ids = [a, b].map((x) => (x.outcome === 'refused' ? '' : x.record.id));
    expect(ids[0]).toBe(ids[1]);
    expect(azure.graph.requestCount({ operation: 'addPassword', status: 200 })).toBe(1);
    expect(await store.list(ALIAS, seeded.name)).toHaveLength(1);
    await latestValue(seeded.name);
  });
});

// ---------------------------------------------------------------- crashes

class Crash extends Error {
  override readonly name = 'Crash';
}

/**
 * Wraps every port the runner uses. Call number `crashAt` is made and then the "process dies":
 * that call and every later one throws {@link Crash}, so nothing more is done or persisted.
 */
function crashingPorts(
  deps: RotationRunnerDeps,
  crashAt: number,
  onCall: (label: string) => void,
): { deps: RotationRunnerDeps; calls: () => number; crashedAt: () => string | undefined } {
  let n = 0;
  let dead: string | undefined;
  const wrap = <T extends object>(name: string, target: T): T =>
    new Proxy(target, {
      get(t, prop, receiver) {
        const value: unknown = Reflect.get(t, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const label = `${name}.${String(prop)}`;
          if (dead) throw new Crash(`after ${dead}`);
          n++;
          onCall(label);
          if (n === crashAt) {
            dead = label;
            if (label.endsWith('listPropertiesOfSecretVersions')) throw new Crash(label);
            const result = (value as (...a: unknown[]) => unknown).apply(t, args);
            return Promise.resolve(result).then(() => {
              throw new Crash(label);
            });
          }
          return (value as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
  const vault = deps.vaults.get(ALIAS)!;
  return {
    deps: {
      ...deps,
      graph: wrap('graph', deps.graph),
      vaults: new Map([[ALIAS, wrap('vault', vault)]]),
      store: wrap('store', deps.store),
      adoption: wrap('adoption', deps.adoption),
      notify: wrap('notify', deps.notify),
      refresh: wrap('refresh', { refresh: deps.refresh }).refresh,
    },
    calls: () => n,
    crashedAt: () => dead,
  };
}

describe('a crash between any two steps', () => {
  it('resumes on the rerun with no second password and no skipped step', async () => {
    // A clean run counts the port calls.
    const clean = seedSecret();
    const counted = crashingPorts(harness().deps, Number.POSITIVE_INFINITY, () => undefined);
    const cleanRun = await new RotationRunner(counted.deps).start(ALIAS, clean.name, 'manual');
    expect(cleanRun.outcome === 'started' && cleanRun.record.state).toBe('retired');
    await latestValue(clean.name);
    const total = counted.calls();
    expect(total).toBeGreaterThan(15);
    let lostTextRuns = 0;

    for (let crashAt = 1; crashAt <= total; crashAt++) {
      const seeded = seedSecret();
      const h = harness();
      const labels: string[] = [];
      let maxPasswords = 0;
      const watch = (label: string): void => {
        labels.push(label);
        maxPasswords = Math.max(maxPasswords, azure.graph.passwordCredentials(seeded.app.objectId).length);
      };
      const crashing = crashingPorts(h.deps, crashAt, watch);
      const first = await new RotationRunner(crashing.deps).start(ALIAS, seeded.name, 'manual').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(first).toBeInstanceOf(Crash);
      emitted.push(String(first), inspect(first));
      const crashedAt = crashing.crashedAt();

      // The rerun: a timer's advanceAll, or a new start when nothing was persisted; it comes after the
      // crashed run's lease has expired (before, it would find the rotation held and leave it as is).
      h.clock.offsetMs += LEASE_MS + 1_000;
      const rerun = crashingPorts(h.deps, Number.POSITIVE_INFINITY, watch);
      const runner = new RotationRunner(rerun.deps);
      const active = (await store.listActive()).filter((r) => r.secret === seeded.name);
      if (active.length > 0) await runner.advanceAll();
      if ((await store.list(ALIAS, seeded.name)).length === 0) await runner.start(ALIAS, seeded.name, 'manual');

      const records = await store.list(ALIAS, seeded.name);
      const context = `crash after call ${crashAt} (${crashedAt})`;
      expect({ context, count: records.length }).toEqual({ context, count: 1 });
      const record = remember(records[0]!);
      // A crash right after the old password's removal finds it gone on the rerun: done, not removed twice.
      const oldPassword = crashedAt === 'graph.removePassword' && record.oldPassword === 'alreadyGone' ? 'alreadyGone' : 'removed';
      expect({ context, state: record.state, oldPassword: record.oldPassword }).toEqual({ context, state: 'retired', oldPassword });
      for (const field of ['announcedAt', 'retiringAt', 'passwordRemovedAt', 'oldVersionDisabledAt', 'retiredAt'] as const) {
        expect({ context, field, set: typeof record[field] }).toEqual({ context, field, set: 'string' });
      }
      // Graph: the new password alone, holding the vault's latest value; never more than two at once.
      const passwords = azure.graph.passwordCredentials(seeded.app.objectId);
      expect({ context, passwords: passwords.map((p) => p.displayName) }).toEqual({ context, passwords: [record.displayName] });
      const latest = await latestValue(seeded.name);
      expect({ context, matches: azure.graph.secretMatches(seeded.app.objectId, passwords[0]!.keyId, latest.value) }).toEqual({
        context,
        matches: true,
      });
      expect({ context, maxPasswords: maxPasswords <= 2 }).toEqual({ context, maxPasswords: true });
      // A second add happens only when the text was lost: the crash came right after addPassword (or its record).
      const adds = labels.filter((l) => l === 'graph.addPassword').length;
      const lostText = crashedAt === 'graph.addPassword' || (crashedAt === 'store.save' && labels[crashAt - 2] === 'graph.addPassword');
      expect({ context, adds }).toEqual({ context, adds: lostText ? 2 : 1 });
      if (lostText) lostTextRuns++;
      // Key Vault: one new version, the old one disabled.
      const versions = await versionsOf(seeded.name);
      expect({ context, versions: versions.length, oldEnabled: versions.find((v) => v.version === seeded.version)?.enabled }).toEqual({
        context,
        versions: 2,
        oldEnabled: false,
      });
      // The old password went before the old version was disabled.
      const removeAt = labels.lastIndexOf('graph.removePassword');
      const disableAt = labels.lastIndexOf('vault.updateSecretProperties');
      expect({ context, order: removeAt >= 0 && removeAt < disableAt }).toEqual({ context, order: true });
      // Consumers: each notification once per rotation after deduplication, never for another version.
      expect({ context, rotated: h.notify.unique('rotated', seeded.name) }).toEqual({
        context,
        rotated: [{ version: latest.version, rotationId: record.id }],
      });
      expect({ context, retired: h.notify.unique('retired', seeded.name) }).toEqual({
        context,
        retired: [{ version: seeded.version, rotationId: record.id }],
      });
      expect({
        context,
        refreshed: h.refreshed.every((r) => r === `${ALIAS}/${seeded.name}/${latest.version}`) && h.refreshed.length > 0,
      }).toEqual({ context, refreshed: true });
    }
    // Both windows where the text is lost were hit: after addPassword, and after its record.
    expect(lostTextRuns).toBe(2);
  }, 240_000);
});

describe('secrets', () => {
  it('never puts a secret text or value into a record, log line, notification or error', async () => {
    const client = createTableClient(azure.azurite.connectionString, ROTATION_TABLE);
    for await (const row of client.listEntities()) emitted.push(JSON.stringify(row));
    expect(seenSecrets.length).toBeGreaterThan(40);
    expect(emitted.length).toBeGreaterThan(100);
    expect(emitted.some((line) => line.includes('-> stored'))).toBe(true);
    const leaks = emitted.filter((text) => seenSecrets.some((secret) => secret.length > 0 && text.includes(secret)));
    expect(leaks).toEqual([]);
  });
});
