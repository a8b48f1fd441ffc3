/**
 * A small typed Microsoft Graph client for the three calls rotating an application's client secret
 * needs: get an application, add a password, remove a password.
 *
 * Why this rather than `@microsoft/microsoft-graph-client` (the Graph SDK for JavaScript):
 * - Weight: the broker needs three requests; the SDK (or the Kiota-generated `@microsoft/msgraph-sdk`)
 *   brings a fluent request builder for all of Graph and its own middleware stack.
 * - Authentication: the SDK takes an `AuthenticationProvider`, so a `TokenCredential` needs its
 *   adapter; here the same `bearerTokenAuthenticationPolicy` as every Azure SDK client the broker
 *   uses takes the managed identity's credential directly.
 * - One pipeline: `@azure/core-rest-pipeline` is the Azure SDKs' own, already installed with them. It
 *   honours HTTPS_PROXY / NO_PROXY (the emulators are reached through that proxy; Node's fetch and the
 *   Graph SDK's default fetch do not), sets a client request id, logs through `@azure/logger` with
 *   headers sanitised and bodies never logged, and traces like the Key Vault calls.
 * - Retries: Graph's 429 `Retry-After` and 5xx are absorbed with backoff (see graphRetry.ts).
 *
 * Secrets: the addPassword answer carries the new secret text. It is parsed here and handed back on
 * a non-enumerable `secretText` (absent from JSON.stringify, util.inspect and spreads); no response
 * body ever reaches a `GraphError`, whose message is built from Graph's `error.code` and
 * `error.message` only.
 */
import type { TokenCredential } from '@azure/core-auth';
import {
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineFromOptions,
  createPipelineRequest,
  isRestError,
  retryPolicy,
  type HttpClient,
  type Pipeline,
  type PipelineResponse,
} from '@azure/core-rest-pipeline';
import { DEFAULT_GRAPH_RETRY, graphRetryStrategy, retryAfterMs, type GraphRetryOptions, type Idempotence } from './graphRetry';

export const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
export const GRAPH_V1 = 'https://graph.microsoft.com/v1.0';
/** Longest Graph message kept in an error; Graph's are one sentence. */
const MAX_MESSAGE = 300;

export type GraphOperation = 'getApplication' | 'addPassword' | 'removePassword';

/** A password credential as Graph lists it on an application (never with its secret text). */
export interface GraphPasswordCredential {
  keyId: string;
  displayName: string | null;
  /** The first three characters of the secret. */
  hint: string | null;
  startDateTime: string | null;
  endDateTime: string | null;
}

export interface GraphApplication {
  /** Object id. */
  id: string;
  /** Application (client) id. */
  appId: string;
  displayName: string | null;
  passwordCredentials: GraphPasswordCredential[];
}

/** The password addPassword created. `secretText` is non-enumerable: read it, never spread or log the object. */
export interface AddedPassword extends GraphPasswordCredential {
  readonly secretText: string;
}

/** A refused or failed Graph call: Graph's status, code and message, never a response body. */
export class GraphError extends Error {
  override readonly name = 'GraphError';
  constructor(
    readonly operation: GraphOperation,
    /** HTTP status, or 0 when no answer came (connection failure). */
    readonly status: number,
    /** Graph's `error.code` (e.g. `Authorization_RequestDenied`), or the connection error's code. */
    readonly code: string,
    /** Graph's `error.message`, cut to a sentence's length. */
    readonly graphMessage: string,
    /** Graph's `request-id`, for a support case. */
    readonly requestId?: string,
    /** For a 429 or 503 not waited for: when Graph said to come back. */
    readonly retryAfterMs?: number,
  ) {
    super(`Graph ${operation} failed: ${status === 0 ? 'no answer' : `HTTP ${status}`} ${code}: ${graphMessage}`);
  }
}

export interface GraphClientOptions {
  credential: TokenCredential;
  /** `https://graph.microsoft.com/v1.0` unless another cloud's endpoint is given. */
  baseUrl?: string;
  retry?: GraphRetryOptions;
  /** The HTTP client under the pipeline (default: Node's, through HTTPS_PROXY when set). */
  httpClient?: HttpClient;
}

export class GraphClient {
  private readonly pipeline: Pipeline;
  /** addPassword's: retried on 429 only (see graphRetry.ts). */
  private readonly notIdempotentPipeline: Pipeline;
  private readonly http: HttpClient;
  private readonly base: string;

  constructor(options: GraphClientOptions) {
    this.base = (options.baseUrl ?? GRAPH_V1).replace(/\/+$/, '');
    this.http = options.httpClient ?? createDefaultHttpClient();
    const maxRetries = options.retry?.maxRetries ?? DEFAULT_GRAPH_RETRY.maxRetries;
    // Graph correlates on `client-request-id` (the pipeline's default header is x-ms-client-request-id).
    const pipelineOf = (idempotence: Idempotence): Pipeline => {
      const pipeline = createPipelineFromOptions({ telemetryOptions: { clientRequestIdHeaderName: 'client-request-id' } });
      pipeline.removePolicy({ phase: 'Retry' });
      pipeline.addPolicy(retryPolicy([graphRetryStrategy(options.retry, idempotence)], { maxRetries }), { phase: 'Retry' });
      pipeline.addPolicy(bearerTokenAuthenticationPolicy({ credential: options.credential, scopes: GRAPH_SCOPE }));
      return pipeline;
    };
    this.pipeline = pipelineOf('idempotent');
    this.notIdempotentPipeline = pipelineOf('notIdempotent');
  }

