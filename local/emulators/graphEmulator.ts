import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { type GraphCaller, GraphTokenVerifier, reachOf } from './graphEmulatorAuth';
import {
  GraphHttpError,
  badRequestBody,
  insufficientPrivileges,
  methodNotAllowed,
  requestIds,
  segmentNotFound,
  sendGraphError,
  serviceFault,
  throttled,
} from './graphEmulatorErrors';
import {
  type AddedPassword,
  type EmulatorApplicationOptions,
  GraphStore,
  type NewPassword,
  type PasswordCredentialView,
  type StoredApplication,
  isGuid,
} from './graphEmulatorStore';
import { tokenSecretBytes } from './managedIdentityEndpoint';
import { readBody } from './requestBody';
import { sendJson } from './sendJson';

export type { EmulatorApplicationOptions, PasswordCredentialView } from './graphEmulatorStore';

/** The host the emulator answers for; the proxy tunnels `graph.microsoft.com:443` to it. */
export const GRAPH_HOST = 'graph.microsoft.com';
const GRAPH_BASE = `https://${GRAPH_HOST}/v1.0`;
/** Unsourced: a request body limit is modelled (the operations here take a few hundred bytes). */
const BODY_LIMIT = 64 * 1024;

/** The operations the emulator serves, as request counts name them. */
export type GraphOperation = 'getApplication' | 'addPassword' | 'removePassword' | 'other';

/**
 * A fault answered instead of the next `count` authenticated requests: `throttle` is Graph's 429
 * `TooManyRequests` with `Retry-After` (default 1 s); `unavailable` is a 5xx (default 503
 * `serviceNotAvailable`), with `Retry-After` only when `retryAfterSeconds` is given.
 */
export type GraphFault =
  | { kind: 'throttle'; count: number; retryAfterSeconds?: number }
  | { kind: 'unavailable'; count: number; status?: 500 | 502 | 503 | 504; retryAfterSeconds?: number };

/** Requests counted by operation and method; `status` counts the answers with that status. */
export interface GraphRequestFilter {
  operation?: GraphOperation;
  method?: string;
  status?: number;
}

/**
 * Emulates the Microsoft Graph v1.0 operations on applications' password credentials behind one
 * HTTPS server on 127.0.0.1 for host `graph.microsoft.com`: `GET /v1.0/applications/{id}` and
 * `/v1.0/applications(appId='{appId}')` (with `$select`), `POST …/addPassword` and `POST …/removePassword`.
 * Accepts only HS256 tokens of the emulated managed-identity endpoint for `https://graph.microsoft.com`;
 * the app roles in the token's `roles` claim decide what the caller may do (see graphEmulatorAuth).
 *
 * Parts: store (graphEmulatorStore), auth (graphEmulatorAuth), errors and Graph's error body
 * (graphEmulatorErrors). Each rule cites its source beside it; docs/azure-fidelity.md explains how.
 */
