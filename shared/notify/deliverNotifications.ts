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
export const DELIVERY_CONCURRENCY = 16;

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
  return mapLimit(items, DELIVERY_CONCURRENCY, async (item): Promise<DeliveryOutcome> => {
    const known = await deps.ledger.get(item.sourceEventId, item.consumer);
    if (known?.state === 'delivered') return { consumer: item.consumer, state: 'alreadyDelivered', status: known.lastStatus, attempt: known.attempts };
    if (known?.state === 'deadLettered') return { consumer: item.consumer, state: 'alreadyDeadLettered', status: known.lastStatus, attempt: known.attempts };

    const result = await item.send();
    const at = now();
    const record = await deps.ledger.recordAttempt({
      eventId: item.sourceEventId,
      consumer: item.consumer,
      webhookId: item.webhookId,
      eventType: item.type,
      subject: item.subject,
      status: result.status,
      error: result.error,
      at,
    });
    let state: DeliveryState;
    if (result.ok) {
      await deps.ledger.markDelivered(item.sourceEventId, item.consumer, at, result.status ?? 200);
      state = 'delivered';
      deps.telemetry.trackMetric('NotificationDeliveryLagMs', at.getTime() - Date.parse(item.eventTime), { consumer: item.consumer, type: item.type });
    } else if (record.attempts >= maxAttempts) {
      await deps.ledger.markDeadLettered(item.sourceEventId, item.consumer, at, `no 2xx after ${record.attempts} attempts (last: ${result.error ?? 'unknown'})`);
      state = 'deadLettered';
    } else {
      state = 'failed';
    }
    deps.log(
      `notify consumer=${item.consumer} webhookId=${item.webhookId} type=${item.type} subject=${item.subject} ` +
        `attempt=${record.attempts} status=${result.status ?? 'none'} outcome=${state}${result.error ? ` error=${result.error}` : ''}`,
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
        attempt: record.attempts,
        error: result.error,
      },
      { durationMs: result.durationMs },
    );
    return { consumer: item.consumer, state, status: result.status, attempt: record.attempts };
  });
}
