import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import {
  DEVELOPMENT_ACCOUNT_KEY,
  DEVELOPMENT_ACCOUNT_NAME,
  DEVELOPMENT_STORAGE_PORTS,
  developmentConnectionString,
} from '../../shared/storage/tableStorage';

/** A running Azurite (blob, queue and table services) on 127.0.0.1. */
export interface Azurite {
  /** Account-key connection string with explicit endpoints, so it works on any ports. */
  connectionString: string;
  /** The table service of the emulator's account, e.g. `http://127.0.0.1:10002/devstoreaccount1`. */
  tableServiceUri: string;
  blobPort: number;
  queuePort: number;
  tablePort: number;
  /** The accounts Azurite serves: `devstoreaccount1` and those of {@link AzuriteOptions.accounts}, with their keys. */
  accounts: Array<{ name: string; key: string }>;
  /** Stops Azurite and waits for its process to exit. Safe to call more than once. */
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  /** Folder for persisted data (created if missing). */
  location?: string;
  /** Keep all data in memory; excludes `location`. Default: true when no `location` is given. */
  inMemory?: boolean;
  /** Ports to listen on; 0 lets the system pick a free one. Default: all 0. */
  ports?: { blob: number; queue: number; table: number };
  /** Write Azurite's debug log to this file (otherwise it runs with --silent). */
  debugLogPath?: string;
  /** How long to wait for all three services to listen. Default {@link START_TIMEOUT_MS}. */
  startTimeoutMs?: number;
  /**
   * Serve HTTPS with this certificate and key (PEM files), e.g. the dev certificate of
   * devCertificate.ts; the client must trust it.
   */
  https?: { certPath: string; keyPath: string };
  /**
   * `basic`: accept OAuth bearer tokens too (Azurite checks their issuer, audience and lifetime,
   * not their signature). Azurite allows this over HTTPS only, so it needs `https`.
   */
  oauth?: 'basic';
  /**
   * Further storage accounts to serve besides `devstoreaccount1` (Azurite's AZURITE_ACCOUNTS), e.g.
   * a deployment's account name. Azurite takes production-style host names: a request whose Host is
   * `<account>.table.core.windows.net` (through a proxy, with `https`) is for `<account>`. The key
   * defaults to one derived from the name.
   */
  accounts?: Array<{ name: string; key?: string }>;
}

/** Azurite starts in about a second; this is generous for a loaded CI machine. */
export const START_TIMEOUT_MS = 30_000;
/** How long a graceful stop may take before the process is killed. */
const STOP_TIMEOUT_MS = 10_000;
/** Enough of Azurite's output to explain a failed start. */
const OUTPUT_TAIL_CHARS = 4_000;

/**
 * Runs in the child before Azurite: `node -e BOOTSTRAP <azurite.js> <args>` leaves
 * `process.argv` as if Azurite had been started directly. Azurite stops gracefully (flushing
 * its database) on SIGINT/SIGTERM only; turning the IPC channel's end into SIGTERM makes
 * `stop()` work the same on Windows, and makes Azurite exit when its parent dies instead of
 * holding the ports. `--accountsEnv <value>` (ours, removed from the arguments) becomes the
 * child's AZURITE_ACCOUNTS, so the child inherits the parent's environment otherwise unchanged.
 */
const BOOTSTRAP =
  "const i = process.argv.indexOf('--accountsEnv'); if (i > 0) { process.env.AZURITE_ACCOUNTS = process.argv[i + 1]; process.argv.splice(i, 2); }" +
  " process.once('disconnect', () => process.emit('SIGTERM')); require(process.argv[1]);";

const LISTENING = /Azurite (Blob|Queue|Table) service is successfully listening at https?:\/\/[^\s]+:(\d+)/g;

/**
 * Starts Azurite from the `azurite` npm package as a child Node process (the same Node binary),
 * with `--loose --skipApiVersionCheck --disableTelemetry` so any SDK version works and nothing
 * leaves the machine. A child process keeps Azurite's many dependencies and global logger out of
 * the caller's process (and out of Jest's module registry), and its exit frees every handle.
 * Resolves once all three services listen, with the ports they got.
 * @throws Error with Azurite's last output when it exits or does not listen in time.
 */