  /** `GET /applications/{objectId}` with the properties rotation needs. */
  async getApplication(objectId: string): Promise<GraphApplication> {
    const url = `${this.appUrl(objectId)}?$select=id,appId,displayName,passwordCredentials`;
    const response = await this.send('getApplication', 'GET', url);
    if (response.status !== 200) throw errorOf('getApplication', response);
    const body = parseObject(response.bodyAsText);
    const id = body?.['id'];
    const appId = body?.['appId'];
    if (!body || typeof id !== 'string' || typeof appId !== 'string') throw malformed('getApplication', response);
    const creds = Array.isArray(body['passwordCredentials']) ? (body['passwordCredentials'] as unknown[]) : [];
    return {
      id,
      appId,
      displayName: stringOrNull(body['displayName']),
      passwordCredentials: creds.flatMap((c) => {
        const cred = asCredential(c);
        return cred ? [cred] : [];
      }),
    };
  }

  /** `POST /applications/{objectId}/addPassword`; the answer's secret text is on a non-enumerable `secretText`. */
  async addPassword(
    objectId: string,
    password: { displayName: string; endDateTime: Date | string; startDateTime?: Date | string },
  ): Promise<AddedPassword> {
    const passwordCredential: Record<string, string> = {
      displayName: password.displayName,
      endDateTime: iso(password.endDateTime),
    };
    if (password.startDateTime !== undefined) passwordCredential['startDateTime'] = iso(password.startDateTime);
    const response = await this.send('addPassword', 'POST', `${this.appUrl(objectId)}/addPassword`, { passwordCredential });
    // The body holds the secret: only its fields are read, and nothing of it reaches an error.
    if (response.status !== 200) throw errorOf('addPassword', response);
    const body = parseObject(response.bodyAsText);
    const cred = body ? asCredential(body) : undefined;
    const secretText = body?.['secretText'];
    if (!cred || typeof secretText !== 'string' || secretText.length === 0) throw malformed('addPassword', response);
    Object.defineProperty(cred, 'secretText', { value: secretText, enumerable: false });
    return cred as AddedPassword;
  }

  /** `POST /applications/{objectId}/removePassword` (204). */
  async removePassword(objectId: string, keyId: string): Promise<void> {
    const response = await this.send('removePassword', 'POST', `${this.appUrl(objectId)}/removePassword`, { keyId });
    if (response.status !== 204 && response.status !== 200) throw errorOf('removePassword', response);
  }

  private appUrl(objectId: string): string {
    return `${this.base}/applications/${encodeURIComponent(objectId)}`;
  }

  private async send(operation: GraphOperation, method: 'GET' | 'POST', url: string, body?: unknown): Promise<PipelineResponse> {
    const request = createPipelineRequest({
      url,
      method,
      headers: createHttpHeaders({ Accept: 'application/json', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    try {
      return await (operation === 'addPassword' ? this.notIdempotentPipeline : this.pipeline).sendRequest(this.http, request);
    } catch (err) {
      // A connection failure (after retries) or a token failure: keep its code, never a body it may carry.
      if (isRestError(err)) throw new GraphError(operation, err.statusCode ?? 0, err.code ?? 'RestError', 'The request did not complete.');
      const name = err instanceof Error ? err.name : 'Error';
      throw new GraphError(
        operation,
        0,
        name,
        name === 'CredentialUnavailableError' ? 'No token for Graph.' : 'The request did not complete.',
      );
    }
  }
}

/** Graph's error body `{"error":{"code","message","innerError":{"request-id"}}}` as a GraphError. */
function errorOf(operation: GraphOperation, response: PipelineResponse): GraphError {
  const error = parseObject(response.bodyAsText)?.['error'];
  const e = typeof error === 'object' && error !== null ? (error as Record<string, unknown>) : {};
  const inner = typeof e['innerError'] === 'object' && e['innerError'] !== null ? (e['innerError'] as Record<string, unknown>) : {};
  const code = typeof e['code'] === 'string' && e['code'] ? e['code'] : `HTTP${response.status}`;
  const message = typeof e['message'] === 'string' ? e['message'].slice(0, MAX_MESSAGE) : 'Graph answered without an error body.';
  const requestId = typeof inner['request-id'] === 'string' ? inner['request-id'] : (response.headers.get('request-id') ?? undefined);
  return new GraphError(
    operation,
    response.status,
    code,
    message,
    requestId,
    retryAfterMs(response.status, response.headers.get('retry-after')),
  );
}

function malformed(operation: GraphOperation, response: PipelineResponse): GraphError {
  return new GraphError(
    operation,
    response.status,
    'UnexpectedResponse',
    `Graph answered ${response.status} with a body that is not the expected resource.`,
    response.headers.get('request-id') ?? undefined,
  );
}

function parseObject(text: string | null | undefined): Record<string, unknown> | undefined {
  if (!text) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function asCredential(value: unknown): GraphPasswordCredential | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v['keyId'] !== 'string') return undefined;
  return {
    keyId: v['keyId'],
    displayName: stringOrNull(v['displayName']),
    hint: stringOrNull(v['hint']),
    startDateTime: stringOrNull(v['startDateTime']),
    endDateTime: stringOrNull(v['endDateTime']),
  };
}

function stringOrNull(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

function iso(d: Date | string): string {
  return typeof d === 'string' ? d : d.toISOString();
}
