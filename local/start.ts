/**
 * `npm start`: the whole function set on http://localhost:7071, like `func start`.
 *
 * With no KEY_VAULT_URI it first starts the embedded emulators (Key Vault, the App Service
 * managed-identity endpoint, and a CONNECT proxy so `https://demo.vault.azure.net/` reaches the
 * emulator with the SDK's checks intact), seeds the demo secrets, a demo caller and a demo consumer
 * (local/demoConsumer.ts), a rotatable demo secret bound to an application in the Microsoft Graph
 * emulator (local/rotationDemo.ts), and hands the host process only the standard Azure variables that
 * point at them. A control endpoint on 127.0.0.1 lets `npm run emulator` (local/emulatorCli.ts) rotate
 * a demo secret, send Key Vault's `SecretNearExpiry`, list the demo application's passwords or close
 * the demo vault's firewall; `.local/emulators.json` says where it listens while `npm start` runs
 * (local/runningEmulators.ts).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { DEFAULT_STORAGE, parseStorage } from '../shared/config';
import { DEMO_CONSUMER_NAME, startDemoConsumer, type DemoConsumer } from './demoConsumer';
import { ensureDevelopmentStorage } from './emulators/azurite';
import { readBody } from './emulators/requestBody';
import { startLocalAzure } from './emulators/localAzure';
import type { LocalAzure } from './emulators/localAzure';
import { newSigningSecret } from './emulators/webhookReceiver';
import { applyLocalSettings, functionsPort } from './localSettings';
import {
  demoPasswords,
  ROTATION_DEMO_APPLICATION,
  ROTATION_DEMO_APP_OBJECT_ID,
  ROTATION_DEMO_AZURE,
  ROTATION_DEMO_SECRET,
  ROTATION_DEMO_SETTINGS,
  seedRotationDemo,
} from './rotationDemo';
import { readRunningEmulators, removeRunningEmulators, writeRunningEmulators } from './runningEmulators';

/** The demo caller's API key, printed in the banner. Local only. */
export const LOCAL_DEV_KEY = 'local-dev-key';

/** The emulated vault `npm start` serves as KEY_VAULT_URI. */
const DEMO_VAULT = 'demo';
/** The demo secrets: the caller may read the first; the policy denies the second (`demo-admin-*`). */
const DEMO_SECRETS = ['demo-api-key', 'demo-admin-password'] as const;
/** The secret holding the demo consumer's `whsec_` key (its `signingSecret`). */
const DEMO_SIGNING_SECRET = 'demo-consumer-signing-key';
/** Far enough away that the health check's `expiry` check is ok (EXPIRY_WARNING_DAYS defaults to 30). */
const DEMO_EXPIRY_MS = 365 * 86_400_000;
/** How long `rotate` waits for the host to acknowledge the event before answering anyway. */
const ROTATE_WAIT_MS = 30_000;

