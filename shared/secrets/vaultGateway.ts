import type { KeyVaultSecret, SecretClient, SecretProperties } from '@azure/keyvault-secrets';
import type { Telemetry } from '../telemetry';
import { SecretNotFoundError, VaultAccessDeniedError } from '../errors';
import { isUnexplainedForbidden, translateVaultError } from './translateVaultError';

/** How long one vault call may take before it counts as a timeout. */
export const VAULT_CALL_TIMEOUT_MS = 10_000;

/** The part of `SecretClient` the broker uses. */
export type SecretReader = Pick<
  SecretClient,
  'getSecret' | 'listPropertiesOfSecrets' | 'listPropertiesOfSecretVersions' | 'getDeletedSecret'
>;

/** The versions of one secret that the vault listed ({@link VaultGateway.listSecretVersions}). */
export interface SecretVersionList {
  /** Lower-case version ids, enabled or not. */
  readonly versions: ReadonlySet<string>;
  /** False when the listing stopped at its bound: a version not in it may still exist. */
  readonly complete: boolean;
}

/** A secret's properties, as the API shows them (CONTRACT.md "A resolved secret"). */
export interface SecretMetadata {
  readonly name: string;
  readonly vault: string;
  readonly version: string | null;
  readonly contentType: string | null;
  readonly enabled: boolean;
  readonly notBefore: string | null;
  readonly expiresOn: string | null;
  readonly updatedOn: string | null;
}

/** A secret with its value. The value lives only in memory and in the HTTP answer. */
export interface VaultSecret extends SecretMetadata {
  readonly value: string;
}

/**
 * One vault: reads secrets through the real `SecretClient`, translates its errors at this
 * boundary and reports each call as an Application Insights dependency.
 */
export class VaultGateway {
  private readonly host: string;

  constructor(
    readonly alias: string,
    readonly uri: string,
    private readonly client: SecretReader,
    private readonly telemetry: Telemetry,
  ) {
    this.host = new URL(uri).host;
  }

  /**
   * The latest or a pinned version of a secret.
   * @throws VaultError subclasses (not found, disabled, firewall, access denied, throttled, unavailable).
   */
  async getSecret(name: string, version?: string, timeoutMs: number = VAULT_CALL_TIMEOUT_MS): Promise<VaultSecret> {
    const started = performance.now();
    let resultCode: string | number = 200;
    try {
      const secret = await this.client.getSecret(name, {
        version,
        abortSignal: AbortSignal.timeout(timeoutMs),
      });
      return this.toSecret(secret);
    } catch (err: unknown) {
      const translated = translateVaultError(err, { vault: this.alias, name });
      resultCode = statusOf(err) ?? translated.vaultCause;
      throw translated;
    } finally {
      this.telemetry.trackDependency({
        name: version ? 'GET /secrets/{name}/{version}' : 'GET /secrets/{name}',
        target: this.host,
        type: 'Azure Key Vault',
        data: `${this.uri}secrets/${name}${version ? `/${version}` : ''}`,
        durationMs: performance.now() - started,
        resultCode,
        success: resultCode === 200,
        properties: { vault: this.alias, secret: name },
      });
    }
  }

  /**
   * Every secret's properties (never values), following the vault's paging.
   * @throws VaultError subclasses.
   */
  async listSecrets(): Promise<SecretMetadata[]> {
    const started = performance.now();
    let resultCode: string | number = 200;
    try {
      const items: SecretMetadata[] = [];
      for await (const properties of this.client.listPropertiesOfSecrets({
        abortSignal: AbortSignal.timeout(VAULT_CALL_TIMEOUT_MS * 3),
      })) {
        items.push(this.toMetadata(properties));
      }
      return items;
    } catch (err: unknown) {
      const translated = translateVaultError(err, { vault: this.alias });
      resultCode = statusOf(err) ?? translated.vaultCause;
      throw translated;
    } finally {
      this.telemetry.trackDependency({
        name: 'GET /secrets',
        target: this.host,
        type: 'Azure Key Vault',
        data: `${this.uri}secrets`,
        durationMs: performance.now() - started,
        resultCode,
        success: resultCode === 200,
        properties: { vault: this.alias },
      });
    }
  }

