/**
 * The operator commands: `node dist/cli/broker.js <command>` (`npm run broker -- <command>`).
 * Exit codes: 0 done (allowed, healthy), 1 denied or health failed, 2 bad usage or settings.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { TokenCredential } from '@azure/core-auth';
import { DefaultAzureCredential } from '@azure/identity';
import { applyLocalSettings, applySettingsFile } from '../local/localSettings';
import { readRunningEmulators, type RunningEmulators } from '../local/runningEmulators';
import { adoptionAnswer } from '../shared/adoption/adoptionRules';
import type { AdoptionStore } from '../shared/adoption/adoptionTracker';
import { createTableAdoptionStore } from '../shared/adoption/tableAdoptionStore';
import { explainAccess } from '../shared/callers/explainAccess';
import type { AccessExplanation } from '../shared/callers/explainAccess';
import type { StorageSettings } from '../shared/config';
import { DEFAULT_VAULT_ALIAS, loadAccessConfig, loadAccessPolicy, loadConfig, parseStorage } from '../shared/config';
import { asError, ConfigError } from '../shared/errors';
import { runHealthCheck } from '../shared/health/runHealthCheck';
import { createRuntime } from '../shared/runtime';
import { deploy } from './deploy/deploy';
import { readDeploymentFile } from './deploy/deploymentFile';
import { DeployError } from './deploy/reconcile';
import { formatAdoptionTable, formatHealthTable, useColour } from './healthTable';
import { ensureSignedIn, MANAGEMENT_SCOPE, SignInError, VAULT_SCOPE } from './signIn';

const SETTINGS_HELP = '  --settings <file>  read settings from this local.settings.json-format file (environment variables win)';

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
  adoption: `Usage: broker adoption <name> [--vault <alias>] [--settings <file> | --local]

Prints which callers read which version of the secret <name> last, and since when (newest version
first), from table brokeradoption of AzureWebJobsStorage (written by the broker at most every 30 s).
Reads storage only: with a connection string, its key; with identity-based storage, your sign-in.

  --vault <alias>    the vault alias (default: the KEY_VAULT_URI vault, "default")
${SETTINGS_HELP}
  --local            the storage of the running npm start, from .local/emulators.json`,
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
  deploy <file> [--what-if]                    deploy the broker to Azure (npm run deploy)

Run "broker <command> --help" for a command's options.`;

const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;

/** A command line that cannot be run: the message and the usage to show, exit code 2. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
  }
}

interface Output {
  out(text: string): void;
  err(text: string): void;
}

/** What the commands reach Azure with; the defaults are the real ones. */
export interface BrokerParts {
  /** The sign-in of `deploy` and `health`. Default `DefaultAzureCredential`. */
  credential(): TokenCredential;
  /** The deployment itself. Default {@link deploy}. */
  deploy: typeof deploy;
  /** Where a running `npm start` describes its emulators (`health --local`). Default `.local` of the working directory, as `npm start`'s. */
  localStateDir(): string;
  /** The adoption store of `adoption`. Default the Table store (tableAdoptionStore.ts). */
  adoptionStore?(storage: StorageSettings, credential: () => TokenCredential): AdoptionStore;
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
  settings: { value: '<file>', commands: ['keys', 'policy', 'health', 'adoption'] },
  vault: { value: '<alias>', commands: ['policy', 'adoption'] },
  local: { value: undefined, commands: ['health', 'policy', 'adoption'] },
  'what-if': { value: undefined, commands: ['deploy'] },
  help: { value: undefined, short: 'h', commands: ['keys', 'policy', 'health', 'adoption', 'deploy'] },
} as const satisfies Record<string, { value: string | undefined; short?: string; commands: readonly CommandName[] }>;
type OptionName = keyof typeof OPTIONS;

/** How a command line is typed through npm, where options go after "--" (npm keeps the ones before). */
const NPM_FORM: Record<CommandName | 'none', string> = {
  keys: 'npm run broker -- keys new <caller> --settings <file>',
  policy: 'npm run broker -- policy explain <caller> <name> --vault <alias>',
  health: 'npm run broker -- health --settings <file>',
  adoption: 'npm run broker -- adoption <name> --vault <alias>',
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
  if (vault !== undefined && command !== 'policy' && command !== 'adoption')
    throw new UsageError('--vault is an option of "policy explain" and "adoption" only.', help);
  if (values['what-if'] !== undefined && command !== 'deploy') throw new UsageError('--what-if is an option of "deploy" only.', help);
  if (values.local !== undefined && command !== 'health' && command !== 'policy' && command !== 'adoption')
    throw new UsageError('--local is an option of "health", "policy explain" and "adoption" only.', help);
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
    return explain(caller, name, vault, env, io);
  }
  if (command === 'adoption') {
    if (sub === undefined || rest.length > 0) throw new UsageError('Expected: adoption <name>', help);
    return adoption(sub, vault, env, io, parts);
  }
  if (sub !== undefined) throw new UsageError(`Unexpected argument "${sub}".`, help);
  return health(env, io, parts);
}

