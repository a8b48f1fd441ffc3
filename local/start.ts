/**
 * `npm start`: the whole function set on http://localhost:7071, like `func start`.
 *
 * With no KEY_VAULT_URI it first starts the embedded emulators (Key Vault, the App Service
 * managed-identity endpoint, and a CONNECT proxy so `https://demo.vault.azure.net/` reaches the
 * emulator with the SDK's checks intact), seeds `demo-api-key` and a demo caller, and hands the
 * host process only the standard Azure variables that point at them.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { DEFAULT_STORAGE, parseStorage } from '../shared/config';
import { ensureDevelopmentStorage } from './emulators/azurite';
import { startLocalAzure } from './emulators/localAzure';
import type { LocalAzure } from './emulators/localAzure';
import { applyLocalSettings, functionsPort } from './localSettings';

/** The demo caller's API key, printed in the banner. Local only. */
export const LOCAL_DEV_KEY = 'local-dev-key';

async function main(): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  applyLocalSettings(process.cwd(), env);
  const port = functionsPort(env);
  let azure: LocalAzure | undefined;
  const notes: string[] = [];
  let demoCaller = false;

  if (!env.KEY_VAULT_URI && !env.KEY_VAULT_ALIASES) {
    azure = await startLocalAzure({ stateDir: path.resolve('.local') });
    azure.keyVault.setSecret('demo', 'demo-api-key', `demo-${randomBytes(12).toString('hex')}`, { contentType: 'text/plain' });
    Object.assign(env, azure.env);
    // The ARM emulator knows the demo vault too, so the health check's management checks run.
    env.KEY_VAULT_RESOURCE_IDS ||= azure.keyVault.resourceId('demo');
    if (!env.ACCESS_POLICY) {
      env.ACCESS_POLICY = JSON.stringify({
        callers: [
          {
            name: 'local-dev',
            identities: [{ apiKeySha256: createHash('sha256').update(LOCAL_DEV_KEY).digest('hex') }],
            // The literal name makes the health check read it; the globs allow everything else.
            allow: ['demo-api-key', '*', '*/*'],
            operator: true,
          },
        ],
      });
      demoCaller = true;
      notes.push(`Demo caller "local-dev" with API key: ${LOCAL_DEV_KEY}`);
    }
    notes.unshift(`Key Vault emulator: ${env.KEY_VAULT_URI} (seeded with demo-api-key)`);
  }

  // Like `func start` with `UseDevelopmentStorage=true` (also the default when no storage form is
  // set): Azurite must be there. Start it when nothing listens on its ports (someone else's
  // Azurite is used as it is). Identity-based storage is the developer's own account.
  const storage = parseStorage(env);
  let azurite: { started: boolean; stop(): Promise<void> } | undefined;
  if (storage.kind === 'connectionString' && storage.connectionString === DEFAULT_STORAGE) {
    azurite = await ensureDevelopmentStorage();
    notes.push(
      azurite.started
        ? 'Azurite (storage emulator): started on 127.0.0.1:10000-10002'
        : 'Azurite (storage emulator): already running, used as it is',
    );
  }

  const child = spawn(process.execPath, [path.join(__dirname, 'hostProcess.js'), '--port', String(port)], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let announced = false;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    process.stdout.write(chunk);
    if (!announced && chunk.includes('Host listening on')) {
      announced = true;
      // The emulator sends Key Vault's events to the host's Event Grid endpoint, as a subscription would.
      azure?.keyVault.setEventSubscription({
        endpoint: `http://127.0.0.1:${port}/runtime/webhooks/eventgrid?functionName=secretEvents`,
        schema: 'EventGridSchema',
      });
      printBanner(port, notes, demoCaller);
    }
  });
  const stop = (): void => {
    child.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  child.on('exit', (code) => {
    void Promise.allSettled([azure?.stop(), azurite?.stop()]).finally(() => process.exit(code ?? 0));
  });
}

function printBanner(port: number, notes: string[], demoCaller: boolean): void {
  const base = `http://localhost:${port}/api`;
  const key = demoCaller ? LOCAL_DEV_KEY : '<your key>';
  const lines = [
    '',
    'Secret broker is running.',
    ...notes.map((n) => `  ${n}`),
    '',
    'Try:',
    `  curl -H 'x-api-key: ${key}' ${base}/secrets/demo-api-key`,
    `  curl -H 'x-api-key: ${key}' ${base}/secrets/demo-api-key/metadata`,
    `  curl -H 'x-api-key: ${key}' ${base}/secrets`,
    `  curl -H 'x-api-key: ${key}' -H 'Content-Type: application/json' -d '{"secrets":["demo-api-key","missing"]}' ${base}/secrets/resolve`,
    `  curl ${base}/openapi.json`,
    `  curl -X POST -H 'Content-Type: application/json' -d '{"input":null}' http://localhost:${port}/admin/functions/healthCheck`,
    `  curl -H 'x-api-key: ${key}' ${base}/health`,
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`npm start failed: ${err instanceof Error ? err.message : 'error'}\n`);
  process.exit(1);
});