async function main(): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  applyLocalSettings(process.cwd(), env);
  const port = functionsPort(env);
  const stateDir = path.resolve('.local');
  let azure: LocalAzure | undefined;
  let consumer: DemoConsumer | undefined;
  const notes: string[] = [];
  let demoCaller = false;
  /** The variables set here for the host, for `.local/emulators.json`. */
  const setForHost: Record<string, string> = {};
  const set = (name: string, value: string): void => {
    env[name] = value;
    setForHost[name] = value;
  };

  if (!env.KEY_VAULT_URI && !env.KEY_VAULT_ALIASES) {
    azure = await startLocalAzure({ stateDir, ...ROTATION_DEMO_AZURE });
    const expiresOn = (): Date => new Date(Date.now() + DEMO_EXPIRY_MS);
    for (const name of DEMO_SECRETS) {
      azure.keyVault.setSecret(DEMO_VAULT, name, demoValue(), { contentType: 'text/plain', expiresOn: expiresOn() });
    }
    // The rotatable demo secret: an Entra application's client secret the broker rotates (docs/rotation.md).
    seedRotationDemo(azure, DEMO_VAULT, expiresOn());
    // Rotation on, with short windows so retirement is watchable; only what the user did not set.
    for (const [name, value] of Object.entries(ROTATION_DEMO_SETTINGS)) if (!env[name]) set(name, value);
    // Only the demo secret may rotate, and only into its application (docs/rotation.md, ROTATION_TARGETS); only when unset.
    if (!env.ROTATION_TARGETS) set('ROTATION_TARGETS', JSON.stringify({ [ROTATION_DEMO_SECRET]: ROTATION_DEMO_APP_OBJECT_ID }));
    // Purge protection on, as the health check expects (soft delete is on already; Learn: "Azure Key
    // Vault soft-delete overview" recommends both): a demo seeding choice, so every check is ok.
    azure.arm.setVault(DEMO_VAULT, { enablePurgeProtection: true });
    for (const [name, value] of Object.entries(azure.env)) set(name, value);
    // The ARM emulator knows the demo vault too, so the health check's management checks run.
    if (!env.KEY_VAULT_RESOURCE_IDS) set('KEY_VAULT_RESOURCE_IDS', azure.keyVault.resourceId(DEMO_VAULT));
    // Integrations need the demo vault reachable: with its firewall closed the `firewall` check fails too.
    if (!env.VAULT_EXPECTATIONS) set('VAULT_EXPECTATIONS', JSON.stringify({ default: { firewall: 'off' } }));
    if (!env.ACCESS_POLICY) {
      set(
        'ACCESS_POLICY',
        JSON.stringify({
          callers: [
            {
              name: 'local-dev',
              identities: [{ apiKeySha256: createHash('sha256').update(LOCAL_DEV_KEY).digest('hex') }],
              // The literal name makes the health check read it; the globs allow everything else,
              // but `deny` wins: demo-admin-password is refused (403).
              allow: ['demo-api-key', '*', '*/*'],
              deny: ['demo-admin-*'],
              operator: true,
            },
          ],
        }),
      );
      demoCaller = true;
      notes.push(`Demo caller "local-dev" with API key: ${LOCAL_DEV_KEY} (may read demo-*, not demo-admin-*)`);
    }
    if (!env.CONSUMERS) {
      const signingKey = newSigningSecret();
      azure.keyVault.setSecret(DEMO_VAULT, DEMO_SIGNING_SECRET, signingKey, { contentType: 'text/plain', expiresOn: expiresOn() });
      consumer = await startDemoConsumer({ signingSecret: signingKey, write: (line) => process.stdout.write(`${line}\n`) });
      set(
        'CONSUMERS',
        JSON.stringify([
          {
            name: DEMO_CONSUMER_NAME,
            secrets: ['demo-api-key', ROTATION_DEMO_SECRET],
            events: ['SecretNewVersionCreated', 'SecretNearExpiry', 'SecretExpired', 'HealthCheckFailed', 'HealthCheckRecovered'],
            webhook: consumer.url,
            signingSecret: DEMO_SIGNING_SECRET,
          },
        ]),
      );
      notes.push(
        `Demo consumer: ${consumer.url} (notified of ${DEMO_SECRETS[0]}'s and ${ROTATION_DEMO_SECRET}'s events and health changes)`,
      );
    }
    notes.unshift(
      `Key Vault emulator: ${env.KEY_VAULT_URI} (seeded with ${[...DEMO_SECRETS, ROTATION_DEMO_SECRET].join(', ')})`,
      `Microsoft Graph emulator: application "${ROTATION_DEMO_APPLICATION}", whose client secret ${ROTATION_DEMO_SECRET} holds`,
    );
  }

  // Like `func start` with `UseDevelopmentStorage=true` (also the default when no storage form is
  // set): Azurite must be there. Start it when nothing listens on its ports (someone else's
  // Azurite is used as it is). Identity-based storage is the developer's own account.
  const storage = parseStorage(env);
  let azurite: { started: boolean; stop(): Promise<void> } | undefined;
  if (storage.kind === 'connectionString' && storage.connectionString === DEFAULT_STORAGE) {
    if (!env.AzureWebJobsStorage) set('AzureWebJobsStorage', DEFAULT_STORAGE);
    azurite = await ensureDevelopmentStorage();
    notes.push(
      azurite.started
        ? 'Azurite (storage emulator): started on 127.0.0.1:10000-10002'
        : 'Azurite (storage emulator): already running, used as it is',
    );
  }

  const control = azure ? await startControlServer(azure) : undefined;

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
      if (control) {
        writeRunningEmulators(stateDir, { pid: process.pid, control: control.url, host: `http://localhost:${port}`, env: setForHost });
      }
      printBanner(port, notes, demoCaller, azure !== undefined, consumer !== undefined);
    }
  });
  const stop = (): void => {
    child.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // However this process ends, the file no longer describes a running `npm start`.
  process.on('exit', () => forgetRunningEmulators(stateDir));
  child.on('exit', (code) => {
    forgetRunningEmulators(stateDir);
    void Promise.allSettled([control?.stop(), consumer?.stop(), azure?.stop(), azurite?.stop()]).finally(() => process.exit(code ?? 0));
  });
}

/** Removes `.local/emulators.json` if it describes this process (another `npm start` may have written it since). */
function forgetRunningEmulators(stateDir: string): void {
  try {
    if (readRunningEmulators(stateDir).pid === process.pid) removeRunningEmulators(stateDir);
  } catch {
    // No file, or it names a process that is gone: nothing of ours to remove.
  }
}

