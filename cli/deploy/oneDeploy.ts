/**
 * Sends the code package the way Flex Consumption takes it (One Deploy, as azd and Core Tools do):
 * `POST https://<app>.scm.azurewebsites.net/api/publish?RemoteBuild=false` with the zip and an ARM
 * bearer token, answered 202 with the deployment to poll; Kudu's status 4 is success, 3 failure.
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
/** Kudu's DeployStatus values. */
const KUDU_FAILED = 3;
const KUDU_SUCCESS = 4;

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
  let response: PipelineResponse;
  for (;;) {
    const request = createPipelineRequest({
      url,
      method: 'POST',
      body: options.zip,
      headers: createHttpHeaders({ 'Content-Type': 'application/zip' }),
      timeout: 10 * 60_000,
    });
    response = await pipeline.sendRequest(client, request);
    // The app's identity writes the package to its deployment container: a role granted moments
    // ago may take minutes to apply, and until then the publish answers 403.
    if (response.status === 403 && Date.now() + options.pollIntervalMs * 5 < until) {
      options.onWait?.('the app identity cannot write its deployment container yet (its blob role is still being applied); retrying');
      await sleep(options.pollIntervalMs * 5);
      continue;
    }
    break;
  }
  if (response.status !== 202 && response.status !== 200) {
    throw new Error(`publish answered ${response.status}: ${brief(response.bodyAsText)}`);
  }
  const location = response.headers.get('location');
  if (!location) {
    const body = parse(response.bodyAsText);
    return outcome(body) ?? 'latest';
  }
  const pollUrl = new URL(location, url).toString();
  for (;;) {
    if (Date.now() > until) throw new Error(`the deployment did not finish within ${Math.round(options.deadlineMs / 1000)} s (${pollUrl})`);
    await sleep(retryAfterMs(response) ?? options.pollIntervalMs);
    response = await pipeline.sendRequest(client, createPipelineRequest({ url: pollUrl, method: 'GET' }));
    if (response.status === 202) continue;
    if (response.status !== 200) throw new Error(`deployment status answered ${response.status}: ${brief(response.bodyAsText)}`);
    const id = outcome(parse(response.bodyAsText));
    if (id !== undefined) return id;
  }
}

interface KuduDeployment {
  id?: string;
  status?: number;
  status_text?: string;
  complete?: boolean;
}

/** The deployment id when it succeeded, undefined while it runs; throws when it failed. */
function outcome(body: KuduDeployment | undefined): string | undefined {
  if (!body || typeof body.status !== 'number') return undefined;
  if (body.status === KUDU_FAILED) throw new Error(`the deployment failed: ${body.status_text || 'no reason given'}`);
  if (body.status === KUDU_SUCCESS) return body.id ?? 'latest';
  return undefined;
}

function parse(text: string | null | undefined): KuduDeployment | undefined {
  try {
    return text ? (JSON.parse(text) as KuduDeployment) : undefined;
  } catch {
    return undefined;
  }
}

function retryAfterMs(response: PipelineResponse): number | undefined {
  const value = Number(response.headers.get('retry-after'));
  return Number.isFinite(value) && value >= 0 && response.headers.get('retry-after') !== undefined ? value * 1000 : undefined;
}

const brief = (text: string | null | undefined): string => (text ?? '').replace(/\s+/g, ' ').slice(0, 300) || '(no body)';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
