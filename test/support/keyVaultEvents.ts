import type { KeyVaultEmulator } from '../../local/emulators/keyVaultEmulator';

/**
 * The Event Grid event Key Vault sends for a new version of a secret (Learn: "Azure Key Vault as
 * Event Grid source", Microsoft.KeyVault.SecretNewVersionCreated), for a vault of the emulator.
 */
export function newVersionEvent(
  keyVault: KeyVaultEmulator,
  vault: string,
  name: string,
  version: string,
  id: string,
): Record<string, unknown> {
  return {
    id,
    topic: keyVault.resourceId(vault),
    subject: name,
    eventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
    eventTime: new Date().toISOString(),
    data: {
      Id: `${keyVault.vaultUri(vault)}secrets/${name}/${version}`,
      VaultName: vault,
      ObjectType: 'Secret',
      ObjectName: name,
      Version: version,
      NBF: null,
      EXP: null,
    },
    dataVersion: '1',
    metadataVersion: '1',
  };
}
