/**
 * The operator commands: `node dist/cli/broker.js <command>` (`npm run broker -- <command>`).
 * Exit codes: 0 done (allowed, healthy), 1 denied or health failed, 2 bad usage or settings.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { TokenCredential } from '@azure/core-auth';
import { DefaultAzureCredential } from '@azure/identity';
import { applyLocalSettings, applySettingsFile } from '../local/localSettings';
import { loadConfig } from '../shared/config';
import { asError, ConfigError } from '../shared/errors';
import { runHealthCheck } from '../shared/health/runHealthCheck';
import { createRuntime } from '../shared/runtime';
import { deploy } from './deploy/deploy';
import { readDeploymentFile } from './deploy/deploymentFile';
import { DeployError } from './deploy/reconcile';
import { ADOPTION_HELP, adoptionCommand, type AdoptionParts } from './adoptionCommand';
import { type Output, OWN_SIGN_IN, runningEmulators, SETTINGS_HELP, UsageError } from './cliCommon';
import { formatHealthTable, useColour } from './healthTable';
import { explain, newKey } from './policyCommands';
import { ROTATE_HELP, rotateCommand, rotateLocal } from './rotateCommand';
import { ensureSignedIn, MANAGEMENT_SCOPE, SignInError, VAULT_SCOPE } from './signIn';

const HELP = {
  keys: `Usage: broker keys new <caller> [--settings <file>]

Prints a new API key (32 random bytes, base64url) once, its identity {"apiKeySha256":"<hex>"} and the
caller's ACCESS_POLICY entry with the new hash added (or a new entry). The key is written nowhere else.
Reads only ACCESS_POLICY, when set: with none, it prints a new entry.

${SETTINGS_HELP}`,
  policy: `Usage: broker policy explain <caller> <name> [--vault <alias>] [--settings <file> | --local]

Says whether ACCESS_POLICY lets <caller> read the secret <name> and which pattern decides.
Exit code 0 when allowed, 1 when denied. Offline: reads ACCESS_POLICY, CONSUMERS, SIGNING_KEY_VAULT,
CACHE_SHARED_KEY_SECRET and, for --vault, KEY_VAULT_ALIASES; no vault URI needed.

  --vault <alias>    the vault alias (default: the KEY_VAULT_URI vault, "default")
${SETTINGS_HELP}
  --local            the settings of the running npm start (its demo policy), from .local/emulators.json`,
  health: `Usage: broker health [--settings <file> | --local]

Runs the health check once against the configured vaults with your sign-in (DefaultAzureCredential:
az login, AZURE_* variables, ...) and prints the report as a table. Exit code 1 when it failed.

${SETTINGS_HELP}
  --local            check the emulators of the running npm start instead, with their settings
                     and the managed identity they serve (read from .local/emulators.json)`,
  adoption: ADOPTION_HELP,
  rotate: ROTATE_HELP,
  deploy: `Usage: broker deploy <deployment file> [--what-if]    (npm run deploy -- <file> [--what-if])

Creates or updates, idempotently, everything the broker needs in Azure: resource group, storage
(shared keys off), Log Analytics and Application Insights, a Flex Consumption Function App with its
identity and settings, role assignments (or access policies) on storage, vaults and the notification
topic, the code package, each vault's Event Grid subscription to secretEvents; then a smoke test.
Signs in with DefaultAzureCredential (az login, AZURE_* variables, a managed identity). The file's
format is in docs/deploying.md ("The deployment file"). A run that stopped half way can simply be run again.

  --what-if   print what would be created, updated (with the differing properties) or left
              unchanged, and change nothing
Exit code 0 done, 1 a step failed (the message names the resource and what Azure said) or the
smoke test's health check failed, 2 a bad file or settings.`,
} as const;

const USAGE = `Usage: broker <command> [options]

Commands:
  keys new <caller>                            a new API key and its policy entry
  policy explain <caller> <name> [--vault a]   allowed or denied, and by which pattern
  health [--local]                             run the health check and print the report
  adoption <name> [--vault a] [--local]        which callers read which version of a secret
  rotate <name> [--vault a] [--local]          start or resume the rotation of a tagged secret
  deploy <file> [--what-if]                    deploy the broker to Azure (npm run deploy)

Run "broker <command> --help" for a command's options.`;

/** What the commands reach Azure with; the defaults are the real ones. */
export interface BrokerParts {
  /** The sign-in of `deploy` and `health`. Default `DefaultAzureCredential`. */
  credential(): TokenCredential;
  /** The deployment itself. Default {@link deploy}. */
  deploy: typeof deploy;
  /** Where a running `npm start` describes its emulators (`health --local`). Default `.local` of the working directory, as `npm start`'s. */
  localStateDir(): string;
  /** The adoption store of `adoption`. Default the Table store (tableAdoptionStore.ts). */
  adoptionStore?: AdoptionParts['adoptionStore'];
}