export class GraphEmulator {
  /** TCP port of the HTTPS server on 127.0.0.1. */
  readonly port: number;
  /** Base URL of the emulated API, `https://graph.microsoft.com/v1.0`. */
  readonly baseUrl = GRAPH_BASE;
  private readonly store = new GraphStore();
  private readonly tokens: GraphTokenVerifier;
  private readonly faults: Array<{ fault: GraphFault; left: number }> = [];
  private readonly counts: Array<{ operation: GraphOperation; method: string; status: number }> = [];
  private injected = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    key: Uint8Array,
    port: number,
  ) {
    this.port = port;
    this.tokens = new GraphTokenVerifier(key);
  }

  /** Starts the emulator with the dev certificate (which must cover `graph.microsoft.com`). */
  static async start(opts: { certPem: string; keyPem: string; tokenSecret: Uint8Array | string; port?: number }): Promise<GraphEmulator> {
    const server = createServer({ cert: opts.certPem, key: opts.keyPem });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });
    const emulator = new GraphEmulator(server, tokenSecretBytes(opts.tokenSecret), port);
    server.on('connection', (socket: Socket) => {
      emulator.sockets.add(socket);
      socket.once('close', () => emulator.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => emulator.onRequest(req, res));
    return emulator;
  }

  // ---------------------------------------------------------------- control API

  /** Creates an application (an app registration) with its owners; answers its object id and appId. */
  createApplication(opts: EmulatorApplicationOptions): { objectId: string; appId: string } {
    return this.store.createApplication(opts);
  }

  /** Makes a service principal (e.g. a managed identity's principal id) an owner of the application. */
  addOwner(objectId: string, principalId: string): void {
    this.store.addOwner(objectId, principalId);
  }

  removeOwner(objectId: string, principalId: string): void {
    this.store.removeOwner(objectId, principalId);
  }

  /**
   * Adds a password as addPassword would, without a request (e.g. the password a demo secret starts
   * with). The answer carries the secret text: keep it out of logs.
   */
  seedPassword(objectId: string, password: NewPassword = {}): AddedPassword {
    return this.store.addPassword(this.store.get(objectId), password);
  }

  /** The application's password credentials as GET answers them (secret text always null). */
  passwordCredentials(objectId: string): PasswordCredentialView[] {
    return this.store.passwords(objectId);
  }

  /** Whether `secretText` is the secret of the application's password `keyId`. */
  secretMatches(objectId: string, keyId: string, secretText: string): boolean {
    return this.store.secretMatches(objectId, keyId, secretText);
  }

  /** Queues a fault for the next authenticated requests (faults queued earlier act first). */
  injectFault(fault: GraphFault): void {
    if (!Number.isInteger(fault.count) || fault.count < 1) throw new Error('fault count must be a positive integer');
    this.faults.push({ fault, left: fault.count });
  }

  /** Drops every queued fault. */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /** How many answers were injected faults since start or {@link resetCounts}. */
  injectedCount(): number {
    return this.injected;
  }

  /** Requests answered since start or {@link resetCounts}, filtered by operation, method and status. */
  requestCount(filter: GraphRequestFilter = {}): number {
    const method = filter.method?.toUpperCase();
    return this.counts.filter(
      (c) =>
        (filter.operation === undefined || c.operation === filter.operation) &&
        (method === undefined || c.method === method) &&
        (filter.status === undefined || c.status === filter.status),
    ).length;
  }

  resetCounts(): void {
    this.counts.length = 0;
    this.injected = 0;
  }

  /** Stops listening and destroys every connection. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.server.closeAllConnections();
    await closed;
  }

  // ---------------------------------------------------------------- HTTP pipeline

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const ids = requestIds(req.headers['client-request-id']);
    const method = (req.method ?? 'GET').toUpperCase();
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const route = parseRoute(q === -1 ? raw : raw.slice(0, q));
    const query = new URLSearchParams(q === -1 ? '' : raw.slice(q + 1));
    res.once('finish', () => this.counts.push({ operation: route.operation, method, status: res.statusCode }));
    this.handle(req, res, ids, method, route, query).catch((err: unknown) => {
      const answer = err instanceof GraphHttpError ? err : serviceFault(500);
      sendGraphError(res, answer, ids);
    });
  }

  private async handle(
    req: IncomingMessage,
    res: ServerResponse,
    ids: Ids,
    method: string,
    route: Route,
    query: URLSearchParams,
  ): Promise<void> {
    const fail = (err: GraphHttpError): void => sendGraphError(res, err, ids);
    const host = (req.headers.host ?? '').replace(/:443$/, '').toLowerCase();
    // The real service has no other host here: DNS would send the request elsewhere. 404 keeps it explicit.
    if (host !== GRAPH_HOST) return fail(new GraphHttpError(404, 'NotFound', `No service is emulated for host '${host}'.`));

    // Learn: "Microsoft Graph error responses and resource types" (401: authentication missing or not valid); codes in graphEmulatorErrors.
    const caller = await this.tokens.verify(req.headers.authorization);
    if (caller instanceof GraphHttpError) return fail(caller);
    // Learn: "Microsoft Graph throttling guidance": limits apply per app and tenant, so faults act once the caller is known.
    const fault = this.takeFault();
    if (fault) return fail(fault);

    if (route.operation === 'other') return fail(segmentNotFound(route.segment));
    // Learn: "Get application", "application: addPassword", "application: removePassword" (HTTP request: GET, POST, POST).
    if (method !== (route.operation === 'getApplication' ? 'GET' : 'POST')) return fail(methodNotAllowed());

    const app = this.authorise(caller, route);
    if (route.operation === 'getApplication') return this.getApplication(res, ids, app, query);
    const body = await readJsonBody(req);
    if (route.operation === 'addPassword') return this.addPassword(res, ids, app, body);
    return this.removePassword(res, ids, app, body);
  }

  /** Checks the caller's app roles and ownership; resolves the application or throws Graph's 403 / 404. */
  private authorise(caller: GraphCaller, route: AppRoute): StoredApplication {
    const reach = reachOf(caller.roles, route.operation === 'getApplication' ? 'read' : 'write');
    // Learn: the operations' permission tables: without one of the listed app roles the call is refused (403, see graphEmulatorErrors).
    if (reach === 'none') throw insufficientPrivileges();
    const app = this.store.resolve(route.key);
    // Learn: "Microsoft Graph permissions reference" (Application.ReadWrite.OwnedBy): only applications the caller owns.
    if (reach === 'owned' && !this.store.isOwner(app, caller.oid)) throw insufficientPrivileges();
    return app;
  }

  private getApplication(res: ServerResponse, ids: Ids, app: StoredApplication, query: URLSearchParams): void {
    const view = this.store.view(app);
    const select = query.get('$select');
    if (!select) {
      sendJson(res, 200, { '@odata.context': `${GRAPH_BASE}/$metadata#applications/$entity`, ...view }, idHeaders(ids));
      return;
    }
    // Learn: "Use query parameters to customize responses" ($select); the 400 wording for an unknown property is modelled on OData's.
    const fields = select.split(',').map((f) => f.trim());
    const picked: Record<string, unknown> = {};
    for (const field of fields) {
      const match = Object.keys(view).find((k) => k.toLowerCase() === field.toLowerCase());
      if (!match) throw badRequestBody(`Could not find a property named '${field}' on type 'microsoft.graph.application'.`);
      picked[match] = view[match];
    }
    const context = `${GRAPH_BASE}/$metadata#applications(${Object.keys(picked).join(',')})/$entity`;
    sendJson(res, 200, { '@odata.context': context, ...picked }, idHeaders(ids));
  }

  private addPassword(res: ServerResponse, ids: Ids, app: StoredApplication, body: Record<string, unknown>): void {
    // Learn: "application: addPassword" (request body): an optional passwordCredential with displayName, startDateTime, endDateTime.
    const given = body['passwordCredential'];
    if (given !== undefined && given !== null && (typeof given !== 'object' || Array.isArray(given))) {
      throw badRequestBody("The property 'passwordCredential' must be an object.");
    }
    const credential = (given ?? {}) as Record<string, unknown>;
    const password: NewPassword = {
      displayName: optionalString(credential, 'displayName'),
      startDateTime: optionalDate(credential, 'startDateTime'),
      endDateTime: optionalDate(credential, 'endDateTime'),
    };
    const added = this.store.addPassword(app, password);
    // Learn: "application: addPassword" (response): 200 OK with the new passwordCredential, secretText included.
    sendJson(res, 200, { '@odata.context': `${GRAPH_BASE}/$metadata#microsoft.graph.passwordCredential`, ...added }, idHeaders(ids));
  }

  private removePassword(res: ServerResponse, ids: Ids, app: StoredApplication, body: Record<string, unknown>): void {
    // Learn: "application: removePassword" (request body): keyId, a Guid, required.
    const keyId = body['keyId'];
    if (typeof keyId !== 'string' || !isGuid(keyId)) throw badRequestBody("The property 'keyId' is required and must be a Guid.");
    this.store.removePassword(app, keyId);
    // Learn: "application: removePassword" (response): 204 No Content.
    if (res.headersSent || res.destroyed) return;
    res.writeHead(204, idHeaders(ids));
    res.end();
  }

  private takeFault(): GraphHttpError | undefined {
    const head = this.faults[0];
    if (!head) return undefined;
    head.left--;
    if (head.left <= 0) this.faults.shift();
    this.injected++;
    const f = head.fault;
    if (f.kind === 'throttle') return throttled(f.retryAfterSeconds ?? 1);
    return serviceFault(f.status ?? 503, f.retryAfterSeconds);
  }
}

