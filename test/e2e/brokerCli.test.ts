/**
 * End to end: the compiled operator CLI (`node dist/cli/broker.js`, as `npm run broker` runs it;
 * `npm test` builds first), with its settings in its environment or a settings file. `health`
 * reaches the emulators through the standard variables, as the broker itself does.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLocalAzure } from '../../local/emulators/localAzure';
import type { LocalAzure } from '../../local/emulators/localAzure';
import { writeRunningEmulators } from '../../local/runningEmulators';

const CLI = path.resolve(__dirname, '../../dist/cli/broker.js');
const sha = (key: string): string => createHash('sha256').update(key).digest('hex');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI with `env` as its whole environment (plus PATH), away from any local.settings.json
 * (in `cwd`, default the temp directory).
 */
function broker(args: string[], env: Record<string, string> = {}, cwd = os.tmpdir()): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, cwd, timeout: 60_000 },
      (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
    );
  });
}

const POLICY = JSON.stringify({
  callers: [
    {
      name: 'erp-integration',
      identities: [{ apiKeySha256: sha('old-key') }],
      allow: ['erp-*', 'partner/sftp-password'],
      deny: ['erp-admin-*'],
      rateLimit: { requestsPerMinute: 60 },
    },
  ],
});
const SETTINGS = {
  KEY_VAULT_URI: 'https://main.vault.azure.net/',
  KEY_VAULT_ALIASES: 'partner=https://partner.vault.azure.net/',
  ACCESS_POLICY: POLICY,
  CONSUMERS: JSON.stringify([{ name: 'erp', events: ['SecretExpired'], webhook: 'https://erp.example.com/h', signingSecret: 'whsec-erp' }]),
};

describe('broker keys new', () => {
  it('prints a key once with its SHA-256 and the caller entry with the hash added', async () => {
    const run = await broker(['keys', 'new', 'erp-integration'], SETTINGS);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const key = /^ {2}([A-Za-z0-9_-]{43})$/m.exec(run.stdout)?.[1];
    expect(key).toBeDefined();
    expect(Buffer.from(key!, 'base64url')).toHaveLength(32);
    expect(run.stdout.split(key!)).toHaveLength(2);
    expect(run.stdout).toContain(`Identity: {"apiKeySha256":"${sha(key!)}"}`);
    const entry = JSON.parse(run.stdout.slice(run.stdout.indexOf('\n{') + 1));
    expect(entry).toEqual({
      ...(JSON.parse(POLICY).callers[0] as object),
      identities: [{ apiKeySha256: sha('old-key') }, { apiKeySha256: sha(key!) }],
    });
  });

  it('prints a new entry for a caller the policy does not have, with no settings at all', async () => {
    const run = await broker(['keys', 'new', 'crm']);
    expect(run.code).toBe(0);
    const key = /^ {2}([A-Za-z0-9_-]{43})$/m.exec(run.stdout)?.[1];
    const entry = JSON.parse(run.stdout.slice(run.stdout.indexOf('\n{') + 1));
    expect(entry).toEqual({ name: 'crm', identities: [{ apiKeySha256: sha(key!) }], allow: [], deny: [] });
  });
});

