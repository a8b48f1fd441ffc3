/**
 * The demo consumer `npm start` runs: a webhook on 127.0.0.1 subscribed (through `CONSUMERS`) to the
 * demo secrets' events (`demo-api-key`, and `demo-app-secret`'s rotations and retirements) and to
 * the health check's changes of state. It verifies each notification's
 * Standard Webhooks signature with the `standardwebhooks` package, as docs/rotation.md, "Verifying a
 * notification (consumer side)" shows, and prints it as one line; a notification that does not
 * verify is answered 401 and printed as rejected. Local only.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { readBody } from './emulators/requestBody';

/** The consumer's name in `CONSUMERS`, the prefix of every line it prints. */
export const DEMO_CONSUMER_NAME = 'demo-consumer';

/** Notifications are small CloudEvents; anything larger is refused unread. */
const MAX_BODY_BYTES = 1_000_000;
/** How many `webhook-id`s the consumer remembers to recognise a redelivery. */
const REMEMBERED_IDS = 1000;

export interface DemoConsumer {
  /** `http://127.0.0.1:<port>/hooks/secret-broker`. */
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts the demo consumer; `write` gets each line (without its newline). */
export async function startDemoConsumer(opts: { signingSecret: string; write: (line: string) => void }): Promise<DemoConsumer> {
  const webhook = new Webhook(opts.signingSecret);
  const seen = new Set<string>();
  const server = createServer((req, res) => {
    readBody(req, MAX_BODY_BYTES).then(
      (body) => {
        const { status, line } =
          body === undefined
            ? { status: 413, line: `demo consumer: rejected a body over ${MAX_BODY_BYTES} bytes (answered 413)` }
            : receive(webhook, req, body.toString('utf8'), seen);
        opts.write(line);
        res.writeHead(status, { 'Content-Length': '0' });
        res.end();
      },
      () => res.destroy(),
    );
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
  return {
    url: `http://127.0.0.1:${port}/hooks/secret-broker`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Verifies one request and says what to answer and print. */
function receive(webhook: Webhook, req: IncomingMessage, body: string, seen: Set<string>): { status: number; line: string } {
  if ((req.method ?? '').toUpperCase() !== 'POST')
    return { status: 405, line: `demo consumer: rejected a ${req.method ?? '?'} request (405)` };
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  let event: unknown;
  try {
    event = webhook.verify(body, headers);
  } catch (err: unknown) {
    // The library's messages name what is wrong (no matching signature, missing headers, old timestamp).
    const reason = err instanceof Error ? err.message : 'not verified';
    return { status: 401, line: `demo consumer: rejected a notification: ${oneLine(reason)} (answered 401)` };
  }
  // Standard Webhooks: `webhook-id` is the same on every delivery of one message, so a consumer
  // handles each id once (docs/rotation.md, "Verifying a notification (consumer side)").
  const id = headers['webhook-id'] ?? '';
  if (seen.has(id)) {
    return {
      status: 204,
      line: `demo consumer: ${describeNotification(event)} (signature verified; a redelivery of ${oneLine(id)}, already handled)`,
    };
  }
  seen.add(id);
  if (seen.size > REMEMBERED_IDS) seen.delete(seen.values().next().value ?? '');
  return { status: 204, line: `demo consumer: ${describeNotification(event)} (signature verified)` };
}

/**
 * One notification in a few words: its type and subject, and the secret's version (with the
 * rotation's id when the broker rotated it: `secretbroker.secret.rotated` / `.retired`, see
 * docs/rotation.md) or the health check's failing checks. Never a value: notifications carry none.
 */
export function describeNotification(event: unknown): string {
  const e = (typeof event === 'object' && event !== null ? event : {}) as { type?: unknown; subject?: unknown; data?: unknown };
  const data = (typeof e.data === 'object' && e.data !== null ? e.data : {}) as {
    version?: unknown;
    oldVersion?: unknown;
    rotationId?: unknown;
    sourceEventId?: unknown;
    sourceEventType?: unknown;
    status?: unknown;
    checks?: unknown;
  };
  const head = `${text(e.type)} ${text(e.subject)}`;
  if (typeof e.type === 'string' && e.type.startsWith('secretbroker.health.')) {
    const checks = Array.isArray(data.checks) ? (data.checks as { check?: unknown; target?: unknown; cause?: unknown }[]) : [];
    // A secret's name says which one; longer targets (the firewall's rule counts) would not fit the line.
    const failing = checks.map(
      (c) =>
        `${text(c.check)}${typeof c.target === 'string' && /^[0-9A-Za-z/-]{1,128}$/.test(c.target) ? ` ${c.target}` : ''} ${text(c.cause)}`,
    );
    return `${head} status ${text(data.status)}${failing.length > 0 ? `: ${failing.join(', ')}` : ''}`;
  }
  const version = typeof data.version === 'string' ? data.version : data.oldVersion;
  // A rotation's notifications name it as their source event (`sourceEventType` SecretBroker.Rotation).
  const rotationId = data.rotationId ?? (data.sourceEventType === 'SecretBroker.Rotation' ? data.sourceEventId : undefined);
  const rotation = typeof rotationId === 'string' && /^[\w.-]{1,100}$/.test(rotationId) ? ` (rotation ${rotationId})` : '';
  return `${head} version ${text(version)}${rotation}`;
}

function text(value: unknown): string {
  return typeof value === 'string' && value.length > 0 ? oneLine(value) : '?';
}

function oneLine(value: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is replaced
  return value.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 300);
}
