import { compileGlob, policySubject } from '../callers/accessPolicy';
import type { ConsumerSettings } from '../config';

/** What a consumer can subscribe to (CONTRACT.md "Notifications to consumers"). */
export type ConsumerEvent = ConsumerSettings['events'][number];

/** The consumers of `CONSUMERS`, with their secret globs compiled once. */
export class ConsumerDirectory {
  private readonly consumers: readonly { settings: ConsumerSettings; secrets: readonly RegExp[] }[];

  constructor(consumers: readonly ConsumerSettings[]) {
    this.consumers = consumers.map((settings) => ({ settings, secrets: settings.secrets.map(compileGlob) }));
  }

  /**
   * The consumers subscribed to this event for this secret. Globs match like the access policy:
   * `name` for the default vault, `alias/name` for an aliased one.
   */
  forSecret(vault: string, name: string, event: ConsumerEvent): ConsumerSettings[] {
    const subject = policySubject(vault, name);
    return this.consumers
      .filter((c) => c.settings.events.includes(event) && c.secrets.some((re) => re.test(subject)))
      .map((c) => c.settings);
  }

  /** The consumers subscribed to a health event (any vault). */
  forHealth(event: 'HealthCheckFailed' | 'HealthCheckRecovered'): ConsumerSettings[] {
    return this.consumers.filter((c) => c.settings.events.includes(event)).map((c) => c.settings);
  }
}