describe('broker policy explain', () => {
  it.each([
    [['erp-integration', 'erp-token'], 0, 'allowed: "erp-integration" may read "erp-token" (allow pattern "erp-*")'],
    [
      ['erp-integration', 'sftp-password', '--vault', 'partner'],
      0,
      'allowed: "erp-integration" may read "partner/sftp-password" (allow pattern "partner/sftp-password")',
    ],
    [['erp-integration', 'erp-admin-db'], 1, 'denied: "erp-integration" may not read "erp-admin-db" (deny pattern "erp-admin-*")'],
    [
      ['erp-integration', 'crm-token'],
      1,
      'denied: "erp-integration" may not read "crm-token" (no allow pattern matches (deny by default))',
    ],
    [
      ['erp-integration', 'whsec-erp'],
      1,
      `denied: "whsec-erp" is a consumer's signing key (CONSUMERS signingSecret), refused to every caller, whatever the policy says`,
    ],
  ])('explains %j', async (args, code, line) => {
    const run = await broker(['policy', 'explain', ...args], SETTINGS);
    expect(run).toEqual({ code, stdout: `${line}\n`, stderr: '' });
  });

  it('reads its settings from a --settings file', async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'broker-cli-')), 'local.settings.json');
    writeFileSync(file, JSON.stringify({ IsEncrypted: false, Values: SETTINGS }));
    const run = await broker(['policy', 'explain', 'erp-integration', 'erp-admin-db', '--settings', file]);
    expect(run).toMatchObject({ code: 1, stdout: 'denied: "erp-integration" may not read "erp-admin-db" (deny pattern "erp-admin-*")\n' });
  });

  it('needs no KEY_VAULT_URI: ACCESS_POLICY alone answers, KEY_VAULT_ALIASES names the aliases', async () => {
    const { ACCESS_POLICY, KEY_VAULT_ALIASES } = SETTINGS;
    expect(await broker(['policy', 'explain', 'erp-integration', 'erp-token'], { ACCESS_POLICY })).toEqual({
      code: 0,
      stdout: 'allowed: "erp-integration" may read "erp-token" (allow pattern "erp-*")\n',
      stderr: '',
    });
    const run = await broker(['policy', 'explain', 'erp-integration', 'sftp-password', '--vault', 'partner'], {
      ACCESS_POLICY,
      KEY_VAULT_ALIASES,
    });
    expect(run).toMatchObject({
      code: 0,
      stdout: 'allowed: "erp-integration" may read "partner/sftp-password" (allow pattern "partner/sftp-password")\n',
    });
  });

  it('stops with the setting error line and exit code 2 on a bad setting', async () => {
    const run = await broker(['policy', 'explain', 'erp-integration', 'erp-token'], { ...SETTINGS, ACCESS_POLICY: '{callers:' });
    expect(run).toEqual({ code: 2, stdout: '', stderr: 'ACCESS_POLICY: is not valid JSON\n' });
  });
});

describe('broker usage', () => {
  it('shows the usage on stderr with exit code 2 for an unknown command', async () => {
    const run = await broker(['retire']);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^Unknown command "retire"\.\n\nUsage: broker <command>/);
  });

  it('shows a command help on stdout', async () => {
    const run = await broker(['health', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: broker health/);
  });
});

describe('without an Azure sign-in', () => {
  // No az/azd sign-in (an empty HOME), no AZURE_* variables, no managed identity endpoint: nothing.
  const sub = '11111111-2222-3333-4444-555555555555';
  const deployment = {
    subscriptionId: sub,
    resourceGroup: 'rg-broker',
    location: 'westeurope',
    appName: 'contoso-broker',
    vaults: { default: `/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/main-vault` },
    settings: { ACCESS_POLICY: POLICY },
  };
  let home: string;
  let file: string;
  beforeAll(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'broker-cli-home-'));
    file = path.join(home, 'deploy.json');
    writeFileSync(file, JSON.stringify(deployment));
  });
  const SIGN_IN =
    /^Not signed in to Azure: run "az login" \(or "azd auth login"\), or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET \(or AZURE_FEDERATED_TOKEN_FILE\) for a service principal\.$/;

  it.each([
    ['deploy', () => ['deploy', file], {}],
    ['health', () => ['health'], { KEY_VAULT_URI: 'https://main.vault.azure.net/' }],
  ])(
    '%s says how to sign in on its first line, with at most one line after',
    async (_name, args, env) => {
      const started = Date.now();
      const run = await broker(args(), { HOME: home, ...env });
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      const lines = run.stderr.trimEnd().split('\n');
      expect(lines[0]).toMatch(SIGN_IN);
      expect(lines.length).toBeLessThanOrEqual(2);
    },
    20_000,
  );

  it('deploy turns the --what-if npm took for its own into a what-if, and says how to pass it', async () => {
    const run = await broker(['deploy', file], { HOME: home, npm_config_what_if: 'true' });
    expect(run.code).toBe(1);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(
      'npm took --what-if as its own option (npm_config_what_if is set), so this is a what-if run that changes nothing; to pass options through npm, put them after "--": npm run deploy -- <file> --what-if',
    );
    expect(lines[1]).toMatch(SIGN_IN);
  }, 20_000);

  it('deploy refuses a bad setting with exit code 2 before trying to sign in', async () => {
    const bad = path.join(home, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...deployment, settings: { ACCESS_POLICY: '{callers:' } }));
    const run = await broker(['deploy', bad], { HOME: home });
    expect(run).toEqual({ code: 2, stdout: '', stderr: `${bad}: settings: ACCESS_POLICY: is not valid JSON\n` });
  });
});

