import { AccessPolicy } from '../../shared/callers/accessPolicy';
import type { Caller } from '../../shared/callers/accessPolicy';
import { CallerQuota } from '../../shared/callers/callerQuota';
import type { AuditEntry } from '../../shared/audit/auditRecord';
import { SecretNotFoundError } from '../../shared/errors';
import { SecretResolver } from '../../shared/secrets/secretResolver';
import type { SecretMetadata, SecretVersionList, VaultGateway, VaultSecret } from '../../shared/secrets/vaultGateway';

/** A resolver over fake vaults on a fake clock, for the resolver's and the version lists' unit tests. */

export const PINNED = 'a'.repeat(32);
export const everything: Caller = { name: 'everything', operator: false, method: 'apiKey', requestsPerMinute: 600, missesPerMinute: 100 };

export function secret(name: string, version = 'b'.repeat(32), vault = 'default'): VaultSecret {
  return {
    name,
    vault,
    version,
    value: `value-of-${name}`,
    contentType: null,
    enabled: true,
    notBefore: null,
    expiresOn: null,
    updatedOn: null,
  };
}

/** What the fake vault answers for a name: a secret, an error, or a script of them. */
export type Answer = VaultSecret | Error | (() => VaultSecret | Error);

/** How the fake vault answers listings: `fail` (when it returns an error) fails them, `maxVersions` bounds them. */
export interface ListingScript {
  fail?: (() => Error | undefined) | undefined;
  maxVersions?: number | undefined;
}

/**
 * A vault of names at `uri`; `getSecret` counts its calls and answers from `state`;
 * `listSecretVersions` counts its calls (in `lists`) and lists the versions `state` holds, as `listing` scripts.
 */
function fakeVault(alias: string, state: Map<string, Answer>, uri = `https://${alias}.vault.azure.net/`, listing: ListingScript = {}) {
  const calls: string[] = [];
  const lists: string[] = [];
  const gateway = {
    alias,
    uri,
    getSecret: (name: string, version?: string) => {
      calls.push(`${name}@${version ?? 'latest'}`);
      const answer = state.get(version ? `${name}@${version}` : name);
      const found = typeof answer === 'function' ? answer() : answer;
      if (!found) return Promise.reject(new SecretNotFoundError(`Secret "${name}" was not found`));
      return found instanceof Error ? Promise.reject(found) : Promise.resolve(found);
    },
    listSecretVersions: (name: string): Promise<SecretVersionList> => {
      lists.push(name);
      const failure = listing.fail?.();
      if (failure) return Promise.reject(failure);
      const versions = new Set<string>();
      for (const [key, answer] of state) {
        const [stateName, version] = key.split('@');
        if (stateName?.toLowerCase() !== name.toLowerCase()) continue;
        if (version) versions.add(version.toLowerCase());
        else if (!(answer instanceof Error) && typeof answer !== 'function' && answer.version) versions.add(answer.version.toLowerCase());
      }
      const max = listing.maxVersions;
      if (max !== undefined && versions.size >= max)
        return Promise.resolve({ versions: new Set([...versions].slice(0, max)), complete: false });
      return Promise.resolve({ versions, complete: true });
    },
    listSecrets: (): Promise<SecretMetadata[]> =>
      Promise.resolve(
        [...state.entries()]
          .filter(([k, v]) => !k.includes('@') && !(v instanceof Error) && typeof v !== 'function')
          .map(([, v]) => v as VaultSecret),
      ),
  };
  return { gateway: gateway as unknown as VaultGateway, calls, lists };
}

export function setup(
  opts: { signingVault?: string; keysUri?: string; reserved?: { vault: string; name: string }[]; missBudget?: boolean } = {},
) {
  let now = 1_000_000;
  const sleeps: number[] = [];
  const defaults = new Map<string, Answer>([
    ['erp-token', secret('erp-token')],
    ['whsec-erp', secret('whsec-erp')],
    [`erp-token@${PINNED}`, secret('erp-token', PINNED)],
  ]);
  const keys = new Map<string, Answer>([['whsec-erp', secret('whsec-erp', 'c'.repeat(32), 'keys')]]);
  const listing: ListingScript = {};
  const logs: string[] = [];
  const main = fakeVault('default', defaults, 'https://contoso.vault.azure.net/', listing);
  const keyVault = fakeVault('keys', keys, opts.keysUri);
  const audit: AuditEntry[] = [];
  const resolver = new SecretResolver({
    vaults: new Map([
      ['default', main.gateway],
      ['keys', keyVault.gateway],
    ]),
    policy: new AccessPolicy({
      callers: [
        {
          name: 'everything',
          identities: [{ apiKeySha256: '0'.repeat(64) }],
          allow: ['*', 'keys/*'],
          deny: [],
          operator: false,
          roles: [],
          rateLimit: { requestsPerMinute: 600 },
        },
        {
          name: 'no-whsec',
          identities: [{ apiKeySha256: '1'.repeat(64) }],
          allow: ['*'],
          deny: ['whsec-*'],
          operator: false,
          roles: [],
          rateLimit: { requestsPerMinute: 600 },
        },
      ],
    }),
    cache: { ttlSeconds: 300, maxEntries: 100, staleIfErrorSeconds: 3600 },
    signingKeys: { vault: opts.signingVault ?? 'default', names: ['whsec-erp'] },
    ...(opts.reserved ? { reserved: opts.reserved } : {}),
    ...(opts.missBudget ? { misses: new CallerQuota(() => now) } : {}),
    now: () => now,
    log: (line: string) => logs.push(line),
    // No TTL jitter (a factor of exactly 1), no pause jitter; the pacers sleep on the same fake clock.
    random: () => 0.5,
    pacing: {
      now: () => now,
      random: () => 0,
      sleep: (ms: number) => {
        sleeps.push(ms);
        now += ms;
        return Promise.resolve();
      },
    },
  });
  return {
    resolver,
    defaults,
    calls: main.calls,
    lists: main.lists,
    listing,
    logs,
    keyCalls: keyVault.calls,
    audit: { record: (entry: AuditEntry) => audit.push(entry) },
    entries: audit,
    sleeps,
    advance: (ms: number) => (now += ms),
  };
}

export const version = (i: number): string => i.toString(16).padStart(32, '0');
