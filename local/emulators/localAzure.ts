import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ArmEmulator, type ArmEmulatorOptions } from './armEmulator';
import { createDevCertificate } from './devCertificate';
import { GraphEmulator } from './graphEmulator';
import { GRAPH_RESOURCE } from './graphEmulatorAuth';
import { KeyVaultEmulator } from './keyVaultEmulator';
import { startManagedIdentityEndpoint, type ManagedIdentityEndpoint } from './managedIdentityEndpoint';
import { startVaultProxy, type VaultProxy } from './vaultProxy';

/** The local stand-ins for Azure that the secret broker talks to, wired together. */
export interface LocalAzure {
  keyVault: KeyVaultEmulator;
  /**
   * Azure Resource Manager (`https://management.azure.com` through the proxy) with every vault of
   * `vaults` registered at `keyVault.resourceId(name)`. Its vault settings and role assignments are
   * independent of the Key Vault emulator's faults: a test that wants, say, RBAC mode off and a
   * `policy` fault sets both.
   */
  arm: ArmEmulator;
  identity: ManagedIdentityEndpoint;
  /**
   * Microsoft Graph (`https://graph.microsoft.com/v1.0` through the proxy): applications and their
   * password credentials. It takes tokens of `identity` for `https://graph.microsoft.com`, whose
   * `roles` are what {@link grantGraphRoles} (or the `graphRoles` option) granted.
   */
  graph: GraphEmulator;
  /**
   * Grants Microsoft Graph app roles (application permissions, e.g. `Application.ReadWrite.OwnedBy`)
   * to a principal (a managed identity's principal id): its tokens for `https://graph.microsoft.com`
   * carry them in `roles`. An empty list revokes them. A token already issued (and cached by the
   * client) keeps the roles it had, as Entra's do.
   */
  grantGraphRoles(principalId: string, roles: string[]): void;
  proxy: VaultProxy;
  /** Path of the dev certificate PEM (the value of NODE_EXTRA_CA_CERTS). */
  certPath: string;
  certPem: string;
  /** Private key of the dev certificate, for further HTTPS emulators (e.g. `startEventGridTopic`). */
  readonly keyPem: string;
  /** HS256 secret the managed-identity endpoint signs tokens with; other emulators verify tokens with it. */
  readonly tokenSecret: string;
  /**
   * The standard variables another Node process needs to reach the emulators through the
   * unmodified Azure SDK: IDENTITY_ENDPOINT, IDENTITY_HEADER, HTTPS_PROXY, NO_PROXY,
   * NODE_EXTRA_CA_CERTS, plus KEY_VAULT_URI of the first vault.
   */
  env: Record<string, string>;
  /** Stops all emulators. */
  stop(): Promise<void>;
}

const TOKEN_SECRET_FILE = 'token-secret';

/** App roles granted to one principal at start (see {@link LocalAzure.grantGraphRoles}). */
export interface GraphRoleGrant {
  principalId: string;
  roles: string[];
}

/**
 * Starts the dev certificate, the managed-identity endpoint, the Key Vault emulator, the ARM
 * emulator (with the SCM and function app sites), the Microsoft Graph emulator and the CONNECT proxy
 * (vault hosts, `management.azure.com`, `*.azurewebsites.net`, `graph.microsoft.com`, and storage
 * hosts when `storagePorts` is given). State (certificate,
 * token signing secret) lives in `stateDir` and is reused across runs, so tokens a process
 * cached from an earlier start stay valid.
 */
