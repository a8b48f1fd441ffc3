import { resolve } from 'node:path';
import type { ArmEmulator, ArmEmulatorOptions } from './armEmulator';
import { startAzurite, type Azurite } from './azurite';
import { createDevCertificate } from './devCertificate';
import { EMULATOR_SUBSCRIPTION_ID } from './keyVaultTypes';
import { startLocalAzure, type LocalAzure } from './localAzure';
import { EMULATOR_PRINCIPAL_ID } from './managedIdentityEndpoint';

/** Client id of the identity a deploy process runs as (a user-assigned identity of the managed-identity endpoint). */
export const DEPLOYER_CLIENT_ID = '3f8e2d1c-5b4a-4c7e-9d2f-1a0b9c8d7e6f';
/** Object (principal) id of the deployer's identity: the `oid` of its tokens. */
export const DEPLOYER_PRINCIPAL_ID = 'c4d5e6f7-0a1b-4c2d-8e3f-4a5b6c7d8e9f';

/** Everything a deploy test needs, started. */
export interface DeploymentTarget {
  /** The subscription every emulated resource lives in. */
  subscriptionId: string;
  /**
   * The environment of a deploy process: HTTPS_PROXY, NO_PROXY, NODE_EXTRA_CA_CERTS,
   * IDENTITY_ENDPOINT, IDENTITY_HEADER and AZURE_CLIENT_ID (the deployer's user-assigned identity).
   */
  env: Record<string, string>;
  /** The deployer's identity (AZURE_CLIENT_ID and the `oid` of its tokens). */
  deployer: { clientId: string; principalId: string };
  /** The principal id every site's system-assigned identity gets: the endpoint's system identity, whose tokens the site's code gets. */
  sitePrincipalId: string;
  /** An existing vault in RBAC mode (resource id, name, URI). */
  rbacVault: { id: string; name: string; uri: string };
  /** An existing vault in access-policy mode (resource id, name, URI). */
  accessPolicyVault: { id: string; name: string; uri: string };
  /** ARM, SCM and the sites (through the proxy: `management.azure.com`, `<app>[.scm].azurewebsites.net`). */
  arm: ArmEmulator;
  /** The emulators behind it (Key Vault, managed identity, proxy, certificate). */
  azure: LocalAzure;
  /** Azurite over HTTPS with `--oauth basic`, serving `storageAccounts` at `https://<account>.table|blob.core.windows.net` through the proxy; when asked for. */
  azurite: Azurite | undefined;
  /** Stops everything (the sites' processes included). */
  stop(): Promise<void>;
}

export interface DeploymentTargetOptions {
  /** Certificate and token secret live here (created if missing). */
  stateDir: string;
  /** The repository's compiled local host the sites run (default `dist/local` of the working directory). */
  distLocalDir?: string;
  /** PATH of the sites' host processes. */
  sitePath?: string;
  /** Storage accounts Azurite should serve by their production host names; no Azurite when empty. */
  storageAccounts?: string[];
  /** Vault names (defaults `deploy-rbac`, `deploy-policy`). */
  vaults?: { rbac?: string; accessPolicy?: string };
  lroPendingPolls?: ArmEmulatorOptions['lroPendingPolls'];
  log?: ArmEmulatorOptions['log'];
}

/**
 * Starts a deployment target: the ARM emulator (with the SCM and function app sites) behind the
 * CONNECT proxy, the managed-identity endpoint serving the deployer as a user-assigned identity
 * (AZURE_CLIENT_ID) and each site as the system identity (`sitePrincipalId`), two existing vaults
 * (RBAC and access-policy mode) and, when `storageAccounts` is given, Azurite for their tables and
 * blobs. A deploy process run with `env` reaches it all through the unmodified Azure SDKs.
 */
export async function startDeploymentTarget(opts: DeploymentTargetOptions): Promise<DeploymentTarget> {
  const stateDir = resolve(opts.stateDir);
  const rbac = opts.vaults?.rbac ?? 'deploy-rbac';
  const policy = opts.vaults?.accessPolicy ?? 'deploy-policy';
  let azurite: Azurite | undefined;
  if (opts.storageAccounts?.length) {
    const cert = await createDevCertificate(stateDir);
    azurite = await startAzurite({
      inMemory: true,
      https: { certPath: cert.certPath, keyPath: cert.keyPath },
      oauth: 'basic',
      accounts: opts.storageAccounts.map((name) => ({ name })),
    });
  }
  let azure: LocalAzure;
  try {
    azure = await startLocalAzure({
      stateDir,
      vaults: [rbac, policy],
      arm: {
        distLocalDir: opts.distLocalDir ?? resolve('dist', 'local'),
        sitePrincipalId: () => EMULATOR_PRINCIPAL_ID,
        lroPendingPolls: opts.lroPendingPolls,
        log: opts.log,
      },
      sitePath: opts.sitePath,
      storagePorts: azurite ? { table: azurite.tablePort, blob: azurite.blobPort } : undefined,
      userAssignedIdentities: [{ clientId: DEPLOYER_CLIENT_ID, principalId: DEPLOYER_PRINCIPAL_ID }],
    });
  } catch (err) {
    await azurite?.stop();
    throw err;
  }
  azure.arm.setVault(policy, { enableRbacAuthorization: false });
  const vault = (name: string): { id: string; name: string; uri: string } => ({
    id: azure.arm.resourceId(name),
    name,
    uri: azure.keyVault.vaultUri(name),
  });
  return {
    subscriptionId: EMULATOR_SUBSCRIPTION_ID,
    env: {
      HTTPS_PROXY: azure.env['HTTPS_PROXY'] ?? '',
      NO_PROXY: azure.env['NO_PROXY'] ?? '',
      NODE_EXTRA_CA_CERTS: azure.certPath,
      IDENTITY_ENDPOINT: azure.identity.endpoint,
      IDENTITY_HEADER: azure.identity.header,
      AZURE_CLIENT_ID: DEPLOYER_CLIENT_ID,
    },
    deployer: { clientId: DEPLOYER_CLIENT_ID, principalId: DEPLOYER_PRINCIPAL_ID },
    sitePrincipalId: EMULATOR_PRINCIPAL_ID,
    rbacVault: vault(rbac),
    accessPolicyVault: vault(policy),
    arm: azure.arm,
    azure,
    azurite,
    stop: async () => {
      await Promise.all([azure.stop(), azurite?.stop()]);
    },
  };
}
