import { VaultError, VaultThrottledError, VaultUnavailableError } from '../errors';
import { isTransientVaultError } from './translateVaultError';

/**
 * How long one read may spend waiting out a throttled or failing vault before its caller gets the
 * error (429 `VaultThrottled` / 503 `VaultUnavailable`, with `Retry-After`). A caller can live with
 * it, and it is far below the Functions HTTP limit of 230 s.
 */
export const VAULT_DEADLINE_MS = 20_000;
/** First pause after a failure that names no `Retry-After`; it doubles with each failure in a row. */
export const BACKOFF_BASE_MS = 250;
/** Longest pause without `Retry-After`. */
export const BACKOFF_MAX_MS = 8_000;
/**
 * Each pause is lengthened by a random share of up to this much (never shortened: `Retry-After`
 * is a minimum), so instances that were throttled together do not come back together.
 */
export const PAUSE_JITTER = 0.2;

/** Options of {@link VaultPacer}; the defaults are what runs in Azure. */
export interface VaultPacerOptions {
  /** Default {@link VAULT_DEADLINE_MS}. */
  readonly deadlineMs?: number;
  /** Default `Date.now`. */
  readonly now?: () => number;
  /** A number in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  /** Default a timer. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** How one call goes through the pacer. */
export interface PacedCallOptions {
  /** When waiting must end, on the pacer's clock. Default {@link VaultPacer.deadline} at the call's start. */
  readonly deadline?: number | undefined;
  /**
   * A stale value can answer instead: never wait, make at most one attempt, and fail with the
   * vault's error so that the stale value is served.
   */
  readonly failFast?: boolean | undefined;
}

/**
 * Paces the calls to one vault. After a 429 the vault is paused for `Retry-After` × (1 + jitter);
 * after a 5xx, a timeout or a lost connection for an exponential backoff (with `Retry-After` when
 * the answer had one). Every call on the vault waits out the pause before it goes out, so all keys
 * pause together rather than each hammering the vault. A call whose deadline would pass while
 * paused fails at once with the vault's error and the pause left as `Retry-After`.
 *
 * This is the only retry loop of vault reads: the SDK's own retries are off (runtime.ts).
 */
export class VaultPacer {
  private readonly deadlineMs: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private pausedUntil = Number.NEGATIVE_INFINITY;
  /** The pause without its jitter: when the vault itself said it would take calls again. */
  private resumesAt = Number.NEGATIVE_INFINITY;
  /** The failure that set the pause: what a call that cannot wait it out is told. */
  private pausedBy: VaultError | undefined;
  /** Transient failures in a row, for the backoff. */
  private failures = 0;

  constructor(
    readonly vault: string,
    options: VaultPacerOptions = {},
  ) {
    this.deadlineMs = options.deadlineMs ?? VAULT_DEADLINE_MS;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** The deadline of a call that starts now. */
  deadline(): number {
    return this.now() + this.deadlineMs;
  }

  /** How long calls on this vault still wait, in ms (0 when not paused). */
  pauseMs(): number {
    return Math.max(0, this.pausedUntil - this.now());
  }

  /**
   * Runs `attempt` (given the ms left to the deadline, to bound its own timeout) after any pause,
   * and again after each transient failure (429, 5xx, timeout, network) while the deadline allows.
   * Other errors are thrown at once.
   * @throws VaultThrottledError / VaultUnavailableError with `retryAfterSeconds` when the deadline
   * would pass while paused; whatever `attempt` throws otherwise.
   */
  async run<T>(attempt: (remainingMs: number) => Promise<T>, options: PacedCallOptions = {}): Promise<T> {
    const deadline = options.deadline ?? this.deadline();
    let last: VaultError | undefined;
    for (;;) {
      const wait = this.pauseMs();
      if (wait > 0) {
        if (options.failFast || this.now() + wait > deadline) throw this.pausedError();
        await this.sleep(wait);
        // Another call may have lengthened the pause meanwhile: look again.
        continue;
      }
      const remaining = deadline - this.now();
      if (remaining <= 0) {
        throw last ?? new VaultUnavailableError(`Vault "${this.vault}" could not be read before the request's deadline`, 'Timeout');
      }
      try {
        const value = await attempt(remaining);
        this.failures = 0;
        return value;
      } catch (err: unknown) {
        if (!(err instanceof VaultError) || !isTransientVaultError(err)) throw err;
        // A timeout that ends at the deadline is the request's budget running out, not news of the
        // vault: the caller hears what the vault itself last said (e.g. 429 with its Retry-After).
        const cutByDeadline = err instanceof VaultUnavailableError && err.vaultCause === 'Timeout' && this.now() >= deadline;
        if (cutByDeadline && last) throw last;
        this.recordFailure(err);
        last = err;
        if (options.failFast) throw err;
      }
    }
  }

  /** Pauses the vault after a transient failure (never shortens a pause already set). */
  recordFailure(err: VaultError): void {
    this.failures++;
    const retryAfterMs = (err.retryAfterSeconds ?? 0) * 1000;
    const base = retryAfterMs > 0 ? retryAfterMs : Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this.failures - 1));
    const now = this.now();
    const until = now + base * (1 + PAUSE_JITTER * this.random());
    if (until >= this.pausedUntil) {
      this.pausedUntil = until;
      this.resumesAt = now + base;
      this.pausedBy = err;
    }
  }

  /**
   * The error of a call that cannot wait out the pause: the pause's own kind, with `Retry-After`
   * the time the vault asked for (our jitter left out: a caller that comes back a little early
   * waits the rest here), in whole seconds, at least 1.
   */
  private pausedError(): VaultError {
    const retryAfterSeconds = Math.max(1, Math.ceil((this.resumesAt - this.now()) / 1000));
    const by = this.pausedBy;
    if (by instanceof VaultUnavailableError) {
      // A transient VaultUnavailableError is a timeout or an unreachable vault (isTransientVaultError).
      const cause = by.vaultCause === 'Timeout' ? 'Timeout' : 'VaultUnreachable';
      return new VaultUnavailableError(by.message, cause, { cause: by, retryAfterSeconds });
    }
    return new VaultThrottledError(`Vault "${this.vault}" is throttling requests; waiting longer would pass the request's deadline`, {
      cause: by,
      retryAfterSeconds,
    });
  }
}
