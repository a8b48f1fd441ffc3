import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ArmError, type Caller, isAncestorOrSelf, objectAt, readArmBody, sendArmError, stringAt } from './armCore';
import { BLOB_CONTAINER_TYPE, STORAGE_ACCOUNT_TYPE } from './armKinds';
import type { ArmStore, StoredResource } from './armStore';
import { SITE_TYPE } from './armWeb';
import { sendJson } from './sendJson';
import { PackageError, preparePackage } from './sitePackage';
import type { SiteRuntime } from './siteRuntime';
import type { SiteRegistry } from './siteState';

// Learn: "Azure built-in roles" (Storage Blob Data Owner b7e6dc6d-…, Storage Blob Data Contributor ba92f5b4-…)
/** Built-in role `Storage Blob Data Owner`. */
export const STORAGE_BLOB_DATA_OWNER = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b';
/** Built-in role `Storage Blob Data Contributor`. */
export const STORAGE_BLOB_DATA_CONTRIBUTOR = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe';

/** Kudu's DeployStatus values. */
// Azure SDK: Azure/azure-dev cli/azd/pkg/azsdk/funcapp_host_client.go (PublishStatus: -1 cancelled … 3 failed, 4 success, 5 conflict, 6 partial)
const STATUS = { pending: 0, building: 1, deploying: 2, failed: 3, success: 4 } as const;
/** One Deploy takes packages of up to this size. */
// Unsourced: the 1 GiB package limit is a modelling choice, not a documented One Deploy limit.
const MAX_PACKAGE_BYTES = 1024 * 1024 * 1024;

interface Deployment {
  id: string;
  site: string;
  status: number;
  statusText: string;
  receivedTime: string;
  startTime: string;
  endTime: string | undefined;
  /** Polls still answered 202 whatever the progress. */
  pendingPolls: number;
  url: string;
}

export interface ScmOptions {
  store: ArmStore;
  sites: SiteRegistry;
  runtime: SiteRuntime;
  authenticate(authorization: string | undefined): Promise<Caller>;
  /** The repository's compiled `dist/local`, copied into each package so the site can run it. */
  distLocalDir: string | undefined;
  /** Environment of the indexing process (PATH). */
  indexEnv(): Record<string, string>;
  pendingPolls(): number;
}

/**
 * `https://<app>.scm.azurewebsites.net`: One Deploy (`POST /api/publish` with a zip, ARM bearer
 * token) and its status (`GET /api/deployments/{id|latest}`), as a Flex Consumption app's Kudu
 * answers them. A publish whose site identity cannot write the deployment container (no Storage
 * Blob Data Owner / Contributor at or above it) is refused with 403, as blob storage would refuse
 * the upload.
 */
export class ScmHost {
  private readonly deployments = new Map<string, Deployment>();
  private readonly latest = new Map<string, string>();

  constructor(private readonly opts: ScmOptions) {}

  async handle(siteName: string, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    try {
      await this.opts.authenticate(req.headers.authorization);
      const site = this.opts.store.ofType(SITE_TYPE).find((s) => String(s.body['name']).toLowerCase() === siteName.toLowerCase());
      // Unsourced: the SCM site's 404 for an unknown app is modelled; code and message not verified.
      if (!site) throw new ArmError(404, 'NotFound', `The site '${siteName}' does not exist.`);
      const lower = path.toLowerCase();
      if (lower === '/api/publish') {
        // Azure SDK: Azure/azure-dev cli/azd/pkg/azsdk/funcapp_host_client.go (One Deploy is POST /api/publish); the 405 for other methods is unsourced
        if (method !== 'POST') throw new ArmError(405, 'MethodNotAllowed', 'One Deploy is a POST.');
        return await this.publish(site, req, res);
      }
      const match = /^\/api\/deployments\/([^/]+)$/.exec(lower);
      if (match?.[1]) {
        if (method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', 'Deployments are read with GET.');
        const id = match[1] === 'latest' ? this.latest.get(siteName.toLowerCase()) : match[1];
        const deployment = id === undefined ? undefined : this.deployments.get(id);
        // Azure SDK: Azure/azure-dev cli/azd/pkg/azsdk/funcapp_host_client.go (a deployment may answer 404 before it appears and after the worker recycles)
        if (!deployment || deployment.site !== siteName.toLowerCase())
          throw new ArmError(404, 'NotFound', `Deployment '${match[1]}' not found.`);
        const inProgress = deployment.pendingPolls > 0 || deployment.endTime === undefined;
        if (deployment.pendingPolls > 0) deployment.pendingPolls--;
        // Azure SDK: Azure/azure-dev cli/azd/pkg/azsdk/funcapp_host_client.go ("Server always returns status code of OK-200 whether ... in-progress or complete")
        // 200 whether it runs or has ended, as the service answers: the body's status tells.
        return sendJson(res, 200, deploymentJson(deployment, inProgress));
      }
      // Unsourced: the emulator's own 404 for SCM paths it does not serve; not an Azure rule.
      throw new ArmError(404, 'NotFound', `The SCM site does not serve ${method} ${path}.`);
    } catch (err) {
      sendArmError(res, method, err);
    }
  }

  private async publish(site: StoredResource, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]
      ?.trim()
      .toLowerCase();
    // Azure SDK: Azure/azure-dev cli/azd/pkg/azsdk/funcapp_host_client.go (sends Content-Type application/zip); the 415 refusal of other types is unsourced
    if (type !== 'application/zip' && type !== 'application/octet-stream') {
      throw new ArmError(415, 'UnsupportedMediaType', `One Deploy takes a zip (Content-Type: application/zip), not '${type ?? ''}'.`);
    }
    const zip = await readArmBody(req, MAX_PACKAGE_BYTES);
    this.checkDeploymentStorage(site);
    const name = String(site.body['name']);
    const state = this.opts.sites.ensure(name);
    state.publishes++;
    const id = randomUUID().replace(/-/g, '');
    const now = new Date().toISOString();
    const url = `https://${name.toLowerCase()}.scm.azurewebsites.net/api/deployments/${id}`;
    const deployment: Deployment = {
      id,
      site: name.toLowerCase(),
      status: STATUS.building,
      statusText: '',
      receivedTime: now,
      startTime: now,
      endTime: undefined,
      pendingPolls: Math.max(1, this.opts.pendingPolls()),
      url,
    };
    this.deployments.set(id, deployment);
    this.latest.set(name.toLowerCase(), id);
    // Azure SDK: Azure/azure-dev cli/azd/pkg/azsdk/funcapp_host_client.go (202 Accepted; "the response body is the deployment id and nothing else")
    // The body is the deployment id and nothing else (a JSON string), as azd reads it.
    sendJson(res, 202, id);

    try {
      const deployed = await preparePackage(zip, {
        siteName: name,
        deploymentId: id,
        distLocalDir: this.opts.distLocalDir,
        env: this.opts.indexEnv(),
      });
      if (state.deployed) this.opts.runtime.retire(state.deployed.dir);
      state.deployed = deployed;
      deployment.status = STATUS.success;
      this.opts.runtime.restart(state);
    } catch (err) {
      deployment.status = STATUS.failed;
      deployment.statusText = err instanceof PackageError ? err.message : `Deployment failed: ${(err as Error).message}`;
    }
    deployment.endTime = new Date().toISOString();
  }