export async function startLocalAzure(opts: {
  stateDir: string;
  vaults?: string[];
  /** Function app sites: what they run (`distLocalDir`), their identity, LRO pace, log. */
  arm?: Pick<ArmEmulatorOptions, 'sitePrincipalId' | 'distLocalDir' | 'lroPendingPolls' | 'log'>;
  /** PATH of the sites' host processes (their platform environment is otherwise the emulators' variables). */
  sitePath?: string;
  /** Azurite's HTTPS ports, for the proxy to tunnel `<account>.table|blob.core.windows.net:443` to. */
  storagePorts?: { table?: number; blob?: number };
  /** User-assigned identities the managed-identity endpoint serves by client id. */
  userAssignedIdentities?: Array<{ clientId: string; principalId: string }>;
  /** Microsoft Graph app roles granted from the start, by principal id (see {@link LocalAzure.grantGraphRoles}). */
  graphRoles?: GraphRoleGrant[];
}): Promise<LocalAzure> {
  const vaults = opts.vaults ?? ['demo'];
  const first = vaults[0];
  if (first === undefined) throw new Error('startLocalAzure needs at least one vault');
  const stateDir = resolve(opts.stateDir);
  const cert = await createDevCertificate(stateDir);
  const tokenSecret = await loadTokenSecret(stateDir);

  const identity = await startManagedIdentityEndpoint({ tokenSecret, userAssigned: opts.userAssignedIdentities ?? [] });
  const started: Array<{ stop(): Promise<void> }> = [identity];
  const grantGraphRoles = (principalId: string, roles: string[]): void => identity.setAppRoles(principalId, GRAPH_RESOURCE, roles);
  for (const grant of opts.graphRoles ?? []) grantGraphRoles(grant.principalId, grant.roles);
  try {
    const keyVault = await KeyVaultEmulator.start({ certPem: cert.certPem, keyPem: cert.keyPem, vaults, tokenSecret });
    started.push(keyVault);
    // The sites' platform environment names the proxy, which needs the ARM emulator's port first.
    let proxyUrl = '';
    const arm = await ArmEmulator.start({
      ...opts.arm,
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      tokenSecret,
      onUserAssignedIdentity: (clientId, principalId) => identity.addUserAssignedIdentity(clientId, principalId),
      sitePlatformEnv: () => ({
        IDENTITY_ENDPOINT: identity.endpoint,
        IDENTITY_HEADER: identity.header,
        HTTPS_PROXY: proxyUrl,
        NO_PROXY: '127.0.0.1,localhost',
        NODE_EXTRA_CA_CERTS: cert.certPath,
        ...(opts.sitePath === undefined ? {} : { PATH: opts.sitePath }),
      }),
    });
    started.push(arm);
    for (const vault of vaults) arm.addVault(vault);
    const graph = await GraphEmulator.start({ certPem: cert.certPem, keyPem: cert.keyPem, tokenSecret });
    started.push(graph);
    const proxy = await startVaultProxy({
      targetPort: keyVault.port,
      managementPort: arm.port,
      tablePort: opts.storagePorts?.table,
      blobPort: opts.storagePorts?.blob,
      graphPort: graph.port,
    });
    proxyUrl = proxy.url;
    started.push(proxy);
    return {
      keyVault,
      arm,
      identity,
      graph,
      grantGraphRoles,
      proxy,
      certPath: cert.certPath,
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      tokenSecret,
      env: {
        IDENTITY_ENDPOINT: identity.endpoint,
        IDENTITY_HEADER: identity.header,
        HTTPS_PROXY: proxy.url,
        // core-rest-pipeline matches NO_PROXY entries as exact hosts (or ".suffix"); no CIDR, no ports.
        NO_PROXY: '127.0.0.1,localhost',
        NODE_EXTRA_CA_CERTS: cert.certPath,
        KEY_VAULT_URI: keyVault.vaultUri(first),
      },
      stop: async () => {
        await Promise.all(started.map((s) => s.stop()));
      },
    };
  } catch (err) {
    await Promise.all(started.map((s) => s.stop()));
    throw err;
  }
}

/** Reads the HS256 signing secret from `stateDir`, creating it on first use. */
async function loadTokenSecret(stateDir: string): Promise<string> {
  const path = join(stateDir, TOKEN_SECRET_FILE);
  await mkdir(stateDir, { recursive: true });
  try {
    // 'wx' makes concurrent first starts agree: only one writer wins, everyone reads its value.
    await writeFile(path, randomBytes(32).toString('hex'), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const secret = (await readFile(path, 'utf8')).trim();
  if (secret.length < 32) throw new Error(`Token secret in ${path} is too short; delete the file to regenerate it.`);
  return secret;
}
