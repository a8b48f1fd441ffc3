/**
 * The README's quick start, run as written: `npm start` in a copy of the project, then every
 * command of the README's doc-test blocks (see test/support/docTest.ts) in order, each checked for
 * the exit code (0 unless it says another) and the output its `# →` comment names. The copy is a folder of links to the
 * project's files, without `local.settings.json` or `.local/`, so a developer's own settings and a
 * running `npm start` stay out of it, as on a fresh clone.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Azurite, startAzurite } from '../../local/emulators/azurite';
import { type DocCommand, docTestBlocks } from '../support/docTest';

const ROOT = path.resolve(__dirname, '../..');
/** What a fresh clone does not have. */
const LEFT_OUT = new Set(['.git', '.local', 'local.settings.json']);
const README_PORT = 'localhost:7071';

jest.setTimeout(240_000);

let copy: string;
let azurite: Azurite;
let start: ChildProcess;
let port: number;
let startOutput = '';

beforeAll(async () => {
  copy = mkdtempSync(path.join(tmpdir(), 'readme-'));
  for (const entry of readdirSync(ROOT)) {
    if (!LEFT_OUT.has(entry)) symlinkSync(path.join(ROOT, entry), path.join(copy, entry));
  }
  port = await freePort();
  // Azurite on ports of its own: `npm start` would take 10000-10002, which other tests may hold.
  azurite = await startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } });
  start = spawn('npm', ['start'], {
    cwd: copy,
    env: { ...process.env, FUNCTIONS_PORT: String(port), AzureWebJobsStorage: azurite.connectionString },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  start.stdout?.setEncoding('utf8').on('data', (chunk: string) => (startOutput += chunk));
  start.stderr?.setEncoding('utf8').on('data', (chunk: string) => (startOutput += chunk));
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (startOutput.includes('Secret broker is running.')) {
        clearInterval(timer);
        resolve();
      }
    }, 100);
    start.once('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`npm start exited with ${code}:\n${startOutput}`));
    });
  });
});

afterAll(async () => {
  if (start?.pid !== undefined && start.exitCode === null) {
    const exited = new Promise((resolve) => start.once('exit', resolve));
    process.kill(-start.pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
    clearTimeout(timer);
    if (start.exitCode === null) process.kill(-start.pid, 'SIGKILL');
  }
  await azurite?.stop();
  if (copy) rmSync(copy, { recursive: true, force: true });
});

test('every doc-test command of the README answers as the README says', async () => {
  const blocks = docTestBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
  const commands = blocks.flat();
  // A README without the quick start would pass this test by running nothing.
  expect(blocks.length).toBeGreaterThanOrEqual(3);
  const values: string[] = [];
  let rotated: { secret: string; version: string } | undefined;
  /** After `near-expiry` of a secret bound to an application: the version the broker rotates away from. */
  let nearExpiry: { secret: string; oldVersion: string } | undefined;
  for (const doc of commands) {
    const { code, output } = await run(doc);
    const where = `README.md:${doc.line}: ${doc.command}\n${output}\n--- npm start, last lines:\n${startOutput.slice(-3000)}`;
    expect({ where, code }).toEqual({ where, code: doc.exitCode ?? 0 });
    if (doc.expect !== undefined) expect({ where, contains: output.includes(doc.expect) }).toEqual({ where, contains: true });
    const value = /"value":"([^"]+)"/.exec(output)?.[1];
    if (value !== undefined) values.push(value);

    // After a rotation, the next resolve of that secret answers the version the rotation made.
    const rotation = /emulator -- rotate (\S+)/.exec(doc.command);
    if (rotation?.[1] !== undefined) {
      const version = /new version ([0-9a-f]{32})/.exec(output)?.[1];
      expect({ where, version }).toEqual({ where, version: expect.any(String) });
      rotated = { secret: rotation[1], version: version ?? '' };
    } else if (rotated && doc.command.includes(`/api/secrets/${rotated.secret}`)) {
      expect(JSON.parse(output)).toMatchObject({ name: rotated.secret, version: rotated.version });
      rotated = undefined;
    }

    // After SecretNearExpiry, the broker has rotated the secret: the next resolve answers a new version.
    const nearing = /emulator -- near-expiry (\S+)/.exec(doc.command);
    if (nearing?.[1] !== undefined) {
      const oldVersion = /for version ([0-9a-f]{32})/.exec(output)?.[1];
      expect({ where, oldVersion }).toEqual({ where, oldVersion: expect.any(String) });
      nearExpiry = { secret: nearing[1], oldVersion: oldVersion ?? '' };
    } else if (nearExpiry && doc.command.includes(`/api/secrets/${nearExpiry.secret}`)) {
      const answer = JSON.parse(output) as { name?: string; version?: string };
      expect({ where, name: answer.name, moved: answer.version !== nearExpiry.oldVersion }).toEqual({
        where,
        name: nearExpiry.secret,
        moved: true,
      });
      nearExpiry = undefined;
    }
  }
  expect(rotated).toBeUndefined();
  expect(nearExpiry).toBeUndefined();
  // No value the README's commands read, the client secrets old and new among them, reached the npm start terminal.
  expect(values.length).toBeGreaterThanOrEqual(4);
  for (const value of values) expect(startOutput.includes(value)).toBe(false);
});

/** Runs one README command in the copy, against this test's port, with the environment of a shell. */
function run(doc: DocCommand): Promise<{ code: number; output: string }> {
  const command = doc.command.replaceAll(README_PORT, `localhost:${port}`);
  return new Promise((resolve) => {
    execFile('bash', ['-c', command], { cwd: copy, env: process.env, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