  /** The identity-based deployment storage of a Flex Consumption app must be writable by the site's identity. */
  // Unsourced: the required blob data role is modelled from the Flex Consumption quickstart templates, not a documented check.
  private checkDeploymentStorage(site: StoredResource): void {
    const props = objectAt(site.body, 'properties');
    const storage = objectAt(objectAt(objectAt(props, 'functionAppConfig'), 'deployment'), 'storage');
    const value = stringAt(storage, 'value');
    if (!value) return;
    const authentication = objectAt(storage, 'authentication');
    const authType = (stringAt(authentication, 'type') ?? 'SystemAssignedIdentity').toLowerCase();
    if (authType !== 'systemassignedidentity' && authType !== 'userassignedidentity') return;
    let account: string;
    let container: string;
    try {
      const url = new URL(value);
      account = /^([a-z0-9]+)\.blob\.core\.windows\.net$/i.exec(url.hostname)?.[1] ?? '';
      container = url.pathname.split('/').filter((s) => s !== '')[0] ?? '';
    } catch {
      account = '';
      container = '';
    }
    const accountResource = this.opts.store
      .ofType(STORAGE_ACCOUNT_TYPE)
      .find((a) => String(a.body['name']).toLowerCase() === account.toLowerCase());
    // Unsourced: codes StorageAccountNotFound / ContainerNotFound are storage error codes; where One Deploy reports them is not verified.
    if (!account || !container || !accountResource) {
      throw new ArmError(
        404,
        'StorageAccountNotFound',
        `The deployment storage '${value}' is not a container of an existing storage account.`,
      );
    }
    const containerId = `${accountResource.id}/blobServices/default/containers/${container}`;
    const containerResource = this.opts.store.get(containerId);
    if (!containerResource || containerResource.type !== BLOB_CONTAINER_TYPE) {
      throw new ArmError(404, 'ContainerNotFound', `The specified container does not exist: ${value}`);
    }
    const principalId =
      authType === 'userassignedidentity'
        ? stringAt(
            objectAt(this.opts.store.get(stringAt(authentication, 'userAssignedIdentityResourceId') ?? '')?.body, 'properties'),
            'principalId',
          )
        : stringAt(objectAt(site.body, 'identity'), 'principalId');
    const allowed =
      principalId !== undefined &&
      this.opts.store.assignments.some(
        (a) =>
          a.principalId.toLowerCase() === principalId.toLowerCase() &&
          (a.roleDefinitionGuid === STORAGE_BLOB_DATA_OWNER || a.roleDefinitionGuid === STORAGE_BLOB_DATA_CONTRIBUTOR) &&
          isAncestorOrSelf(a.scope, containerId),
      );
    // Unsourced: 403 AuthorizationPermissionMismatch modelled from Blob Storage's answer to a data write without a data role.
    if (!allowed) {
      throw new ArmError(
        403,
        'AuthorizationPermissionMismatch',
        `This request is not authorized to perform this operation using this permission. The site's identity '${principalId ?? '(none)'}' cannot write the deployment container ${value}: it needs Storage Blob Data Owner or Storage Blob Data Contributor on the storage account '${account}' or above.`,
      );
    }
  }
}

// Azure SDK: Azure/azure-dev cli/azd/pkg/azsdk/funcapp_host_client.go (PublishResponse: status, status_text, complete, active, url, log_url, site_name, …)
function deploymentJson(d: Deployment, inProgress: boolean): Record<string, unknown> {
  const done = !inProgress;
  return {
    id: d.id,
    status: done ? d.status : STATUS.building,
    status_text: done ? d.statusText : 'Building and Deploying',
    author_email: 'N/A',
    author: 'N/A',
    deployer: 'OneDeploy',
    message: 'OneDeploy',
    progress: '',
    received_time: d.receivedTime,
    start_time: d.startTime,
    end_time: done ? (d.endTime ?? null) : null,
    last_success_end_time: done && d.status === STATUS.success ? (d.endTime ?? null) : null,
    complete: done,
    active: done && d.status === STATUS.success,
    is_temp: false,
    is_readonly: true,
    url: d.url,
    log_url: `${d.url}/log`,
    site_name: d.site,
  };
}
