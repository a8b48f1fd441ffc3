/**
 * The operator CLI's command line, in process: npm's swallowed `--what-if`, our own option
 * messages, the deployment file checked before any sign-in, and a missing sign-in said in one line.
 * The deployment itself and the credential are stand-ins; nothing here reaches Azure.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TokenCredential } from '@azure/core-auth';
import { AggregateAuthenticationError, AuthenticationError, CredentialUnavailableError } from '@azure/identity';
import { runBroker, type BrokerParts } from '../../cli/broker';
import type { AdoptionStore } from '../../shared/adoption/adoptionTracker';
import type { AdoptionRow } from '../../shared/adoption/adoptionTypes';
import type { StorageSettings } from '../../shared/config';
import type { deploy } from '../../cli/deploy/deploy';
import { NOT_SIGNED_IN } from '../../cli/signIn';

/** The CLI's collaborators, given as arguments: a deployment that records its calls, a credential whose token the test decides. */
const deployMock = jest.fn<ReturnType<typeof deploy>, Parameters<typeof deploy>>();
const getToken = jest.fn<ReturnType<TokenCredential['getToken']>, Parameters<TokenCredential['getToken']>>();
const credentialMock = jest.fn((): TokenCredential => ({ getToken }));
const SUB = '11111111-2222-3333-4444-555555555555';
const dir = mkdtempSync(path.join(os.tmpdir(), 'broker-cli-unit-'));
/** A state directory no `npm start` describes itself in. */
const noEmulators = mkdtempSync(path.join(os.tmpdir(), 'broker-cli-unit-state-'));
const parts: BrokerParts = { credential: credentialMock, deploy: deployMock, localStateDir: () => noEmulators };