describe('broker health', () => {
  const VAULT = 'cli-vault';
  let azure: LocalAzure;
  let env: Record<string, string>;

  beforeAll(async () => {
    azure = await startLocalAzure({ stateDir: mkdtempSync(path.join(os.tmpdir(), 'broker-cli-')), vaults: [VAULT] });
    azure.keyVault.setSecret(VAULT, 'erp-token', 'v1', { expiresOn: new Date(Date.now() + 365 * 86_400_000) });
    azure.arm.setVault(VAULT, { enablePurgeProtection: true });
    env = {
      ...azure.env,
      KEY_VAULT_URI: azure.keyVault.vaultUri(VAULT),
      KEY_VAULT_RESOURCE_IDS: azure.keyVault.resourceId(VAULT),
      ACCESS_POLICY: JSON.stringify({ callers: [{ name: 'erp', identities: [{ apiKeySha256: sha('k') }], allow: ['erp-token'] }] }),
      // No AzureWebJobsStorage and nothing listening for it: the command needs no storage.
      AzureWebJobsStorage:
        'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:9/devstoreaccount1',
    };
  });

  afterAll(async () => {
    await azure?.stop();
  });

  it('prints every check ok as a table without colour and exits 0 when healthy', async () => {
    azure.keyVault.clearFaults();
    const run = await broker(['health'], env);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^Health: ok \(default=ok; started \S+, \d+ ms\)$/);
    expect(lines[2]).toMatch(/^vault +check +target +status +cause +remedy$/);
    expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/^default +getSecret +erp-token +ok +-$/)]));
    expect(run.stdout).not.toContain('\u001b[');
  });

  describe('--local: the emulators of a running npm start', () => {
    /** A project directory whose .local/emulators.json describes this test's emulators, as npm start's does. */
    let project: string;
    let home: string;
    beforeAll(() => {
      project = mkdtempSync(path.join(os.tmpdir(), 'broker-cli-project-'));
      home = mkdtempSync(path.join(os.tmpdir(), 'broker-cli-home-'));
      mkdirSync(path.join(project, '.local'));
      writeRunningEmulators(path.join(project, '.local'), {
        pid: process.pid,
        control: 'http://127.0.0.1:9',
        host: 'http://localhost:7071',
        env,
      });
    });

    it("checks them with their variables and the managed identity they serve, whatever the shell's settings and sign-in", async () => {
      // Nothing of the emulators in this environment: the CA, the proxy, the identity endpoint and
      // the vault come from the file alone (NODE_EXTRA_CA_CERTS only works from a process's start).
      // A vault elsewhere and a service principal of the developer's must not be used; no az sign-in (empty HOME).
      const shell = {
        HOME: home,
        KEY_VAULT_URI: 'https://elsewhere.vault.azure.net/',
        AZURE_TENANT_ID: '11111111-2222-3333-4444-555555555555',
        AZURE_CLIENT_ID: '66666666-7777-8888-9999-000000000000',
        AZURE_CLIENT_SECRET: 'not-a-secret',
      };
      const run = await broker(['health', '--local'], shell, project);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const lines = run.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^Health: ok \(default=ok; /);
      expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/^default +getSecret +erp-token +ok +-$/)]));
      expect(run.stdout).not.toContain('elsewhere');
    });

    it('passes on the exit code 1 of a failed check', async () => {
      azure.keyVault.setFault({ kind: 'firewall' }, VAULT);
      try {
        const run = await broker(['health', '--local'], { HOME: home }, project);
        expect(run.code).toBe(1);
        expect(run.stdout).toMatch(/^default +getSecret +erp-token +failed +ForbiddenByFirewall +\S.*$/m);
      } finally {
        azure.keyVault.clearFaults();
      }
    });

    it('says in one line, exit code 2, that npm start is not running where no .local/emulators.json is', async () => {
      const run = await broker(['health', '--local'], { HOME: home });
      expect(run).toEqual({
        code: 2,
        stdout: '',
        stderr: 'The local emulators are not running: start them with `npm start` in another terminal, then run this again.\n',
      });
    });
  });

  it('exits 1 and prints the failing cause when the vault firewall refuses the identity', async () => {
    azure.keyVault.setFault({ kind: 'firewall' }, VAULT);
    try {
      const run = await broker(['health'], env);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(/^Health: failed \(default=failed;/);
      expect(run.stdout).toMatch(/^default +listSecrets +- +failed +ForbiddenByFirewall +\S.*$/m);
      expect(run.stdout).toMatch(/^default +getSecret +erp-token +failed +ForbiddenByFirewall +\S.*$/m);
    } finally {
      azure.keyVault.clearFaults();
    }
  });
});
