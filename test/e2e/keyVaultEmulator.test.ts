/**
 * Drives the real @azure/keyvault-secrets SecretClient and the real DefaultAzureCredential
 * (App Service managed identity via IDENTITY_ENDPOINT/IDENTITY_HEADER) against the local
 * emulators, through the CONNECT proxy, with the dev certificate trusted in-process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity';
import { SecretClient, isRestError, type RestError } from '@azure/keyvault-secrets';
import { createDevCertificate } from '../../local/emulators/devCertificate';
import { managedIdentityToken, rawHttps, useLocalAzureInProcess } from '../support/inProcessAzure';
import { startLocalAzure, type LocalAzure } from '../../local/emulators/localAzure';
import { EMULATOR_PRINCIPAL_ID } from '../../local/emulators/managedIdentityEndpoint';
import { restError } from '../support/restError';

const VAULT = 'contoso';
const OTHER = 'fabrikam';

/** Variables that would steer DefaultAzureCredential or the proxy policy elsewhere. */

let azure: LocalAzure;
let stateDir: string;
let restoreProcess: (() => void) | undefined;
let credential: DefaultAzureCredential;
let client: SecretClient;

function newClient(vault: string, options: ConstructorParameters<typeof SecretClient>[2] = {}): SecretClient {
  return new SecretClient(azure.keyVault.vaultUri(vault), credential, options);
}

/** Inner error code as the generated client exposes it (err.details, camelCase innerError). */
function innerCode(err: RestError): string | undefined {
  return (err.details as { error?: { innerError?: { code?: string } } } | undefined)?.error?.innerError?.code;
}

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(os.tmpdir(), 'kv-emulator-'));
  azure = await startLocalAzure({ stateDir, vaults: [VAULT, OTHER] });
  restoreProcess = useLocalAzureInProcess(azure);
  credential = new DefaultAzureCredential();
  client = newClient(VAULT);
});

afterAll(async () => {
  await azure?.stop();
  restoreProcess?.();
  rmSync(stateDir, { recursive: true, force: true });
});

afterEach(() => {
  azure.keyVault.clearFaults();
  azure.identity.setFailure(null);
});