  /**
   * The ids of a secret's versions (enabled or not; never values), following the vault's paging
   * up to `maxVersions`: a list that reaches it is marked incomplete (no page past it is read). A name the vault does not know
   * has no versions.
   * @throws VaultError subclasses (but not found).
   */
  async listSecretVersions(name: string, maxVersions: number, timeoutMs: number = VAULT_CALL_TIMEOUT_MS): Promise<SecretVersionList> {
    const started = performance.now();
    let resultCode: string | number = 200;
    const versions = new Set<string>();
    let complete = true;
    try {
      for await (const properties of this.client.listPropertiesOfSecretVersions(name, { abortSignal: AbortSignal.timeout(timeoutMs) })) {
        if (properties.version) versions.add(properties.version.toLowerCase());
        // Stop at the bound without asking for the next page (25 versions a page: 250 cost 10 pages).
        if (versions.size >= maxVersions) {
          complete = false;
          break;
        }
      }
      return { versions, complete };
    } catch (err: unknown) {
      const translated = translateVaultError(err, { vault: this.alias, name });
      resultCode = statusOf(err) ?? translated.vaultCause;
      if (translated instanceof SecretNotFoundError) return { versions: new Set(), complete: true };
      throw translated;
    } finally {
      this.telemetry.trackDependency({
        name: 'GET /secrets/{name}/versions',
        target: this.host,
        type: 'Azure Key Vault',
        data: `${this.uri}secrets/${name}/versions`,
        durationMs: performance.now() - started,
        resultCode,
        success: resultCode === 200 || resultCode === 404,
        properties: { vault: this.alias, secret: name },
      });
    }
  }

  /**
   * Whether the caller may list secrets: one page of one item, not the whole listing.
   * @throws VaultError subclasses.
   */
  async canList(timeoutMs: number = VAULT_CALL_TIMEOUT_MS): Promise<void> {
    try {
      const pages = this.client.listPropertiesOfSecrets({ abortSignal: AbortSignal.timeout(timeoutMs) }).byPage({ maxPageSize: 1 });
      await pages.next();
    } catch (err: unknown) {
      if (!isUnexplainedForbidden(err)) throw translateVaultError(err, { vault: this.alias });
      // A refused listing does not say why. Ask for a secret that does not exist: the firewall and
      // a missing role refuse that too, with their reason; a 404 means reads are allowed and only
      // listing is not, which is an access policy without List.
      try {
        await this.client.getSecret(`broker-list-probe-${Date.now().toString(36)}`, { abortSignal: AbortSignal.timeout(timeoutMs) });
      } catch (probe: unknown) {
        const translated = translateVaultError(probe, { vault: this.alias });
        if (!(translated instanceof SecretNotFoundError)) throw translated;
      }
      throw new VaultAccessDeniedError(
        `The function app's identity may read but not list secrets in vault "${this.alias}"`,
        'ForbiddenByPolicy',
        { cause: err },
      );
    }
  }

  /** Whether a missing secret is in the vault's recycle bin (false too when that cannot be read). */
  async isSoftDeleted(name: string, timeoutMs: number = VAULT_CALL_TIMEOUT_MS): Promise<boolean> {
    try {
      await this.client.getDeletedSecret(name, { abortSignal: AbortSignal.timeout(timeoutMs) });
      return true;
    } catch {
      return false;
    }
  }

  private toSecret(secret: KeyVaultSecret): VaultSecret {
    return { ...this.toMetadata(secret.properties), value: secret.value ?? '' };
  }

  private toMetadata(p: SecretProperties): SecretMetadata {
    return {
      name: p.name,
      vault: this.alias,
      version: p.version ?? null,
      contentType: p.contentType ?? null,
      enabled: p.enabled ?? true,
      notBefore: iso(p.notBefore),
      expiresOn: iso(p.expiresOn),
      updatedOn: iso(p.updatedOn),
    };
  }
}

function iso(date: Date | undefined): string | null {
  return date ? date.toISOString() : null;
}

function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}
