import {
  ArmError,
  type ArmAnswer,
  type ArmRequest,
  type Caller,
  type Json,
  cloneJson,
  isJson,
  methodNotAllowed,
  objectAt,
  regionName,
  resourceNotFound,
  stringAt,
} from './armCore';
import type { LroManager } from './armLro';
import { EMULATOR_TENANT_ID } from './managedIdentityEndpoint';
import type { ArmStore, StoredResource } from './armStore';
import type { SiteRegistry } from './siteState';

/** What the resource kinds may consult and change besides the resource itself. */
export interface ArmWorld {
  store: ArmStore;
  lro: LroManager;
  sites: SiteRegistry;
  /** The principal id a new system-assigned identity of `resourceId` (of `type`) gets. */
  systemIdentity(resourceId: string, type: string): string;
  /** Called when a site's app settings changed (the site restarts). */
  appSettingsChanged(siteName: string): void;
  /** Called when a user-assigned identity is created: the managed-identity endpoint serves its tokens. */
  userAssignedIdentityCreated?(clientId: string, principalId: string): void;
}

/** Everything a kind needs to build the stored JSON of a PUT. */
export interface BuildContext {
  world: ArmWorld;
  /** Resource id (the casing of the first PUT). */
  id: string;
  name: string;
  /** Resource group name as stored. */
  resourceGroup: string;
  /** The parent resource's id (the resource group's for top-level resources). */
  parentId: string;
  existing: Json | undefined;
  body: Json;
  caller: Caller;
  now: string;
}

/** One resource type the emulator serves. */
export interface ResourceKind {
  /** Canonical type, e.g. `Microsoft.Storage/storageAccounts`. */
  type: string;
  /** Has `location` and `tags` (a tracked resource). */
  tracked: boolean;
  /**
   * How a PUT completes: `none` answers at once (`createStatus` / 200), `location` answers a first
   * create 202 + `Location`, `async` answers 201 (200 on update) + `Azure-AsyncOperation`.
   */
  lro: 'none' | 'location' | 'async';
  /** `async` kinds only: whether updates are asynchronous too. */
  asyncUpdates?: boolean;
  createStatus?: number;
  /** Whether `properties.provisioningState` is reported (`Creating`/`Updating` while an operation runs). */
  provisioningState: boolean;
  /** Checks the request and builds the resource's JSON; throws ArmError to refuse it. */
  build(ctx: BuildContext): Json;
  /** PATCH: the merged JSON (absent: PATCH is not served). */
  patch?(ctx: BuildContext): Json;
  /** Called once the resource is stored. */
  stored?(ctx: BuildContext, body: Json): void;
}

/** A parsed resource path below a resource group. */
export interface ResourcePath {
  sub: string;
  rg: string;
  namespace: string;
  /** `[type, name]` pairs, e.g. `[['storageAccounts','acct'],['tableServices','default'],['tables','t']]`. */
  pairs: Array<[string, string]>;
}

/** `PUT`/`GET`/`PATCH` of one resource of `kind` at `path`. */
export function resourceRoute(world: ArmWorld, kind: ResourceKind, path: ResourcePath, req: ArmRequest): ArmAnswer {
  // Learn: "Resolve errors for resource provider registration" (MissingSubscriptionRegistration); 409 as public Terraform error output shows it
  if (req.method === 'PUT' && world.store.unregisteredProviders.has(path.namespace.toLowerCase())) {
    throw new ArmError(
      409,
      'MissingSubscriptionRegistration',
      `The subscription is not registered to use namespace '${path.namespace}'. See https://aka.ms/rps-not-found for how to register subscriptions.`,
    );
  }
  const group = world.store.requireResourceGroup(path.sub, path.rg);
  const rgName = String(group.body['name']);
  const last = path.pairs[path.pairs.length - 1];
  // Unsourced: modelled from ARM's refusal of a malformed resource id; code and message not verified.
  if (!last) throw new ArmError(400, 'InvalidResourceId', `The resource id '${req.path}' is not valid.`);
  const name = last[1];
  const parentSegments = [
    ...`${group.id}`.split('/').filter((s) => s !== ''),
    'providers',
    path.namespace,
    ...path.pairs.slice(0, -1).flat(),
  ];
  const parentId = path.pairs.length > 1 ? resolveParent(world, parentSegments, path) : group.id;
  const candidateId = `${parentId}${path.pairs.length > 1 ? '' : `/providers/${path.namespace}`}/${last[0]}/${name}`;
  const stored = world.store.get(candidateId);
  const notFound = (): ArmError => resourceNotFound(kind.type, path.pairs.map((p) => p[1]).join('/'), rgName);

  switch (req.method) {
    case 'GET':
      if (!stored) throw notFound();
      return { status: 200, body: cloneJson(stored.body) };
    case 'PUT':
      return put(world, kind, req, {
        id: stored?.id ?? candidateId,
        name: stored ? String(stored.body['name']) : name,
        rgName,
        parentId,
        stored,
      });
    case 'PATCH': {
      if (!kind.patch) throw methodNotAllowed(req);
      if (!stored) throw notFound();
      const ctx = context(world, req, stored.id, String(stored.body['name']), rgName, parentId, stored.body);
      const body = kind.patch(ctx);
      stored.body = body;
      kind.stored?.(ctx, body);
      return { status: 200, body: cloneJson(body) };
    }
    default:
      throw methodNotAllowed(req);
  }
}