type Ids = { requestId: string; clientRequestId: string };

type AppRoute = { operation: 'getApplication' | 'addPassword' | 'removePassword'; key: { id: string } | { appId: string } };
type Route = AppRoute | { operation: 'other'; segment: string };

/**
 * Learn: "Get application", "application: addPassword", "application: removePassword" (HTTP request):
 * `/applications/{id}` and the alternate key `/applications(appId='{appId}')`, each with `/addPassword`
 * or `/removePassword`. Unsourced: segment names matched case-insensitively.
 */
const APP_PATH_RE = /^\/v1\.0\/applications(?:\/([^/()']+)|\(appId='([^']+)'\))(?:\/(addPassword|removePassword))?$/i;

function parseRoute(rawPath: string): Route {
  let path: string;
  try {
    path = decodeURIComponent(rawPath).replace(/\/+$/, '');
  } catch {
    return { operation: 'other', segment: rawPath };
  }
  const m = APP_PATH_RE.exec(path);
  if (!m) {
    const segments = path.split('/').filter(Boolean);
    return { operation: 'other', segment: segments[segments[0] === 'v1.0' ? 1 : 0] ?? '' };
  }
  const key = m[1] !== undefined ? { id: m[1] } : { appId: m[2] ?? '' };
  const action = m[3]?.toLowerCase();
  return {
    operation: action === 'addpassword' ? 'addPassword' : action === 'removepassword' ? 'removePassword' : 'getApplication',
    key,
  };
}

function idHeaders(ids: Ids): Record<string, string> {
  return { 'request-id': ids.requestId, 'client-request-id': ids.clientRequestId };
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const raw = await readBody(req, BODY_LIMIT);
  // Unsourced: the 413 code and message are modelled.
  if (raw === undefined) throw new GraphHttpError(413, 'Request_EntityTooLarge', 'The request body is too large.');
  if (raw.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw badRequestBody(
      'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.',
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw badRequestBody('The request body must be a JSON object.');
  return parsed as Record<string, unknown>;
}

function optionalString(obj: Record<string, unknown>, name: string): string | undefined {
  const v = obj[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badRequestBody(`The property '${name}' must be a string.`);
  return v;
}

function optionalDate(obj: Record<string, unknown>, name: string): string | undefined {
  const v = optionalString(obj, name);
  if (v !== undefined && Number.isNaN(Date.parse(v))) throw badRequestBody(`The property '${name}' must be an ISO 8601 date and time.`);
  return v;
}
