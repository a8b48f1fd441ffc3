/**
 * The rotation runner with small fakes of its ports (an application's passwords, a secret's versions)
 * and the in-memory store: the cases the end-to-end test (test/e2e/rotationEngine.test.ts) does not
 * reach with the emulators.
 */
import { RestError } from '@azure/core-rest-pipeline';
import { GraphError, type AddedPassword, type GraphApplication } from '../../shared/graph/graphClient';
import { RotationRunner, type RotationGraph, type RotationRunnerDeps, type RotationVault } from '../../shared/rotation/rotationRunner';
import { ADOPTION_SETTLE_MS } from '../../shared/rotation/rotationSteps';
import { createMemoryRotationStore, type RotationStore } from '../../shared/rotation/tableRotationStore';

const APP = '0f0f0f0f-1111-4222-8333-444455556666';
const T0 = new Date('2026-03-01T10:00:00.000Z');

class FakeGraph implements RotationGraph {
  passwords: Array<{ keyId: string; displayName: string | null; hint: string; text: string; endDateTime: string }> = [];
  most = 0;
  next = 0;
  removeAnswers400 = false;
  getApplication(id: string): Promise<GraphApplication> {
    return Promise.resolve({
      id,
      appId: 'app',
      displayName: 'app',
      passwordCredentials: this.passwords.map((p) => ({
        keyId: p.keyId,
        displayName: p.displayName,
        hint: p.hint,
        startDateTime: null,
        endDateTime: p.endDateTime,
      })),
    });
  }
  addPassword(_id: string, p: { displayName: string; endDateTime: Date | string }): Promise<AddedPassword> {
    const text = `text-${++this.next}-0123456789`;
    const end = typeof p.endDateTime === 'string' ? p.endDateTime : p.endDateTime.toISOString();
    const keyId = `00000000-0000-4000-8000-00000000000${this.next}`;
    this.passwords.push({ keyId, displayName: p.displayName, hint: text.slice(0, 3), text, endDateTime: end });
    this.most = Math.max(this.most, this.passwords.length);
    const added = { keyId, displayName: p.displayName, hint: text.slice(0, 3), startDateTime: null, endDateTime: end };
    Object.defineProperty(added, 'secretText', { value: text, enumerable: false });
    return Promise.resolve(added as AddedPassword);
  }
  removePassword(_id: string, keyId: string): Promise<void> {
    const before = this.passwords.length;
    this.passwords = this.passwords.filter((p) => p.keyId !== keyId);
    if (this.removeAnswers400 || before === this.passwords.length) {
      return Promise.reject(new GraphError('removePassword', 400, 'Request_BadRequest', 'No password credential found.'));
    }
    return Promise.resolve();
  }
}

class FakeVault {
  versions: Array<{ version: string; value: string; enabled: boolean; tags: Record<string, string>; createdOn: Date; expiresOn?: Date }> =
    [];
  failSet = 0;
  disableAnswers404 = false;
  getSecret(_name: string, opts: { version?: string } = {}) {
    const v = opts.version ? this.versions.find((x) => x.version === opts.version) : this.versions.at(-1);
    if (!v) return Promise.reject(new RestError('Secret not found', { code: 'SecretNotFound', statusCode: 404 }));
    return Promise.resolve({ name: 's', value: v.value, properties: { ...v, name: 's', vaultUrl: 'https://v.vault.azure.net' } });
  }
  setSecret(_name: string, value: string, opts: { tags?: Record<string, string>; expiresOn?: Date } = {}) {
    if (this.failSet > 0) {
      this.failSet--;
      return Promise.reject(new RestError('Operation set is not allowed.', { code: 'Forbidden', statusCode: 403 }));
    }
    const v = {
      version: `v${this.versions.length + 1}`,
      value,
      enabled: true,
      tags: opts.tags ?? {},
      createdOn: new Date(T0),
      expiresOn: opts.expiresOn,
    };
    this.versions.push(v);
    return Promise.resolve({ name: 's', value, properties: { ...v, name: 's', vaultUrl: 'https://v.vault.azure.net' } });
  }
  updateSecretProperties(_name: string, version: string, opts: { enabled?: boolean }) {
    if (this.disableAnswers404) return Promise.reject(new RestError('gone', { code: 'SecretNotFound', statusCode: 404 }));
    const v = this.versions.find((x) => x.version === version)!;
    v.enabled = opts.enabled ?? v.enabled;
    return Promise.resolve({ ...v, name: 's', vaultUrl: 'https://v.vault.azure.net' });
  }
  listPropertiesOfSecretVersions() {
    const list = this.versions.map((v) => ({ ...v, name: 's', vaultUrl: 'https://v.vault.azure.net' }));
    return (async function* () {
      for (const v of list) yield await Promise.resolve(v);
    })();
  }
}

