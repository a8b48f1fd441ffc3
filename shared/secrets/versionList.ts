import { VaultAccessDeniedError, VaultError, VaultThrottledError, VaultUnavailableError } from '../errors';
import { SecretCache } from './secretCache';
import type { SecretVersionList, VaultGateway } from './vaultGateway';
import { VAULT_CALL_TIMEOUT_MS } from './vaultGateway';
import type { VaultPacer } from './vaultPacer';

/**
 * A version missing from a list of the name's versions at least this old (5 s) may re-list the
 * name, and a "not found" answered from a list is remembered no longer than this. Re-lists that
 * find nothing new back off up to {@link VERSION_RELIST_MAX_MS}.
 */
export const VERSION_RELIST_MS = 5_000;

/**
 * The longest wait between re-lists of a name (30 s): CONTRACT.md "Key Vault events" bounds a new
 * version's reach to every instance at 30 s, so a version created without its event (or before the
 * event arrives) is not hidden longer than that by a list answering 404.
 */
export const VERSION_RELIST_MAX_MS = 30_000;

/**
 * Versions kept per listed name (Key Vault pages 25 at a time: at most 10 pages per listing). A
 * name with more is listed incomplete, and a version not in its list is read from the vault as
 * before; an incomplete list is kept for its TTL (events do not drop it), so such a name is listed
 * at most once per TTL.
 */
export const MAX_LISTED_VERSIONS = 250;

/** A name's versions as last listed, with when, and how old the list must be before a re-list. */
interface VersionList extends SecretVersionList {
  /** On the lists' clock. */
  readonly listedAt: number;
  /** {@link VERSION_RELIST_MS}, doubled by every re-list that found no new version (at most {@link VERSION_RELIST_MAX_MS}). */
  readonly relistAfterMs: number;
}

export interface VersionListsOptions {
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly staleIfErrorMs: number;
  readonly now: () => number;
  readonly random?: () => number;
  /** Each vault's pacer: every listing goes through it. */
  readonly pacerOf: (gateway: VaultGateway) => VaultPacer;
  /** Where "this vault does not let us list versions" is reported, once per vault. Default `console.warn`. */
  readonly log?: (line: string) => void;
}

/**
 * Each name's versions, keyed by {@link versionListKey}, listed when a pinned version misses the
 * value cache: an unknown version is answered 404 from it without reading the version. One list
 * per name per TTL, plus bounded re-lists ({@link mayExist}); at most `maxEntries` names of at most
 * {@link MAX_LISTED_VERSIONS} versions each.
 */
export class VersionLists {
  private readonly lists: SecretCache<VersionList>;
  /** Vault aliases whose listing the vault refused (403), until when listing is tried again (one TTL). */
  private readonly deniedUntil = new Map<string, number>();
  /** Vault aliases whose refusal was logged; forgotten when a listing of the vault succeeds again. */
  private readonly deniedLogged = new Set<string>();
  private readonly now: () => number;
  private readonly log: (line: string) => void;

  constructor(private readonly options: VersionListsOptions) {
    this.now = options.now;
    // eslint-disable-next-line no-console -- the default for callers that give no log
    this.log = options.log ?? ((line) => console.warn(line));
    this.lists = new SecretCache<VersionList>({
      ttlMs: options.ttlMs,
      maxEntries: options.maxEntries,
      staleIfErrorMs: options.staleIfErrorMs,
      serveStaleOn: (err: unknown) => err instanceof VaultThrottledError || err instanceof VaultUnavailableError,
      now: options.now,
      ...(options.random ? { random: options.random } : {}),
    });
  }

