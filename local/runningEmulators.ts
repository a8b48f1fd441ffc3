import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * What a running `npm start` tells other local commands (`npm run emulator`, `npm run broker --
 * health --local`): where its emulators' control endpoint listens and the standard variables a
 * Node process needs to reach its emulators through the unmodified Azure SDK (IDENTITY_ENDPOINT,
 * IDENTITY_HEADER, HTTPS_PROXY, NO_PROXY, NODE_EXTRA_CA_CERTS, KEY_VAULT_URI, ...). It lives in
 * `.local/emulators.json` while `npm start` runs and is removed when it stops.
 */
export interface RunningEmulators {
  /** Process id of `npm start` (its launcher, `dist/local/start.js`). */
  pid: number;
  /** Base URL of the emulators' local control endpoint, e.g. `http://127.0.0.1:53124`. */
  control: string;
  /** The local host's base URL, e.g. `http://localhost:7071`. */
  host: string;
  /** Variables for a process that talks to the emulators (and the demo's settings). */
  env: Record<string, string>;
}

/** The file a running `npm start` describes itself in, under the project's state directory. */
export function runningEmulatorsFile(stateDir: string): string {
  return path.join(stateDir, 'emulators.json');
}

export function writeRunningEmulators(stateDir: string, running: RunningEmulators): void {
  writeFileSync(runningEmulatorsFile(stateDir), `${JSON.stringify(running, null, 2)}\n`, { mode: 0o600 });
}

export function removeRunningEmulators(stateDir: string): void {
  rmSync(runningEmulatorsFile(stateDir), { force: true });
}

/**
 * The running `npm start`'s description.
 * @throws Error with one line saying to run `npm start` when none is running (no file, or its process is gone).
 */
export function readRunningEmulators(stateDir: string): RunningEmulators {
  const notRunning = new Error(
    'The local emulators are not running: start them with `npm start` in another terminal, then run this again.',
  );
  let running: RunningEmulators;
  try {
    running = JSON.parse(readFileSync(runningEmulatorsFile(stateDir), 'utf8')) as RunningEmulators;
  } catch {
    throw notRunning;
  }
  if (!isAlive(running.pid)) throw notRunning;
  return running;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err: unknown) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
