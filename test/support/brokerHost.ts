import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';

/** The compiled local host process (`npm test` builds first). */
const HOST_PROCESS = path.resolve(__dirname, '../../dist/local/hostProcess.js');

/** Once a year: tests run timers on demand. */
const QUIET_SCHEDULE = '0 0 0 1 1 *';

export interface BrokerHost {
  readonly url: string;
  /** Every line the host printed on stdout and stderr so far. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts a local host process, exactly as `npm start` does, with `env` as its whole settings
 * (plus PATH), and resolves once it listens.
 */
export async function startBrokerHost(env: Record<string, string>): Promise<BrokerHost> {
  const child = spawn(process.execPath, [HOST_PROCESS, '--port', '0'], {
    // The health-check timer would otherwise fire at every quarter hour, in the middle of tests.
    env: { PATH: process.env.PATH ?? '', HEALTH_CHECK_SCHEDULE: QUIET_SCHEDULE, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: path.resolve(__dirname, '..'), // no local.settings.json here
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (): void => {
      const match = /Host listening on (http:\/\/\S+)/.exec(output);
      if (match?.[1]) resolve(match[1]);
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`host exited with ${code}: ${output}`)));
  });
  return {
    url,
    output: () => output,
    stop: () => stopProcess(child),
  };
}

/**
 * Runs a host process to its end and returns its exit code and output (for start-up failures).
 * `args` default to `--port 0`; without `--port` the process reads FUNCTIONS_PORT, as `npm start`'s.
 */
export async function runBrokerHostToExit(
  env: Record<string, string>,
  args: readonly string[] = ['--port', '0'],
): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [HOST_PROCESS, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: path.resolve(__dirname, '..'),
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  return { code, output };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