function resolveParent(world: ArmWorld, segments: string[], path: ResourcePath): string {
  try {
    return world.store.resolveScope(segments).id;
  } catch (err) {
    // Learn: "Resolve errors for parent resources" (ParentResourceNotFound); the message wording is modelled, not verified
    if (err instanceof ArmError && err.code === 'ResourceNotFound') {
      throw new ArmError(
        404,
        'ParentResourceNotFound',
        `Failed to perform 'write' on resource(s) of type '${[path.namespace, ...path.pairs.map((p) => p[0])].join('/')}', because the parent resource '/${segments.join('/')}' could not be found.`,
      );
    }
    throw err;
  }
}

function context(
  world: ArmWorld,
  req: ArmRequest,
  id: string,
  name: string,
  rg: string,
  parentId: string,
  existing: Json | undefined,
): BuildContext {
  return {
    world,
    id,
    name,
    resourceGroup: rg,
    parentId,
    existing,
    body: req.body ?? {},
    caller: req.caller,
    now: new Date().toISOString(),
  };
}

function put(
  world: ArmWorld,
  kind: ResourceKind,
  req: ArmRequest,
  at: { id: string; name: string; rgName: string; parentId: string; stored: StoredResource | undefined },
): ArmAnswer {
  const existing = at.stored?.body;
  if (kind.tracked) {
    const location = stringAt(req.body, 'location');
    // Learn: "Troubleshoot common Azure deployment errors" (LocationRequired)
    if (!location) throw new ArmError(400, 'LocationRequired', 'The location property is required for this definition.');
    const existingLocation = stringAt(existing, 'location');
    // Learn: "Resolve errors for storage account names" (InvalidResourceLocation, this message; the 409 is unverified)
    if (existingLocation !== undefined && regionName(existingLocation) !== regionName(location)) {
      throw new ArmError(
        409,
        'InvalidResourceLocation',
        `The resource '${at.name}' already exists in location '${regionName(existingLocation)}' in resource group '${at.rgName}'. A resource with the same name cannot be created in location '${regionName(location)}'. Please select a new resource name.`,
      );
    }
  }
  const ctx = context(world, req, at.id, at.name, at.rgName, at.parentId, existing);
  const body = kind.build(ctx);
  const creating = at.stored === undefined;
  const resource: StoredResource = at.stored ?? { id: at.id, type: kind.type, body };
  resource.body = body;
  world.store.put(resource);
  kind.stored?.(ctx, body);

  // Learn: "Track asynchronous Azure operations" (201/202 with a non-terminal provisioningState, then Succeeded)
  const asynchronous = kind.lro === 'async' && (creating || kind.asyncUpdates === true);
  const delayed = (kind.lro === 'location' && creating) || asynchronous;
  if (!delayed) {
    setProvisioningState(kind, body, 'Succeeded');
    return { status: creating ? (kind.createStatus ?? 200) : 200, body: cloneJson(body) };
  }
  setProvisioningState(kind, body, creating ? 'Creating' : 'Updating');
  const start = {
    namespace: kind.type.split('/')[0] ?? '',
    location: stringAt(body, 'location') ?? stringAt(world.store.get(at.parentId)?.body, 'location') ?? 'westeurope',
    apiVersion: req.apiVersion,
    current: () => cloneJson(resource.body),
    complete: () => setProvisioningState(kind, resource.body, 'Succeeded'),
  };
  if (kind.lro === 'location') return { status: 202, headers: world.lro.startLocation(start) };
  return { status: creating ? 201 : 200, body: cloneJson(body), headers: world.lro.startAsync(start) };
}

