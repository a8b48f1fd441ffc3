/**
 * `broker rotate <name>`: starts (or resumes) the rotation of a secret tagged
 * `brokerRotation=entraApp` and runs, in this process, every step that can run now (docs/rotation.md),
 * as `POST /api/secrets/{name}/rotate` does; then prints its state. The rotation writes with the
 * rotation identity (`ROTATION_IDENTITY_CLIENT_ID`, a managed identity) and reads with your sign-in.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { TokenCredential } from '@azure/core-auth';
import { applyLocalSettings } from '../local/localSettings';
import { loadConfig } from '../shared/config';
import { BrokerError } from '../shared/errors';
import { startRotation, type RotationAnswer } from '../shared/http/rotationAnswer';
import { createRuntime } from '../shared/runtime';
import { type Output, OWN_SIGN_IN, runningEmulators, secretArgument, SETTINGS_HELP } from './cliCommon';

export const ROTATE_HELP = `Usage: broker rotate <name> [--vault <alias>] [--settings <file> | --local]

Starts the rotation of the secret <name> (tagged brokerRotation=entraApp and entraAppObjectId), or
resumes its active one, runs every step that can run now (a new Entra password, a new vault
version, caches refreshed, consumers notified) and prints its state. Retirement of the old version
waits for the callers to move; the health check's timer carries it on. Needs ROTATION_IDENTITY_CLIENT_ID:
Graph and Key Vault are written with that managed identity. Exit code 0 when the rotation goes on
or is done, 1 when it failed (the service's code and the remedy are printed) or was refused.

  --vault <alias>    the vault alias (default: the KEY_VAULT_URI vault, "default")
${SETTINGS_HELP}
  --local            rotate in the running npm start's emulators, with their settings and the
                     managed identities they serve (read from .local/emulators.json)`;

/** `rotate`: the rotation run in this process, its state printed as a few lines. */
export async function rotateCommand(
  secret: string,
  vault: string | undefined,
  env: NodeJS.ProcessEnv,
  io: Output,
  parts: { credential(): TokenCredential },
): Promise<number> {
  const { name, alias } = secretArgument(secret, vault, env, ROTATE_HELP);
  const config = loadConfig(env);
  // An operator's run is not the app's telemetry: nothing goes to Application Insights.
  const runtime = createRuntime({ ...config, appInsightsConnectionString: undefined }, { credential: parts.credential() });
  try {
    const answer = await startRotation(runtime.rotation()?.runner, alias, name);
    io.out(`${formatRotation(answer).join('\n')}\n`);
    return answer.state === 'failed' ? 1 : 0;
  } catch (err: unknown) {
    if (!(err instanceof BrokerError)) throw err;
    io.err(`error: ${err.code}: ${err.message}\n`);
    return 1;
  } finally {
    runtime.dispose();
  }
}

/**
 * `rotate --local`: the rotation against the running `npm start`'s emulators, in a child process
 * started with their variables (Node reads NODE_EXTRA_CA_CERTS only at start, as for `health
 * --local`), the emulators' managed identities as the only credentials and none of the developer's
 * sign-in variables. The child writes to this process's stdout and stderr; its exit code is ours.
 */
export async function rotateLocal(secret: string, vault: string | undefined, env: NodeJS.ProcessEnv, stateDir: string): Promise<number> {
  const running = runningEmulators(stateDir);
  const childEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(env).filter(([name]) => !OWN_SIGN_IN.test(name)));
  // npm start's own settings under the running description (as `adoption --local`).
  applyLocalSettings(path.dirname(stateDir), childEnv);
  Object.assign(childEnv, running.env, { AZURE_TOKEN_CREDENTIALS: 'ManagedIdentityCredential' });
  const args = [path.join(__dirname, 'broker.js'), 'rotate', secret, ...(vault === undefined ? [] : ['--vault', vault])];
  const child = spawn(process.execPath, args, { env: childEnv, stdio: ['ignore', 'inherit', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code ?? 1));
  });
}

/** A rotation's state as a few lines (no secret exists in it). */
export function formatRotation(a: RotationAnswer): string[] {
  const lines = [`rotation ${a.id} of ${a.vault}/${a.secret}: ${a.outcome} (${a.reason}), state ${a.state}`];
  lines.push(
    `  old version ${a.oldVersion} -> new version ${a.newVersion ?? '(not yet)'}${a.newExpiresOn ? ` (expires ${a.newExpiresOn})` : ''}`,
  );
  if (a.state === 'awaitingAdoption') {
    lines.push(
      `  ${a.holders.length > 0 ? `waiting for ${a.holders.join(', ')} to read the new version` : 'no caller holds retirement back'}` +
        `${a.deadline ? `; retirement at the latest ${a.deadline}` : ''}`,
    );
  }
  if (a.steps.retiredAt)
    lines.push(`  retired ${a.steps.retiredAt} (${a.retireReason ?? 'adopted'}): old password removed, old version disabled`);
  if (a.failure) {
    const f = a.failure;
    lines.push(`  failed at ${f.step}: ${f.service} ${f.code}${f.status === undefined ? '' : ` (HTTP ${f.status})`}: ${f.message}`);
    lines.push(`  remedy: ${f.remedy}`);
  }
  return lines;
}
