import type { AuditRecord } from '../audit/auditRecord';
import { buildRefusalsRecord } from '../audit/auditRecord';

/** Refused requests (401 / 403) one client address may have answered and audited per window. */
export const REFUSALS_PER_WINDOW = 60;
/** The refusal limit's window, in milliseconds: 60 refusals per minute per address. */
export const REFUSAL_WINDOW_MS = 60_000;
/**
 * Most client addresses (IPv6: /64 prefixes) whose windows are kept at once (a few MB at most;
 * a window with nothing suppressed is in a second map too). Past it a window is closed early, so memory stays bounded: the oldest with nothing
 * suppressed, else the oldest (its summary written).
 */
export const MAX_REFUSAL_ADDRESSES = 10_000;

/** The key of requests without a usable client address: they share one window. */
const NO_ADDRESS = '';
/** An IPv4 address written as IPv6 (`::ffff:192.0.2.1`): limited as the IPv4 address. */
const IPV4_MAPPED = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

/**
 * The refusal limit's key for a client address (as `clientAddressOf` gives it: a valid IP address):
 * an IPv4 address (or one mapped into IPv6) is its own key; an IPv6 address is keyed by its /64
 * prefix, written as the compressed network (`2001:db8:1:2::/64`), since one client usually holds
 * a whole /64 and could otherwise rotate addresses for a fresh window each time.
 */
export function refusalKeyOf(clientAddress: string): string {
  if (!clientAddress.includes(':')) return clientAddress;
  const mapped = IPV4_MAPPED.exec(clientAddress);
  if (mapped?.[1]) return mapped[1];
  const address = clientAddress.split('%', 1)[0] ?? '';
  const [head = '', tail] = address.split('::', 2);
  const groups = head === '' ? [] : head.split(':');
  if (tail !== undefined && groups.length < 4) {
    const rest = tail === '' ? [] : tail.split(':');
    // An embedded IPv4 address (last 32 bits) is two groups.
    const restGroups = rest.length + (rest.some((g) => g.includes('.')) ? 1 : 0);
    for (let i = groups.length + restGroups; i < 8; i++) groups.push('0');
    groups.push(...rest);
  }
  const prefix = groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16));
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === '0') end--;
  return `${prefix.slice(0, end).join(':')}::/64`;
}

interface RefusalWindow {
  /** Epoch ms. */
  readonly start: number;
  refusals: number;
  /** Refusals past the limit: answered 429, no record of their own. */
  suppressed: number;
}

export interface RefusalLimiterOptions {
  /** Default {@link REFUSALS_PER_WINDOW}. */
  readonly limit?: number;
  /** Default {@link REFUSAL_WINDOW_MS}. */
  readonly windowMs?: number;
  /** Default {@link MAX_REFUSAL_ADDRESSES}. */
  readonly maxAddresses?: number;
  /** Epoch ms (the summaries' `time`). Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * Bounds what refused requests cost (docs/security.md, "Quotas"): per client address (the last
 * `X-Forwarded-For` hop, as the audit record has it; an IPv6 address counts by its /64 prefix,
 * {@link refusalKeyOf}; requests without one share a window), a
 * fixed window of `limit` refusals is answered and audited as usual; a refusal past it is answered
 * 429 `TooManyRequests` with `Retry-After` (the seconds to the window's end) and writes no record
 * of its own. Instead the window's one `refusals` record (auditRecord.ts {@link buildRefusalsRecord})
 * carries how many were suppressed. It is written when the window closes: by a timer at the end of
 * the earliest window holding suppressed refusals (unref'd; the audit sink batches as usual), or
 * sooner when the address is refused again after its window, when its window is evicted (more
 * than `maxAddresses` keys; windows with nothing suppressed go first), or on {@link dispose}; each
 * window's count is written once. The `refusals` record names the key: the address, or the /64.
 *
 * Only refusals reach it: a request that is answered 2xx never touches it, so a valid caller
 * behind the same address is never limited by someone else's bad keys.
 */
export class RefusalLimiter {
  /** In the order the windows started: closed windows are at the front. */
  private readonly windows = new Map<string, RefusalWindow>();
  /** The windows of {@link windows} with nothing suppressed yet, in the same order: evicted first. */
  private readonly quiet = new Map<string, RefusalWindow>();
  /** Refusals per window per address answered as usual. */
  readonly limit: number;
  /** The window, in ms. */
  readonly windowMs: number;
  private readonly maxAddresses: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly write: (record: AuditRecord) => void,
    options: RefusalLimiterOptions = {},
  ) {
    this.limit = options.limit ?? REFUSALS_PER_WINDOW;
    this.windowMs = options.windowMs ?? REFUSAL_WINDOW_MS;
    this.maxAddresses = Math.max(1, options.maxAddresses ?? MAX_REFUSAL_ADDRESSES);
    this.now = options.now ?? Date.now;
  }

