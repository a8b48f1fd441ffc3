/**
 * The rotatable demo secret of `npm start` (README, "Rotating an Entra app's client secret, watched
 * locally"): an application in the Microsoft Graph emulator, a user-assigned rotation identity that
 * owns it, and the vault secret `demo-app-secret` that holds its client secret, tagged for rotation
 * as docs/rotation.md, "Rotating Entra application client secrets" describes. Local only.
 */
import { EMULATOR_PRINCIPAL_ID } from './emulators/managedIdentityEndpoint';
import type { LocalAzure } from './emulators/localAzure';

/** The demo secret the broker rotates, and the application whose client secret it holds. */
export const ROTATION_DEMO_SECRET = 'demo-app-secret';
export const ROTATION_DEMO_APPLICATION = 'Demo ERP integration';
/** Fixed demo ids, so the banner and the docs can name them (the Graph emulator accepts any GUID). */
export const ROTATION_DEMO_APP_OBJECT_ID = '5e1d2c3b-4a59-4687-9a1b-2c3d4e5f6a7b';
export const ROTATION_DEMO_APP_ID = '7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f';
/** The user-assigned rotation identity (ROTATION_IDENTITY_CLIENT_ID) the managed-identity emulator serves. */
export const ROTATION_DEMO_IDENTITY = {
  clientId: '3a4b5c6d-7e8f-4a9b-8c0d-1e2f3a4b5c6d',
  principalId: '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a',
} as const;
/**
 * Learn: "application: addPassword" / "application: removePassword" (Permissions): the least
 * privileged application permission is Application.ReadWrite.OwnedBy, which covers only the
 * applications the caller owns ("Microsoft Graph permissions reference").
 */
export const ROTATION_GRAPH_ROLE = 'Application.ReadWrite.OwnedBy';

/**
 * Demo windows, in hours (decimals allowed), set only when unset: callers that read the old version
 * in the last hour must read the new one; retirement at the latest 15 minutes after the new version;
 * health warns `StaleVersionInUse` 3 minutes after it.
 */
export const ROTATION_DEMO_SETTINGS: Readonly<Record<string, string>> = {
  ROTATION_IDENTITY_CLIENT_ID: ROTATION_DEMO_IDENTITY.clientId,
  ROTATION_ADOPTION_WINDOW_HOURS: '1',
  ROTATION_RETIRE_AFTER_HOURS: '0.25',
  ADOPTION_WARNING_HOURS: '0.05',
};

/** What `startLocalAzure` needs so the rotation identity gets tokens, with its Graph app role. */
export const ROTATION_DEMO_AZURE = {
  userAssignedIdentities: [{ ...ROTATION_DEMO_IDENTITY }],
  graphRoles: [{ principalId: ROTATION_DEMO_IDENTITY.principalId, roles: [ROTATION_GRAPH_ROLE] }],
};

/**
 * Seeds the demo: the application, owned by the rotation identity, with one password whose text
 * becomes the first version of `demo-app-secret` (tagged with its keyId, so the rotation knows
 * which password is the old one); then the data-plane roles of least privilege on the vault.
 */
export function seedRotationDemo(azure: LocalAzure, vault: string, expiry: Date): void {
  // Whole seconds: Key Vault's `exp` has no fractions, so the password and the version end together.
  const expiresOn = new Date(Math.floor(expiry.getTime() / 1000) * 1000);
  azure.graph.createApplication({
    objectId: ROTATION_DEMO_APP_OBJECT_ID,
    appId: ROTATION_DEMO_APP_ID,
    displayName: ROTATION_DEMO_APPLICATION,
    owners: [ROTATION_DEMO_IDENTITY.principalId],
  });
  // The demo's first password ends when the secret expires, as a rotation's passwords do.
  const first = azure.graph.seedPassword(ROTATION_DEMO_APP_OBJECT_ID, {
    displayName: 'demo seed',
    endDateTime: expiresOn.toISOString(),
  });
  // The secret text goes from Graph's answer into the vault only, as a rotation's does.
  azure.keyVault.setSecret(vault, ROTATION_DEMO_SECRET, first.secretText, {
    contentType: 'text/plain',
    expiresOn,
    tags: { brokerRotation: 'entraApp', entraAppObjectId: ROTATION_DEMO_APP_OBJECT_ID, entraKeyId: first.keyId },
  });
  // Least privilege, as docs/rotation.md describes: the app's own identity (the resolve path) reads,
  // the rotation identity writes. Learn: "Azure built-in roles for Security" (Key Vault Secrets User
  // reads secret contents; Key Vault Secrets Officer performs any action on secrets).
  azure.keyVault.setRoleAssignments(vault, [
    { principalId: EMULATOR_PRINCIPAL_ID, role: 'Key Vault Secrets User' },
    { principalId: ROTATION_DEMO_IDENTITY.principalId, role: 'Key Vault Secrets Officer' },
  ]);
}

/** A password as `npm run emulator -- passwords` shows it: never its secret text, nor Graph's hint (its first three characters). */
export interface DemoPassword {
  keyId: string;
  displayName: string | null;
  endDateTime: string;
}

/** The demo application's passwords as Graph lists them (GET answers no secret text). */
export function demoPasswords(azure: LocalAzure): {
  application: { displayName: string; objectId: string; appId: string };
  passwords: DemoPassword[];
} {
  return {
    application: { displayName: ROTATION_DEMO_APPLICATION, objectId: ROTATION_DEMO_APP_OBJECT_ID, appId: ROTATION_DEMO_APP_ID },
    passwords: azure.graph
      .passwordCredentials(ROTATION_DEMO_APP_OBJECT_ID)
      .map((p) => ({ keyId: p.keyId, displayName: p.displayName, endDateTime: p.endDateTime })),
  };
}
