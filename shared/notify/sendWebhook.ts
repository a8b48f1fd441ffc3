import { Webhook } from 'standardwebhooks';

/** How long a consumer's webhook may take to answer. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** The structured-mode content type of the CloudEvents HTTP binding. */
export const CLOUDEVENTS_CONTENT_TYPE = 'application/cloudevents+json; charset=utf-8';

export interface WebhookResult {
  /** HTTP status, or null when no answer came (refused, reset, timed out). */
  readonly status: number | null;
  readonly ok: boolean;
  /** A short, safe reason for a failure: never a body. */
  readonly error: string | null;
  readonly durationMs: number;
}

/**
 * POSTs one CloudEvent to a consumer, signed per Standard Webhooks (`webhook-id`,
 * `webhook-timestamp`, `webhook-signature`) with the consumer's `whsec_` key. Never throws.
 */
export async function sendWebhook(request: {
  url: string;
  webhookId: string;
  body: string;
  signingKey: string;
  now?: Date;
  timeoutMs?: number;
}): Promise<WebhookResult> {
  const started = performance.now();
  const at = request.now ?? new Date();
  let signature: string;
  try {
    signature = new Webhook(request.signingKey).sign(request.webhookId, at, request.body);
  } catch {
    return { status: null, ok: false, error: 'signing key is not a valid whsec_ key', durationMs: performance.now() - started };
  }
  try {
    const response = await fetch(request.url, {
      method: 'POST',
      headers: {
        'content-type': CLOUDEVENTS_CONTENT_TYPE,
        'webhook-id': request.webhookId,
        'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
        'webhook-signature': signature,
      },
      body: request.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(request.timeoutMs ?? WEBHOOK_TIMEOUT_MS),
    });
    // Only the status counts. The body is cancelled, never read, so a consumer that answers with a
    // large or endless body costs nothing (undici drops the connection if the body was still arriving).
    await response.body?.cancel().catch(() => undefined);
    const ok = response.status >= 200 && response.status < 300;
    return { status: response.status, ok, error: ok ? null : `HTTP ${response.status}`, durationMs: performance.now() - started };
  } catch (err: unknown) {
    // Read by property: a DOMException (TimeoutError) need not be an instance of this realm's Error.
    const name = (err as { name?: unknown } | null)?.name;
    const code = (err as { cause?: { code?: unknown } } | null)?.cause?.code;
    const error =
      name === 'TimeoutError'
        ? `no answer within ${request.timeoutMs ?? WEBHOOK_TIMEOUT_MS} ms`
        : typeof code === 'string'
          ? code
          : 'request failed';
    return { status: null, ok: false, error, durationMs: performance.now() - started };
  }
}
