import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { readBody } from './requestBody';

/** How the receiver answers; see {@link startWebhookReceiver}. */
export interface WebhookReceiverBehaviour {
  /** Answer `failStatus` to the next N requests, then 2xx. */
  failFirst?: number;
  /** Status of the `failFirst` answers. Default 500. */
  failStatus?: number;
  /** Answer every request 503, as an unavailable consumer does. */
  down?: boolean;
  /** Wait this long before answering. */
  delayMs?: number;
}

/** One request the receiver got, whatever it answered. */
export interface ReceivedWebhook {
  /** Header names lower-cased; repeated headers joined with `, `. */
  headers: Record<string, string>;
  body: string;
  /** Whether `standardwebhooks` verified the signature (and timestamp) with the receiver's secret. */
  verified: boolean;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  event: unknown;
  /** What the receiver answered (0 while the answer is delayed). */
  status: number;
}

/** A running consumer webhook; see {@link startWebhookReceiver}. */
export interface WebhookReceiver {
  /** `http://127.0.0.1:<port>/webhook`. */
  url: string;
  /** Every request so far, oldest first. */
  received(): ReceivedWebhook[];
  /** Events the consumer accepted: requests that verified and were answered 2xx, oldest first. */
  verifiedEvents(): unknown[];
  /** Replaces the behaviour; `failFirst` counts from this call. */
  setBehaviour(b: WebhookReceiverBehaviour): void;
  /** How many requests arrived. */
  attempts(): number;
  /** Closes the server, dropping delayed answers. */
  stop(): Promise<void>;
}

/** A fresh Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/**
 * Starts a consumer's webhook on 127.0.0.1 over HTTP that verifies every request with the
 * `standardwebhooks` library (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and records it.
 *
 * Answers, in this order: `down` → 503; while `failFirst` lasts → `failStatus`; a request that does not
 * verify → 401, as a consumer refuses what it cannot authenticate; otherwise 200. `delayMs` applies first.
 */
export async function startWebhookReceiver(opts: { signingSecret: string } & WebhookReceiverBehaviour): Promise<WebhookReceiver> {
  const verifier = new Webhook(opts.signingSecret);
  let behaviour: WebhookReceiverBehaviour = { ...opts };
  let failuresLeft = opts.failFirst ?? 0;
  const received: ReceivedWebhook[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const server = createServer((req, res) => {
    readBody(req).then(
      (body) => answer(req, res, (body ?? Buffer.alloc(0)).toString('utf8')),
      () => res.destroy(),
    );
  });

  function answer(req: IncomingMessage, res: ServerResponse, body: string): void {
    const headers = flattenHeaders(req);
    let verified: boolean;
    try {
      // jsonParse off: a valid signature over a non-JSON body still counts as verified.
      verifier.verify(body, headers, { jsonParse: false });
      verified = true;
    } catch {
      verified = false;
    }
    const record: ReceivedWebhook = { headers, body, verified, event: parseJson(body), status: 0 };
    received.push(record);

    // Decide now, so the order of answers follows the order of arrival even with delays.
    let status: number;
    if (behaviour.down) status = 503;
    else if (failuresLeft > 0) {
      failuresLeft--;
      status = behaviour.failStatus ?? 500;
    } else status = verified ? 200 : 401;

    const respond = (): void => {
      record.status = status;
      if (res.destroyed) return;
      res.writeHead(status, { 'Content-Length': '0' });
      res.end();
    };
    const delay = behaviour.delayMs ?? 0;
    if (delay <= 0) return respond();
    const timer = setTimeout(() => {
      timers.delete(timer);
      respond();
    }, delay);
    timers.add(timer);
  }

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });

  return {
    url: `http://127.0.0.1:${port}/webhook`,
    received: () => received.map((r) => ({ ...r, headers: { ...r.headers } })),
    verifiedEvents: () => received.filter((r) => r.verified && r.status >= 200 && r.status < 300).map((r) => r.event),
    setBehaviour(b) {
      behaviour = { ...b };
      failuresLeft = b.failFirst ?? 0;
    },
    attempts: () => received.length,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return undefined;
  }
}