function setup(): { graph: FakeGraph; vault: FakeVault; store: RotationStore; deps: RotationRunnerDeps; logs: string[] } {
  const graph = new FakeGraph();
  const vault = new FakeVault();
  const initial = {
    keyId: '00000000-0000-4000-8000-0000000000aa',
    displayName: 'hand-made',
    hint: 'old',
    text: 'old-text-value',
    endDateTime: '2026-04-01T00:00:00Z',
  };
  graph.passwords.push(initial);
  vault.versions.push({
    version: 'v0',
    value: initial.text,
    enabled: true,
    tags: { brokerRotation: 'entraApp', entraAppObjectId: APP },
    createdOn: T0,
  });
  const store = createMemoryRotationStore();
  const logs: string[] = [];
  const deps: RotationRunnerDeps = {
    graph,
    vaults: new Map([['default', vault as unknown as RotationVault]]),
    store,
    adoption: { read: () => Promise.resolve([]) },
    notify: { rotated: () => Promise.resolve(), retired: () => Promise.resolve() },
    refresh: () => Promise.resolve(),
    settings: { adoptionWindowHours: 72, retireAfterHours: 72 },
    targets: new Map([['default/s', APP]]),
    // A settle time after the versions the fake vault writes (at T0): "every caller moved" is believed at once.
    now: () => new Date(T0.getTime() + ADOPTION_SETTLE_MS),
    log: (l) => logs.push(l),
    randomHex: () => 'abc123',
  };
  return { graph, vault, store, deps, logs };
}