describe('authentication', () => {
  it('answers the first request with a challenge, then accepts the managed-identity token', async () => {
    const tokensBefore = azure.identity.tokenRequests();
    const fresh = newClient(VAULT);
    const set = await fresh.setSecret('alpha', 'v1', { contentType: 'text/plain', tags: { owner: 'erp' } });
    // The challenge policy strips the body of the first request and sends it without a token.
    expect(azure.keyVault.requestCount({ method: 'PUT', path: '/secrets/alpha' })).toBe(2);
    expect(azure.identity.tokenRequests()).toBeGreaterThan(tokensBefore);
    expect(set.properties.version).toMatch(/^[0-9a-f]{32}$/);
    expect(set.properties.vaultUrl).toBe('https://contoso.vault.azure.net');
    const got = await fresh.getSecret('alpha');
    expect(got.value).toBe('v1');
    expect(got.properties).toMatchObject({
      name: 'alpha',
      contentType: 'text/plain',
      tags: { owner: 'erp' },
      enabled: true,
      recoveryLevel: 'Recoverable+Purgeable',
      recoverableDays: 90,
    });
    expect(got.properties.createdOn).toBeInstanceOf(Date);
  });

  it('sends the Key Vault challenge and error body on the wire, accepts 7.x api-versions, 404s unknown vaults', async () => {
    const unauth = await rawHttps(
      azure,
      { port: azure.keyVault.port, host: `${VAULT}.vault.azure.net` },
      'GET',
      '/secrets/alpha?api-version=2025-07-01',
    );
    expect(unauth.status).toBe(401);
    expect(unauth.headers['www-authenticate']).toMatch(
      /^Bearer authorization="https:\/\/login\.microsoftonline\.com\/[0-9a-f-]{36}", resource="https:\/\/vault\.azure\.net"$/,
    );
    expect(JSON.parse(unauth.body)).toEqual({
      error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' },
    });

    const token = await managedIdentityToken(azure, 'https://vault.azure.net');
    const old = await rawHttps(
      azure,
      { port: azure.keyVault.port, host: `${VAULT}.vault.azure.net` },
      'GET',
      '/secrets/alpha/?api-version=7.4',
      { authorization: `Bearer ${token}` },
    );
    expect(old.status).toBe(200);
    expect(JSON.parse(old.body)).toMatchObject({ value: 'v1', attributes: { enabled: true } });

    const forged = await rawHttps(
      azure,
      { port: azure.keyVault.port, host: `${VAULT}.vault.azure.net` },
      'GET',
      '/secrets/alpha?api-version=7.4',
      {
        authorization: `Bearer ${token.slice(0, -4)}AAAA`,
      },
    );
    expect(forged.status).toBe(401);

    const unknown = await rawHttps(
      azure,
      { port: azure.keyVault.port, host: 'nope.vault.azure.net' },
      'GET',
      '/secrets/alpha?api-version=7.4',
      { authorization: `Bearer ${token}` },
    );
    expect(unknown.status).toBe(404);
  });

  it('surfaces an identity endpoint failure as an AggregateAuthenticationError from DefaultAzureCredential', async () => {
    // msal-node caches managed-identity tokens process-wide; a user-assigned client id forces a new request.
    process.env['AZURE_CLIENT_ID'] = '9a4c1f0e-2b7d-4e3a-8c6f-5d1e0b9a7c21';
    try {
      const failingCredential = new DefaultAzureCredential();
      azure.identity.setFailure({ status: 400 });
      const before = azure.identity.tokenRequests();
      const err = await new SecretClient(azure.keyVault.vaultUri(VAULT), failingCredential).getSecret('alpha').then(
        () => undefined,
        (e: unknown) => e as Error & { errors?: Error[] },
      );
      expect(azure.identity.tokenRequests()).toBeGreaterThan(before);
      expect(isRestError(err)).toBe(false);
      expect(err?.name).toBe('AggregateAuthenticationError');
      expect(err?.message).toContain('ChainedTokenCredential authentication failed');
      const mi = err?.errors?.find((e) => e.message.startsWith('ManagedIdentityCredential'));
      expect(mi?.name).toBe('CredentialUnavailableError');
      expect(mi?.message).toContain('Emulated managed identity failure (HTTP 400)');

      azure.identity.setFailure(null);
      const recovered = await new SecretClient(azure.keyVault.vaultUri(VAULT), new DefaultAzureCredential()).getSecret('alpha');
      expect(recovered.value).toBe('v1');
    } finally {
      delete process.env['AZURE_CLIENT_ID'];
    }
  });
});

