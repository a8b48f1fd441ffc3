/**
 * The operator commands' Azure sign-in, tried once before their first Azure call: without one, the
 * first line says how to sign in, instead of a step's failure followed by the credential chain.
 */
import type { TokenCredential } from '@azure/core-auth';
import { AggregateAuthenticationErrorName, CredentialUnavailableErrorName } from '@azure/identity';

/** Azure Resource Manager: the deploy's first calls. */
export const MANAGEMENT_SCOPE = 'https://management.azure.com/.default';
/** Key Vault: the health check's first calls. */
export const VAULT_SCOPE = 'https://vault.azure.net/.default';

export const NOT_SIGNED_IN =
  'Not signed in to Azure: run "az login" (or "azd auth login"), or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE) for a service principal.';

/** How long one line of the credential's own words may be. */
const DETAIL_MAX = 200;

/** No sign-in, or one that failed: the message is the line to show, then at most one line of detail. */
export class SignInError extends Error {
  override readonly name = 'SignInError';
}

/**
 * Gets one token for `scope`, so that a missing sign-in stops the command before anything else.
 * @throws SignInError: {@link NOT_SIGNED_IN} when no credential of the chain is available (the
 * `CredentialUnavailableError` / `AggregateAuthenticationError` of `DefaultAzureCredential`, or an
 * `AuthenticationRequiredError`), else
 * `Azure sign-in failed: ...`; each followed by one line of what the credential said.
 */
export async function ensureSignedIn(credential: TokenCredential, scope: string): Promise<void> {
  let token;
  try {
    token = await credential.getToken(scope);
  } catch (err: unknown) {
    throw signInError(err);
  }
  if (!token) throw new SignInError(NOT_SIGNED_IN);
}

/** The {@link SignInError} for a credential's failure. */
export function signInError(err: unknown): SignInError {
  const name = (err as { name?: unknown } | null)?.name;
  const notSignedIn =
    name === CredentialUnavailableErrorName || name === AggregateAuthenticationErrorName || name === 'AuthenticationRequiredError';
  const detail = oneLine(detailOf(err));
  if (notSignedIn) return new SignInError(detail ? `${NOT_SIGNED_IN}\n  ${detail}` : NOT_SIGNED_IN);
  return new SignInError(`Azure sign-in failed: ${detail || 'no reason given'}`);
}

/**
 * What the credential said. A chain's own first line ("ChainedTokenCredential authentication
 * failed.") says nothing, so for a chain it is the Azure CLI's answer (the sign-in the first line
 * suggests), else the first credential's.
 */
function detailOf(err: unknown): string {
  const message = (e: unknown): string => (e instanceof Error ? e.message : typeof e === 'string' ? e : '');
  const inner = (err as { errors?: unknown } | null)?.errors;
  if ((err as { name?: unknown } | null)?.name === AggregateAuthenticationErrorName && Array.isArray(inner) && inner.length > 0) {
    return message(inner.find((e) => /Azure CLI|az login/.test(message(e))) ?? inner[0]);
  }
  // An AuthenticationError's first line is `invalid_client Status code: 401`; Entra's reason is in its response.
  const response = (err as { errorResponse?: { error?: unknown; errorDescription?: unknown } } | null)?.errorResponse;
  if (typeof response?.errorDescription === 'string' && response.errorDescription.trim() !== '') {
    return typeof response.error === 'string' && response.error
      ? `${response.error}: ${response.errorDescription.trim()}`
      : response.errorDescription;
  }
  return message(err);
}

/** The first non-empty line, trimmed to {@link DETAIL_MAX} characters. */
function oneLine(text: string): string {
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '');
  if (line === undefined) return '';
  return line.length > DETAIL_MAX ? `${line.slice(0, DETAIL_MAX - 1)}…` : line;
}