describe('RotationRunner', () => {
  it('stops as failed at the write when Key Vault refuses, and on retry replaces the password whose text is lost', async () => {
    const { graph, vault, deps, logs } = setup();
    vault.failSet = 1;
    const runner = new RotationRunner(deps);
    const first = await runner.start('default', 's', 'manual');
    if (first.outcome === 'refused') throw new Error('refused');
    expect(first.record).toMatchObject({
      state: 'failed',
      failure: { step: 'newPassword', resumeState: 'passwordAdded', service: 'keyVault', code: 'Forbidden', status: 403 },
    });
    expect(graph.passwords.map((p) => p.displayName)).toEqual(['hand-made', 'secret-broker rot-20260301T100100Z-abc123']);

    const [retried] = await runner.advanceAll();
    expect(retried).toMatchObject({ state: 'retired', oldPassword: 'removed', failure: undefined });
    expect(graph.most).toBe(2);
    expect(graph.passwords.map((p) => p.keyId)).toEqual([retried!.newKeyId]);
    expect(vault.versions.at(-1)!.value).toBe(graph.passwords[0]!.text);
    for (const p of [...graph.passwords, { text: 'text-1-0123456789' }]) {
      expect(JSON.stringify(retried)).not.toContain(p.text);
      expect(logs.join('\n')).not.toContain(p.text);
    }
    expect(logs).toContain('rotation rot-20260301T100100Z-abc123 default/s: failed at newPassword: keyVault Forbidden');
  });

  it('counts an old password already gone and an old version already deleted as done', async () => {
    const { graph, vault, deps } = setup();
    graph.removeAnswers400 = true;
    vault.disableAnswers404 = true;
    graph.passwords[0]!.keyId = 'vanishes';
    const original = graph.removePassword.bind(graph);
    let removed = 0;
    graph.removePassword = (id, keyId) => {
      removed++;
      // Another hand removed it between the check and the call.
      graph.passwords = graph.passwords.filter((p) => p.keyId !== keyId);
      return original(id, keyId);
    };
    const result = await new RotationRunner(deps).start('default', 's', 'manual');
    if (result.outcome === 'refused') throw new Error('refused');
    expect(result.record).toMatchObject({ state: 'retired', oldKeyIdSource: 'hint', oldKeyId: 'vanishes', oldPassword: 'alreadyGone' });
    expect(removed).toBe(1);
  });

  it('removes a duplicate of its own password (an add Graph committed before a retried 5xx) at retirement', async () => {
    const { graph, deps } = setup();
    const add = graph.addPassword.bind(graph);
    graph.addPassword = async (id, p) => {
      await add(id, p);
      return add(id, p);
    };
    const result = await new RotationRunner(deps).start('default', 's', 'manual');
    if (result.outcome === 'refused') throw new Error('refused');
    expect(result.record.state).toBe('retired');
    expect(graph.passwords.map((p) => p.keyId)).toEqual([result.record.newKeyId]);
  });

  it('refuses a vault alias it has no writer for, starting nothing', async () => {
    const { deps, store } = setup();
    expect(await new RotationRunner(deps).start('partner', 's', 'manual')).toEqual({
      outcome: 'refused',
      code: 'UnknownVault',
      message: 'No vault writer for alias "partner".',
    });
    expect(await store.listActive()).toEqual([]);
  });

  it('lets one rotation’s trouble stop no other in advanceAll', async () => {
    const { deps, store, logs } = setup();
    const runner = new RotationRunner({
      ...deps,
      adoption: {
        read: () =>
          Promise.resolve([
            { vault: 'default', secret: 's', caller: 'erp', version: 'v0', since: T0.toISOString(), lastRead: T0.toISOString() },
          ]),
      },
    });
    const started = await runner.start('default', 's', 'manual');
    if (started.outcome === 'refused') throw new Error('refused');
    expect(started.record.state).toBe('awaitingAdoption');
    const stale = { ...started.record, etag: 'W/"stale"', id: started.record.id };
    const broken = { ...deps, store: { ...store, listActive: () => Promise.resolve([stale, started.record]) } };
    const out = await new RotationRunner(broken).advanceAll();
    // The callers moved (deps' adoption is empty): the stale copy loses its first save, the current one retires.
    expect(out.map((r) => [r.id, r.state])).toEqual([[started.record.id, 'retired']]);
    expect(logs.some((l) => l.endsWith('moved on by another run'))).toBe(true);
  });

  describe('ROTATION_TARGETS (the tags alone never choose an application)', () => {
    const OTHER = '0a0a0a0a-1111-4222-8333-444455556666';
    it.each([
      [
        'no secret is listed (deny by default)',
        new Map<string, string>(),
        /ROTATION_TARGETS lists no secret, so none rotates \(deny by default\)/,
      ],
      [
        'the secret is not listed',
        new Map([['default/other', APP]]),
        /Secret default\/s is not listed in ROTATION_TARGETS: add "default\/s"/,
      ],
      ['the tag names another application', new Map([['default/s', OTHER]]), /ROTATION_TARGETS lists 0a0a0a0a-/],
    ])('refuses, starting nothing and adding no password, when %s', async (_label, targets, message) => {
      const { graph, store, deps } = setup();
      const result = await new RotationRunner({ ...deps, targets }).start('default', 's', 'SecretNearExpiry');
      expect(result).toMatchObject({ outcome: 'refused', code: 'NotATarget', message: expect.stringMatching(message) as unknown });
      expect(await store.listActive()).toEqual([]);
      expect(graph.next).toBe(0);
    });

    it('matches the secret name case-insensitively', async () => {
      const { deps } = setup();
      const result = await new RotationRunner(deps).start('default', 'S', 'manual');
      expect(result.outcome).toBe('started');
    });
  });

  it('keeps the old password an entraKeyId tag names when its hint is not the old value’s', async () => {
    const { graph, vault, deps } = setup();
    const handMade = graph.passwords[0]!.keyId;
    // The tag names a password of the application, but the old value is not that password's text.
    vault.versions[0]!.tags = { ...vault.versions[0]!.tags, entraKeyId: handMade };
    vault.versions[0]!.value = 'zzz-another-value';
    const result = await new RotationRunner(deps).start('default', 's', 'manual');
    if (result.outcome === 'refused') throw new Error('refused');
    expect(result.record).toMatchObject({ state: 'retired', oldKeyIdSource: 'unknown', oldPassword: 'kept' });
    expect(graph.passwords.map((p) => p.keyId)).toEqual([handMade, result.record.newKeyId]);
    expect(JSON.stringify(result.record)).not.toContain('zzz-another-value');
  });

  it('removes the old password an entraKeyId tag names when its hint is the old value’s', async () => {
    const { graph, vault, deps } = setup();
    const handMade = graph.passwords[0]!.keyId;
    vault.versions[0]!.tags = { ...vault.versions[0]!.tags, entraKeyId: handMade };
    const result = await new RotationRunner(deps).start('default', 's', 'manual');
    if (result.outcome === 'refused') throw new Error('refused');
    expect(result.record).toMatchObject({ state: 'retired', oldKeyIdSource: 'tag', oldKeyId: handMade, oldPassword: 'removed' });
  });

  it('resumes, and does not start a second rotation, when the same secret is named in another case', async () => {
    const { graph, store, deps } = setup();
    const holding = {
      read: () =>
        Promise.resolve([
          { vault: 'default', secret: 's', caller: 'erp', version: 'v0', since: T0.toISOString(), lastRead: T0.toISOString() },
        ]),
    };
    const runner = new RotationRunner({ ...deps, adoption: holding });
    const first = await runner.start('default', 's', 'SecretNearExpiry');
    if (first.outcome === 'refused') throw new Error('refused');
    expect(first.record.state).toBe('awaitingAdoption');
    const again = await runner.start('default', 'S', 'manual');
    expect(again).toMatchObject({ outcome: 'resumed', record: { id: first.record.id } });
    expect(graph.next).toBe(1);
    expect((await store.listActive()).map((r) => r.id)).toEqual([first.record.id]);
  });

  describe('the lease on a record', () => {
    it('lets only one of two runs advancing the same rotation at once add a password', async () => {
      const { graph, store, deps } = setup();
      const add = graph.addPassword.bind(graph);
      let entered!: () => void;
      const inAdd = new Promise<void>((resolve) => (entered = resolve));
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      graph.addPassword = async (id, p) => {
        entered();
        await gate;
        return add(id, p);
      };
      const first = new RotationRunner(deps).start('default', 's', 'manual');
      await inAdd;
      // The second run (a timer, an operator, a redelivered event) reads the record while the first is adding.
      const second = new RotationRunner(deps);
      const viaStart = await second.start('default', 's', 'SecretNearExpiry');
      const viaTimer = await second.advanceAll();
      expect(viaStart).toMatchObject({ outcome: 'resumed', record: { state: 'started' } });
      expect(viaTimer.map((r) => r.state)).toEqual(['started']);
      release();
      const done = await first;
      if (done.outcome === 'refused') throw new Error('refused');
      expect(done.record.state).toBe('retired');
      expect(graph.next).toBe(1);
      expect(done.record.claimedBy).toBeUndefined();
      expect((await store.get('default', 's', done.record.id))?.claimedBy).toBeUndefined();
    });

    it('takes over a lease that expired (its run crashed) and resumes the rotation', async () => {
      const { graph, store, deps } = setup();
      const runner = new RotationRunner({ ...deps, adoption: { read: () => Promise.reject(new Error('storage down')) } });
      await expect(runner.start('default', 's', 'manual')).rejects.toThrow('storage down');
      const [active] = await store.listActive();
      const now = deps.now!();
      const held = await store.save({ ...active!, claimedBy: 'crashed-run', claimedUntil: new Date(now.getTime() + 60_000).toISOString() });
      // Still held: nothing happens.
      expect(await new RotationRunner(deps).advance(held)).toBe(held);
      const expired = await store.save({ ...held, claimedUntil: new Date(now.getTime() - 1).toISOString() });
      const done = await new RotationRunner(deps).advance(expired);
      expect(done).toMatchObject({ state: 'retired', oldPassword: 'removed' });
      expect(graph.next).toBe(1);
    });
  });
});