describe('secrets API', () => {
  it('gets a pinned version while latest moves on', async () => {
    const first = await client.setSecret('pinned', 'one');
    await client.setSecret('pinned', 'two');
    expect((await client.getSecret('pinned')).value).toBe('two');
    const old = await client.getSecret('pinned', { version: first.properties.version as string });
    expect(old.value).toBe('one');
    expect(old.properties.version).toBe(first.properties.version);
  });

  it('pages a listing through absolute nextLinks', async () => {
    for (let i = 0; i < 30; i++) azure.keyVault.setSecret(OTHER, `list-${String(i).padStart(2, '0')}`, `value-${i}`);
    const other = newClient(OTHER);
    azure.keyVault.resetCounts();
    const names: string[] = [];
    for await (const props of other.listPropertiesOfSecrets()) names.push(props.name);
    expect(names.sort()).toEqual(Array.from({ length: 30 }, (_, i) => `list-${String(i).padStart(2, '0')}`));
    const defaultPages = azure.keyVault.requestCount({ method: 'GET', path: '/secrets', vault: OTHER });
    expect(defaultPages).toBeGreaterThan(1);

    const sizes: number[] = [];
    for await (const page of other.listPropertiesOfSecrets().byPage({ maxPageSize: 7 })) sizes.push(page.length);
    expect(sizes).toEqual([7, 7, 7, 7, 2]);
  });

  it('lists the versions of a secret without values', async () => {
    const versions = new Set<string>();
    for (const v of ['a', 'b', 'c']) versions.add((await client.setSecret('versioned', v)).properties.version as string);
    const listed: string[] = [];
    for await (const props of client.listPropertiesOfSecretVersions('versioned')) {
      expect(props.name).toBe('versioned');
      listed.push(props.version as string);
    }
    expect(new Set(listed)).toEqual(versions);
  });

  it('updates attributes; a disabled secret is a 403 whose inner code is in err.details', async () => {
    const { properties } = await client.setSecret('toggled', 'secret-value');
    const expiresOn = new Date(Date.now() + 3_600_000);
    const updated = await client.updateSecretProperties('toggled', properties.version as string, {
      enabled: false,
      expiresOn,
      tags: { a: 'b' },
    });
    expect(updated).toMatchObject({ enabled: false, tags: { a: 'b' } });
    expect(updated.expiresOn?.getTime()).toBe(Math.floor(expiresOn.getTime() / 1000) * 1000);

    const err = await restError(client.getSecret('toggled'));
    expect(err.statusCode).toBe(403);
    expect(err.code).toBe('Forbidden');
    expect(err.message).toBe('Operation get is not allowed on a disabled secret.');
    expect(innerCode(err)).toBe('SecretDisabled');

    await client.updateSecretProperties('toggled', properties.version as string, { enabled: true });
    expect((await client.getSecret('toggled')).value).toBe('secret-value');
  });

  it('returns expired and not-yet-valid secrets, as the service does not enforce exp/nbf on get', async () => {
    azure.keyVault.setSecret(VAULT, 'expired', 'old', { expiresOn: new Date(Date.now() - 86_400_000) });
    azure.keyVault.setSecret(VAULT, 'future', 'new', { notBefore: new Date(Date.now() + 86_400_000) });
    const expired = await client.getSecret('expired');
    expect(expired.value).toBe('old');
    expect(expired.properties.expiresOn!.getTime()).toBeLessThan(Date.now());
    expect((await client.getSecret('future')).properties.notBefore!.getTime()).toBeGreaterThan(Date.now());
  });

  it('soft-deletes, polls the deleted secret, recovers and purges', async () => {
    await client.setSecret('doomed', 'bye');
    const poller = await client.beginDeleteSecret('doomed');
    const deleted = await poller.pollUntilDone();
    expect(deleted.properties.recoveryId).toBe('https://contoso.vault.azure.net/deletedsecrets/doomed');
    expect(deleted.properties.deletedOn).toBeInstanceOf(Date);
    expect(azure.keyVault.requestCount({ method: 'GET', path: '/deletedsecrets/doomed' })).toBeGreaterThanOrEqual(1);
    expect((await restError(client.getSecret('doomed'))).statusCode).toBe(404);
    expect((await restError(client.setSecret('doomed', 'again'))).statusCode).toBe(409);

    const recovered = await (await client.beginRecoverDeletedSecret('doomed')).pollUntilDone();
    expect(recovered.name).toBe('doomed');
    expect((await client.getSecret('doomed')).value).toBe('bye');

    await (await client.beginDeleteSecret('doomed')).pollUntilDone();
    await client.purgeDeletedSecret('doomed');
    expect((await restError(client.getDeletedSecret('doomed'))).statusCode).toBe(404);
  });

  it('answers 404 SecretNotFound and 400 BadParameter like the service', async () => {
    const missing = await restError(client.getSecret('missing'));
    expect(missing.statusCode).toBe(404);
    expect(missing.code).toBe('SecretNotFound');
    expect(missing.message).toMatch(/^A secret with \(name\/id\) missing was not found in this key vault\./);

    const badVersion = await restError(client.getSecret('alpha', { version: '0123456789abcdef0123456789abcdef' }));
    expect(badVersion.code).toBe('SecretNotFound');

    const badName = await restError(client.getSecret('bad_name'));
    expect(badName.statusCode).toBe(400);
    expect(badName.code).toBe('BadParameter');
  });
});

