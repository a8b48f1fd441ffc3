import type { HealthCause } from './healthReport';

/** One sentence an admin can act on, per cause (`{vault}` and `{target}` are filled in). */
const REMEDIES: Record<HealthCause, string> = {
  ForbiddenByFirewall:
    "Allow the function app's outbound IP addresses (or its VNet) in the firewall of vault {vault}, or reach it through a private endpoint.",
  ForbiddenByRbac: 'Assign the "Key Vault Secrets User" role on vault {vault} to the function app\'s managed identity.',
  ForbiddenByPolicy: "Add an access policy on vault {vault} granting the function app's managed identity secret Get and List.",
  SecretNotFound: 'Create secret {target} in vault {vault}, or remove it from ACCESS_POLICY / CONSUMERS.',
  SecretDisabled: 'Enable the current version of secret {target} in vault {vault}, or set a new enabled version.',
  SecretSoftDeleted:
    'Secret {target} was deleted from vault {vault} and can still be recovered: recover it (az keyvault secret recover) or create it again.',
  VaultUnreachable: 'Check DNS, the network path and the private endpoint from the function app to vault {vault}.',
  TokenUnavailable: "Check the function app's managed identity: it is enabled and can get a token for Key Vault.",
  Timeout: 'Vault {vault} did not answer in time: check its network path and Azure status, and look for throttling.',
  ExpiresSoon: 'Rotate secret {target} in vault {vault} before it expires, or extend its expiry date.',
  Expired: 'Secret {target} in vault {vault} has expired: rotate it now (integrations may already be failing).',
  NoExpiry: 'Set an expiry date on secret {target} in vault {vault} so rotation is not forgotten.',
  FirewallNotAsExpected: 'Set the firewall of vault {vault} back to what VAULT_EXPECTATIONS says ({target}), or change the expectation.',
  PublicAccessNotAsExpected:
    'Enable public network access on vault {vault} (with the firewall off), as the integrations that need it expect.',
  SoftDeleteOff: 'Enable soft delete on vault {vault} so deleted secrets can be recovered.',
  PurgeProtectionOff: 'Enable purge protection on vault {vault} so deleted secrets cannot be purged before their retention ends.',
  ReaderPermissionMissing:
    'Grant what "{target}" names as missing on vault {vault}: on an RBAC vault the "Key Vault Secrets User" role for secrets and "Key Vault Reader" for keys and certificates, with access policies Get and List on each kind named.',
  LocationNotAsExpected:
    'Vault {vault} is not in the region VAULT_EXPECTATIONS names ({target}): services such as Customer Insights need their vault in their own region; link a vault there, or change the expectation.',
  ManagementUnavailable:
    "Give the function app's identity the Reader role on vault {vault} (and check KEY_VAULT_RESOURCE_IDS) so its settings can be checked.",
  // The adoption check writes its own sentence, naming the callers (adoptionRules.ts `staleRemedy`); this is its general form.
  StaleVersionInUse:
    'Callers still read an older version of secret {target} in vault {vault} than the newest: have them resolve the latest version before the old one is retired.',
  // The rotation check writes its own sentence, naming the step, the service's code and the record's remedy (rotationCheck.ts); this is its general form.
  RotationFailed:
    "The rotation of secret {target} in vault {vault} stopped: see the service's error code in `npm run broker -- rotate {target}`, mend the rotation identity's access, and it resumes on the next run.",
};

/** The remedy sentence for a cause. */
export function remedyFor(cause: HealthCause, vault: string, target: string | null): string {
  return REMEDIES[cause].replaceAll('{vault}', vault).replaceAll('{target}', target ?? '');
}
