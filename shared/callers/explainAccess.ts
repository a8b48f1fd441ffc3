import type { AppConfig } from '../config';
import { DEFAULT_VAULT_ALIAS } from '../config';
import { compileGlob, policySubject } from './accessPolicy';

/**
 * Why a caller may or may not read a secret. `subject` is what the patterns were matched against
 * (`name`, or `alias/name` for an aliased vault).
 */
export type AccessExplanation =
  | { readonly decision: 'allowed'; readonly subject: string; readonly reason: 'allow'; readonly pattern: string }
  | { readonly decision: 'denied'; readonly subject: string; readonly reason: 'deny'; readonly pattern: string }
  | {
      readonly decision: 'denied';
      readonly subject: string;
      readonly reason: 'noAllowMatch' | 'signingKey' | 'sharedCacheKey' | 'unknownCaller';
    };

/** The settings an explanation reads: the policy and the names refused to every caller. */
export type AccessSettings = Pick<AppConfig, 'policy' | 'consumers' | 'signingKeyVault' | 'sharedCache'>;

/**
 * Explains the access decision the broker makes for `callerName` reading `name` from `vaultAlias`,
 * in the broker's order: a consumer's signing key or the shared cache's data key is refused
 * whatever the policy says; then the first matching `deny` pattern; then the first matching
 * `allow` pattern; else deny by default. Matching is the broker's own ({@link compileGlob}).
 */
export function explainAccess(settings: AccessSettings, callerName: string, vaultAlias: string, name: string): AccessExplanation {
  const subject = policySubject(vaultAlias, name);
  const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();
  if (same(vaultAlias, settings.signingKeyVault) && settings.consumers.some((c) => same(c.signingSecret, name))) {
    return { decision: 'denied', subject, reason: 'signingKey' };
  }
  if (settings.sharedCache && same(vaultAlias, DEFAULT_VAULT_ALIAS) && same(settings.sharedCache.keySecret, name)) {
    return { decision: 'denied', subject, reason: 'sharedCacheKey' };
  }
  const caller = settings.policy.callers.find((c) => c.name === callerName);
  if (!caller) return { decision: 'denied', subject, reason: 'unknownCaller' };
  const deny = caller.deny.find((pattern) => compileGlob(pattern).test(subject));
  if (deny !== undefined) return { decision: 'denied', subject, reason: 'deny', pattern: deny };
  const allow = caller.allow.find((pattern) => compileGlob(pattern).test(subject));
  if (allow !== undefined) return { decision: 'allowed', subject, reason: 'allow', pattern: allow };
  return { decision: 'denied', subject, reason: 'noAllowMatch' };
}
