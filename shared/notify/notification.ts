import { createHash } from 'node:crypto';
import type { KeyVaultEvent, SecretEventKind } from '../events/keyVaultEvent';

/** CloudEvents `type` per Key Vault event kind (CONTRACT.md). */
export const NOTIFICATION_TYPES: Record<SecretEventKind, string> = {
  SecretNewVersionCreated: 'secretbroker.secret.rotated',
  SecretNearExpiry: 'secretbroker.secret.nearexpiry',
  SecretExpired: 'secretbroker.secret.expired',
};

/** A CloudEvents 1.0 event in structured mode, as consumers receive it. */
export interface NotificationEvent {
  readonly specversion: '1.0';
  readonly id: string;
  readonly source: string;
  readonly type: string;
  readonly subject: string;
  readonly time: string;
  readonly datacontenttype: 'application/json';
  readonly data: Record<string, unknown>;
}

/**
 * The Standard Webhooks message id of one event for one consumer: the same on every retry and
 * every duplicate delivery of the source event, different per consumer.
 */
export function webhookIdFor(sourceEventId: string, consumer: string): string {
  return `msg_${createHash('sha256').update(`${sourceEventId}\n${consumer}`).digest('base64url').slice(0, 32)}`;
}

/** The notification of a Key Vault secret event. `data` names the secret, never its value. */
export function secretNotification(
  event: KeyVaultEvent & { kind: SecretEventKind },
  vault: { alias: string; uri: string },
  secret: string,
  consumer: string,
): NotificationEvent {
  return {
    specversion: '1.0',
    id: webhookIdFor(event.id, consumer),
    source: `/vaults/${vault.alias}`,
    type: NOTIFICATION_TYPES[event.kind],
    subject: `${vault.alias}/${secret}`,
    time: event.time,
    datacontenttype: 'application/json',
    data: {
      vault: vault.alias,
      vaultUri: vault.uri,
      secret,
      version: event.version ?? null,
      notBefore: event.notBefore,
      expiresOn: event.expiresOn,
      sourceEventId: event.id,
      sourceEventType: event.type,
    },
  };
}

/** The notification of a vault's health changing to failed, or back. */
export function healthNotification(
  change: { eventId: string; type: 'HealthCheckFailed' | 'HealthCheckRecovered'; at: string },
  vault: { alias: string; status: string; checks: readonly unknown[] },
  consumer: string,
): NotificationEvent {
  return {
    specversion: '1.0',
    id: webhookIdFor(change.eventId, consumer),
    source: `/vaults/${vault.alias}`,
    type: change.type === 'HealthCheckFailed' ? 'secretbroker.health.failed' : 'secretbroker.health.recovered',
    subject: vault.alias,
    time: change.at,
    datacontenttype: 'application/json',
    data: { vault: vault.alias, status: vault.status, checks: vault.checks },
  };
}
