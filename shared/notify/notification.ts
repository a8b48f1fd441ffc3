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

/** CloudEvents `type` of the notification that an old version was disabled after a rotation. */
export const RETIRED_TYPE = 'secretbroker.secret.retired';

/**
 * The delivery ledger's source id of a new version of a secret: the same whether the broker's own
 * rotation or Key Vault's `SecretNewVersionCreated` tells of it first, so each consumer is notified
 * of that version once (and with one `webhook-id`), whichever path comes second.
 */
export function newVersionSourceId(vaultAlias: string, secret: string, version: string): string {
  return `newVersion:${vaultAlias}/${secret.toLowerCase()}/${version}`;
}

/** The delivery ledger's source id of an old version's retirement after a rotation. */
export function retiredSourceId(vaultAlias: string, secret: string, oldVersion: string): string {
  return `retired:${vaultAlias}/${secret.toLowerCase()}/${oldVersion}`;
}

/**
 * The ledger source id of a Key Vault event: a new version's is {@link newVersionSourceId} (shared
 * with the rotation that wrote it), any other event's is its own id.
 */
export function secretEventSourceId(event: KeyVaultEvent & { kind: SecretEventKind }, vaultAlias: string, secret: string): string {
  return event.kind === 'SecretNewVersionCreated' && event.version ? newVersionSourceId(vaultAlias, secret, event.version) : event.id;
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
    id: webhookIdFor(secretEventSourceId(event, vault.alias, secret), consumer),
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

/** What a rotation tells consumers: its new version (`rotated`) or its old version's retirement (`retired`). */
export interface RotationChange {
  readonly kind: 'rotated' | 'retired';
  readonly rotationId: string;
  /** The new version (`rotated`) or the old, now disabled, version (`retired`). */
  readonly version: string;
  readonly notBefore: string | null;
  readonly expiresOn: string | null;
  /** When the change happened (ISO 8601). */
  readonly at: string;
}

/**
 * The notification of a rotation's step, shaped as a secret notification: `sourceEventId` is the
 * rotation id and `sourceEventType` `SecretBroker.Rotation`. A `rotated` one has the same
 * `webhook-id` as the notification of Key Vault's `SecretNewVersionCreated` for that version.
 */
export function rotationNotification(
  change: RotationChange,
  vault: { alias: string; uri: string },
  secret: string,
  consumer: string,
): NotificationEvent {
  const sourceId =
    change.kind === 'rotated'
      ? newVersionSourceId(vault.alias, secret, change.version)
      : retiredSourceId(vault.alias, secret, change.version);
  return {
    specversion: '1.0',
    id: webhookIdFor(sourceId, consumer),
    source: `/vaults/${vault.alias}`,
    type: change.kind === 'rotated' ? NOTIFICATION_TYPES.SecretNewVersionCreated : RETIRED_TYPE,
    subject: `${vault.alias}/${secret}`,
    time: change.at,
    datacontenttype: 'application/json',
    data: {
      vault: vault.alias,
      vaultUri: vault.uri,
      secret,
      version: change.version,
      notBefore: change.notBefore,
      expiresOn: change.expiresOn,
      sourceEventId: change.rotationId,
      sourceEventType: ROTATION_SOURCE_TYPE,
    },
  };
}

/** `sourceEventType` of the notifications a rotation sends. */
export const ROTATION_SOURCE_TYPE = 'SecretBroker.Rotation';

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
