import type { ConsumerSettings } from '../config';
import { BrokerError } from '../errors';
import type { SecretResolver } from '../secrets/secretResolver';
import type { PendingNotification } from './deliverNotifications';
import type { EventGridTopicPublisher } from './eventGridTopic';
import type { NotificationEvent } from './notification';
import type { WebhookResult } from './sendWebhook';
import { sendWebhook } from './sendWebhook';

/** The pseudo-consumer under which the Event Grid topic's deliveries are kept in the ledger. */
export const EVENT_GRID_TOPIC_CONSUMER = '$eventgrid';

/**
 * One notification per consumer (signed with the consumer's key, read from SIGNING_KEY_VAULT at
 * send time) and one for the Event Grid topic when there is one, ready for deliverNotifications.
 * `build` makes the CloudEvent for a consumer name.
 */
export function pendingNotifications(
  source: { eventId: string; eventTime: string },
  consumers: readonly ConsumerSettings[],
  build: (consumer: string) => NotificationEvent,
  deps: {
    resolver: Pick<SecretResolver, 'readSigningKey'>;
    topic: Pick<EventGridTopicPublisher, 'publish'> | undefined;
    send?: typeof sendWebhook;
  },
): PendingNotification[] {
  const send = deps.send ?? sendWebhook;
  const pending = consumers.map((consumer): PendingNotification => {
    const notification = build(consumer.name);
    const body = JSON.stringify(notification);
    return {
      ...describe(source, consumer.name, notification),
      send: async (): Promise<WebhookResult> => {
        let signingKey: string;
        try {
          signingKey = (await deps.resolver.readSigningKey(consumer.signingSecret)).value;
        } catch (err: unknown) {
          return {
            status: null,
            ok: false,
            error: `signing key "${consumer.signingSecret}" unavailable (${err instanceof BrokerError ? err.code : 'error'})`,
            durationMs: 0,
          };
        }
        return send({ url: consumer.webhook, webhookId: notification.id, body, signingKey });
      },
    };
  });
  const topic = deps.topic;
  if (topic) {
    const notification = build(EVENT_GRID_TOPIC_CONSUMER);
    pending.push({ ...describe(source, EVENT_GRID_TOPIC_CONSUMER, notification), send: () => topic.publish(notification) });
  }
  return pending;
}

function describe(
  source: { eventId: string; eventTime: string },
  consumer: string,
  notification: NotificationEvent,
): Omit<PendingNotification, 'send'> {
  return {
    consumer,
    sourceEventId: source.eventId,
    type: notification.type,
    subject: notification.subject,
    eventTime: source.eventTime,
    webhookId: notification.id,
  };
}
