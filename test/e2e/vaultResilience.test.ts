/**
 * End to end, in the jest process: real runtimes (createRuntime, real SDK clients over HTTPS) against
 * the Key Vault emulator and one shared Azurite. A rotation costs each instance one vault read; a
 * throttled or failing vault is waited out within the deadline, and only past it does the caller
 * get 429 VaultThrottled with Retry-After.
 */
import { randomBytes } from 'node:crypto';
import type { Caller } from '../../shared/callers/accessPolicy';
import { VaultThrottledError } from '../../shared/errors';
import { handleSecretEvent } from '../../shared/events/handleSecretEvent';
import type { Runtime, RuntimeOptions } from '../../shared/runtime';
import type { InProcessFleet } from '../support/inProcessFleet';
import { startInProcessFleet } from '../support/inProcessFleet';
import { newVersionEvent } from '../support/keyVaultEvents';

const VAULT = 'resilience-vault';
const caller: Caller = { name: 'app', operator: false, method: 'apiKey', requestsPerMinute: 6000, missesPerMinute: 100 };
const audit = { record: (): void => undefined };
const log = (): void => undefined;

let fleet: InProcessFleet;
let azure: InProcessFleet['azure'];

beforeAll(async () => {
  fleet = await startInProcessFleet(VAULT);
  azure = fleet.azure;
});

afterAll(async () => {
  await fleet?.stop();
});

afterEach(() => azure.keyVault.clearFaults());

function runtime(options: RuntimeOptions): Runtime {
  return fleet.runtime(options);
}

/** A runtime whose client has met the vault's auth challenge, so every later request is one counted GET. */
async function warmRuntime(options: RuntimeOptions): Promise<Runtime> {
  const built = runtime(options);
  azure.keyVault.setSecret(VAULT, 'warm-up', 'warm');
  await resolve(built, 'warm-up');
  return built;
}

async function resolve(r: Runtime, name: string): Promise<string> {
  return (await r.resolver.resolve(caller, { name }, audit)).secret.value;
}

function gets(name: string): number {
  return fleet.gets(name);
}

/** Resolves `name` on `r` and counts the vault reads it cost. */
async function readBy(r: Runtime, name: string): Promise<{ value: string; reads: number }> {
  const before = gets(name);
  const value = await resolve(r, name);
  return { value, reads: gets(name) - before };
}

describe('one rotation, one read per instance', () => {
  it('costs each instance exactly one vault read, also after the coherence rows came back and a redelivery', async () => {
    const name = 'rotated-secret';
    azure.keyVault.setSecret(VAULT, name, 'v1');
    const a = runtime({ instanceId: 'instance-a' });
    const b = runtime({ instanceId: 'instance-b' });
    expect(await resolve(a, name)).toBe('v1');
    expect(await resolve(b, name)).toBe('v1');
    expect(await readBy(b, name)).toEqual({ value: 'v1', reads: 0 });

    const { version } = azure.keyVault.setSecret(VAULT, name, 'v2');
    const event = newVersionEvent(azure.keyVault, VAULT, name, version, 'rotation-event-1');
    expect(await handleSecretEvent(event, a.events(), log)).toMatchObject({ outcome: 'handled' });
    expect(await readBy(a, name)).toEqual({ value: 'v2', reads: 1 });

    // A skips its own row; B drops v1 and reads v2 once.
    expect(await a.pollCoherence()).toBe(0);
    await b.pollCoherence();
    expect(await readBy(b, name)).toEqual({ value: 'v2', reads: 1 });
    expect(await readBy(a, name)).toEqual({ value: 'v2', reads: 0 });

    // Event Grid delivers the same event again: nobody drops v2, nobody reads.
    expect(await handleSecretEvent(event, a.events(), log)).toMatchObject({ outcome: 'handled' });
    await a.pollCoherence();
    await b.pollCoherence();
    expect(await readBy(a, name)).toEqual({ value: 'v2', reads: 0 });
    expect(await readBy(b, name)).toEqual({ value: 'v2', reads: 0 });
  });
});

