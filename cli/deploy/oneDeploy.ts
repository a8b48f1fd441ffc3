/**
 * Sends the code package the way Flex Consumption takes it (One Deploy, as azd and Core Tools do):
 * `POST https://<app>.scm.azurewebsites.net/api/publish?RemoteBuild=false` with the zip and an ARM
 * bearer token, answered 202 with the deployment id; then `/api/deployments/{id}` is polled until
 * Kudu's status says it ended (4 success; -1, 3, 5, 6 not).
 * Requests go through `@azure/core-rest-pipeline`, which honours HTTPS_PROXY (Node's fetch does not).
 */
import type { TokenCredential } from '@azure/core-auth';
import {
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineFromOptions,
  createPipelineRequest,
  type HttpClient,
  type Pipeline,
  type PipelineResponse,
} from '@azure/core-rest-pipeline';

const ARM_SCOPE = 'https://management.azure.com/.default';
/** Kudu's DeployStatus: 4 is success; these others end a deployment without it. */
const KUDU_SUCCESS = 4;
const KUDU_ENDED: Record<number, string> = {
  [-1]: 'it was cancelled',
  3: 'it failed',
  5: 'another deployment was in progress (conflict)',
  6: 'it only partly succeeded',
};
/** How often a deployment is polled: the service team's recommendation, as azd follows it. */
const POLL_MS = 1_000;

export interface PublishOptions {
  /** `<app>.scm.azurewebsites.net` (the site's Repository host name). */
  readonly scmHost: string;
  readonly zip: Buffer;
  readonly credential: TokenCredential;
  /** How long to wait for the deployment to finish, and for a just-granted blob role to apply. */
  readonly deadlineMs: number;
  readonly pollIntervalMs: number;
  readonly onWait?: (why: string) => void;
}

/** An HTTP client on the SDK's pipeline with an ARM token; used for SCM and the app's own endpoints. */
export function armAuthenticatedClient(credential: TokenCredential | undefined): { pipeline: Pipeline; client: HttpClient } {
  const pipeline = createPipelineFromOptions({});
  if (credential) pipeline.addPolicy(bearerTokenAuthenticationPolicy({ credential, scopes: ARM_SCOPE }));
  return { pipeline, client: createDefaultHttpClient() };
}

/** Publishes and waits for the deployment; resolves with Kudu's deployment id. */
export async function publishPackage(options: PublishOptions): Promise<string> {
  const { pipeline, client } = armAuthenticatedClient(options.credential);
  const until = Date.now() + options.deadlineMs;
  const url = `https://${options.scmHost}/api/publish?RemoteBuild=false`;
  for (;;) {
    const response = await pipeline.sendRequest(
      client,
      createPipelineRequest({
        url,
        method: 'POST',
        body: options.zip,
        headers: createHttpHeaders({ 'Content-Type': 'application/zip', Accept: 'application/json' }),
        timeout: 10 * 60_000,
      }),
    );
    let failure: string;
    if (response.status === 202 || response.status === 200) {
      const id = deploymentIdOf(response);
      const outcome = await waitForDeployment(
        pipeline,
        client,
        `https://${options.scmHost}/api/deployments/${encodeURIComponent(id)}`,
        until,
      );
      if (outcome.ok) return id;
      failure = `the deployment failed: ${outcome.reason}`;
    } else {
      failure = `publish answered ${response.status}: ${brief(response.bodyAsText)}`;
    }
    // The app's identity writes the package to its deployment container: a role granted moments
    // ago may take minutes to apply, and until then that write is refused (a 403 from storage, on
    // the publish or in the deployment's status). Anything else will not change by waiting.
    if (!isBlobRolePending(failure) || Date.now() + options.pollIntervalMs * 5 > until) throw new Error(failure);
    options.onWait?.('the app identity cannot write its deployment container yet (its blob role is still being applied); retrying');
    await sleep(options.pollIntervalMs * 5);
  }
}

