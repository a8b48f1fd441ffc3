import type { VaultSettings } from '../config';
import { InvalidRequestError } from '../errors';
import type { ConsumerDirectory } from '../notify/consumerDirectory';
import type { DeliveryOutcome } from '../notify/deliverNotifications';
import { deliverNotifications } from '../notify/deliverNotifications';
import type { DeliveryLedger } from '../notify/deliveryLedger';
import type { EventGridTopicPublisher } from '../notify/eventGridTopic';
import { secretEventSourceId, secretNotification } from '../notify/notification';
import { pendingNotifications } from '../notify/pendingNotifications';
import type { sendWebhook } from '../notify/sendWebhook';
import { VaultStepError } from '../rotation/rotationErrors';
import type { RotationRunner } from '../rotation/rotationRunner';
import type { RotationRecord } from '../rotation/rotationTypes';
import type { SecretResolver } from '../secrets/secretResolver';
import type { Telemetry } from '../telemetry';
import type { SharedSecretCache } from '../secrets/sharedSecretCache';
import type { CacheCoherence } from './cacheCoherence';
import type { KeyVaultEvent, SecretEventKind } from './keyVaultEvent';
import { parseKeyVaultEvent } from './keyVaultEvent';

export interface SecretEventDeps {
  readonly vaults: ReadonlyMap<string, VaultSettings>;
  readonly resolver: Pick<SecretResolver, 'invalidate' | 'readSigningKey'>;
  readonly coherence: Pick<CacheCoherence, 'publish'>;
  /** The fleet's shared cache, when on: its copy is deleted before any instance is told. */
  readonly shared?: Pick<SharedSecretCache, 'delete'>;
  readonly consumers: ConsumerDirectory;
  readonly ledger: DeliveryLedger;
  readonly telemetry: Telemetry;
  readonly topic: Pick<EventGridTopicPublisher, 'publish'> | undefined;
  readonly send?: typeof sendWebhook;
  readonly now?: () => Date;
  /** Rotations, when on (`ROTATION_IDENTITY_CLIENT_ID`); built on first use. */
  readonly rotation?: () => SecretEventRotation | undefined;
}

/** What the event handler asks of rotations. */
export interface SecretEventRotation {
  /** `SecretNearExpiry` of a secret tagged `brokerRotation=entraApp` starts (or resumes) its rotation. */
  readonly start: RotationRunner['start'];
  /** The secret's active rotation (failed ones included), or undefined. */
  active(vault: string, secret: string): Promise<RotationRecord | undefined>;
  /** The `brokerRotationId` tag of a version (one Key Vault read of it), or undefined. */
  rotationIdOfVersion(vault: string, secret: string, version: string): Promise<string | undefined>;
}

/**
 * Whether a rotation wrote (or is writing right now) this version of its secret: then the rotation
 * tells consumers of it itself, after every cache is refreshed, and the event only refreshes caches.
 * Matched on the version itself: the record's `newVersion` when known; while the rotation is in
 * `passwordAdded` (or failed there) its write is in flight and Key Vault's event for it may come
 * first, so the version's `brokerRotationId` tag is read (only then) and must be the record's id.
 * Any other version (one an admin writes meanwhile) is announced to consumers as usual.
 */
export async function rotationWroteVersion(
  record: RotationRecord | undefined,
  version: string | undefined,
  rotationIdOfVersion: (version: string) => Promise<string | undefined>,
): Promise<boolean> {
  if (!record || !version) return false;
  if (record.newVersion) return record.newVersion === version;
  const writing = record.state === 'passwordAdded' || (record.state === 'failed' && record.failure?.resumeState === 'passwordAdded');
  if (!writing) return false;
  return (await rotationIdOfVersion(version)) === record.id;
}

export type SecretEventOutcome =
  | { readonly outcome: 'malformed' | 'ignored' | 'refused'; readonly reason: string }
  | { readonly outcome: 'handled'; readonly vault: string; readonly secret: string; readonly deliveries: readonly DeliveryOutcome[] };

/** Some consumers have not answered 2xx yet: failing the invocation makes Event Grid redeliver. */
export class NotificationsPendingError extends Error {
  constructor(readonly pending: readonly string[]) {
    super(`Notifications not yet delivered to: ${pending.join(', ')}; the event will be redelivered`);
    this.name = 'NotificationsPendingError';
  }
}

