import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { jwtVerify } from 'jose';
import { EMULATOR_ISSUER, tokenSecretBytes } from './managedIdentityEndpoint';
import { readBody } from './requestBody';

/** Audience of Entra tokens for Event Grid data-plane calls (scope `https://eventgrid.azure.net/.default`). */
// Azure SDK: Azure/azure-sdk-for-go sdk/messaging/azeventgrid (token scope https://eventgrid.azure.net/.default)
export const EVENT_GRID_RESOURCE = 'https://eventgrid.azure.net';

/** Path of a custom topic's publish endpoint, as in `https://<topic>.<region>-1.eventgrid.azure.net/api/events`. */
// Learn: "Post to custom topic for Azure Event Grid" (POST https://<topic>.<region>-1.eventgrid.azure.net/api/events?api-version=2018-01-01)
const PUBLISH_PATH = '/api/events';
/** Event Grid's limit on one publish request. */
// Learn: "Post to custom topic for Azure Event Grid" (the array can total up to 1 MB)
const MAX_BODY_BYTES = 1024 * 1024;

/** One accepted publish request. */
export interface TopicPublish {
  /** How the caller authenticated. */
  auth: 'bearer' | 'sas-key';
  contentType: string;
  apiVersion: string;
  /** `aeg-channel-name`, when sent (partner topics). */
  channelName: string | undefined;
  events: unknown[];
}

/** A running local Event Grid custom topic; see {@link startEventGridTopic}. */
export interface EventGridTopic {
  /** Publish endpoint for `EventGridPublisherClient`, `https://127.0.0.1:<port>/api/events`. */
  endpoint: string;
  /** Value an `AzureKeyCredential` must carry (sent as `aeg-sas-key`). */
  accessKey: string;
  /** Every event accepted so far, in arrival order, as parsed from the request bodies. */
  events(): unknown[];
  /** Every accepted publish request, oldest first. */
  publishes(): TopicPublish[];
  /** Forgets the recorded events and publishes. */
  clear(): void;
  /** Closes the server and every open connection. */
  stop(): Promise<void>;
}

/**
 * Starts a local Event Grid custom topic on 127.0.0.1 over HTTPS (the bearer policy of the Azure SDK
 * refuses to send a token over plain HTTP), answering the publish API that `EventGridPublisherClient`
 * calls: `POST {endpoint}?api-version=2018-01-01`.
 *
 * `inputSchema` `CloudEventSchemaV1_0` (default) takes `application/cloudevents-batch+json` (a JSON array)
 * or `application/cloudevents+json` (one event) and checks `specversion` 1.0, `id`, `source`, `type`;
 * `EventGridSchema` takes `application/json` arrays and checks `id`, `subject`, `eventType`, `eventTime`,
 * `dataVersion`, `data`. Accepted publishes answer 200 with an empty body, like the service.
 *
 * Callers authenticate with an HS256 bearer token from the managed-identity emulator (same `tokenSecret`,
 * issuer {@link EMULATOR_ISSUER}, audience {@link EVENT_GRID_RESOURCE}) or with `aeg-sas-key: accessKey`;
 * anything else is a 401.
 */