export async function startAzurite(opts: AzuriteOptions = {}): Promise<Azurite> {
  const ports = opts.ports ?? { blob: 0, queue: 0, table: 0 };
  const inMemory = opts.inMemory ?? opts.location === undefined;
  const args = [
    ...['--blobHost', '127.0.0.1', '--queueHost', '127.0.0.1', '--tableHost', '127.0.0.1'],
    ...['--blobPort', String(ports.blob), '--queuePort', String(ports.queue), '--tablePort', String(ports.table)],
    '--loose',
    '--skipApiVersionCheck',
    '--disableTelemetry',
  ];
  if (opts.oauth && !opts.https) throw new Error('startAzurite: oauth needs https (Azurite takes bearer tokens over HTTPS only)');
  if (opts.https) args.push('--cert', resolve(opts.https.certPath), '--key', resolve(opts.https.keyPath));
  if (opts.oauth) args.push('--oauth', opts.oauth);
  const protocol = opts.https ? 'https' : 'http';
  // Azurite writes nothing in memory mode, but still checks that its location (the working
  // directory) exists and is accessible; a temporary folder keeps it off the caller's tree.
  let cwd = tmpdir();
  if (inMemory) {
    if (opts.location !== undefined) throw new Error('startAzurite: inMemory and location exclude each other');
    args.push('--inMemoryPersistence');
  } else {
    cwd = resolve(opts.location ?? '.');
    await mkdir(cwd, { recursive: true });
    args.push('--location', cwd);
  }
  if (opts.debugLogPath !== undefined) args.push('--debug', resolve(opts.debugLogPath));
  else args.push('--silent');
  const accounts = [
    { name: DEVELOPMENT_ACCOUNT_NAME, key: DEVELOPMENT_ACCOUNT_KEY },
    ...(opts.accounts ?? []).map((a) => ({ name: a.name, key: a.key ?? derivedKey(a.name) })),
  ];
  // Read by BOOTSTRAP, which moves it into the child's AZURITE_ACCOUNTS before Azurite starts.
  if (opts.accounts?.length) args.push('--accountsEnv', accounts.map((a) => `${a.name}:${a.key}`).join(';'));

  const child = spawn(process.execPath, ['-e', BOOTSTRAP, require.resolve('azurite/dist/src/azurite.js'), ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    windowsHide: true,
  });
  // Exited, and both pipes closed, so nothing of the child is left open. (Not the child's 'close'
  // event: after the parent disconnects the IPC channel itself, Node 22 never emits it.)
  const exited = Promise.all([
    new Promise<void>((done) => {
      child.once('exit', () => done());
      child.once('error', () => {
        if (child.pid === undefined) done(); // never started, so no 'exit' follows
      });
    }),
    ...[child.stdout, child.stderr].map((pipe) =>
      pipe && !pipe.destroyed ? new Promise<void>((done) => pipe.once('close', () => done())) : undefined,
    ),
  ]).then(() => undefined);
  let output = '';
  const keep = (chunk: string): void => {
    output = (output + chunk).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  // Read everything for as long as the child lives: a full pipe would block Azurite.
  child.stderr?.on('data', keep);

  try {
    const listening = await waitForPorts(child, keep, opts.startTimeoutMs ?? START_TIMEOUT_MS);
    let stopping: Promise<void> | undefined;
    return {
      connectionString: developmentConnectionString(listening, protocol),
      tableServiceUri: `${protocol}://127.0.0.1:${listening.table}/${DEVELOPMENT_ACCOUNT_NAME}`,
      blobPort: listening.blob,
      queuePort: listening.queue,
      tablePort: listening.table,
      accounts,
      stop: () => (stopping ??= stopChild(child, exited)),
    };
  } catch (err) {
    await stopChild(child, exited);
    const tail = output.trim();
    throw new Error(`Azurite did not start: ${(err as Error).message}${tail ? `\n${tail}` : ''}`, { cause: err });
  }
}

/**
 * For `npm start` with `UseDevelopmentStorage=true`: starts Azurite on the well-known ports
 * 10000-10002, persisting under `.local/azurite`, when nothing listens on any of them. When
 * something does, that is taken to be the developer's own Azurite (or Storage Emulator) and
 * left alone: `started` is false and `stop()` does nothing. `ports` is for tests, which must not
 * take the well-known ones from a developer.
 * @throws Error when Azurite has to be started and cannot be.
 */
export async function ensureDevelopmentStorage(
  opts: { location?: string; ports?: { blob: number; queue: number; table: number } } = {},
): Promise<{ started: boolean; stop(): Promise<void> }> {
  const ports = opts.ports ?? DEVELOPMENT_STORAGE_PORTS;
  const busy = await Promise.all([ports.blob, ports.queue, ports.table].map((port) => isListening(port)));
  if (busy.some(Boolean)) return { started: false, stop: () => Promise.resolve() };
  const azurite = await startAzurite({
    location: opts.location ?? resolve('.local', 'azurite'),
    ports: { ...ports },
  });
  return { started: true, stop: () => azurite.stop() };
}

/** A stable base64 account key for an emulated account (emulator keys are not secrets). */
function derivedKey(name: string): string {
  const half = createHash('sha256').update(`azurite:${name}`).digest();
  return Buffer.concat([half, createHash('sha256').update(half).digest()]).toString('base64');
}

/** Resolves with the three ports once Azurite has printed that each service listens. */
function waitForPorts(
  child: ChildProcess,
  keep: (chunk: string) => void,
  timeoutMs: number,
): Promise<{ blob: number; queue: number; table: number }> {
  return new Promise((done, fail) => {
    const found = new Map<string, number>();
    let pending = '';
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: string): void => {
      keep(chunk);
      pending += chunk;
      for (const match of pending.matchAll(LISTENING)) {
        const [, service, port] = match;
        if (service !== undefined && port !== undefined) found.set(service.toLowerCase(), Number(port));
      }
      // Keep only the unfinished last line: matches never span lines.
      pending = pending.slice(pending.lastIndexOf('\n') + 1);
      const blob = found.get('blob');
      const queue = found.get('queue');
      const table = found.get('table');
      if (blob !== undefined && queue !== undefined && table !== undefined) finish(undefined, { blob, queue, table });
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      finish(new Error(`it exited (${signal ?? `code ${code}`})`));
    };
    const onError = (err: Error): void => finish(err);
    function finish(err: Error | undefined, ports?: { blob: number; queue: number; table: number }): void {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      // Still drained, only no longer parsed.
      child.stdout?.off('data', onData);
      child.stdout?.on('data', keep);
      if (err || !ports) fail(err ?? new Error('no ports'));
      else done(ports);
    }
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/** Asks Azurite to stop (IPC disconnect, see BOOTSTRAP); kills it if it has not exited in time. */
async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
    await exited;
    return;
  }
  if (child.connected) child.disconnect();
  else child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((done) => {
    timer = setTimeout(() => done(true), STOP_TIMEOUT_MS);
  });
  const late = await Promise.race([exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (late) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function isListening(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000);
    const answer = (listening: boolean): void => {
      socket.destroy();
      done(listening);
    };
    socket.once('connect', () => answer(true));
    socket.once('timeout', () => answer(false));
    socket.once('error', () => answer(false));
  });
}
