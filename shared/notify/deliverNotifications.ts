import { mapLimit } from '../mapLimit';
import type { Telemetry } from '../telemetry';
import type { DeliveryLedger } from './deliveryLedger';
import type { WebhookResult } from './sendWebhook';

/**
 * Attempts per consumer before a dead-letter record ends its retries. Event Grid redelivers a failed
 * invocation on its own schedule (10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, ...), so 8 attempts
 * give a consumer about two hours to come back.
 */
export const MAX_DELIVERY_ATTEMPTS = 8;
/** Consumers notified at once: one slow webhook never holds up the others. */
export const DELIVERY_CONCURRENCY = 64;

/** One notification for one consumer (or the Event Grid topic), ready to send. */
export interface PendingNotification {
  /** Consumer name; `$eventgrid` for NOTIFY_EVENTGRID_ENDPOINT. */
  readonly consumer: string;
  readonly sourceEventId: string;
  readonly type: string;
  readonly subject: string;
  /** When the source event happened, for the delivery-lag metric. */
  readonly eventTime: string;
  readonly webhookId: string;
  /** Signs and sends; never throws. */
  send(): Promise<WebhookResult>;
}

export type DeliveryState = 'delivered' | 'alreadyDelivered' | 'deadLettered' | 'alreadyDeadLettered' | 'failed';

export interface DeliveryOutcome {
  readonly consumer: string;
  readonly state: DeliveryState;
  readonly status: number | null;
  readonly attempt: number;
}

/**
 * Delivers each notification at least once, concurrently: skips consumers the ledger says already
 * answered 2xx (a duplicate event notifies nobody twice), records every attempt, and dead-letters a
 * consumer after MAX_DELIVERY_ATTEMPTS. `failed` outcomes mean the caller should fail the invocation
 * so the platform retries it.
 */
export async function deliverNotifications(
  items: readonly PendingNotification[],
  deps: { ledger: DeliveryLedger; telemetry: Telemetry; log: (line: string) => void; now?: () => Date; maxAttempts?: number },
): Promise<DeliveryOutcome[]> {
  const now = deps.now ?? (() => new Date());
  const maxAttempts = deps.maxAttempts ?? MAX_DELIVERY_ATTEMPTS;
  // One query for what is known of every consumer of these events (normally one event).
  const known = new Map<string, Map<string, { state: string; lastStatus: number | null; attempts: number }>>();
  for (const eventId of new Set(items.map((i) => i.sourceEventId))) known.set(eventId, await deps.ledger.forEvent(eventId));
  const sent = await mapLimit(items, DELIVERY_CONCURRENCY, async (item) => {
    const before = known.get(item.sourceEventId)?.get(item.consumer);
    if (before?.state === 'delivered' || before?.state === 'deadLettered') return { item, before, result: undefined, at: now() };
    return { item, before, result: await item.send(), at: now() };
  });

  // Every attempt of this event is recorded in one write (a batch when the storage allows).
  const attempted = sent.filter((s): s is typeof s & { result: WebhookResult } => s.result !== undefined);
  const records = await deps.ledger.recordResults(
    attempted.map(({ item, result, at }) => ({
      attempt: {
        eventId: item.sourceEventId,
        consumer: item.consumer,
        webhookId: item.webhookId,
        eventType: item.type,
        subject: item.subject,
        status: result.status,
        error: result.error,
        at,
      },
      result: { delivered: result.ok, maxAttempts, reason: `no 2xx after ${maxAttempts} attempts (last: ${result.error ?? 'unknown'})` },
    })),
  );
  const recordOf = new Map(attempted.map((s, i) => [s.item, records[i]]));

  return sent.map(({ item, before, result, at }): DeliveryOutcome => {
    if (!result) {
      return {
        consumer: item.consumer,
        state: before?.state === 'delivered' ? 'alreadyDelivered' : 'alreadyDeadLettered',
        status: before?.lastStatus ?? null,
        attempt: before?.attempts ?? 0,
      };
    }
    const record = recordOf.get(item);
    const state: DeliveryState = record?.state === 'delivered' ? 'delivered' : record?.state === 'deadLettered' ? 'deadLettered' : 'failed';
    const attempt = record?.attempts ?? 0;
    if (state === 'delivered') {
      deps.telemetry.trackMetric('NotificationDeliveryLagMs', at.getTime() - Date.parse(item.eventTime), {
        consumer: item.consumer,
        type: item.type,
      });
    }
    deps.log(
      `notify consumer=${item.consumer} webhookId=${item.webhookId} type=${item.type} subject=${item.subject} ` +
        `attempt=${attempt} status=${result.status ?? 'none'} outcome=${state}${result.error ? ` error=${result.error}` : ''}`,
    );
    deps.telemetry.trackEvent(
      'NotificationDelivery',
      {
        consumer: item.consumer,
        webhookId: item.webhookId,
        sourceEventId: item.sourceEventId,
        type: item.type,
        subject: item.subject,
        outcome: state,
        status: result.status,
        attempt,
        error: result.error,
      },
      { durationMs: result.durationMs },
    );
    return { consumer: item.consumer, state, status: result.status, attempt };
  });
}
