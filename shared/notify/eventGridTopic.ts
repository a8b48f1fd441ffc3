import type { TokenCredential } from '@azure/identity';
import type { EventGridPublisherClient } from '@azure/eventgrid';
import type { NotificationEvent } from './notification';
import type { WebhookResult } from './sendWebhook';

/**
 * Publishes notifications to the Event Grid custom topic of NOTIFY_EVENTGRID_ENDPOINT with
 * `@azure/eventgrid`'s publisher client, authenticated by the function app's identity (the
 * "EventGrid Data Sender" role on the topic). The client is built on first use.
 */
export class EventGridTopicPublisher {
  private client: EventGridPublisherClient<'CloudEvent'> | undefined;

  constructor(
    readonly endpoint: string,
    private readonly credential: TokenCredential,
  ) {}

  /** Publishes one notification; never throws. */
  async publish(event: NotificationEvent): Promise<WebhookResult> {
    const started = performance.now();
    try {
      await this.publisher().send(
        [
          {
            id: event.id,
            source: event.source,
            type: event.type,
            subject: event.subject,
            time: new Date(event.time),
            datacontenttype: event.datacontenttype,
            data: event.data,
          },
        ],
        { abortSignal: AbortSignal.timeout(10_000) },
      );
      return { status: 200, ok: true, error: null, durationMs: performance.now() - started };
    } catch (err: unknown) {
      const status = (err as { statusCode?: unknown } | null)?.statusCode;
      const code = (err as { code?: unknown } | null)?.code;
      return {
        status: typeof status === 'number' ? status : null,
        ok: false,
        error: typeof status === 'number' ? `HTTP ${status}` : typeof code === 'string' ? code : 'publish failed',
        durationMs: performance.now() - started,
      };
    }
  }

  private publisher(): EventGridPublisherClient<'CloudEvent'> {
    if (!this.client) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy load on purpose
      const { EventGridPublisherClient } = require('@azure/eventgrid') as typeof import('@azure/eventgrid');
      this.client = new EventGridPublisherClient(this.endpoint, 'CloudEvent', this.credential, { retryOptions: { maxRetries: 1 } });
    }
    return this.client;
  }
}
