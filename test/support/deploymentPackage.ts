import path from 'node:path';
import type { TokenCredential } from '@azure/identity';
import {
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineFromOptions,
  createPipelineRequest,
  type PipelineResponse,
} from '@azure/core-rest-pipeline';
import { collectPackage, zipPackage } from '../../cli/deploy/codePackage';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * The function app's package exactly as `npm run deploy` builds it from the repository's build
 * (cli/deploy/codePackage.ts); `omit` leaves paths out, e.g. `host.json`, for a broken package.
 */
export function buildFunctionPackage(opts: { omit?: string[] } = {}): Uint8Array {
  const pkg = collectPackage(ROOT);
  return zipPackage({ ...pkg, files: pkg.files.filter((f) => !opts.omit?.includes(f.name)) });
}

/** A request through the proxy (HTTPS_PROXY) with an ARM token, as a deploy process sends it. */
export async function scmRequest(
  credential: TokenCredential,
  method: 'GET' | 'POST',
  url: string,
  body?: Uint8Array,
): Promise<PipelineResponse & { json: any }> {
  const pipeline = createPipelineFromOptions({ retryOptions: { maxRetries: 0 } });
  pipeline.addPolicy(bearerTokenAuthenticationPolicy({ credential, scopes: 'https://management.azure.com/.default' }));
  const request = createPipelineRequest({
    url,
    method,
    headers: createHttpHeaders(body ? { 'Content-Type': 'application/zip' } : {}),
    body: body ? Buffer.from(body) : undefined,
  });
  const response = await pipeline.sendRequest(createDefaultHttpClient(), request);
  return { ...response, json: response.bodyAsText ? JSON.parse(response.bodyAsText) : undefined };
}

/** An anonymous request through the proxy (HTTPS_PROXY), e.g. to `https://<app>.azurewebsites.net`. */
export async function siteRequest(url: string, headers: Record<string, string> = {}): Promise<PipelineResponse> {
  const pipeline = createPipelineFromOptions({ retryOptions: { maxRetries: 0 } });
  return pipeline.sendRequest(
    createDefaultHttpClient(),
    createPipelineRequest({ url, method: 'GET', headers: createHttpHeaders(headers) }),
  );
}

/** One Deploy: publishes `zip` to the app's SCM site and polls the deployment until it ends (Kudu status 3 or 4). */
export async function publishPackage(
  credential: TokenCredential,
  app: string,
  zip: Uint8Array,
): Promise<{ status: number; deployment?: any; polls: number }> {
  const publish = await scmRequest(credential, 'POST', `https://${app}.scm.azurewebsites.net/api/publish?RemoteBuild=false`, zip);
  if (publish.status !== 202) return { status: publish.status, deployment: publish.json, polls: 0 };
  if (typeof publish.json !== 'string' || publish.json === '')
    throw new Error('One Deploy answered 202 without the deployment id as its body');
  const location = `https://${app}.scm.azurewebsites.net/api/deployments/${publish.json}`;
  // Unpacking some 20,000 files and starting the site takes seconds, more on a loaded machine.
  const until = Date.now() + 120_000;
  for (let polls = 1; Date.now() < until; polls++) {
    const poll = await scmRequest(credential, 'GET', location);
    if (poll.status !== 200) throw new Error(`Deployment poll answered ${poll.status}`);
    if (poll.json?.status === 3 || poll.json?.status === 4) return { status: 202, deployment: poll.json, polls };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('The deployment did not complete within 120 s');
}