  /**
   * Whether `version` of `name` may exist: false only when a listing of the name's versions,
   * made just now or fresh enough, does not hold it. Then the caller answers 404 without a read.
   *
   * The rule: a version in the list, or any version when the list is incomplete
   * ({@link MAX_LISTED_VERSIONS}), may exist: the vault is asked. A version not in it is not found,
   * unless the list is older than its `relistAfterMs`: then the name is listed once more (concurrent
   * askers share that one listing) and the new list decides. The first re-list may come
   * {@link VERSION_RELIST_MS} after a listing; each re-list that finds no new version doubles that
   * wait (5 s, 10 s, 20 s, then every {@link VERSION_RELIST_MAX_MS}), and one that finds one starts
   * again at 5 s; a list that expires starts again too. So a version created without its event is
   * found within 30 s (the contract's bound for a rotation), and random versions of one name cost
   * with the default 300 s TTL at most 12 listings (each of up to ten pages) per 300 s, however many
   * are asked and whatever the callers' budgets. A `SecretNewVersionCreated` event drops the list
   * ({@link invalidate}), so an announced version is found at once.
   *
   * The list never answers 404 while the vault fails: a list served stale (its listing failed) or a
   * re-list that fails (any vault error) answers "may exist", and the version read decides with its
   * own error mapping (429 / 503 / stale-if-error). A vault that refuses listing (403: an access
   * policy with Get only, a role without list) is remembered for a TTL, logged once, and its
   * versions are read without a list.
   * @param canBridge a stale value could answer for the version: the listing fails fast.
   * @throws VaultError when a first listing fails (other than refused): the caller's read fails with it.
   */
  async mayExist(gateway: VaultGateway, name: string, version: string, canBridge: boolean, deadline: number | undefined): Promise<boolean> {
    const alias = gateway.alias;
    const deniedUntil = this.deniedUntil.get(alias);
    if (deniedUntil !== undefined) {
      if (this.now() < deniedUntil) return true;
      this.deniedUntil.delete(alias);
    }
    const key = versionListKey(alias, name);
    const wanted = version.toLowerCase();
    let list: VersionList;
    try {
      const got = await this.lists.get(key, (listing) =>
        this.listVersions(gateway, name, undefined, canBridge || listing.canBridge, deadline),
      );
      // A list bridging a failing vault (stale) does not answer 404: the version read decides.
      if (got.outcome === 'stale') return true;
      list = got.value;
    } catch (err: unknown) {
      if (err instanceof VaultAccessDeniedError) return this.denied(gateway, err);
      throw err;
    }
    if (!list.complete || list.versions.has(wanted)) return true;
    if (this.now() - list.listedAt < list.relistAfterMs) return false;
    this.lists.invalidate((k, v) => k === key && v === list);
    try {
      const { value: relisted, outcome } = await this.lists.get(key, (listing) =>
        this.listVersions(gateway, name, list, canBridge || listing.canBridge, deadline),
      );
      return outcome === 'stale' || !relisted.complete || relisted.versions.has(wanted);
    } catch (err: unknown) {
      // The re-list failed (throttled, unreachable, refused): the old list may miss a new version.
      if (err instanceof VaultAccessDeniedError) return this.denied(gateway, err);
      if (err instanceof VaultError) return true;
      throw err;
    }
  }

  /**
   * A rotation of `vault`/`name` to `version` (when known): drops the name's version list unless it
   * already holds that version or is incomplete (an incomplete list never answers 404).
   */
  invalidate(vault: string, name: string, version?: string): void {
    const listKey = versionListKey(vault, name);
    const named = version?.toLowerCase();
    this.lists.invalidate((key, list) => key === listKey && list.complete && (named === undefined || !list.versions.has(named)));
  }

  /** Remembers for a TTL that `gateway`'s vault refuses listing, logs it once; its versions are read without a list. */
  private denied(gateway: VaultGateway, err: VaultAccessDeniedError): true {
    this.deniedUntil.set(gateway.alias, this.now() + this.options.ttlMs);
    if (!this.deniedLogged.has(gateway.alias)) {
      this.deniedLogged.add(gateway.alias);
      this.log(
        `Vault "${gateway.alias}" refuses to list secret versions (${err.vaultCause}): pinned versions are read without a version list; ` +
          `listing is tried again after ${Math.round(this.options.ttlMs / 1000)} s. Grant the function app's identity List (access policy) ` +
          `or a role with secrets/readMetadata to answer unknown versions without reading them.`,
      );
    }
    return true;
  }

  /** Lists a name's versions; `previous` (a re-list) sets the next re-list's wait. */
  private async listVersions(
    gateway: VaultGateway,
    name: string,
    previous: VersionList | undefined,
    failFast: boolean,
    deadline: number | undefined,
  ): Promise<VersionList> {
    const listed = await this.options
      .pacerOf(gateway)
      .run((remainingMs) => gateway.listSecretVersions(name, MAX_LISTED_VERSIONS, Math.min(VAULT_CALL_TIMEOUT_MS, remainingMs)), {
        deadline,
        failFast,
      });
    this.deniedLogged.delete(gateway.alias);
    const foundNothingNew = previous !== undefined && [...listed.versions].every((v) => previous.versions.has(v));
    const relistAfterMs = foundNothingNew ? Math.min(previous.relistAfterMs * 2, VERSION_RELIST_MAX_MS) : VERSION_RELIST_MS;
    return { ...listed, listedAt: this.now(), relistAfterMs };
  }
}

/** Version list key: vault alias and lower-cased name. */
function versionListKey(vault: string, name: string): string {
  return `${vault}/${name.toLowerCase()}`;
}
