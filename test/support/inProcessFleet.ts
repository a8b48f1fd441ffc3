import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAzurite } from '../../local/emulators/azurite';
import type { Azurite } from '../../local/emulators/azurite';
import { useLocalAzureInProcess } from '../../local/emulators/inProcessAzure';
import { startLocalAzure } from '../../local/emulators/localAzure';
import type { LocalAzure } from '../../local/emulators/localAzure';
import type { AppConfig } from '../../shared/config';
import { loadConfig } from '../../shared/config';
import type { Runtime, RuntimeOptions } from '../../shared/runtime';
import { createRuntime } from '../../shared/runtime';

/** Several broker runtimes in the jest process, sharing one Key Vault emulator and one Azurite. */
export interface InProcessFleet {
  readonly azure: LocalAzure;
  readonly azurite: Azurite;
  /** The settings every runtime gets unless a test gives its own. */
  readonly config: AppConfig;
  /** Settings for this fleet's vault and storage, plus `extra`. */
  settings(extra?: Record<string, string>): AppConfig;
  /** A new runtime (an instance of the function app), disposed when the fleet stops. */
  runtime(options: RuntimeOptions, config?: AppConfig): Runtime;
  /** GETs of a secret's latest version so far (the path filter leaves out versioned paths). */
  gets(name: string): number;
  stop(): Promise<void>;
}

/**
 * Starts the emulators for `vault`, points the in-process SDK clients at them, and builds runtimes
 * on demand with a policy that lets the caller `app` read everything.
 */
export async function startInProcessFleet(vault: string, extra: Record<string, string> = {}): Promise<InProcessFleet> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'broker-fleet-'));
  const [azure, azurite] = await Promise.all([
    startLocalAzure({ stateDir, vaults: [vault] }),
    startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } }),
  ]);
  const restore = useLocalAzureInProcess(azure);
  const runtimes: Runtime[] = [];
  const settings = (more: Record<string, string> = {}): AppConfig =>
    loadConfig({
      KEY_VAULT_URI: azure.keyVault.vaultUri(vault),
      ACCESS_POLICY: JSON.stringify({ callers: [{ name: 'app', identities: [{ apiKeySha256: '0'.repeat(64) }], allow: ['*'] }] }),
      AzureWebJobsStorage: azurite.connectionString,
      ...more,
    });
  const config = settings(extra);
  return {
    azure,
    azurite,
    config,
    settings: (more) => settings({ ...extra, ...more }),
    runtime: (options, own = config) => {
      const built = createRuntime(own, options);
      runtimes.push(built);
      return built;
    },
    gets: (name) => azure.keyVault.requestCount({ method: 'GET', path: `/secrets/${name}` }),
    stop: async () => {
      for (const runtime of runtimes) runtime.dispose();
      await azure.stop();
      await azurite.stop();
      restore();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