/**
 * Handles one Key Vault event: drops the secret's cached latest value here and, through storage, on
 * every other instance, where it is not already the new version; notifies exactly the consumers subscribed to it; publishes to the Event
 * Grid topic when one is set. Events of other types are acknowledged; events of vaults that are
 * not configured are refused (logged, never acted on). Malformed events are logged and
 * acknowledged too: redelivering them would not mend them.
 * @throws NotificationsPendingError when a consumer still has to be retried.
 */
export async function handleSecretEvent(raw: unknown, deps: SecretEventDeps, log: (line: string) => void): Promise<SecretEventOutcome> {
  let event: KeyVaultEvent;
  try {
    event = await parseKeyVaultEvent(raw);
  } catch (err: unknown) {
    if (!(err instanceof InvalidRequestError)) throw err;
    return settle(deps, log, undefined, { outcome: 'malformed', reason: err.message });
  }
  if (!event.kind)
    return settle(deps, log, event, { outcome: 'ignored', reason: `event type ${printable(event.type)} is not one the broker acts on` });
  log(
    `received ${printable(event.type)} for ${printable(event.vaultName ?? '?')}/${printable(event.objectName ?? '?')}` +
      `${event.version ? ` version ${printable(event.version)}` : ''} (event ${printable(event.id)})`,
  );
  const vault = vaultOf(event, deps.vaults);
  if (typeof vault === 'string') return settle(deps, log, event, { outcome: 'refused', reason: vault });
  if (event.objectType !== undefined && event.objectType !== 'Secret')
    return settle(deps, log, event, { outcome: 'ignored', reason: `object type ${printable(event.objectType)}` });
  const secret = event.objectName;
  if (!secret || !/^[0-9a-zA-Z-]{1,127}$/.test(secret))
    return settle(deps, log, event, { outcome: 'malformed', reason: 'the event names no secret' });
  const kind: SecretEventKind = event.kind;

  if (kind === 'SecretNewVersionCreated') {
    // Version-aware: an instance that already holds this version (a redelivery) drops nothing.
    // Storage first: an instance told of the rotation must not find the old value there. A failed
    // delete fails the invocation, so Event Grid delivers the event again.
    await deps.shared?.delete(vault.alias, secret);
    const dropped = deps.resolver.invalidate(vault.alias, secret, event.version);
    await deps.coherence.publish(vault.alias, secret, event.version ?? null);
    log(
      `cache refreshed for ${vault.alias}/${secret}${event.version ? `, new version ${printable(event.version)}` : ''}: ` +
        `dropped ${dropped} stale version(s) here, told the other instances (event ${printable(event.id)})`,
    );
  }

  // A new version's ledger key is the version's own (notification.ts `newVersionSourceId`): the
  // rotation that wrote it notifies under the same key, so nobody hears of that version twice.
  const rotation = kind === 'SecretNewVersionCreated' ? deps.rotation?.() : undefined;
  const ownVersion =
    rotation !== undefined &&
    (await rotationWroteVersion(await rotation.active(vault.alias, secret), event.version, (version) =>
      rotation.rotationIdOfVersion(vault.alias, secret, version),
    ));
  if (ownVersion)
    log(
      `version ${printable(event.version ?? '')} of ${vault.alias}/${secret} was written by its rotation, which notifies consumers of it`,
    );
  const pending = ownVersion
    ? []
    : pendingNotifications(
        { eventId: secretEventSourceId({ ...event, kind }, vault.alias, secret), eventTime: event.time },
        deps.consumers.forSecret(vault.alias, secret, kind),
        (consumer) => secretNotification({ ...event, kind }, vault, secret, consumer),
        deps,
      );

  const deliveries = await deliverNotifications(pending, {
    ledger: deps.ledger,
    telemetry: deps.telemetry,
    log,
    ...(deps.now ? { now: deps.now } : {}),
  });
  const outcome = settle(deps, log, event, { outcome: 'handled', vault: vault.alias, secret, deliveries });
  if (kind === 'SecretNearExpiry') await startRotation(deps, vault.alias, secret, log);
  const failed = deliveries.filter((d) => d.state === 'failed').map((d) => d.consumer);
  if (failed.length > 0) throw new NotificationsPendingError(failed);
  return outcome;
}