/** A new random demo value; never printed. */
function demoValue(): string {
  return `demo-${randomBytes(12).toString('hex')}`;
}

/**
 * The emulators' control endpoint on 127.0.0.1 (any free port), for `npm run emulator`:
 *
 * - `POST /rotate` `{"secret":"demo-api-key"}`: a new version of a demo secret with a new random
 *   value (and an expiry a year away), as `az keyvault secret set` would make; Key Vault's
 *   `SecretNewVersionCreated` goes to the host. Answers `{vault, secret, version, delivered}` once the
 *   host acknowledged the event (or after {@link ROTATE_WAIT_MS}).
 * - `POST /near-expiry` `{"secret":"demo-app-secret"}`: Key Vault's `SecretNearExpiry` for the latest
 *   version of a secret of the demo vault, sent to the host as Event Grid would. Answers `{vault,
 *   secret, version, delivered}` once the host acknowledged it (or after {@link ROTATE_WAIT_MS}).
 * - `POST /passwords` `{"secret":"demo-app-secret"}`: the demo application's password credentials as
 *   Graph lists them (keyId, displayName, endDateTime; never the secret text or its hint).
 * - `POST /firewall` `{"state":"closed"|"open"}`: the demo vault's firewall, closed as when its network
 *   rules admit no address: the data plane answers 403 `ForbiddenByFirewall` and ARM reports
 *   `networkAcls.defaultAction: Deny`; `open` undoes both.
 *
 * Only JSON POSTs whose Host is this endpoint's own address are served, so a web page cannot drive
 * it (a cross-site JSON POST needs a preflight this endpoint never grants).
 */