describe('faults', () => {
  it('throttles with 429 + Retry-After, visible when retries are off', async () => {
    const noRetry = newClient(VAULT, { retryOptions: { maxRetries: 0 } });
    await noRetry.getSecret('alpha'); // complete the challenge first
    azure.keyVault.setFault({ kind: 'status', status: 429, retryAfterSeconds: 7, times: 1 }, VAULT);
    const err = await restError(noRetry.getSecret('alpha'));
    expect(err.statusCode).toBe(429);
    expect(err.code).toBe('Throttled');
    expect(err.response?.headers.get('retry-after')).toBe('7');
    expect((await noRetry.getSecret('alpha')).value).toBe('v1'); // `times` used up
  });

  it('lets the default retry policy ride over a transient 503', async () => {
    await client.getSecret('alpha');
    azure.keyVault.resetCounts();
    azure.keyVault.setFault({ kind: 'status', status: 503, retryAfterSeconds: 0, times: 1 });
    expect((await client.getSecret('alpha')).value).toBe('v1');
    expect(azure.keyVault.requestCount({ method: 'GET', path: '/secrets/alpha' })).toBe(2);
  });

  it.each([
    ['firewall', 'ForbiddenByFirewall'],
    ['rbac', 'ForbiddenByRbac'],
    ['policy', 'ForbiddenByPolicy'],
  ] as const)('%s → 403 Forbidden with inner code %s, only for the faulted vault', async (kind, inner) => {
    azure.keyVault.setSecret(OTHER, 'unaffected', 'ok');
    azure.keyVault.setFault({ kind }, VAULT);
    const err = await restError(client.getSecret('alpha'));
    expect(err.statusCode).toBe(403);
    expect(err.code).toBe('Forbidden');
    expect(innerCode(err)).toBe(inner);
    expect((await newClient(OTHER).getSecret('unaffected')).value).toBe('ok');
  });

  it('resets the connection: RestError with code ECONNRESET and no status', async () => {
    const noRetry = newClient(VAULT, { retryOptions: { maxRetries: 0 } });
    await noRetry.getSecret('alpha');
    azure.keyVault.setFault({ kind: 'reset', times: 1 });
    const err = await restError(noRetry.getSecret('alpha'));
    expect(err.code).toBe('ECONNRESET');
    expect(err.statusCode).toBeUndefined();
    expect((await noRetry.getSecret('alpha')).value).toBe('v1');
  });

  it('combines latency with a status fault', async () => {
    const noRetry = newClient(VAULT, { retryOptions: { maxRetries: 0 } });
    await noRetry.getSecret('alpha');
    azure.keyVault.setFault({ kind: 'latency', ms: 20 });
    azure.keyVault.setFault({ kind: 'status', status: 500 });
    const err = await restError(noRetry.getSecret('alpha'));
    expect(err.statusCode).toBe(500);
    expect(err.code).toBe('InternalServerError');
  });

  it('hangs until the caller aborts', async () => {
    await client.getSecret('alpha');
    azure.keyVault.setFault({ kind: 'hang' });
    const err = await client.getSecret('alpha', { abortSignal: AbortSignal.timeout(200) }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.name).toBe('AbortError');
    azure.keyVault.clearFaults();
    expect((await client.getSecret('alpha')).value).toBe('v1');
  });
});