describe('a throttled vault answered within the deadline', () => {
  it('waits out Retry-After for callers with nothing cached; concurrent misses for one key cost one call per attempt', async () => {
    const r = await warmRuntime({ instanceId: 'throttled' });
    azure.keyVault.setSecret(VAULT, 'throttled-secret', 'patient');
    azure.keyVault.setFault({ kind: 'status', status: 429, retryAfterSeconds: 1, times: 2 }, VAULT);
    const before = gets('throttled-secret');
    const started = Date.now();
    const values = await Promise.all(Array.from({ length: 10 }, () => resolve(r, 'throttled-secret')));
    expect(values).toEqual(Array<string>(10).fill('patient'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(gets('throttled-secret') - before).toBe(3);
  });

  it('backs off where no Retry-After is sent: a 503 and a reset connection are waited out too', async () => {
    const r = await warmRuntime({ instanceId: 'failing' });
    azure.keyVault.setSecret(VAULT, 'failing-secret', 'eventually');
    azure.keyVault.setFault({ kind: 'reset', times: 1 }, VAULT);
    azure.keyVault.setFault({ kind: 'status', status: 503, times: 1 }, VAULT);
    const started = Date.now();
    expect(await readBy(r, 'failing-secret')).toEqual({ value: 'eventually', reads: 3 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250 + 500);
  });

  it('answers 429 VaultThrottled with Retry-After at once when the wait would pass the deadline, for every key of the vault', async () => {
    const r = await warmRuntime({ instanceId: 'impatient', vaultDeadlineMs: 500 });
    azure.keyVault.setSecret(VAULT, 'impatient-secret', 'never-seen');
    azure.keyVault.setSecret(VAULT, 'other-secret', 'never-seen');
    azure.keyVault.setFault({ kind: 'status', status: 429, retryAfterSeconds: 2, times: 1 }, VAULT);
    const before = gets('impatient-secret');
    const err = await resolve(r, 'impatient-secret').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultThrottledError);
    expect(err).toMatchObject({ status: 429, code: 'VaultThrottled' });
    expect(err).toMatchObject({ retryAfterSeconds: 2 });
    expect(gets('impatient-secret') - before).toBe(1);
    // The vault is paused for every key: another one fails at once without asking it.
    const otherBefore = gets('other-secret');
    await expect(resolve(r, 'other-secret')).rejects.toMatchObject({ code: 'VaultThrottled' });
    expect(gets('other-secret') - otherBefore).toBe(0);
  });
});

describe("pinned versions answered from the name's version list", () => {
  it('answers unknown versions from one paged listing, reads listed ones, and finds a new version at once after its event', async () => {
    const r = await warmRuntime({ instanceId: 'versions' });
    const name = 'many-versions';
    // 30 versions: Key Vault lists 25 a page, so one listing is two requests (nextLink).
    const versions = Array.from({ length: 30 }, (_, i) => azure.keyVault.setSecret(VAULT, name, `v${i}`).version);
    const count = (path: string): number => azure.keyVault.requestCount({ vault: VAULT, method: 'GET', path });
    const before = { listings: count(`/secrets/${name}/versions`), all: azure.keyVault.requestCount({ vault: VAULT }) };

    for (let i = 0; i < 50; i++) {
      const version = randomBytes(16).toString('hex');
      await expect(r.resolver.resolve(caller, { name, version }, audit)).rejects.toMatchObject({
        status: 404,
        code: 'SecretNotFound',
        message: `No version "${version}" of secret "${name}" in vault "default"`,
      });
    }
    expect(count(`/secrets/${name}/versions`) - before.listings).toBe(2);
    expect(azure.keyVault.requestCount({ vault: VAULT }) - before.all).toBe(2);

    // A listed version, the oldest (on the first page) and the newest (on the second), is read as before.
    const oldest = versions[0] as string;
    const newest = versions[29] as string;
    expect((await r.resolver.resolve(caller, { name, version: oldest }, audit)).secret.value).toBe('v0');
    expect((await r.resolver.resolve(caller, { name, version: newest }, audit)).secret.value).toBe('v29');
    expect(count(`/secrets/${name}/${oldest}`) + count(`/secrets/${name}/${newest}`)).toBe(2);

    // A new version, announced: the event drops the list, and the version is found at once.
    const { version: added } = azure.keyVault.setSecret(VAULT, name, 'v30');
    expect(await handleSecretEvent(newVersionEvent(azure.keyVault, VAULT, name, added, 'versions-event-1'), r.events(), log)).toMatchObject(
      {
        outcome: 'handled',
      },
    );
    expect((await r.resolver.resolve(caller, { name, version: added }, audit)).secret.value).toBe('v30');
    expect(count(`/secrets/${name}/versions`) - before.listings).toBe(4);
  });
});
