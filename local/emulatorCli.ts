/**
 * `npm run emulator -- <command>`: drives the emulators of a running `npm start` through its control
 * endpoint (found in `.local/emulators.json`, local/runningEmulators.ts). Local only.
 *
 *   rotate <secret>        a new version of a demo secret, with a new random value
 *   near-expiry <secret>   Key Vault's SecretNearExpiry for the secret's latest version, sent to the host
 *   passwords <secret>     the password credentials of the application the secret holds (never their text)
 *   firewall close         the demo vault refuses data-plane requests, as a closed Key Vault firewall does
 *   firewall open          undoes it
 */
import path from 'node:path';
import { readRunningEmulators } from './runningEmulators';

const HELP = `Usage: npm run emulator -- <command>

Drives the emulators of a running \`npm start\` (start it in another terminal first).

Commands:
  rotate <secret>   A new version of a demo secret (demo-api-key or demo-admin-password) with a new
                    random value. The npm start terminal shows the event received, the cache
                    refreshed and the demo consumer notified (signature verified); the next read
                    answers the new version.
  near-expiry <secret>
                    Key Vault's SecretNearExpiry for the secret's latest version, sent to the host
                    as Event Grid would. For demo-app-secret (an Entra application's client secret,
                    tagged brokerRotation=entraApp) the broker rotates it: a new password, a new
                    version, consumers notified; the old password goes once the callers moved.
  passwords <secret>
                    The password credentials of the emulated application whose client secret the
                    secret holds (demo-app-secret): keyId, display name, end date; never the
                    secret text, nor Graph's hint (its first three characters).
  firewall close    The demo vault refuses data-plane requests (403 ForbiddenByFirewall), as a closed
                    Key Vault firewall does, and ARM reports networkAcls.defaultAction Deny: the next
                    health check run fails and names the firewall.
  firewall open     Undoes firewall close.

Options:
  --help, -h        This text.
`;

const COMMANDS = 'use rotate <secret>, near-expiry <secret>, passwords <secret>, firewall close or firewall open (--help for details)';

/** What the arguments ask for, or the one line saying what is wrong with them. */
export type Command =
  | { kind: 'help' }
  | { kind: 'rotate' | 'near-expiry' | 'passwords'; secret: string }
  | { kind: 'firewall'; state: 'closed' | 'open' }
  | { kind: 'error'; message: string };

export function parseArgs(args: readonly string[]): Command {
  const option = args.find((a) => a.startsWith('-'));
  if (option === '--help' || option === '-h') return { kind: 'help' };
  if (option !== undefined) return { kind: 'error', message: `Unknown option "${option}": the only option is --help` };
  const [command, ...rest] = args;
  if (command === undefined) return { kind: 'error', message: `No command given: ${COMMANDS}` };
  if (command === 'help') return { kind: 'help' };
  if (command === 'rotate' || command === 'near-expiry' || command === 'passwords') {
    const [secret, ...extra] = rest;
    const example = command === 'rotate' ? 'demo-api-key' : 'demo-app-secret';
    if (secret === undefined) return { kind: 'error', message: `${command} needs a secret name, e.g. ${command} ${example}` };
    if (extra.length > 0) return { kind: 'error', message: `${command} takes one secret name, not ${rest.length}: ${rest.join(' ')}` };
    return { kind: command, secret };
  }
  if (command === 'firewall') {
    const [state, ...extra] = rest;
    if ((state === 'close' || state === 'open') && extra.length === 0)
      return { kind: 'firewall', state: state === 'close' ? 'closed' : 'open' };
    return { kind: 'error', message: `firewall takes close or open${rest.length > 0 ? `, not "${rest.join(' ')}"` : ''}` };
  }
  return { kind: 'error', message: `Unknown command "${command}": ${COMMANDS}` };
}

/** Runs one command; resolves with the exit code. */
async function run(args: readonly string[], stateDir: string): Promise<number> {
  const command = parseArgs(args);
  if (command.kind === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (command.kind === 'error') return fail(command.message);
  let control: string;
  try {
    control = readRunningEmulators(stateDir).control;
  } catch (err: unknown) {
    return fail(err instanceof Error ? err.message : 'The local emulators are not running');
  }
  const [route, body] =
    command.kind === 'firewall' ? ['/firewall', { state: command.state }] : [`/${command.kind}`, { secret: command.secret }];
  let response: Response;
  try {
    response = await fetch(`${control}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (err: unknown) {
    const code = (err as { cause?: { code?: unknown } } | null)?.cause?.code;
    return fail(
      `The local emulators did not answer at ${control}${typeof code === 'string' ? ` (${code})` : ''}: is npm start still running?`,
    );
  }
  const answer = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok) return fail(typeof answer.error === 'string' ? answer.error : `The control endpoint answered ${response.status}`);
  if (command.kind === 'rotate' || command.kind === 'near-expiry') {
    process.stdout.write(
      command.kind === 'rotate'
        ? `${String(answer.vault)}/${String(answer.secret)}: new version ${String(answer.version)}\n`
        : `${String(answer.vault)}/${String(answer.secret)}: SecretNearExpiry sent for version ${String(answer.version)}\n`,
    );
    if (answer.delivered !== true) process.stdout.write('  (the host has not acknowledged the event yet: see the npm start terminal)\n');
  } else if (command.kind === 'passwords') {
    process.stdout.write(passwordTable(answer));
  } else if (command.kind === 'firewall') {
    process.stdout.write(
      command.state === 'closed'
        ? `${String(answer.vault)}: firewall closed (Key Vault answers 403 ForbiddenByFirewall; ARM shows networkAcls.defaultAction Deny)\n`
        : `${String(answer.vault)}: firewall open\n`,
    );
  }
  return 0;
}

/**
 * The application's passwords as a table: keyId, display name, end date. Graph lists no secret text;
 * its `hint` (the text's first three characters) is left out too: no part of a secret is printed.
 */
export function passwordTable(answer: Record<string, unknown>): string {
  const app = (typeof answer.application === 'object' && answer.application !== null ? answer.application : {}) as Record<string, unknown>;
  const passwords = (Array.isArray(answer.passwords) ? answer.passwords : []) as Record<string, unknown>[];
  const cell = (v: unknown): string => (typeof v === 'string' ? v : '');
  const rows = passwords.map((p) => [cell(p.keyId), cell(p.displayName), cell(p.endDateTime)]);
  const head = ['keyId', 'displayName', 'endDateTime'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `  ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
  const count = `${passwords.length} password${passwords.length === 1 ? '' : 's'}`;
  return [
    `${String(app.displayName)} (application ${String(app.objectId)}), whose client secret ${String(answer.secret)} holds: ${count}`,
    ...(rows.length > 0 ? [line(head), ...rows.map(line)] : []),
    '',
  ].join('\n');
}

function fail(message: string): number {
  process.stderr.write(`${message}\n`);
  return 1;
}

if (require.main === module) {
  run(process.argv.slice(2), path.resolve('.local')).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      process.stderr.write(`npm run emulator failed: ${err instanceof Error ? err.message : 'error'}\n`);
      process.exitCode = 1;
    },
  );
}