function deploymentFile(name: string, settings: Record<string, unknown> = {}): string {
  const file = path.join(dir, name);
  writeFileSync(
    file,
    JSON.stringify({
      subscriptionId: SUB,
      resourceGroup: 'rg-broker',
      location: 'westeurope',
      appName: 'contoso-broker',
      vaults: { default: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/main-vault` },
      settings,
    }),
  );
  return file;
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runBroker(argv, env, { out: (t) => (stdout += t), err: (t) => (stderr += t) }, parts);
  return { code, stdout, stderr };
}

beforeEach(() => {
  deployMock.mockReset().mockResolvedValue({ changes: [], report: undefined });
  getToken.mockReset().mockResolvedValue({ token: 't', expiresOnTimestamp: Date.now() + 3_600_000 });
  credentialMock.mockClear();
});

describe('--what-if that npm took for its own', () => {
  const NOTICE =
    'npm took --what-if as its own option (npm_config_what_if is set), so this is a what-if run that changes nothing; to pass options through npm, put them after "--": npm run deploy -- <file> --what-if\n';

  it.each(['true', ''])('runs the what-if, never a deployment, when npm_config_what_if is %j', async (value) => {
    const result = await run(['deploy', deploymentFile('npm.json')], { npm_config_what_if: value });
    expect(result).toEqual({ code: 0, stdout: '', stderr: NOTICE });
    expect(deployMock).toHaveBeenCalledTimes(1);
    expect(deployMock.mock.calls[0]?.[1]).toMatchObject({ whatIf: true });
  });

  it('deploys only with neither the flag nor the variable, and takes --what-if after "--" quietly', async () => {
    const file = deploymentFile('plain.json');
    expect(await run(['deploy', file])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await run(['deploy', file, '--what-if'])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(deployMock.mock.calls.map((c) => c[1].whatIf)).toEqual([false, true]);
  });
});

describe('option messages', () => {
  it.each([
    [
      ['deploy', 'deploy.json', '--whatif'],
      'Unknown option "--whatif" (the options of deploy: --what-if, --help).\nThrough npm, options go after "--": npm run deploy -- <file> --what-if\n\nUsage: broker deploy <deployment file> [--what-if]',
    ],
    [
      ['health', '-x'],
      'Unknown option "-x" (the options of health: --settings <file>, --local, --help).\nThrough npm, options go after "--": npm run broker -- health --settings <file>\n\nUsage: broker health',
    ],
    [
      ['--force'],
      'Unknown option "--force" (the options: --settings <file>, --vault <alias>, --local, --what-if, --help).\nThrough npm, options go after "--": npm run broker -- <command> [options]\n\nUsage: broker <command>',
    ],
    [['deploy', 'deploy.json', '--what-if=false'], '--what-if takes no value (found "--what-if=false").\n\nUsage: broker deploy'],
    [['health', '--settings'], '--settings needs a value: --settings <file>\n\nUsage: broker health'],
    [['health', '--settings', '--help-me'], '--settings needs a value: --settings <file>\n\nUsage: broker health'],
    [['keys', 'new', 'erp', '--what-if'], '--what-if is an option of "deploy" only.\n\nUsage: broker keys new'],
    [['health', '--vault', 'partner'], '--vault is an option of "policy explain", "adoption" and "rotate" only.\n\nUsage: broker health'],
    [['rotate'], 'Expected: rotate <name>\n\nUsage: broker rotate'],
    [['rotate', 'erp_key'], '"erp_key" is not a secret name (1 to 127 letters, digits and dashes).\n\nUsage: broker rotate'],
    [
      ['rotate', 'erp-key', '--local', '--settings', 'local.settings.json'],
      '--local takes the settings of the running npm start: leave out --settings.\n\nUsage: broker rotate',
    ],
    [['adoption'], 'Expected: adoption <name>\n\nUsage: broker adoption'],
    [['adoption', 'erp_key'], '"erp_key" is not a secret name (1 to 127 letters, digits and dashes).\n\nUsage: broker adoption'],
    [
      ['adoption', 'erp-key', '--local', '--settings', 'local.settings.json'],
      '--local takes the settings of the running npm start: leave out --settings.\n\nUsage: broker adoption',
    ],
    [
      ['keys', 'new', 'erp', '--local'],
      '--local is an option of "health", "policy explain", "adoption" and "rotate" only.\n\nUsage: broker keys new',
    ],
    [
      ['policy', 'explain', 'erp', 'x', '--local', '--settings', 'local.settings.json'],
      '--local takes the settings of the running npm start: leave out --settings.\n\nUsage: broker policy explain',
    ],
    [
      ['health', '--local', '--settings', 'local.settings.json'],
      '--local takes the settings of the running npm start: leave out --settings.\n\nUsage: broker health',
    ],
  ])('%j', async (argv, start) => {
    const result = await run(argv);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.startsWith(start)).toBe(true);
    expect(result.stderr).not.toContain('To specify a positional argument');
    expect(deployMock).not.toHaveBeenCalled();
  });

  it('shows the help whatever else is on the line', async () => {
    const result = await run(['deploy', '--nonsense', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: broker deploy /);
  });
});

describe('the deployment file is checked before any sign-in', () => {
  it('stops a bad ACCESS_POLICY with exit code 2, the setting named, and no credential made', async () => {
    const file = deploymentFile('bad-policy.json', { ACCESS_POLICY: '{callers:' });
    const result = await run(['deploy', file]);
    expect(result).toEqual({ code: 2, stdout: '', stderr: `${file}: settings: ACCESS_POLICY: is not valid JSON\n` });
    expect(credentialMock).not.toHaveBeenCalled();
    expect(deployMock).not.toHaveBeenCalled();
  });

  it('names the line and column of a JSON error', async () => {
    const file = path.join(dir, 'syntax.json');
    writeFileSync(file, '{\n  "subscriptionId": "x"\n  "location": "westeurope"\n}\n');
    const result = await run(['deploy', file]);
    expect(result).toEqual({ code: 2, stdout: '', stderr: `${file}:3:3: Expected ',' or '}' after property value\n` });
    expect(credentialMock).not.toHaveBeenCalled();
  });
});

describe('no sign-in', () => {
  const CLI_MESSAGE =
    "Azure CLI could not be found. Please visit https://aka.ms/azure-cli for installation instructions and then, once installed, authenticate to your Azure account using 'az login'.";
  const chain = (): AggregateAuthenticationError =>
    new AggregateAuthenticationError(
      [
        new CredentialUnavailableError('EnvironmentCredential is unavailable. No underlying credential could be used.'),
        new CredentialUnavailableError('ManagedIdentityCredential: Authentication failed.\nHttp status code: 403'),
        new CredentialUnavailableError(CLI_MESSAGE),
      ],
      'ChainedTokenCredential authentication failed.',
    );

  it('says how to sign in on its first line, one line of detail after, exit code 1, before any deploy step', async () => {
    getToken.mockRejectedValue(chain());
    const result = await run(['deploy', deploymentFile('signin.json')]);
    expect(result).toEqual({ code: 1, stdout: '', stderr: `${NOT_SIGNED_IN}\n  ${CLI_MESSAGE}\n` });
    expect(getToken).toHaveBeenCalledWith('https://management.azure.com/.default');
    expect(deployMock).not.toHaveBeenCalled();
  });

  it('says the same for health, before the vaults are read', async () => {
    getToken.mockRejectedValue(new CredentialUnavailableError(`Please run 'az login' from a command prompt.\n${'x'.repeat(300)}`));
    const result = await run(['health'], { KEY_VAULT_URI: 'https://main-vault.vault.azure.net/' });
    expect(result).toEqual({ code: 1, stdout: '', stderr: `${NOT_SIGNED_IN}\n  Please run 'az login' from a command prompt.\n` });
    expect(getToken).toHaveBeenCalledWith('https://vault.azure.net/.default');
  });

  it('trims a long reason to one line of 200 characters', async () => {
    getToken.mockRejectedValue(new CredentialUnavailableError('y'.repeat(500)));
    const result = await run(['deploy', deploymentFile('long.json')]);
    expect(result.stderr).toBe(`${NOT_SIGNED_IN}\n  ${'y'.repeat(199)}…\n`);
  });

  it('says a sign-in that failed for another reason in one line', async () => {
    getToken.mockRejectedValue(
      new AuthenticationError(401, {
        error: 'invalid_client',
        error_description: 'AADSTS7000215: Invalid client secret provided.\nTrace ID: 1',
      }),
    );
    const result = await run(['deploy', deploymentFile('secret.json')]);
    expect(result.code).toBe(1);
    expect(result.stderr.split('\n')).toEqual(['Azure sign-in failed: invalid_client: AADSTS7000215: Invalid client secret provided.', '']);
    expect(deployMock).not.toHaveBeenCalled();
  });
});

describe('settings a command does not need', () => {
  const sha = (c: string): string => c.repeat(64);
  const POLICY = JSON.stringify({
    callers: [{ name: 'erp', identities: [{ apiKeySha256: sha('a') }], allow: ['erp-*', 'partner/sftp-*'], deny: ['erp-admin-*'] }],
  });

  it('policy explain answers with ACCESS_POLICY alone, no KEY_VAULT_URI', async () => {
    expect(await run(['policy', 'explain', 'erp', 'erp-token'], { ACCESS_POLICY: POLICY })).toEqual({
      code: 0,
      stdout: 'allowed: "erp" may read "erp-token" (allow pattern "erp-*")\n',
      stderr: '',
    });
  });

  it('policy explain --vault takes its aliases from KEY_VAULT_ALIASES and names the known ones otherwise', async () => {
    const env = { ACCESS_POLICY: POLICY, KEY_VAULT_ALIASES: 'partner=https://partner.vault.azure.net/' };
    expect(await run(['policy', 'explain', 'erp', 'sftp-password', '--vault', 'partner'], env)).toMatchObject({
      code: 0,
      stdout: 'allowed: "erp" may read "partner/sftp-password" (allow pattern "partner/sftp-*")\n',
    });
    const unknown = await run(['policy', 'explain', 'erp', 'sftp-password', '--vault', 'crm'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.split('\n')[0]).toBe('--vault: "crm" is not a configured vault alias (known: default, partner)');
  });

  it('keys new ignores settings other than ACCESS_POLICY, and still refuses a bad policy', async () => {
    const ok = await run(['keys', 'new', 'erp'], { ACCESS_POLICY: POLICY, KEY_VAULT_URI: 'not a url', CACHE_TTL_SECONDS: 'soon' });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`"apiKeySha256": "${sha('a')}"`);
    expect(await run(['keys', 'new', 'erp'], { ACCESS_POLICY: '{"callers":[{"name":"erp"}]}' })).toEqual({
      code: 2,
      stdout: '',
      stderr: 'ACCESS_POLICY: callers[0].identities Invalid key: Expected "identities" but received undefined\n',
    });
  });

  it('a --settings file that does not exist stops with one line saying to copy the sample', async () => {
    const missing = path.join(dir, 'local.settings.json');
    expect(await run(['keys', 'new', 'erp', '--settings', missing])).toEqual({
      code: 2,
      stdout: '',
      stderr: `--settings: ${missing} does not exist (copy local.settings.sample.json to local.settings.json and fill in its Values, or leave out --settings)\n`,
    });
  });
});

describe('health --local', () => {
  it('says in one line, exit code 2, that npm start is not running when its state directory describes no emulators', async () => {
    expect(await run(['health', '--local'])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'The local emulators are not running: start them with `npm start` in another terminal, then run this again.\n',
    });
    expect(credentialMock).not.toHaveBeenCalled();
  });

  it('says the same when the process that wrote the description is gone', async () => {
    const stale = mkdtempSync(path.join(os.tmpdir(), 'broker-cli-unit-stale-'));
    // A pid no process has: above the kernel's pid_max (at most 2^22).
    writeFileSync(
      path.join(stale, 'emulators.json'),
      JSON.stringify({ pid: 2 ** 22 + 1, control: 'http://127.0.0.1:9', host: 'http://localhost:7071', env: {} }),
    );
    let stderr = '';
    const code = await runBroker(
      ['health', '--local'],
      {},
      { out: () => undefined, err: (t) => (stderr += t) },
      { ...parts, localStateDir: () => stale },
    );
    expect({ code, stderr }).toEqual({
      code: 2,
      stderr: 'The local emulators are not running: start them with `npm start` in another terminal, then run this again.\n',
    });
  });
});

describe('policy explain --local', () => {
  it("explains with the running npm start's policy, which wins over the shell's", async () => {
    const running = mkdtempSync(path.join(os.tmpdir(), 'broker-cli-unit-running-'));
    const demoPolicy = {
      callers: [{ name: 'local-dev', identities: [{ apiKeySha256: 'a'.repeat(64) }], allow: ['demo-*'], deny: ['demo-admin-*'] }],
    };
    // This test's own process stands in for a running npm start.
    writeFileSync(
      path.join(running, 'emulators.json'),
      JSON.stringify({
        pid: process.pid,
        control: 'http://127.0.0.1:9',
        host: 'http://localhost:7071',
        env: { ACCESS_POLICY: JSON.stringify(demoPolicy) },
      }),
    );
    const io = { out: '', err: '' };
    const argv = ['policy', 'explain', 'local-dev', 'demo-admin-password', '--local'];
    const code = await runBroker(
      argv,
      { ACCESS_POLICY: JSON.stringify({ callers: [] }) },
      { out: (t) => (io.out += t), err: (t) => (io.err += t) },
      { ...parts, localStateDir: () => running },
    );
    expect({ code, out: io.out, err: io.err }).toEqual({
      code: 1,
      out: expect.stringContaining('deny pattern "demo-admin-*"') as string,
      err: '',
    });
  });

  it('says that npm start is not running, exit code 2', async () => {
    expect(await run(['policy', 'explain', 'local-dev', 'demo-api-key', '--local'])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'The local emulators are not running: start them with `npm start` in another terminal, then run this again.\n',
    });
  });
});

describe('adoption', () => {
  const V1 = '1'.repeat(32);
  const V2 = '2'.repeat(32);
  /** A stand-in for table brokeradoption: what it was asked, and the rows it holds. */
  function storeOf(rows: AdoptionRow[]) {
    const asked: { storage: StorageSettings; vault: string; secret: string }[] = [];
    const adoptionStore = (storage: StorageSettings): AdoptionStore => ({
      write: () => Promise.reject(new Error('the CLI only reads')),
      read: (vault, secret) => {
        asked.push({ storage, vault, secret });
        return Promise.resolve(rows.filter((r) => r.vault === vault && r.secret.toLowerCase() === secret.toLowerCase()));
      },
      readAll: () => Promise.resolve(rows),
    });
    return { asked, adoptionStore };
  }
  const rows: AdoptionRow[] = [
    {
      vault: 'default',
      secret: 'erp-key',
      caller: 'crm',
      version: V1,
      since: '2026-11-01T00:00:00.000Z',
      lastRead: '2026-12-02T08:00:00.000Z',
    },
    {
      vault: 'default',
      secret: 'erp-key',
      caller: 'erp',
      version: V2,
      since: '2026-12-01T09:00:00.000Z',
      lastRead: '2026-12-02T09:00:00.000Z',
    },
    {
      vault: 'partner',
      secret: 'erp-key',
      caller: 'erp',
      version: V1,
      since: '2026-11-01T00:00:00.000Z',
      lastRead: '2026-12-02T09:00:00.000Z',
    },
  ];

  it("prints a table, newest version first, from AzureWebJobsStorage's table", async () => {
    const store = storeOf(rows);
    const io = { out: '', err: '' };
    const code = await runBroker(
      ['adoption', 'ERP-KEY'],
      { AzureWebJobsStorage: 'UseDevelopmentStorage=true' },
      { out: (t) => (io.out += t), err: (t) => (io.err += t) },
      { ...parts, adoptionStore: store.adoptionStore },
    );
    expect({ code, err: io.err }).toEqual({ code: 0, err: '' });
    expect(io.out.split('\n')).toEqual([
      'Adoption of secret erp-key in vault default: 2 callers, 2 versions (newest first)',
      '',
      'version                           caller  since                     last read',
      `${V2}  erp     2026-12-01T09:00:00.000Z  2026-12-02T09:00:00.000Z`,
      `${V1}  crm     2026-11-01T00:00:00.000Z  2026-12-02T08:00:00.000Z`,
      '',
    ]);
    expect(store.asked).toEqual([
      { storage: { kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' }, vault: 'default', secret: 'ERP-KEY' },
    ]);
    expect(credentialMock).not.toHaveBeenCalled();
  });

  it('says in one line when nothing was recorded, and takes --vault from KEY_VAULT_ALIASES', async () => {
    const store = storeOf(rows);
    const io = { out: '', err: '' };
    const out = (t: string) => (io.out += t);
    const err = (t: string) => (io.err += t);
    const env = { KEY_VAULT_ALIASES: 'partner=https://partner.vault.azure.net/' };
    expect(await runBroker(['adoption', 'crm-key'], env, { out, err }, { ...parts, adoptionStore: store.adoptionStore })).toBe(0);
    expect(io.out).toBe(
      'No caller has read secret crm-key in vault default since adoption is recorded (nothing in table brokeradoption).\n',
    );
    io.out = '';
    expect(
      await runBroker(['adoption', 'erp-key', '--vault', 'partner'], env, { out, err }, { ...parts, adoptionStore: store.adoptionStore }),
    ).toBe(0);
    expect(io.out).toContain(`${V1}  erp     2026-11-01T00:00:00.000Z  2026-12-02T09:00:00.000Z`);
    expect(
      await runBroker(['adoption', 'erp-key', '--vault', 'crm'], env, { out, err }, { ...parts, adoptionStore: store.adoptionStore }),
    ).toBe(2);
    expect(io.err.split('\n')[0]).toBe('--vault: "crm" is not a configured vault alias (known: default, partner)');
  });

  it("--local reads the running npm start's storage", async () => {
    const running = mkdtempSync(path.join(os.tmpdir(), 'broker-cli-unit-running-'));
    const storage =
      'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:41002/devstoreaccount1';
    writeFileSync(
      path.join(running, 'emulators.json'),
      JSON.stringify({
        pid: process.pid,
        control: 'http://127.0.0.1:9',
        host: 'http://localhost:7071',
        env: { AzureWebJobsStorage: storage },
      }),
    );
    const store = storeOf(rows);
    const io = { out: '', err: '' };
    const code = await runBroker(
      ['adoption', 'erp-key', '--local'],
      { AzureWebJobsStorage: 'UseDevelopmentStorage=true' },
      { out: (t) => (io.out += t), err: (t) => (io.err += t) },
      { ...parts, localStateDir: () => running, adoptionStore: store.adoptionStore },
    );
    expect({ code, err: io.err }).toEqual({ code: 0, err: '' });
    expect(store.asked.map((a) => a.storage)).toEqual([{ kind: 'connectionString', connectionString: storage }]);
  });
});

describe('an unexpected failure', () => {
  it('is said in one line, exit code 1', async () => {
    deployMock.mockRejectedValue(new Error('\nThe service answered 500.\n{"error":{"code":"InternalError"}}\n    at stack (x.js:1:1)'));
    expect(await run(['deploy', deploymentFile('fails.json')])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: The service answered 500.\n',
    });
  });
});