describe('Azure RBAC on the data plane (setRoleAssignments)', () => {
  // The resolve path's identity (the system-assigned one DefaultAzureCredential picks) and the rotation identity (user-assigned).
  const ROTATION = { clientId: '7d0c1e2f-3a4b-4c5d-8e6f-0a1b2c3d4e5f', principalId: 'e1d2c3b4-a5f6-4e7d-9c8b-7a6f5e4d3c2b' };
  const STRANGER = { clientId: '8e1d2f3a-4b5c-4d6e-8f7a-1b2c3d4e5f6a', principalId: 'f2e3d4c5-b6a7-4f8e-8d9c-8b7a6f5e4d3c' };

  beforeAll(() => {
    for (const who of [ROTATION, STRANGER]) azure.identity.addUserAssignedIdentity(who.clientId, who.principalId);
  });

  afterEach(() => azure.keyVault.setRoleAssignments(VAULT, null));

  it('Key Vault Secrets User reads and lists but cannot write; Secrets Officer writes and disables versions', async () => {
    const first = azure.keyVault.setSecret(VAULT, 'rotated', 'v1');
    azure.keyVault.setRoleAssignments(VAULT, [
      { principalId: EMULATOR_PRINCIPAL_ID, role: 'Key Vault Secrets User' },
      { principalId: ROTATION.principalId, role: 'Key Vault Secrets Officer' },
    ]);
    const reader = newClient(VAULT, { retryOptions: { maxRetries: 0 } });
    expect((await reader.getSecret('rotated')).value).toBe('v1');
    const names: string[] = [];
    for await (const p of reader.listPropertiesOfSecrets()) names.push(p.name);
    expect(names).toContain('rotated');

    const write = await restError(reader.setSecret('rotated', 'v2'));
    expect(write.statusCode).toBe(403);
    expect(write.code).toBe('Forbidden');
    expect(innerCode(write)).toBe('ForbiddenByRbac');
    expect(write.message).toContain("Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'");
    expect(write.message).toContain(`oid=${EMULATOR_PRINCIPAL_ID}`);
    const disable = await restError(reader.updateSecretProperties('rotated', first.version, { enabled: false }));
    expect(disable.statusCode).toBe(403);
    expect(disable.message).toContain("Action: 'Microsoft.KeyVault/vaults/secrets/update/action'");
    expect((await reader.getSecret('rotated')).properties.version).toBe(first.version);

    const writer = new SecretClient(azure.keyVault.vaultUri(VAULT), new ManagedIdentityCredential({ clientId: ROTATION.clientId }));
    const second = await writer.setSecret('rotated', 'v2');
    await writer.updateSecretProperties('rotated', first.version, { enabled: false });
    const versions: Array<[string | undefined, boolean | undefined]> = [];
    for await (const v of writer.listPropertiesOfSecretVersions('rotated')) versions.push([v.version, v.enabled]);
    expect(versions).toContainEqual([first.version, false]);
    expect((await reader.getSecret('rotated')).properties.version).toBe(second.properties.version);
  });

  it('refuses a caller without any role, even a read, with Key Vault’s body; off again with null', async () => {
    azure.keyVault.setSecret(VAULT, 'rotated', 'v3');
    azure.keyVault.setRoleAssignments(VAULT, [{ principalId: ROTATION.principalId, role: 'Key Vault Secrets Officer' }]);
    const stranger = new SecretClient(azure.keyVault.vaultUri(VAULT), new ManagedIdentityCredential({ clientId: STRANGER.clientId }), {
      retryOptions: { maxRetries: 0 },
    });
    const read = await restError(stranger.getSecret('rotated'));
    expect(read.statusCode).toBe(403);
    expect(read.message).toContain("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'");

    // On the wire: Key Vault's error body, inner code ForbiddenByRbac.
    const token = await managedIdentityToken(azure, 'https://vault.azure.net');
    const raw = await rawHttps(azure, { port: azure.keyVault.port, host: `${VAULT}.vault.azure.net` }, 'GET', '/secrets?api-version=7.4', {
      authorization: `Bearer ${token}`,
    });
    expect(raw.status).toBe(403);
    const body = JSON.parse(raw.body) as { error: { code: string; message: string; innererror: { code: string } } };
    expect(Object.keys(body.error).sort()).toEqual(['code', 'innererror', 'message']);
    expect(body.error.code).toBe('Forbidden');
    expect(body.error.innererror).toEqual({ code: 'ForbiddenByRbac' });
    expect(body.error.message).toMatch(
      new RegExp(
        `^Caller is not authorized to perform action on resource\\.\r\n.*\r\nCaller: appid=[0-9a-f-]{36};oid=${EMULATOR_PRINCIPAL_ID};iss=https://sts\\.windows\\.net/[0-9a-f-]{36}/\r\nAction: 'Microsoft\\.KeyVault/vaults/secrets/readMetadata/action'\r\nResource: '/subscriptions/[0-9a-f-]{36}/resourcegroups/local/providers/microsoft\\.keyvault/vaults/${VAULT}/secrets'\r\nAssignment: \\(not found\\)\r\n`,
      ),
    );
    // Another vault is not checked.
    azure.keyVault.setSecret(OTHER, 'unchecked', 'ok');
    const elsewhere = new SecretClient(azure.keyVault.vaultUri(OTHER), new ManagedIdentityCredential({ clientId: STRANGER.clientId }));
    expect((await elsewhere.getSecret('unchecked')).value).toBe('ok');

    azure.keyVault.setRoleAssignments(VAULT, null);
    expect((await stranger.getSecret('rotated')).value).toBe('v3');
  });
});

