/**
 * What a rotation tells consumers (docs/rotation.md): `secretbroker.secret.rotated` for its new
 * version, to the consumers of that secret's `SecretNewVersionCreated`, and
 * `secretbroker.secret.retired` for its old version, to the same consumers. Both go through the
 * delivery ledger, at least once per consumer; a call made again after a crash, or Key Vault's own
 * `SecretNewVersionCreated` for the version the rotation wrote, notifies nobody twice (same ledger
 * source id, same `webhook-id`).
 */
import type { VaultSettings } from '../config';
import type { RotationNotifier } from '../rotation/rotationRunner';
import { BrokerRefusal } from '../rotation/rotationErrors';
import type { RotationRecord } from '../rotation/rotationTypes';
import type { SecretResolver } from '../secrets/secretResolver';
import type { Telemetry } from '../telemetry';
import type { ConsumerDirectory } from './consumerDirectory';
import { deliverNotifications } from './deliverNotifications';
import type { DeliveryLedger } from './deliveryLedger';
import type { EventGridTopicPublisher } from './eventGridTopic';
import type { RotationChange } from './notification';
import { newVersionSourceId, retiredSourceId, rotationNotification } from './notification';
import { pendingNotifications } from './pendingNotifications';
import type { sendWebhook } from './sendWebhook';

export interface RotationNotifierDeps {
  readonly vaults: ReadonlyMap<string, VaultSettings>;
  readonly consumers: ConsumerDirectory;
  readonly ledger: DeliveryLedger;
  readonly resolver: Pick<SecretResolver, 'readSigningKey'>;
  readonly topic: Pick<EventGridTopicPublisher, 'publish'> | undefined;
  readonly telemetry: Telemetry;
  /** The rotation's record, for the new version's expiry (`newEndDateTime`). */
  readonly record: (vault: string, secret: string, rotationId: string) => Promise<RotationRecord | undefined>;
  readonly log: (line: string) => void;
  readonly send?: typeof sendWebhook;
  readonly now?: () => Date;
}

/**
 * A notifier for the rotation runner. A consumer that has not answered 2xx yet (and is not
 * dead-lettered) stops the step with `NotificationsPending`: the rotation resumes it on the next
 * timer run, and only the consumers still owed are sent it again.
 */
export function rotationNotifier(deps: RotationNotifierDeps): RotationNotifier {
  const now = deps.now ?? (() => new Date());
  const notify = async (
    kind: RotationChange['kind'],
    alias: string,
    secret: string,
    version: string,
    rotationId: string,
  ): Promise<void> => {
    const vault = deps.vaults.get(alias);
    if (!vault) throw new BrokerRefusal('UnknownVault', `Vault "${alias}" is not configured.`);
    const record = await deps.record(alias, secret, rotationId);
    const at = (kind === 'rotated' ? record?.newVersionCreatedAt : record?.oldVersionDisabledAt) ?? now().toISOString();
    const change: RotationChange = {
      kind,
      rotationId,
      version,
      notBefore: null,
      expiresOn: kind === 'rotated' ? (record?.newEndDateTime ?? null) : (record?.oldExpiresOn ?? null),
      at,
    };
    const sourceId = kind === 'rotated' ? newVersionSourceId(alias, secret, version) : retiredSourceId(alias, secret, version);
    const pending = pendingNotifications(
      { eventId: sourceId, eventTime: at },
      deps.consumers.forSecret(alias, secret, 'SecretNewVersionCreated'),
      (consumer) => rotationNotification(change, vault, secret, consumer),
      deps,
    );
    if (pending.length === 0) return;
    const outcomes = await deliverNotifications(pending, {
      ledger: deps.ledger,
      telemetry: deps.telemetry,
      log: deps.log,
      ...(deps.now ? { now: deps.now } : {}),
    });
    const owed = outcomes.filter((o) => o.state === 'failed').map((o) => o.consumer);
    if (owed.length > 0) {
      throw new BrokerRefusal(
        'NotificationsPending',
        `The ${kind} notification of ${alias}/${secret} is not yet delivered to ${owed.join(', ')}; the next run sends it again.`,
      );
    }
  };
  return {
    rotated: (vault, secret, version, rotationId) => notify('rotated', vault, secret, version, rotationId),
    retired: (vault, secret, oldVersion, rotationId) => notify('retired', vault, secret, oldVersion, rotationId),
  };
}
