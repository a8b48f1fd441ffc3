/** `broker adoption <name>`: which callers read which version of a secret, from the adoption table. */
import type { TokenCredential } from '@azure/core-auth';
import { adoptionAnswer } from '../shared/adoption/adoptionRules';
import type { AdoptionStore } from '../shared/adoption/adoptionTracker';
import { createTableAdoptionStore } from '../shared/adoption/tableAdoptionStore';
import type { StorageSettings } from '../shared/config';
import { parseStorage } from '../shared/config';
import { type Output, secretArgument, SETTINGS_HELP } from './cliCommon';
import { formatAdoptionTable } from './healthTable';

export const ADOPTION_HELP = `Usage: broker adoption <name> [--vault <alias>] [--settings <file> | --local]

Prints which callers read which version of the secret <name> last, and since when (newest version
first), from table brokeradoption of AzureWebJobsStorage (written by the broker at most every 30 s).
Reads storage only: with a connection string, its key; with identity-based storage, your sign-in.

  --vault <alias>    the vault alias (default: the KEY_VAULT_URI vault, "default")
${SETTINGS_HELP}
  --local            the storage of the running npm start, from .local/emulators.json`;

/** Where `adoption` reads: the Table store, unless a test gives another. */
export interface AdoptionParts {
  credential(): TokenCredential;
  adoptionStore?(storage: StorageSettings, credential: () => TokenCredential): AdoptionStore;
}

/** `adoption`: the store read directly (no running broker needed), printed as a table. */
export async function adoptionCommand(
  secret: string,
  vault: string | undefined,
  env: NodeJS.ProcessEnv,
  io: Output,
  parts: AdoptionParts,
): Promise<number> {
  const { name, alias } = secretArgument(secret, vault, env, ADOPTION_HELP);
  const storage = parseStorage(env);
  const store = parts.adoptionStore
    ? parts.adoptionStore(storage, () => parts.credential())
    : createTableAdoptionStore(storage, storage.kind === 'identity' ? parts.credential() : undefined);
  const rows = await store.read(alias, name);
  io.out(`${formatAdoptionTable(adoptionAnswer(alias, rows[0]?.secret ?? name, rows)).join('\n')}\n`);
  return 0;
}