describe('service limit and probabilistic faults', () => {
  afterEach(() => {
    azure.keyVault.setRateLimit(null);
    azure.keyVault.setRandomSource(Math.random);
  });

  /** A random source that answers the given values in turn, then repeats the last. */
  const sequence = (...values: number[]) => {
    let i = 0;
    return () => values[Math.min(i++, values.length - 1)] ?? 0;
  };

  it('answers 429 Throttled with Key Vault’s body and Retry-After once a vault is past its limit, and counts it', async () => {
    const noRetry = newClient(VAULT, { retryOptions: { maxRetries: 0 } });
    await noRetry.getSecret('alpha'); // the challenge, outside the window
    let now = 1_000_000;
    azure.keyVault.setRateLimit({ requests: 3, windowMs: 10_000, retryAfter: 'always', now: () => now });
    azure.keyVault.resetCounts();
    for (let i = 0; i < 3; i++) expect((await noRetry.getSecret('alpha')).value).toBe('v1');
    now += 4_000;
    const err = await restError(noRetry.getSecret('alpha'));
    expect(err.statusCode).toBe(429);
    expect(err.code).toBe('Throttled');
    expect(err.message).toMatch(/^Request was not processed because too many requests were received\. Reason: /);
    expect(err.response?.headers.get('retry-after')).toBe('6');
    // Another vault has its own window.
    azure.keyVault.setSecret(OTHER, 'elsewhere', 'ok');
    expect((await newClient(OTHER, { retryOptions: { maxRetries: 0 } }).getSecret('elsewhere')).value).toBe('ok');
    // The window slides: the first requests leave it 10 s after they came.
    now += 6_000;
    expect((await noRetry.getSecret('alpha')).value).toBe('v1');
    expect(azure.keyVault.injectedCounts()).toEqual({ throttledByLimit: 1, throttledByFault: 0, statusFaults: 0, resets: 0 });
  });

  it.each([
    ['never', [0.1], null],
    ['sometimes', [0.7], null],
    ['sometimes', [0.2], '10'],
  ] as const)('with retryAfter %s (random %p) the 429 carries Retry-After %p', async (retryAfter, random, header) => {
    const noRetry = newClient(VAULT, { retryOptions: { maxRetries: 0 } });
    await noRetry.getSecret('alpha');
    azure.keyVault.setRandomSource(sequence(...random));
    azure.keyVault.setRateLimit({ requests: 1, windowMs: 10_000, retryAfter, now: () => 5_000 });
    await noRetry.getSecret('alpha');
    const err = await restError(noRetry.getSecret('alpha'));
    expect([err.statusCode, err.code, err.response?.headers.get('retry-after') ?? null]).toEqual([429, 'Throttled', header]);
  });

  it('refuses a limit that is not a positive integer count and window', () => {
    expect(() => azure.keyVault.setRateLimit({ requests: 0, windowMs: 10_000, retryAfter: 'always' })).toThrow(
      'setRateLimit: requests and windowMs must be positive integers',
    );
  });

  it('hits only the requests the random source picks for a probabilistic 429, with or without Retry-After', async () => {
    const noRetry = newClient(VAULT, { retryOptions: { maxRetries: 0 } });
    await noRetry.getSecret('alpha');
    azure.keyVault.resetCounts();
    azure.keyVault.setRandomSource(sequence(0.5, 0.01, 0.9, 0.04));
    azure.keyVault.setFault({ kind: 'status', status: 429, probability: 0.05, retryAfterSeconds: null });
    const outcomes = [];
    for (let i = 0; i < 4; i++) {
      outcomes.push(
        await noRetry.getSecret('alpha').then(
          () => 200,
          (err: RestError) => `${err.statusCode} ${err.response?.headers.get('retry-after') ?? 'none'}`,
        ),
      );
    }
    expect(outcomes).toEqual([200, '429 none', 200, '429 none']);
    expect(azure.keyVault.injectedCounts().throttledByFault).toBe(2);
  });

  it('resets the connections the random source picks, and counts them', async () => {
    const noRetry = newClient(VAULT, { retryOptions: { maxRetries: 0 } });
    await noRetry.getSecret('alpha');
    azure.keyVault.resetCounts();
    azure.keyVault.setRandomSource(sequence(0.005, 0.5));
    azure.keyVault.setFault({ kind: 'reset', probability: 0.01 });
    const err = await restError(noRetry.getSecret('alpha'));
    expect([err.code, err.statusCode]).toEqual(['ECONNRESET', undefined]);
    expect((await noRetry.getSecret('alpha')).value).toBe('v1');
    expect(azure.keyVault.injectedCounts().resets).toBe(1);
  });
});

