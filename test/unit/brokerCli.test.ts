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
import type { deploy } from '../../cli/deploy/deploy';
import { NOT_SIGNED_IN } from '../../cli/signIn';

/** The CLI's collaborators, given as arguments: a deployment that records its calls, a credential whose token the test decides. */
const deployMock = jest.fn<ReturnType<typeof deploy>, Parameters<typeof deploy>>();
const getToken = jest.fn<ReturnType<TokenCredential['getToken']>, Parameters<TokenCredential['getToken']>>();
const credentialMock = jest.fn((): TokenCredential => ({ getToken }));
const parts: BrokerParts = { credential: credentialMock, deploy: deployMock };

const SUB = '11111111-2222-3333-4444-555555555555';
const dir = mkdtempSync(path.join(os.tmpdir(), 'broker-cli-unit-'));

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
      'Unknown option "-x" (the options of health: --settings <file>, --help).\nThrough npm, options go after "--": npm run broker -- health --settings <file>\n\nUsage: broker health',
    ],
    [
      ['--force'],
      'Unknown option "--force" (the options: --settings <file>, --vault <alias>, --what-if, --help).\nThrough npm, options go after "--": npm run broker -- <command> [options]\n\nUsage: broker <command>',
    ],
    [['deploy', 'deploy.json', '--what-if=false'], '--what-if takes no value (found "--what-if=false").\n\nUsage: broker deploy'],
    [['health', '--settings'], '--settings needs a value: --settings <file>\n\nUsage: broker health'],
    [['health', '--settings', '--help-me'], '--settings needs a value: --settings <file>\n\nUsage: broker health'],
    [['keys', 'new', 'erp', '--what-if'], '--what-if is an option of "deploy" only.\n\nUsage: broker keys new'],
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
