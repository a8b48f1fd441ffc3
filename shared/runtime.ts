import type { TokenCredential } from '@azure/identity';
import { AccessPolicy } from './callers/accessPolicy';
import { CallerAuthenticator } from './callers/authenticateCaller';
import type { AppConfig } from './config';
import { loadConfig } from './config';
import { SecretResolver } from './secrets/secretResolver';
import { VaultGateway } from './secrets/vaultGateway';
import type { Telemetry } from './telemetry';
import { createTelemetry } from './telemetry';

/** Retries the SDK makes itself: one, quickly. Longer waits belong to stale-if-error, not to callers. */
const VAULT_RETRY = { maxRetries: 1, retryDelayInMs: 200, maxRetryDelayInMs: 1000 } as const;

/** Everything the functions use, built once per process on first use. */
export interface Runtime {
  readonly config: AppConfig;
  readonly policy: AccessPolicy;
  readonly authenticator: CallerAuthenticator;
  readonly resolver: SecretResolver;
  readonly telemetry: Telemetry;
}

let current: Runtime | undefined;

/**
 * The process's runtime, built lazily: settings are validated on first call, the Key Vault and
 * identity libraries are loaded then, and each vault's client is built once.
 * @throws ConfigError when a setting is invalid.
 */
export function getRuntime(): Runtime {
  current ??= createRuntime(loadConfig());
  return current;
}

/** Builds a runtime from settings; `credential` defaults to `DefaultAzureCredential`. */
export function createRuntime(config: AppConfig, credential?: TokenCredential): Runtime {
  // Loaded here rather than at import, so a cold start pays for them once, when first needed.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
  const { SecretClient } = require('@azure/keyvault-secrets') as typeof import('@azure/keyvault-secrets');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
  const identity = require('@azure/identity') as typeof import('@azure/identity');
  const tokenCredential = credential ?? new identity.DefaultAzureCredential();
  const telemetry = createTelemetry(config.appInsightsConnectionString);
  const policy = new AccessPolicy(config.policy);
  const vaults = new Map<string, VaultGateway>();
  for (const vault of config.vaults.values()) {
    const client = new SecretClient(vault.uri, tokenCredential, { retryOptions: VAULT_RETRY });
    vaults.set(vault.alias, new VaultGateway(vault.alias, vault.uri, client, telemetry));
  }
  return {
    config,
    policy,
    authenticator: new CallerAuthenticator(policy, config.auth),
    resolver: new SecretResolver({ vaults, policy, telemetry, cache: config.cache }),
    telemetry,
  };
}

/** Sends what telemetry still holds; call before the process exits. */
export async function flushRuntime(): Promise<void> {
  await current?.telemetry.flush();
}