const REAL_PARTS: BrokerParts = {
  credential: () => new DefaultAzureCredential(),
  deploy,
  localStateDir: () => path.resolve('.local'),
};

/** Runs one command line; resolves with the process's exit code. */
export async function runBroker(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: Output,
  parts: BrokerParts = REAL_PARTS,
): Promise<number> {
  try {
    return await dispatch(argv, env, io, parts);
  } catch (err: unknown) {
    if (err instanceof UsageError) {
      io.err(`${err.message}\n\n${err.usage}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(`${err.message}\n`);
      return 2;
    }
    if (err instanceof SignInError) {
      io.err(`${err.message}\n`);
      return 1;
    }
    // One line: an SDK's message may carry a response body or a stack after its first line.
    const line = asError(err)
      .message.split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '');
    io.err(`error: ${line ?? 'unknown failure'}\n`);
    return 1;
  }
}

type CommandName = keyof typeof HELP;

/** Every option: its value (none for a flag) and the commands that take it. */
const OPTIONS = {
  settings: { value: '<file>', commands: ['keys', 'policy', 'health', 'adoption', 'rotate'] },
  vault: { value: '<alias>', commands: ['policy', 'adoption', 'rotate'] },
  local: { value: undefined, commands: ['health', 'policy', 'adoption', 'rotate'] },
  'what-if': { value: undefined, commands: ['deploy'] },
  help: { value: undefined, short: 'h', commands: ['keys', 'policy', 'health', 'adoption', 'rotate', 'deploy'] },
} as const satisfies Record<string, { value: string | undefined; short?: string; commands: readonly CommandName[] }>;
type OptionName = keyof typeof OPTIONS;

/** How a command line is typed through npm, where options go after "--" (npm keeps the ones before). */
const NPM_FORM: Record<CommandName | 'none', string> = {
  keys: 'npm run broker -- keys new <caller> --settings <file>',
  policy: 'npm run broker -- policy explain <caller> <name> --vault <alias>',
  health: 'npm run broker -- health --settings <file>',
  adoption: 'npm run broker -- adoption <name> --vault <alias>',
  rotate: 'npm run broker -- rotate <name> --vault <alias>',
  deploy: 'npm run deploy -- <file> --what-if',
  none: 'npm run broker -- <command> [options]',
};

/** npm's variable for a `--what-if` it took as its own (`npm run deploy file --what-if`, no "--"). */
const NPM_WHAT_IF = 'npm_config_what_if';

function isCommand(name: string | undefined): name is CommandName {
  return name !== undefined && Object.hasOwn(HELP, name);
}

function optionList(command: CommandName | undefined): string {
  return (Object.keys(OPTIONS) as OptionName[])
    .filter((o) => command === undefined || (OPTIONS[o].commands as readonly string[]).includes(command))
    .map((o) => (OPTIONS[o].value ? `--${o} ${OPTIONS[o].value}` : `--${o}`))
    .join(', ');
}

/**
 * The options, checked by this module rather than by parseArgs, whose messages advise a "--" that
 * npm takes for itself: an unknown option is named with the command's options and npm's form.
 */
function parseCommandLine(argv: readonly string[]): {
  command: string | undefined;
  args: string[];
  values: Partial<Record<OptionName, string | true>>;
} {
  const { positionals, tokens } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: false,
    tokens: true,
    options: Object.fromEntries(
      Object.entries(OPTIONS).map(([name, o]) => [
        name,
        { type: o.value === undefined ? 'boolean' : 'string', ...('short' in o ? { short: o.short } : {}) },
      ]),
    ),
  });
  const [command, ...args] = positionals;
  const known = isCommand(command) ? command : undefined;
  const values: Partial<Record<OptionName, string | true>> = {};
  const help = known ? HELP[known] : USAGE;
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) return { command, args, values: { help: true } };
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    if (!Object.hasOwn(OPTIONS, token.name)) {
      throw new UsageError(
        `Unknown option "${token.rawName}" (the options${known ? ` of ${known}` : ''}: ${optionList(known)}).\n` +
          `Through npm, options go after "--": ${NPM_FORM[known ?? 'none']}`,
        help,
      );
    }
    const name = token.name as OptionName;
    const value = OPTIONS[name].value;
    if (value === undefined && token.value !== undefined) {
      throw new UsageError(`${token.rawName} takes no value (found "${token.rawName}=${token.value}").`, help);
    }
    if (value !== undefined && (token.value === undefined || (!token.inlineValue && token.value.startsWith('-')))) {
      throw new UsageError(`${token.rawName} needs a value: ${token.rawName} ${value}`, help);
    }
    values[name] = token.value ?? true;
  }
  return { command, args, values };
}

async function dispatch(argv: readonly string[], env: NodeJS.ProcessEnv, io: Output, parts: BrokerParts): Promise<number> {
  const { command, args, values } = parseCommandLine(argv);
  const [sub, ...rest] = args;
  const help = isCommand(command) ? HELP[command] : undefined;
  if (values.help) {
    io.out(`${help ?? USAGE}\n`);
    return 0;
  }
  if (help === undefined) throw new UsageError(command === undefined ? 'No command given.' : `Unknown command "${command}".`, USAGE);
  const settingsFile = typeof values.settings === 'string' ? values.settings : undefined;
  const vault = typeof values.vault === 'string' ? values.vault : undefined;
  if (vault !== undefined && command !== 'policy' && command !== 'adoption' && command !== 'rotate')
    throw new UsageError('--vault is an option of "policy explain", "adoption" and "rotate" only.', help);
  if (values['what-if'] !== undefined && command !== 'deploy') throw new UsageError('--what-if is an option of "deploy" only.', help);
  if (values.local !== undefined && command !== 'health' && command !== 'policy' && command !== 'adoption' && command !== 'rotate')
    throw new UsageError('--local is an option of "health", "policy explain", "adoption" and "rotate" only.', help);
  if (command === 'deploy') {
    if (settingsFile !== undefined) throw new UsageError('deploy takes its settings from the deployment file, not --settings.', help);
    if (sub === undefined || rest.length > 0) throw new UsageError('Expected: deploy <deployment file>', help);
    let whatIf = values['what-if'] === true;
    // `npm run deploy file --what-if` (no "--"): npm keeps the flag and says so only in this variable.
    // Whatever its value, the operator typed a what-if: never deploy on it.
    if (env[NPM_WHAT_IF] !== undefined) {
      whatIf = true;
      io.err(
        `npm took --what-if as its own option (npm_config_what_if is set), so this is a what-if run that changes nothing; to pass options through npm, put them after "--": ${NPM_FORM.deploy}\n`,
      );
    }
    return runDeploy(sub, whatIf, env, io, parts);
  }
  if (values.local !== undefined) {
    if (settingsFile !== undefined)
      throw new UsageError('--local takes the settings of the running npm start: leave out --settings.', help);
    if (command === 'health') {
      if (sub !== undefined) throw new UsageError(`Unexpected argument "${sub}".`, help);
      return healthLocal(env, parts.localStateDir());
    }
    if (command === 'rotate') {
      if (sub === undefined || rest.length > 0) throw new UsageError('Expected: rotate <name>', help);
      return rotateLocal(sub, vault, env, parts.localStateDir());
    }
    // policy explain, adoption: the running demo's settings (its ACCESS_POLICY, CONSUMERS, ...) win over the shell's.
    const stateDir = parts.localStateDir();
    const running = runningEmulators(stateDir);
    // npm start's own settings under them: its local.settings.json (the running description names
    // AzureWebJobsStorage only when npm start set it itself).
    if (command === 'adoption') applyLocalSettings(path.dirname(stateDir), env);
    Object.assign(env, running.env);
  }
  if (settingsFile !== undefined) {
    if (!existsSync(settingsFile)) {
      throw new ConfigError(
        `--settings: ${settingsFile} does not exist (copy local.settings.sample.json to local.settings.json and fill in its Values, or leave out --settings)`,
      );
    }
    try {
      applySettingsFile(settingsFile, env);
    } catch (err: unknown) {
      throw new ConfigError(asError(err).message);
    }
  }

  if (command === 'keys') {
    if (sub !== 'new' || rest.length !== 1 || !rest[0]) throw new UsageError('Expected: keys new <caller>', help);
    newKey(rest[0], env, io);
    return 0;
  }
  if (command === 'policy') {
    const [caller, name, ...extra] = rest;
    if (sub !== 'explain' || !caller || !name || extra.length > 0) throw new UsageError('Expected: policy explain <caller> <name>', help);
    return explain(caller, name, vault, env, io, help);
  }
  if (command === 'adoption') {
    if (sub === undefined || rest.length > 0) throw new UsageError('Expected: adoption <name>', help);
    return adoptionCommand(sub, vault, env, io, parts);
  }
  if (command === 'rotate') {
    if (sub === undefined || rest.length > 0) throw new UsageError('Expected: rotate <name>', help);
    return rotateCommand(sub, vault, env, io, parts);
  }
  if (sub !== undefined) throw new UsageError(`Unexpected argument "${sub}".`, help);
  return health(env, io, parts);
}

/**
 * `health`: the same checks as the timer's run (runHealthCheck), without its lease, stored report,
 * telemetry or notifications, so it needs no storage and changes nothing an operator did not ask for.
 */
async function health(env: NodeJS.ProcessEnv, io: Output, parts: BrokerParts): Promise<number> {
  const config = loadConfig(env);
  const credential = parts.credential();
  await ensureSignedIn(credential, VAULT_SCOPE);
  // A laptop's run is not the app's availability: nothing goes to Application Insights.
  const runtime = createRuntime({ ...config, appInsightsConnectionString: undefined }, { credential });
  runtime.dispose(); // no cache coherence poller: this process reads no secrets for callers
  const { gateways, management } = runtime.health();
  const report = await runHealthCheck({ config: runtime.config, gateways, management });
  io.out(`${formatHealthTable(report, { colour: useColour(process.stdout, env) }).join('\n')}\n`);
  return report.status === 'failed' ? 1 : 0;
}

/**
 * `health --local`: the health check against the running `npm start`'s emulators. Their variables
 * (IDENTITY_ENDPOINT, HTTPS_PROXY, NODE_EXTRA_CA_CERTS, KEY_VAULT_URI, the demo's settings, ...)
 * must be in place when Node starts (it reads NODE_EXTRA_CA_CERTS only then), so the check runs in
 * a child process of this CLI, with the managed identity the emulators serve as its only
 * credential (AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential) and none of the developer's
 * sign-in variables. The child writes to this process's stdout and stderr; its exit code is ours.
 */
async function healthLocal(env: NodeJS.ProcessEnv, stateDir: string): Promise<number> {
  const running = runningEmulators(stateDir);
  const childEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(env).filter(([name]) => !OWN_SIGN_IN.test(name)));
  Object.assign(childEnv, running.env, { AZURE_TOKEN_CREDENTIALS: 'ManagedIdentityCredential' });
  const child = spawn(process.execPath, [__filename, 'health'], { env: childEnv, stdio: ['ignore', 'inherit', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code ?? 1));
  });
}

/**
 * `deploy`: the file and every setting are checked first, offline (exit 2); then the sign-in, once
 * (exit 1, saying how to sign in); a failed step names its resource and Azure's answer (exit 1).
 */
async function runDeploy(file: string, whatIf: boolean, env: NodeJS.ProcessEnv, io: Output, parts: BrokerParts): Promise<number> {
  const deployment = readDeploymentFile(file);
  const credential = parts.credential();
  await ensureSignedIn(credential, MANAGEMENT_SCOPE);
  try {
    const result = await parts.deploy(deployment, {
      whatIf,
      credential,
      root: path.resolve(__dirname, '../..'),
      progress: { line: (text) => io.out(`${text}\n`) },
      colour: useColour(process.stdout, env),
    });
    if (result.report?.status === 'failed') {
      io.err('\nDeployed, but the health check failed: see the report above (docs/operations.md has a runbook per cause).\n');
      return 1;
    }
    return 0;
  } catch (err: unknown) {
    if (err instanceof DeployError) {
      io.err(`\nerror: ${err.message}\nNothing after this step was changed; fix the cause and run the same command again.\n`);
      return 1;
    }
    throw err;
  }
}

if (require.main === module) {
  const io: Output = { out: (text) => process.stdout.write(text), err: (text) => process.stderr.write(text) };
  void runBroker(process.argv.slice(2), process.env, io).then((code) => {
    // The SDKs' keep-alive connections would hold the process open; exit once the output is written.
    process.stdout.write('', () => process.exit(code));
  });
}