  /** Keys (addresses, IPv6 /64 prefixes) with a window kept now. */
  get size(): number {
    return this.windows.size;
  }

  /**
   * Counts one refused request of `clientAddress` (in the window of its key: {@link refusalKeyOf}).
   * @returns 0 when it is within the limit (answer and audit it as usual); else the seconds until
   * the key's window ends (answer 429 with that `Retry-After`, and write no record for it).
   */
  refuse(clientAddress: string | null): number {
    const now = this.now();
    const key = clientAddress === null ? NO_ADDRESS : refusalKeyOf(clientAddress);
    let window = this.windows.get(key);
    if (window && now - window.start >= this.windowMs) {
      this.close(key, window, now);
      window = undefined;
    }
    if (!window) {
      this.sweep(now);
      while (this.windows.size >= this.maxAddresses) this.evict(now);
      window = { start: now, refusals: 0, suppressed: 0 };
      this.windows.set(key, window);
      this.quiet.set(key, window);
    }
    window.refusals++;
    if (window.refusals <= this.limit) return 0;
    if (window.suppressed++ === 0) this.quiet.delete(key);
    const remainingMs = window.start + this.windowMs - now;
    if (window.suppressed === 1) this.arm(remainingMs);
    return Math.max(1, Math.ceil(remainingMs / 1000));
  }

  /** Writes the summaries of the windows that have ended and drops them. */
  sweep(now: number = this.now()): void {
    for (const [key, window] of this.windows) {
      if (now - window.start < this.windowMs) break;
      this.close(key, window, now);
    }
  }

  /** Writes every window's summary now (ended or not) and stops the timer: for a host that stops. */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const now = this.now();
    for (const [key, window] of this.windows) this.close(key, window, now);
  }

  /**
   * Closes one window early to make room: the oldest with nothing suppressed (it writes nothing,
   * and keeps no count worth keeping), else the oldest.
   */
  private evict(now: number): void {
    const first = (this.quiet.size > 0 ? this.quiet : this.windows).entries().next();
    if (!first.done) this.close(first.value[0], first.value[1], now);
  }

  private close(key: string, window: RefusalWindow, now: number): void {
    this.windows.delete(key);
    this.quiet.delete(key);
    if (window.suppressed > 0) {
      const length = Math.min(this.windowMs, now - window.start);
      this.write(buildRefusalsRecord(key === NO_ADDRESS ? null : key, window.start, length, window.suppressed));
    }
  }

  /** Makes sure a sweep runs once the window that ends in `delayMs` has ended (windows end in start order). */
  private arm(delayMs: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, delayMs));
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    const now = this.now();
    try {
      this.sweep(now);
    } catch {
      // The audit log keeps a record whose write failed and writes it with its next batch.
    }
    for (const window of this.windows.values()) {
      if (window.suppressed > 0) {
        this.arm(window.start + this.windowMs - now);
        return;
      }
    }
  }
}