describe('request counting', () => {
  it('counts per method, path (trailing slash ignored) and vault', async () => {
    await client.getSecret('alpha');
    azure.keyVault.resetCounts();
    await client.getSecret('alpha'); // the SDK requests /secrets/alpha/
    await client.getSecret('alpha');
    expect(azure.keyVault.requestCount({ method: 'GET', path: '/secrets/alpha' })).toBe(2);
    expect(azure.keyVault.requestCount({ method: 'GET', path: '/secrets/alpha/' })).toBe(2);
    expect(azure.keyVault.requestCount({ vault: OTHER })).toBe(0);
    expect(azure.keyVault.requestCount({ method: 'PUT' })).toBe(0);
    expect(azure.keyVault.requestCount()).toBe(2);
    azure.keyVault.resetCounts();
    expect(azure.keyVault.requestCount()).toBe(0);
  });
});

describe('environment for another process', () => {
  it('lets a separate Node process read a secret with only azure.env', async () => {
    azure.keyVault.setSecret(VAULT, 'child-secret', 'from-child');
    const script = `
      const { SecretClient } = require('@azure/keyvault-secrets');
      const { DefaultAzureCredential } = require('@azure/identity');
      new SecretClient(process.env.KEY_VAULT_URI, new DefaultAzureCredential())
        .getSecret('child-secret')
        .then((s) => console.log('VALUE=' + s.value), (e) => { console.error(e); process.exit(1); });`;
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', script], {
        cwd: path.resolve(__dirname, '../..'),
        env: { PATH: process.env['PATH'] ?? '', HOME: os.tmpdir(), ...azure.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      child.once('error', reject);
      child.once('exit', () => resolve(out));
    });
    expect(output).toContain('VALUE=from-child');
  });

  it('reuses the dev certificate in the state dir', async () => {
    const again = await createDevCertificate(stateDir);
    expect(again.certPem).toBe(azure.certPem);
    expect(again.certPath).toBe(azure.env['NODE_EXTRA_CA_CERTS']);
  });
});
