/**
 * The emulators a rotation talks to, started in this process for a jest file: the managed-identity
 * endpoint (with a user-assigned rotation identity), the Key Vault emulator, the Microsoft Graph
 * emulator, the CONNECT proxy in front of both, and Azurite for Table storage. The real SDK clients
 * (SecretClient, GraphClient, TableClient) reach them with the same variables a host process gets.
 *
 * The dev certificate of local/emulators/devCertificate.ts does not cover graph.microsoft.com, so
 * this helper makes its own certificate for both hosts (as test/e2e/graphEmulator.test.ts does).
 */
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import { startAzurite, type Azurite } from '../../local/emulators/azurite';
import { GraphEmulator } from '../../local/emulators/graphEmulator';
import { AZURE_STEERING_ENV_KEYS } from '../../local/emulators/inProcessAzure';
import { KeyVaultEmulator } from '../../local/emulators/keyVaultEmulator';
import { startManagedIdentityEndpoint, type ManagedIdentityEndpoint } from '../../local/emulators/managedIdentityEndpoint';
import { startVaultProxy, type VaultProxy } from '../../local/emulators/vaultProxy';

export const GRAPH_RESOURCE = 'https://graph.microsoft.com';

/** A user-assigned identity the managed-identity endpoint serves by client id. */
export interface TestIdentity {
  clientId: string;
  principalId: string;
}

export interface RotationEmulators {
  identity: ManagedIdentityEndpoint;
  keyVault: KeyVaultEmulator;
  graph: GraphEmulator;
  proxy: VaultProxy;
  azurite: Azurite;
  /** Puts the CA list and the environment back, and stops everything. */
  stop(): Promise<void>;
}

/**
 * Starts the emulators for `vaults` and points this process's SDK clients at them (HTTPS_PROXY,
 * IDENTITY_ENDPOINT, the certificate trusted in-process).
 */
export async function startRotationEmulators(opts: { vaults: string[]; identities: TestIdentity[] }): Promise<RotationEmulators> {
  const tokenSecret = randomBytes(32).toString('hex');
  const pems = await generate([{ name: 'commonName', value: 'Rotation test certificate' }], {
    keyType: 'rsa',
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate: new Date(Date.now() - 60_000),
    notAfterDate: new Date(Date.now() + 24 * 3600_000),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2 as const, value: 'graph.microsoft.com' },
          { type: 2 as const, value: '*.vault.azure.net' },
        ],
      },
    ],
  });
  const stops: Array<() => Promise<void>> = [];
  try {
    const identity = await startManagedIdentityEndpoint({ tokenSecret, userAssigned: opts.identities });
    stops.push(() => identity.stop());
    const keyVault = await KeyVaultEmulator.start({ certPem: pems.cert, keyPem: pems.private, vaults: opts.vaults, tokenSecret });
    stops.push(() => keyVault.stop());
    const graph = await GraphEmulator.start({ certPem: pems.cert, keyPem: pems.private, tokenSecret });
    stops.push(() => graph.stop());
    const proxy = await startVaultProxy({ targetPort: keyVault.port, graphPort: graph.port });
    stops.push(() => proxy.stop());
    const azurite = await startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } });
    stops.push(() => azurite.stop());

    // The in-process equivalent of the variables a host process gets (see local/emulators/inProcessAzure.ts).
    const savedCAs = tls.getCACertificates('default');
    tls.setDefaultCACertificates([...savedCAs, pems.cert]);
    const savedEnv = Object.fromEntries(AZURE_STEERING_ENV_KEYS.map((k) => [k, process.env[k]]));
    for (const k of AZURE_STEERING_ENV_KEYS) delete process.env[k];
    Object.assign(process.env, {
      IDENTITY_ENDPOINT: identity.endpoint,
      IDENTITY_HEADER: identity.header,
      HTTPS_PROXY: proxy.url,
      NO_PROXY: '127.0.0.1,localhost',
    });
    const restore = (): void => {
      tls.setDefaultCACertificates(savedCAs);
      for (const [k, v] of Object.entries(savedEnv)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    };
    return {
      identity,
      keyVault,
      graph,
      proxy,
      azurite,
      stop: async () => {
        restore();
        await Promise.all(stops.map((s) => s()));
      },
    };
  } catch (err) {
    await Promise.all(stops.map((s) => s()));
    throw err;
  }
}