export async function startEventGridTopic(opts: {
  certPem: string;
  keyPem: string;
  tokenSecret: Uint8Array | string;
  port?: number;
  /** Default: 32 random bytes, base64. */
  accessKey?: string;
  /** Default `CloudEventSchemaV1_0`. */
  inputSchema?: 'CloudEventSchemaV1_0' | 'EventGridSchema';
}): Promise<EventGridTopic> {
  const key = tokenSecretBytes(opts.tokenSecret);
  const accessKey = opts.accessKey ?? randomBytes(32).toString('base64');
  const inputSchema = opts.inputSchema ?? 'CloudEventSchemaV1_0';
  let events: unknown[] = [];
  let publishes: TopicPublish[] = [];

  const server = createServer({ cert: opts.certPem, key: opts.keyPem }, (req, res) => {
    handle(req, res).catch((err: unknown) => sendError(res, 500, 'InternalServerError', `Emulator error: ${String(err)}`));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    // Learn: "Post to custom topic for Azure Event Grid" (incorrect endpoint: 404)
    if (url.pathname.replace(/\/+$/, '') !== PUBLISH_PATH) return sendError(res, 404, 'NotFound', `No resource at ${url.pathname}.`);
    // Unsourced: the 405 for a method other than POST is modelled, not verified.
    if (req.method !== 'POST') return sendError(res, 405, 'MethodNotAllowed', `The method ${req.method ?? ''} is not allowed.`);
    const auth = await authenticate(req);
    // Learn: "Post to custom topic for Azure Event Grid" (invalid access key: 401)
    if (typeof auth !== 'string') return sendError(res, 401, 'Unauthorized', auth.refused);
    const apiVersion = url.searchParams.get('api-version');
    // Unsourced: the 400 for a missing api-version and its message are not verified.
    if (!apiVersion) return sendError(res, 400, 'BadRequest', "The 'api-version' query parameter is missing.");

    const body = await readBody(req, MAX_BODY_BYTES);
    // Learn: "Post to custom topic for Azure Event Grid" (array or event exceeds size limits: 413)
    if (body === undefined) return sendError(res, 413, 'RequestEntityTooLarge', 'The maximum size (1048576) has been exceeded.');
    const contentType = req.headers['content-type'] ?? '';
    const mediaType = (contentType.split(';')[0] ?? '').trim().toLowerCase();
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      // Learn: "Post to custom topic for Azure Event Grid" (event data has incorrect format: 400); message unsourced
      return sendError(res, 400, 'BadRequest', 'The request body is not valid JSON.');
    }
    const checked = checkEvents(inputSchema, mediaType, parsed);
    // Learn: "Post to custom topic for Azure Event Grid" (event data has incorrect format: 400); messages unsourced
    if (typeof checked === 'string') return sendError(res, 400, 'BadRequest', checked);

    events.push(...checked);
    const channel = req.headers['aeg-channel-name'];
    publishes.push({
      auth,
      contentType,
      apiVersion,
      channelName: Array.isArray(channel) ? channel[0] : channel,
      events: checked,
    });
    // Learn: "Post to custom topic for Azure Event Grid" (success: 200)
    res.writeHead(200, { 'Content-Length': '0', 'x-ms-request-id': randomUUID() });
    res.end();
  }

  /** Returns how the caller authenticated, or why it was refused. */
  async function authenticate(req: IncomingMessage): Promise<'bearer' | 'sas-key' | { refused: string }> {
    // Learn: "Post to custom topic for Azure Event Grid" (header aeg-sas-key carries the topic key)
    const sasKey = req.headers['aeg-sas-key'];
    if (typeof sasKey === 'string') {
      const given = Buffer.from(sasKey);
      const expected = Buffer.from(accessKey);
      // Constant time, so the emulator does not teach anyone a timing attack on keys.
      return given.length === expected.length && timingSafeEqual(given, expected)
        ? 'sas-key'
        : { refused: 'The aeg-sas-key is not valid.' };
    }
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const token = match?.[1];
    if (!token) return { refused: 'The request does not carry an aeg-sas-key, aeg-sas-token or a Bearer token.' };
    try {
      await jwtVerify(token, key, {
        algorithms: ['HS256'],
        issuer: EMULATOR_ISSUER,
        audience: [EVENT_GRID_RESOURCE, `${EVENT_GRID_RESOURCE}/`],
      });
      return 'bearer';
    } catch (err) {
      const claim = (err as { claim?: string }).claim;
      if (claim === 'aud') return { refused: `The access token audience is invalid; expected ${EVENT_GRID_RESOURCE}.` };
      return { refused: 'The access token is not valid.' };
    }
  }

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });

  return {
    endpoint: `https://127.0.0.1:${port}${PUBLISH_PATH}`,
    accessKey,
    events: () => [...events],
    publishes: () => publishes.map((p) => ({ ...p, events: [...p.events] })),
    clear() {
      events = [];
      publishes = [];
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Returns the events when the body fits the topic's input schema, else what is wrong. */
function checkEvents(schema: 'CloudEventSchemaV1_0' | 'EventGridSchema', mediaType: string, parsed: unknown): unknown[] | string {
  // Azure SDK: Azure/azure-sdk-for-js sdk/eventgrid/eventgrid (batches sent as application/cloudevents-batch+json); CloudEvents 1.0 required attributes
  if (schema === 'CloudEventSchemaV1_0') {
    let list: unknown[];
    if (mediaType === 'application/cloudevents-batch+json') {
      if (!Array.isArray(parsed)) return 'A cloudevents batch must be a JSON array.';
      list = parsed;
    } else if (mediaType === 'application/cloudevents+json') {
      list = [parsed];
    } else {
      return `Content-Type '${mediaType}' is not supported for CloudEvents; use application/cloudevents-batch+json.`;
    }
    for (const [i, e] of list.entries()) {
      const problem = missingStrings(e, ['id', 'source', 'type', 'specversion']);
      if (problem) return `Event ${i}: ${problem}`;
      if ((e as { specversion: string }).specversion !== '1.0') return `Event ${i}: specversion must be 1.0.`;
    }
    return list;
  }
  // Learn: "Post to custom topic for Azure Event Grid" (EventGridSchema: a JSON array of id, eventType, subject, eventTime, data, dataVersion)
  if (mediaType !== 'application/json') return `Content-Type '${mediaType}' is not supported; use application/json.`;
  if (!Array.isArray(parsed)) return 'The request body must be a JSON array of events.';
  const list: unknown[] = parsed;
  for (const [i, e] of list.entries()) {
    const problem = missingStrings(e, ['id', 'subject', 'eventType', 'eventTime', 'dataVersion']);
    if (problem) return `Event ${i}: ${problem}`;
    if ((e as { data?: unknown }).data === undefined) return `Event ${i}: data is required.`;
  }
  return list;
}

function missingStrings(e: unknown, fields: string[]): string | undefined {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return 'an event must be a JSON object.';
  for (const f of fields) {
    if (typeof (e as Record<string, unknown>)[f] !== 'string') return `${f} is required and must be a string.`;
  }
  return undefined;
}

/** Event Grid's error body: `{"error":{"code","message"}}`. */
// Learn: "Post to custom topic for Azure Event Grid" (error body {"error": {"code", "message", "details"}})
function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent || res.destroyed) return;
  const payload = JSON.stringify({ error: { code, message } });
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(payload)),
    'x-ms-request-id': randomUUID(),
  });
  res.end(payload);
}
