/** What the operator commands (cli/broker.ts and its command files) share. */
import { readRunningEmulators, type RunningEmulators } from '../local/runningEmulators';
import { DEFAULT_VAULT_ALIAS, loadAccessConfig } from '../shared/config';
import { asError, ConfigError } from '../shared/errors';

export const SETTINGS_HELP = '  --settings <file>  read settings from this local.settings.json-format file (environment variables win)';

export const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;

/** A command line that cannot be run: the message and the usage to show, exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
  }
}

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

/** The running `npm start`'s description; not running is a settings error (exit 2). */
export function runningEmulators(stateDir: string): RunningEmulators {
  try {
    return readRunningEmulators(stateDir);
  } catch (err: unknown) {
    throw new ConfigError(asError(err).message);
  }
}

/** What a managed identity's token request must not be steered by: a developer's own Azure sign-in variables. */
export const OWN_SIGN_IN =
  /^(AZURE_(CLIENT_ID|TENANT_ID|CLIENT_SECRET|CLIENT_CERTIFICATE_PATH|CLIENT_CERTIFICATE_PASSWORD|FEDERATED_TOKEN_FILE|USERNAME|PASSWORD|AUTHORITY_HOST|TOKEN_CREDENTIALS)|MSI_ENDPOINT|MSI_SECRET|IMDS_ENDPOINT|IDENTITY_SERVER_THUMBPRINT)$/;

/**
 * A secret name and vault alias from the command line, checked: the alias must be configured
 * (KEY_VAULT_ALIASES) when one is given.
 * @throws UsageError naming what is wrong, with `help`.
 */
export function secretArgument(
  name: string,
  vault: string | undefined,
  env: NodeJS.ProcessEnv,
  help: string,
): { name: string; alias: string } {
  if (!SECRET_NAME.test(name)) throw new UsageError(`"${name}" is not a secret name (1 to 127 letters, digits and dashes).`, help);
  const alias = vault ?? DEFAULT_VAULT_ALIAS;
  if (vault !== undefined) {
    const aliases = loadAccessConfig(env).vaultAliases;
    if (!aliases.includes(alias))
      throw new UsageError(`--vault: "${alias}" is not a configured vault alias (known: ${aliases.join(', ')})`, help);
  }
  return { name, alias };
}
