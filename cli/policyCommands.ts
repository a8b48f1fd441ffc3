/** `broker keys new` and `broker policy explain`: the access policy's commands, offline. */
import { createHash, randomBytes } from 'node:crypto';
import type { AccessExplanation } from '../shared/callers/explainAccess';
import { explainAccess } from '../shared/callers/explainAccess';
import { DEFAULT_VAULT_ALIAS, loadAccessConfig, loadAccessPolicy } from '../shared/config';
import { type Output, SECRET_NAME, UsageError } from './cliCommon';

/** `keys new`: the key is printed here once and kept nowhere. */
export function newKey(caller: string, env: NodeJS.ProcessEnv, io: Output): void {
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

export function explain(caller: string, name: string, vault: string | undefined, env: NodeJS.ProcessEnv, io: Output, help: string): number {
  const config = loadAccessConfig(env);
  const alias = vault ?? DEFAULT_VAULT_ALIAS;
  if (vault !== undefined && !config.vaultAliases.includes(alias)) {
    throw new UsageError(`--vault: "${alias}" is not a configured vault alias (known: ${config.vaultAliases.join(', ')})`, help);
  }
  if (!SECRET_NAME.test(name)) throw new UsageError(`"${name}" is not a secret name (1 to 127 letters, digits and dashes).`, help);
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
