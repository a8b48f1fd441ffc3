/**
 * `npm start`'s demo as a newcomer runs it (README, "The two commands"): `node dist/local/start.js`
 * in a fresh folder, then the banner's curls and `npm run emulator` commands. Uses the compiled
 * dist/ (`npm run build` first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Azurite, startAzurite } from '../../local/emulators/azurite';

const DIST = path.resolve(__dirname, '../../dist/local');
const KEY = 'local-dev-key';

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('npm start: the local demo', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'broker-demo-'));
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir, HEALTH_CHECK_SCHEDULE: '0 0 0 1 1 *' };
  let start: ChildProcess;
  let azurite: Azurite;
  let output = '';
  let base = '';

  /** Resolves once the output printed since `from` matches, with the text from `from` on. */
  function waitForOutput(pattern: RegExp, from = 0): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (pattern.test(output.slice(from))) {
          start.stdout?.off('data', check);
          start.off('exit', exited);
          resolve(output.slice(from));
        }
      };
      const exited = (): void => reject(new Error(`npm start exited before printing ${String(pattern)}:\n${output}`));
      start.stdout?.on('data', check);
      start.once('exit', exited);
      check();
    });
  }

  /** `npm run emulator -- <args>`, run from the demo's folder. */
  function emulator(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [path.join(DIST, 'emulatorCli.js'), ...args], {
        cwd: dir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  async function runHealthCheck(): Promise<{
    status: number;
    report: { status: string; vaults: { checks: Record<string, unknown>[] }[] };
  }> {
    const run = await fetch(`${base}/admin/functions/healthCheck`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"input":null}',
    });
    expect(run.status).toBe(202);
    const res = await fetch(`${base}/api/health`, { headers: { 'x-api-key': KEY } });
    return { status: res.status, report: (await res.json()) as { status: string; vaults: { checks: Record<string, unknown>[] }[] } };
  }

  beforeAll(async () => {
    const port = await freePort();
    // Azurite on ports of its own: `npm start` would take 10000-10002, which other tests may hold.
    azurite = await startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } });
    start = spawn(process.execPath, [path.join(DIST, 'start.js')], {
      cwd: dir,
      env: { ...env, FUNCTIONS_PORT: String(port), AzureWebJobsStorage: azurite.connectionString },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    start.stdout?.setEncoding('utf8').on('data', (c: string) => (output += c));
    start.stderr?.setEncoding('utf8').on('data', (c: string) => (output += c));
    await waitForOutput(/# 200: ok\n/);
    base = `http://localhost:${port}`;
  }, 90_000);

  afterAll(async () => {
    if (start.exitCode === null && start.signalCode === null) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => start.kill('SIGKILL'), 15_000);
        start.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        start.kill('SIGTERM');
      });
    }
    await azurite?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('prints the banner with the actual port and the demo commands', () => {
    expect(output).toContain(`curl -s -H 'x-api-key: ${KEY}' ${base}/api/secrets/demo-admin-password`);
    expect(output).toContain('npm run emulator -- rotate demo-api-key');
    expect(output).toContain('npm run emulator -- firewall close');
    expect(output).toContain('npm run emulator -- firewall open');
    expect(output).toContain(`curl -X POST -H 'Content-Type: application/json' -d '{"input":null}' ${base}/admin/functions/healthCheck`);
    expect(output).toContain('npm run emulator -- near-expiry demo-app-secret');
    expect(output).toContain('npm run emulator -- passwords demo-app-secret');
    expect(output).toContain(`curl -H 'x-api-key: ${KEY}' ${base}/api/secrets/demo-app-secret`);
  });

  it('describes itself in .local/emulators.json while it runs', () => {
    const running = JSON.parse(readFileSync(path.join(dir, '.local', 'emulators.json'), 'utf8')) as {
      pid: number;
      control: string;
      host: string;
      env: Record<string, string>;
    };
    expect(running.pid).toBe(start.pid);
    expect(running.host).toBe(base);
    expect(running.control).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(running.env).toMatchObject({
      KEY_VAULT_URI: 'https://demo.vault.azure.net/',
      // Rotation on, under the demo's user-assigned identity, with windows short enough to watch.
      ROTATION_IDENTITY_CLIENT_ID: '3a4b5c6d-7e8f-4a9b-8c0d-1e2f3a4b5c6d',
      ROTATION_RETIRE_AFTER_HOURS: '0.25',
      KEY_VAULT_RESOURCE_IDS:
        '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/Microsoft.KeyVault/vaults/demo',
    });
    expect(Object.keys(running.env)).toEqual(expect.arrayContaining(['IDENTITY_ENDPOINT', 'HTTPS_PROXY', 'ACCESS_POLICY', 'CONSUMERS']));
    // Only what npm start set itself: the storage came from the environment here.
    expect(running.env).not.toHaveProperty('AzureWebJobsStorage');
  });

  it('refuses the denied demo secret with 403 problem+json', async () => {
    const res = await fetch(`${base}/api/secrets/demo-admin-password`, { headers: { 'x-api-key': KEY } });
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(await res.json()).toMatchObject({ status: 403, code: 'Forbidden' });
  });

  it('is healthy out of the box: every check ok', async () => {
    const { status, report } = await runHealthCheck();
    expect(status).toBe(200);
    expect(report.status).toBe('ok');
    const notOk = report.vaults.flatMap((v) => v.checks).filter((c) => c.status !== 'ok');
    expect(notOk).toEqual([]);
  });

  it('rotate: the event, the cache refresh and the verified notification, in order; then the new version', async () => {
    const before = await fetch(`${base}/api/secrets/demo-api-key`, { headers: { 'x-api-key': KEY } });
    const old = (await before.json()) as { version: string; value: string };
    const from = output.length;

    const rotate = await emulator('rotate', 'demo-api-key');
    expect(rotate).toMatchObject({ code: 0, stderr: '' });
    const version = /^demo\/demo-api-key: new version ([0-9a-f]{32})\n$/.exec(rotate.stdout)?.[1];
    expect(version).toBeDefined();
    expect(version).not.toBe(old.version);

    const consumerLine = `demo consumer: secretbroker.secret.rotated default/demo-api-key version ${version} (signature verified)`;
    const printed = await waitForOutput(new RegExp(consumerLine.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')), from);
    const received = printed.indexOf(
      `secretEvents: received Microsoft.KeyVault.SecretNewVersionCreated for demo/demo-api-key version ${version}`,
    );
    const refreshed = printed.indexOf(`secretEvents: cache refreshed for default/demo-api-key`);
    const notified = printed.indexOf(consumerLine);
    expect(received).toBeGreaterThanOrEqual(0);
    expect(refreshed).toBeGreaterThan(received);
    expect(notified).toBeGreaterThan(refreshed);

    const after = await fetch(`${base}/api/secrets/demo-api-key`, { headers: { 'x-api-key': KEY } });
    const now = (await after.json()) as { version: string; value: string; expiresOn: string | null };
    expect(now.version).toBe(version);
    expect(now.expiresOn).not.toBeNull();
    // No value is ever printed, old or new.
    expect(output).not.toContain(old.value);
    expect(output).not.toContain(now.value);
  });

  it("rotates the demo application's client secret: new password, consumers told, the caller moves, the old password goes", async () => {
    const read = async (query = ''): Promise<{ status: number; body: { version?: string; value?: string; code?: string } }> => {
      const res = await fetch(`${base}/api/secrets/demo-app-secret${query}`, { headers: { 'x-api-key': KEY } });
      return { status: res.status, body: (await res.json()) as { version?: string; value?: string; code?: string } };
    };
    const keyIds = (stdout: string): string[] => [...stdout.matchAll(/^ {2}([0-9a-f-]{36}) /gm)].map((m) => m[1] ?? '');

    // The caller reads the current version: the application holds one password, the one it holds.
    const old = await read();
    expect(old.status).toBe(200);
    const before = await emulator('passwords', 'demo-app-secret');
    expect(before).toMatchObject({ code: 0, stderr: '' });
    expect(before.stdout).toContain('Demo ERP integration (application 5e1d2c3b-4a59-4687-9a1b-2c3d4e5f6a7b)');
    expect(before.stdout).toContain('holds: 1 password\n');
    const [oldKeyId] = keyIds(before.stdout);
    expect(oldKeyId).toBeDefined();

    // Key Vault's SecretNearExpiry: the broker adds a password, stores it as a new version, tells the consumer.
    const from = output.length;
    const nearExpiry = await emulator('near-expiry', 'demo-app-secret');
    expect(nearExpiry).toMatchObject({
      code: 0,
      stderr: '',
      stdout: `demo/demo-app-secret: SecretNearExpiry sent for version ${old.body.version}\n`,
    });
    // The host's steps, then the consumer told of the new version (once per webhook-id; a redelivery says so).
    const started = await waitForOutput(/rotation (rot-[\w-]+) default\/demo-app-secret: stored -> awaitingAdoption/, from);
    const rotationId = /rotation (rot-[\w-]+) default\/demo-app-secret: stored -> awaitingAdoption/.exec(started)?.[1] ?? '';
    expect(started).toContain(`rotation ${rotationId} default/demo-app-secret: started (SecretNearExpiry)`);
    const rotated = await waitForOutput(/demo consumer: secretbroker\.secret\.rotated default\/demo-app-secret version [0-9a-f]{32}/, from);
    const newVersion = /secretbroker\.secret\.rotated default\/demo-app-secret version ([0-9a-f]{32})/.exec(rotated)?.[1];
    expect(newVersion).toMatch(/^[0-9a-f]{32}$/);
    expect(newVersion).not.toBe(old.body.version);

    const during = await emulator('passwords', 'demo-app-secret');
    expect(during.stdout).toContain('holds: 2 passwords\n');
    expect(during.stdout).toContain(`secret-broker ${rotationId}`);
    const newKeyId = keyIds(during.stdout).find((k) => k !== oldKeyId);
    expect(keyIds(during.stdout)).toEqual(expect.arrayContaining([oldKeyId, newKeyId]));

    // The caller moves; the job that advances rotations retires the old password, then the old version.
    const moved = await read();
    expect(moved.body.version).toBe(newVersion);
    expect(moved.body.value).not.toBe(old.body.value);
    // As the README's `sleep 60`: "every caller moved" is believed once the new version is a minute old
    // (ADOPTION_SETTLE_MS: each instance writes what its callers read every 30 s).
    await new Promise((r) => setTimeout(r, 60_000));
    const run = await fetch(`${base}/admin/functions/healthCheck`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"input":null}',
    });
    expect(run.status).toBe(202);
    await waitForOutput(
      new RegExp(
        `demo consumer: secretbroker\\.secret\\.retired default/demo-app-secret version ${old.body.version} \\(rotation ${rotationId}\\)`,
      ),
      from,
    );
    // The host's own lines, in its order: the old password first, then the old version.
    const retired = await waitForOutput(new RegExp(`rotation ${rotationId} default/demo-app-secret: oldVersionDisabled -> retired`), from);
    const removed = retired.indexOf(`rotation ${rotationId} default/demo-app-secret: retiring -> passwordRemoved`);
    const disabled = retired.indexOf(`rotation ${rotationId} default/demo-app-secret: passwordRemoved -> oldVersionDisabled`);
    expect(removed).toBeGreaterThanOrEqual(0);
    expect(disabled).toBeGreaterThan(removed);

    const after = await emulator('passwords', 'demo-app-secret');
    expect(after.stdout).toContain('holds: 1 password\n');
    expect(keyIds(after.stdout)).toEqual([newKeyId]);
    expect(await read(`?version=${old.body.version}`)).toMatchObject({ status: 409, body: { code: 'SecretDisabled' } });
    // Neither client secret was ever printed: not by the host, the consumer or the emulator CLI.
    for (const text of [old.body.value, moved.body.value]) {
      expect(text).toBeDefined();
      expect(output).not.toContain(text);
      expect(`${before.stdout}${during.stdout}${after.stdout}${nearExpiry.stdout}`).not.toContain(text);
    }
  }, 150_000);

  it('firewall close fails the health check naming the firewall; open recovers it; the consumer hears both', async () => {
    const from = output.length;
    const close = await emulator('firewall', 'close');
    expect(close.code).toBe(0);
    expect(close.stdout).toMatch(/^demo: firewall closed/);

    const failed = await runHealthCheck();
    expect(failed.status).toBe(503);
    expect(failed.report.status).toBe('failed');
    const checks = failed.report.vaults.flatMap((v) => v.checks);
    expect(checks).toContainEqual(expect.objectContaining({ check: 'listSecrets', status: 'failed', cause: 'ForbiddenByFirewall' }));
    expect(checks).toContainEqual(expect.objectContaining({ check: 'firewall', status: 'failed', cause: 'FirewallNotAsExpected' }));
    await waitForOutput(
      /demo consumer: secretbroker\.health\.failed default status failed: .*ForbiddenByFirewall.* \(signature verified\)/,
      from,
    );

    const open = await emulator('firewall', 'open');
    expect(open).toMatchObject({ code: 0, stdout: 'demo: firewall open\n' });
    const recovered = await runHealthCheck();
    expect(recovered.status).toBe(200);
    expect(recovered.report.status).toBe('ok');
    await waitForOutput(/demo consumer: secretbroker\.health\.recovered default status ok \(signature verified\)/, from);
  });

  it('answers a wrong command with one line saying what is allowed', async () => {
    const unknown = await emulator('frobnicate');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(
      'Unknown command "frobnicate": use rotate <secret>, near-expiry <secret>, passwords <secret>, firewall close or firewall open (--help for details)\n',
    );
    const notInVault = await emulator('near-expiry', 'erp-password');
    expect(notInVault).toMatchObject({ code: 1, stderr: '"erp-password" is not a secret of the demo vault: try demo-app-secret\n' });
    const noApp = await emulator('passwords', 'demo-api-key');
    expect(noApp).toMatchObject({ code: 1, stderr: '"demo-api-key" is not bound to a demo application: use demo-app-secret\n' });
    const flag = await emulator('--force');
    expect(flag).toMatchObject({ code: 1, stderr: 'Unknown option "--force": the only option is --help\n' });
    const notDemo = await emulator('rotate', 'erp-password');
    expect(notDemo.code).toBe(1);
    expect(notDemo.stderr).toBe('"erp-password" is not a demo secret: rotate one of demo-api-key, demo-admin-password\n');
    const help = await emulator('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('rotate <secret>');
  });

  it('removes its description when it stops, and the CLI then says it is not running', async () => {
    await new Promise<void>((resolve) => {
      start.once('exit', () => resolve());
      start.kill('SIGTERM');
    });
    expect(existsSync(path.join(dir, '.local', 'emulators.json'))).toBe(false);
    const after = await emulator('rotate', 'demo-api-key');
    expect(after.code).toBe(1);
    expect(after.stderr).toBe(
      'The local emulators are not running: start them with `npm start` in another terminal, then run this again.\n',
    );
  }, 30_000);
});