function setProvisioningState(kind: ResourceKind, body: Json, state: string): void {
  if (!kind.provisioningState) return;
  const props = isJson(body['properties']) ? body['properties'] : (body['properties'] = {});
  props['provisioningState'] = state;
}

// ---------------------------------------------------------------- helpers shared by the kinds

/** `tags` of the request, else the existing ones, else `{}`. */
export function tagsOf(ctx: BuildContext): Json {
  const tags = ctx.body['tags'];
  if (isJson(tags)) return cloneJson(tags);
  return isJson(ctx.existing?.['tags']) ? cloneJson(ctx.existing['tags']) : {};
}

/** The existing `properties` overlaid with the request's (one level deep). */
export function mergedProperties(ctx: BuildContext): Json {
  return { ...cloneJson(objectAt(ctx.existing, 'properties')), ...cloneJson(objectAt(ctx.body, 'properties')) };
}

/** `systemData` as ARM reports it: creation kept, last modification now. */
// REST spec: specification/common-types/resource-management types.json, definition systemData (created*/lastModified*)
export function systemData(ctx: BuildContext): Json {
  const previous = objectAt(ctx.existing, 'systemData');
  return {
    createdBy: stringAt(previous, 'createdBy') ?? ctx.caller.oid,
    createdByType: 'Application',
    createdAt: stringAt(previous, 'createdAt') ?? ctx.now,
    lastModifiedBy: ctx.caller.oid,
    lastModifiedByType: 'Application',
    lastModifiedAt: ctx.now,
  };
}

/**
 * `identity` of a PUT or PATCH: `SystemAssigned` gets a principal id and tenant on first use and
 * keeps them; `None` (or absent on a resource that had none) has none.
 */
// Learn: "How to use managed identities for App Service and Azure Functions" (principalId and tenantId assigned; type None removes it)
export function identityOf(ctx: BuildContext, type: string): Json | undefined {
  const requested = ctx.body['identity'];
  const previous = isJson(ctx.existing?.['identity']) ? ctx.existing['identity'] : undefined;
  if (!isJson(requested)) return previous ? cloneJson(previous) : undefined;
  const identityType = stringAt(requested, 'type') ?? 'None';
  if (identityType.toLowerCase() === 'none') return { type: 'None' };
  const out: Json = { ...cloneJson(requested), type: identityType };
  if (/systemassigned/i.test(identityType)) {
    const keep = previous && /systemassigned/i.test(stringAt(previous, 'type') ?? '') ? stringAt(previous, 'principalId') : undefined;
    out['principalId'] = keep ?? ctx.world.systemIdentity(ctx.id, type);
    out['tenantId'] = EMULATOR_TENANT_ID;
  } else {
    delete out['principalId'];
    delete out['tenantId'];
  }
  // REST spec (ManagedServiceIdentity): each user-assigned identity is answered with its principalId and clientId.
  const userAssigned = objectAt(requested, 'userAssignedIdentities');
  if (/userassigned/i.test(identityType) && Object.keys(userAssigned).length > 0) {
    out['userAssignedIdentities'] = Object.fromEntries(
      Object.keys(userAssigned).map((id) => {
        const found = objectAt(ctx.world.store.get(id)?.body, 'properties');
        return [id, { principalId: found['principalId'] ?? null, clientId: found['clientId'] ?? null }];
      }),
    );
  }
  return out;
}

/** ARM's 409 for a name that must be unique across Azure and is taken by another resource. */
// Learn: "Naming rules and restrictions for Azure resources" (storageAccounts and sites are global in scope)
export function requireGloballyUnique(ctx: BuildContext, type: string, code: string, message: string): void {
  const taken = ctx.world.store
    .ofType(type)
    .some((r) => String(r.body['name']).toLowerCase() === ctx.name.toLowerCase() && r.id.toLowerCase() !== ctx.id.toLowerCase());
  if (taken) throw new ArmError(409, code, message);
}