/** `keys new`: the key is printed here once and kept nowhere. */
function newKey(caller: string, env: NodeJS.ProcessEnv, io: Output): void {
  let entry: Record<string, unknown> | undefined;
  if (env.ACCESS_POLICY?.trim()) {
    loadAccessPolicy(env); // validates the policy first: the entry below is then well-formed
    const raw = JSON.parse(env.ACCESS_POLICY) as { callers: Record<string, unknown>[] };
    entry = raw.callers.find((c) => c.name === caller);
  }
  const key = randomBytes(32).toString('base64url');
  const identity = { apiKeySha256: createHash('sha256').update(key).digest('hex') };
  const updated = entry
    ? { ...entry, identities: [...(entry.identities as unknown[]), identity] }
    : { name: caller, identities: [identity], allow: [], deny: [] };
  io.out(
    [
      `New API key for "${caller}" (shown this once; the broker keeps only its hash):`,
      '',
      `  ${key}`,
      '',
      `Identity: ${JSON.stringify(identity)}`,
      '',
      entry
        ? `ACCESS_POLICY entry of "${caller}" with the new hash added (both keys work; remove the old hash once every client has the new key):`
        : `New ACCESS_POLICY entry for "${caller}" (add the patterns it may read to "allow"):`,
      JSON.stringify(updated, null, 2),
      '',
    ].join('\n'),
  );
}

function explain(caller: string, name: string, vault: string | undefined, env: NodeJS.ProcessEnv, io: Output): number {
  const config = loadAccessConfig(env);
  const alias = vault ?? DEFAULT_VAULT_ALIAS;
  if (vault !== undefined && !config.vaultAliases.includes(alias)) {
    throw new UsageError(`--vault: "${alias}" is not a configured vault alias (known: ${config.vaultAliases.join(', ')})`, HELP.policy);
  }
  if (!SECRET_NAME.test(name)) throw new UsageError(`"${name}" is not a secret name (1 to 127 letters, digits and dashes).`, HELP.policy);
  const explanation = explainAccess(config, caller, alias, name);
  io.out(
    `${describe(
      explanation,
      caller,
      config.policy.callers.map((c) => c.name),
    )}\n`,
  );
  return explanation.decision === 'allowed' ? 0 : 1;
}

function describe(e: AccessExplanation, caller: string, known: readonly string[]): string {
  const refused = 'refused to every caller, whatever the policy says';
  switch (e.reason) {
    case 'allow':
      return `allowed: "${caller}" may read "${e.subject}" (allow pattern "${e.pattern}")`;
    case 'deny':
      return `denied: "${caller}" may not read "${e.subject}" (deny pattern "${e.pattern}")`;
    case 'noAllowMatch':
      return `denied: "${caller}" may not read "${e.subject}" (no allow pattern matches (deny by default))`;
    case 'signingKey':
      return `denied: "${e.subject}" is a consumer's signing key (CONSUMERS signingSecret), ${refused}`;
    case 'sharedCacheKey':
      return `denied: "${e.subject}" is the shared cache's data key (CACHE_SHARED_KEY_SECRET), ${refused}`;
    case 'unknownCaller':
      return `denied: ACCESS_POLICY has no caller "${caller}" (known: ${known.length > 0 ? known.join(', ') : 'none'})`;
  }
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

/** `adoption`: the store read directly (no running broker needed), printed as a table. */
async function adoption(name: string, vault: string | undefined, env: NodeJS.ProcessEnv, io: Output, parts: BrokerParts): Promise<number> {
  if (!SECRET_NAME.test(name)) throw new UsageError(`"${name}" is not a secret name (1 to 127 letters, digits and dashes).`, HELP.adoption);
  const alias = vault ?? DEFAULT_VAULT_ALIAS;
  if (vault !== undefined) {
    const aliases = loadAccessConfig(env).vaultAliases;
    if (!aliases.includes(alias))
      throw new UsageError(`--vault: "${alias}" is not a configured vault alias (known: ${aliases.join(', ')})`, HELP.adoption);
  }
  const storage = parseStorage(env);
  const store = parts.adoptionStore
    ? parts.adoptionStore(storage, () => parts.credential())
    : createTableAdoptionStore(storage, storage.kind === 'identity' ? parts.credential() : undefined);
  const rows = await store.read(alias, name);
  io.out(`${formatAdoptionTable(adoptionAnswer(alias, rows[0]?.secret ?? name, rows)).join('\n')}\n`);
  return 0;
}

/** The running `npm start`'s description; not running is a settings error (exit 2). */
function runningEmulators(stateDir: string): RunningEmulators {
  try {
    return readRunningEmulators(stateDir);
  } catch (err: unknown) {
    throw new ConfigError(asError(err).message);
  }
}

/** What a managed identity's token request must not be steered by: a developer's own Azure sign-in variables. */
const OWN_SIGN_IN =
  /^(AZURE_(CLIENT_ID|TENANT_ID|CLIENT_SECRET|CLIENT_CERTIFICATE_PATH|CLIENT_CERTIFICATE_PASSWORD|FEDERATED_TOKEN_FILE|USERNAME|PASSWORD|AUTHORITY_HOST|TOKEN_CREDENTIALS)|MSI_ENDPOINT|MSI_SECRET|IMDS_ENDPOINT|IDENTITY_SERVER_THUMBPRINT)$/;

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
