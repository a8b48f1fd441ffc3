/**
 * `npm run emulator -- <command>`: drives the emulators of a running `npm start` through its control
 * endpoint (found in `.local/emulators.json`, local/runningEmulators.ts). Local only.
 *
 *   rotate <secret>   a new version of a demo secret, with a new random value
 *   firewall close    the demo vault refuses data-plane requests, as a closed Key Vault firewall does
 *   firewall open     undoes it
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
  firewall close    The demo vault refuses data-plane requests (403 ForbiddenByFirewall), as a closed
                    Key Vault firewall does, and ARM reports networkAcls.defaultAction Deny: the next
                    health check run fails and names the firewall.
  firewall open     Undoes firewall close.

Options:
  --help, -h        This text.
`;

const COMMANDS = 'use rotate <secret>, firewall close or firewall open (--help for details)';

/** What the arguments ask for, or the one line saying what is wrong with them. */
export type Command =
  | { kind: 'help' }
  | { kind: 'rotate'; secret: string }
  | { kind: 'firewall'; state: 'closed' | 'open' }
  | { kind: 'error'; message: string };

export function parseArgs(args: readonly string[]): Command {
  const option = args.find((a) => a.startsWith('-'));
  if (option === '--help' || option === '-h') return { kind: 'help' };
  if (option !== undefined) return { kind: 'error', message: `Unknown option "${option}": the only option is --help` };
  const [command, ...rest] = args;
  if (command === undefined) return { kind: 'error', message: `No command given: ${COMMANDS}` };
  if (command === 'help') return { kind: 'help' };
  if (command === 'rotate') {
    const [secret, ...extra] = rest;
    if (secret === undefined) return { kind: 'error', message: 'rotate needs a secret name, e.g. rotate demo-api-key' };
    if (extra.length > 0) return { kind: 'error', message: `rotate takes one secret name, not ${rest.length}: ${rest.join(' ')}` };
    return { kind: 'rotate', secret };
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
  const [route, body] = command.kind === 'rotate' ? ['/rotate', { secret: command.secret }] : ['/firewall', { state: command.state }];
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
  if (command.kind === 'rotate') {
    process.stdout.write(`${String(answer.vault)}/${String(answer.secret)}: new version ${String(answer.version)}\n`);
    if (answer.delivered !== true) process.stdout.write('  (the host has not acknowledged the event yet: see the npm start terminal)\n');
  } else {
    process.stdout.write(
      command.state === 'closed'
        ? `${String(answer.vault)}: firewall closed (Key Vault answers 403 ForbiddenByFirewall; ARM shows networkAcls.defaultAction Deny)\n`
        : `${String(answer.vault)}: firewall open\n`,
    );
  }
  return 0;
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