/** What storage says when the app's identity may not write the package: its role is not in effect yet. */
const BLOB_ROLE_PENDING =
  /AuthorizationPermissionMismatch|AuthorizationFailure|not authorized to perform this operation|403[^0-9].*(blob|storage)|(blob|storage).*\b403\b/i;

/**
 * The deployment id: One Deploy answers it as the body (a JSON string, as azd reads it); a
 * `Location` to the deployment, where given, names it too.
 */
function deploymentIdOf(response: PipelineResponse): string {
  const location = response.headers.get('location');
  const fromLocation = location ? /\/api\/deployments\/([^/?#]+)/i.exec(location)?.[1] : undefined;
  const body = parse(response.bodyAsText);
  const fromBody = typeof body === 'string' ? body : typeof body === 'object' && body !== null ? (body as KuduDeployment).id : undefined;
  const id = fromBody || fromLocation;
  if (!id) throw new Error(`publish answered ${response.status} without a deployment id: ${brief(response.bodyAsText)}`);
  return decodeURIComponent(id);
}

/** What one poll of a deployment says: still running, ended well, ended badly, or not a deployment answer. */
export type PollVerdict =
  { kind: 'running' } | { kind: 'succeeded' } | { kind: 'failed'; reason: string } | { kind: 'error'; reason: string };

/**
 * Reads one answer of `GET /api/deployments/{id}`. The service answers 200 (or 202) while the
 * deployment runs, so the body's status decides; a 404 after an earlier answer (`seen`) means the
 * finished record was recycled, which azd too counts as done.
 */
export function readDeploymentPoll(httpStatus: number, bodyText: string | null | undefined, seen: boolean): PollVerdict {
  if (httpStatus === 404 && seen) return { kind: 'succeeded' };
  if (httpStatus !== 200 && httpStatus !== 202) return { kind: 'error', reason: `answered ${httpStatus}: ${brief(bodyText)}` };
  const body = parse(bodyText) as KuduDeployment | undefined;
  const status = typeof body?.status === 'number' ? body.status : undefined;
  if (status === KUDU_SUCCESS) return { kind: 'succeeded' };
  const ended = status === undefined ? undefined : KUDU_ENDED[status];
  if (ended) return { kind: 'failed', reason: `${ended}${body?.status_text ? `: ${body.status_text}` : ''}` };
  return { kind: 'running' };
}

/** Whether a failed publish only waits for the app's blob role to apply (then it is sent again). */
export function isBlobRolePending(failure: string): boolean {
  return BLOB_ROLE_PENDING.test(failure);
}

/** Polls the deployment every second (the service's own recommendation) until it ends. */
async function waitForDeployment(
  pipeline: Pipeline,
  client: HttpClient,
  pollUrl: string,
  until: number,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  let seen = false;
  for (;;) {
    if (Date.now() > until) return { ok: false, reason: `it did not finish in time (${pollUrl})` };
    await sleep(POLL_MS);
    const response = await pipeline.sendRequest(
      client,
      createPipelineRequest({ url: pollUrl, method: 'GET', headers: createHttpHeaders({ Accept: 'application/json' }) }),
    );
    const verdict = readDeploymentPoll(response.status, response.bodyAsText, seen);
    seen = true;
    if (verdict.kind === 'succeeded') return { ok: true };
    if (verdict.kind === 'failed') return { ok: false, reason: verdict.reason };
    if (verdict.kind === 'error') throw new Error(`deployment status ${pollUrl} ${verdict.reason}`);
  }
}

interface KuduDeployment {
  id?: string;
  status?: number;
  status_text?: string;
  complete?: boolean;
}

function parse(text: string | null | undefined): unknown {
  try {
    return text ? (JSON.parse(text) as unknown) : undefined;
  } catch {
    return undefined;
  }
}

const brief = (text: string | null | undefined): string => (text ?? '').replace(/\s+/g, ' ').slice(0, 300) || '(no body)';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