async function startControlServer(azure: LocalAzure): Promise<{ url: string; stop(): Promise<void> }> {
  const server = createServer((req, res) => {
    serveControl(azure, req, res, `127.0.0.1:${port}`).catch((err: unknown) =>
      answer(res, 500, { error: err instanceof Error ? err.message : 'control request failed' }),
    );
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function serveControl(azure: LocalAzure, req: IncomingMessage, res: ServerResponse, ownHost: string): Promise<void> {
  if (req.headers.host !== ownHost) return answer(res, 403, { error: 'this endpoint serves only requests to its own address' });
  if ((req.method ?? '').toUpperCase() !== 'POST') return answer(res, 405, { error: 'only POST is served' });
  if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) {
    return answer(res, 415, { error: 'the body must be JSON (Content-Type: application/json)' });
  }
  const raw = await readBody(req, 10_000);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse((raw ?? Buffer.alloc(0)).toString('utf8')) as Record<string, unknown>;
    if (typeof body !== 'object' || body === null) throw new Error('not an object');
  } catch {
    return answer(res, 400, { error: 'the body must be a JSON object' });
  }
  const route = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
  if (route === '/rotate') {
    const secret = typeof body.secret === 'string' ? body.secret : '';
    const known = DEMO_SECRETS.find((s) => s === secret.toLowerCase());
    if (!known) {
      return answer(res, 404, { error: `"${secret.slice(0, 127)}" is not a demo secret: rotate one of ${DEMO_SECRETS.join(', ')}` });
    }
    const { version, eventId } = azure.keyVault.setSecret(DEMO_VAULT, known, demoValue(), {
      contentType: 'text/plain',
      expiresOn: new Date(Date.now() + DEMO_EXPIRY_MS),
    });
    const delivered = eventId === undefined ? false : await deliveredWithin(azure, eventId, ROTATE_WAIT_MS);
    return answer(res, 200, { vault: DEMO_VAULT, secret: known, version, delivered });
  }
  if (route === '/near-expiry') {
    const secret = typeof body.secret === 'string' ? body.secret.toLowerCase() : '';
    let eventId: string;
    try {
      // Learn: "Azure Key Vault as Event Grid source": Microsoft.KeyVault.SecretNearExpiry is raised 30
      // days before the current version expires, its data naming that version (Id, VaultName,
      // ObjectType, ObjectName, Version, NBF, EXP); the emulator builds it as for its other events,
      // for the latest version by default.
      eventId = await azure.keyVault.emitSecretEvent(DEMO_VAULT, secret, 'SecretNearExpiry');
    } catch (err: unknown) {
      if (err instanceof Error && err.message.startsWith('Unknown secret')) {
        return answer(res, 404, { error: `"${secret.slice(0, 127)}" is not a secret of the demo vault: try ${ROTATION_DEMO_SECRET}` });
      }
      throw err;
    }
    const version = azure.keyVault.emittedEvents().find((e) => e.id === eventId)?.data.Version ?? null;
    const delivered = await deliveredWithin(azure, eventId, ROTATE_WAIT_MS);
    return answer(res, 200, { vault: DEMO_VAULT, secret, version, delivered });
  }
  if (route === '/passwords') {
    const secret = typeof body.secret === 'string' ? body.secret.toLowerCase() : '';
    if (secret !== ROTATION_DEMO_SECRET) {
      return answer(res, 404, { error: `"${secret.slice(0, 127)}" is not bound to a demo application: use ${ROTATION_DEMO_SECRET}` });
    }
    return answer(res, 200, { secret, ...demoPasswords(azure) });
  }
  if (route === '/firewall') {
    // Learn: "Configure Azure Key Vault networking settings": publicNetworkAccess Enabled with
    // networkAcls.defaultAction Deny is "allow public access from specific virtual networks and IP
    // addresses"; with none listed, every public client is refused with 403 ForbiddenByFirewall.
    if (body.state === 'closed') {
      azure.keyVault.setFault({ kind: 'firewall' }, DEMO_VAULT);
      azure.arm.setVault(DEMO_VAULT, { networkDefaultAction: 'Deny' });
    } else if (body.state === 'open') {
      azure.keyVault.clearFault('firewall', DEMO_VAULT);
      azure.arm.setVault(DEMO_VAULT, { networkDefaultAction: 'Allow' });
    } else {
      return answer(res, 400, { error: 'state must be "closed" or "open"' });
    }
    return answer(res, 200, { vault: DEMO_VAULT, firewall: body.state });
  }
  return answer(res, 404, { error: `no control endpoint ${route.slice(0, 100)}: use /rotate, /near-expiry, /passwords or /firewall` });
}

/** Whether the host answered 2xx to the event within `ms`. */
async function deliveredWithin(azure: LocalAzure, eventId: string, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([azure.keyVault.whenDelivered(eventId).then((outcome) => outcome.status !== null), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function answer(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function printBanner(port: number, notes: string[], demoCaller: boolean, emulators: boolean, demoConsumer: boolean): void {
  const host = `http://localhost:${port}`;
  const base = `${host}/api`;
  const key = demoCaller ? LOCAL_DEV_KEY : '<your key>';
  const runHealth = `curl -X POST -H 'Content-Type: application/json' -d '{"input":null}' ${host}/admin/functions/healthCheck`;
  const readHealth = `curl -H 'x-api-key: ${key}' ${base}/health`;
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
    ...(demoCaller
      ? [`  curl -s -H 'x-api-key: ${key}' ${base}/secrets/demo-admin-password    # 403: the policy denies demo-admin-*`]
      : []),
    `  curl ${base}/openapi.json`,
    `  ${runHealth}`,
    `  ${readHealth}`,
    ...(emulators
      ? [
          '',
          'Watch a rotation (run it in another terminal):',
          '  npm run emulator -- rotate demo-api-key',
          `  This terminal then shows the event received, the cache refreshed${demoConsumer ? ' and the demo consumer notified (signature verified)' : ''};`,
          `  curl -H 'x-api-key: ${key}' ${base}/secrets/demo-api-key answers the new version.`,
          '',
          `Rotate an Entra app's client secret (${ROTATION_DEMO_SECRET} holds "${ROTATION_DEMO_APPLICATION}"'s; in another terminal):`,
          `  curl -H 'x-api-key: ${key}' ${base}/secrets/${ROTATION_DEMO_SECRET}    # a caller reads the current version`,
          `  npm run emulator -- near-expiry ${ROTATION_DEMO_SECRET}    # Key Vault's SecretNearExpiry: the broker rotates`,
          `  npm run emulator -- passwords ${ROTATION_DEMO_SECRET}      # 2 passwords: the old one and the rotation's`,
          `  curl -H 'x-api-key: ${key}' ${base}/secrets/${ROTATION_DEMO_SECRET}    # the caller moves to the new version`,
          `  ${runHealth}    # a minute later, the job that advances rotations: the old password goes`,
          `  npm run emulator -- passwords ${ROTATION_DEMO_SECRET}      # 1 password: the new one`,
          `  This terminal shows the rotation's steps${demoConsumer ? ', and the demo consumer secretbroker.secret.rotated, then .retired' : ''}.`,
          `  A caller that never moves holds it back until ROTATION_RETIRE_AFTER_HOURS (demo: ${ROTATION_DEMO_SETTINGS.ROTATION_RETIRE_AFTER_HOURS}) after the new version.`,
          '',
          `Break the health check and watch it recover${demoConsumer ? ' (the demo consumer prints the failure and the recovery)' : ''}:`,
          '  npm run emulator -- firewall close',
          `  ${runHealth}`,
          `  ${readHealth}    # 503: ForbiddenByFirewall`,
          '  npm run emulator -- firewall open',
          `  ${runHealth}`,
          `  ${readHealth}    # 200: ok`,
        ]
      : []),
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`npm start failed: ${err instanceof Error ? err.message : 'error'}\n`);
  process.exit(1);
});