/**
 * Starts (or resumes) the rotation of a secret near its expiry, when rotation is on. A secret not
 * tagged for rotation is left alone; any other refusal, or a secret the rotation identity cannot
 * read, is logged and never fails the event. A storage error fails the invocation, so Event Grid
 * redelivers it and the start is tried again (consumers already served are not notified twice).
 */
async function startRotation(deps: SecretEventDeps, vault: string, secret: string, log: (line: string) => void): Promise<void> {
  const runner = deps.rotation?.();
  if (!runner) return;
  let result: Awaited<ReturnType<SecretEventRotation['start']>>;
  try {
    result = await runner.start(vault, secret, 'SecretNearExpiry');
  } catch (err: unknown) {
    // The rotation identity cannot read the secret (it may not be meant for rotation at all): nothing started, and
    // redelivering would not mend it. Anything else (storage) fails the invocation.
    if (!(err instanceof VaultStepError)) throw err;
    log(`rotation of ${vault}/${secret} not started: the rotation identity cannot read it (Key Vault: ${err.code})`);
    return;
  }
  if (result.outcome === 'refused') {
    if (result.code !== 'NotTagged') log(`rotation of ${vault}/${secret} not started: ${result.code}: ${result.message}`);
    return;
  }
  const r = result.record;
  log(
    `rotation ${r.id} of ${vault}/${secret} ${result.outcome}: ${r.state}` +
      `${r.failure ? ` (${r.failure.service} ${r.failure.code} at ${r.failure.step})` : ''}`,
  );
}

/**
 * The configured vault an event comes from: by name, and by resource id where one is configured;
 * else why the event is refused.
 */
function vaultOf(event: KeyVaultEvent, vaults: ReadonlyMap<string, VaultSettings>): VaultSettings | string {
  const name = event.vaultName?.toLowerCase();
  if (!name) return 'the event names no vault (data.VaultName)';
  let otherTopic: VaultSettings | undefined;
  for (const vault of vaults.values()) {
    if (new URL(vault.uri).hostname.split('.')[0]?.toLowerCase() !== name) continue;
    // With KEY_VAULT_RESOURCE_IDS, a vault of the same name in another subscription is not ours.
    if (vault.resourceId && event.source && event.source.toLowerCase() !== vault.resourceId.toLowerCase()) {
      otherTopic ??= vault;
      continue;
    }
    return vault;
  }
  if (otherTopic) {
    return `the topic ${JSON.stringify(printable(event.source ?? ''))} is not the resource id of vault "${otherTopic.alias}" (KEY_VAULT_RESOURCE_IDS: ${otherTopic.resourceId ?? ''})`;
  }
  return `vault ${JSON.stringify(printable(event.vaultName ?? '?'))} is not configured here`;
}

/** Text from an event, fit for one log line: no control characters, at most 200 characters. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is replaced
  return text.replace(/[\u0000-\u001f\u007f]/g, '?').slice(0, 200);
}

function settle(
  deps: SecretEventDeps,
  log: (line: string) => void,
  event: KeyVaultEvent | undefined,
  outcome: SecretEventOutcome,
): SecretEventOutcome {
  const summary =
    outcome.outcome === 'handled'
      ? `handled ${outcome.vault}/${outcome.secret}: ${outcome.deliveries.map((d) => `${d.consumer}=${d.state}`).join(' ') || 'no consumers'}`
      : `${outcome.outcome}: ${outcome.reason}`;
  log(`${summary} (event ${event ? `${printable(event.id)} ${printable(event.type)}` : '?'})`);
  deps.telemetry.trackEvent('KeyVaultEventReceived', {
    eventId: event?.id ?? null,
    eventType: event?.type ?? null,
    schema: event?.schema ?? null,
    vaultName: event?.vaultName ?? null,
    secret: event?.objectName ?? null,
    version: event?.version ?? null,
    outcome: outcome.outcome,
    reason: outcome.outcome === 'handled' ? null : outcome.reason,
    consumers: outcome.outcome === 'handled' ? outcome.deliveries.length : 0,
  });
  return outcome;
}
