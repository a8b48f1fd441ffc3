import {
  ArmError,
  type ArmAnswer,
  type ArmRequest,
  type Json,
  cloneJson,
  isJson,
  methodNotAllowed,
  objectAt,
  resourceNotFound,
  stringAt,
} from './armCore';
import { roleAssignmentRoute } from './armAuthorization';
import { customTopicKind, eventSubscriptionKind, SYSTEM_TOPIC_TYPE, systemTopicKind } from './armEventGrid';
import { blobContainerKind, componentKind, storageAccountKind, tableKind, workspaceKind } from './armKinds';
import { type ArmWorld, type ResourceKind, type ResourcePath, resourceRoute } from './armResources';
import { requireSubscription, type StoredResource } from './armStore';
import { accessPolicyRoute, vaultJson } from './armVaults';
import { userAssignedIdentityKind } from './armManagedIdentity';
import { serverFarmKind, SITE_TYPE, siteActionRoute, siteKind } from './armWeb';

/** The operations the emulator tells apart, for {@link ArmRequestCountFilter}. */
export type ArmOperation =
  | 'vaults.get'
  | 'vaults.updateAccessPolicy'
  | 'roleAssignments.list'
  | 'roleAssignments.create'
  | 'roleAssignments.get'
  | 'roleAssignments.delete'
  | 'resource.read'
  | 'resource.write'
  | 'resource.action'
  | 'lro.poll'
  | 'scm.publish'
  | 'scm.deployment'
  | 'site'
  | 'unknown';

/** Resource kinds by `namespace/type[/childType…]`, lower case. */
const KINDS: Record<string, ResourceKind> = {
  'microsoft.storage/storageaccounts': storageAccountKind,
  'microsoft.storage/storageaccounts/blobservices/containers': blobContainerKind,
  'microsoft.storage/storageaccounts/tableservices/tables': tableKind,
  'microsoft.operationalinsights/workspaces': workspaceKind,
  'microsoft.insights/components': componentKind,
  'microsoft.web/serverfarms': serverFarmKind,
  'microsoft.web/sites': siteKind,
  'microsoft.managedidentity/userassignedidentities': userAssignedIdentityKind,
  'microsoft.eventgrid/systemtopics': systemTopicKind,
  'microsoft.eventgrid/topics': customTopicKind,
  'microsoft.eventgrid/systemtopics/eventsubscriptions': eventSubscriptionKind,
};

/** Storage children live under a `{service}/default` singleton. */
const SINGLETON_TYPES = new Set(['blobservices', 'tableservices']);

/** Where a request goes, from its path alone (also used to count requests). */
export interface RouteInfo {
  operation: ArmOperation;
  /** Lower-case vault name the request is about, if any. */
  vault: string | undefined;
}

export function classify(method: string, segments: string[]): RouteInfo {
  const lower = segments.map((s) => s.toLowerCase());
  const n = lower.length;
  const ra = roleAssignmentIndex(lower);
  if (ra !== -1) {
    const scope = lower.slice(0, ra);
    const vault = scope.length === 8 && scope[6] === 'vaults' ? scope[7] : undefined;
    if (n === ra + 3) return { operation: 'roleAssignments.list', vault };
    return {
      operation: method === 'PUT' ? 'roleAssignments.create' : method === 'DELETE' ? 'roleAssignments.delete' : 'roleAssignments.get',
      vault,
    };
  }
  if (
    n === 8 &&
    lower[0] === 'subscriptions' &&
    lower[2] === 'resourcegroups' &&
    lower[5] === 'microsoft.keyvault' &&
    lower[6] === 'vaults'
  ) {
    return { operation: 'vaults.get', vault: lower[7] };
  }
  if (n === 10 && lower[5] === 'microsoft.keyvault' && lower[8] === 'accesspolicies')
    return { operation: 'vaults.updateAccessPolicy', vault: lower[7] };
  if (n >= 2 && /^operation(results|statuses)$/.test(lower[n - 2] ?? '')) return { operation: 'lro.poll', vault: undefined };
  if (lower[0] !== 'subscriptions') return { operation: 'unknown', vault: undefined };
  if (method === 'GET' || method === 'HEAD') return { operation: 'resource.read', vault: undefined };
  return { operation: method === 'POST' ? 'resource.action' : 'resource.write', vault: undefined };
}

/** Index of `providers` in `…/providers/Microsoft.Authorization/roleAssignments[/{name}]`, else -1. */
function roleAssignmentIndex(lower: string[]): number {
  for (const i of [lower.length - 3, lower.length - 4]) {
    if (i >= 0 && lower[i] === 'providers' && lower[i + 1] === 'microsoft.authorization' && lower[i + 2] === 'roleassignments') return i;
  }
  return -1;
}

/** Answers one authenticated ARM request. */
export function routeArm(world: ArmWorld, req: ArmRequest, pageSize: number): ArmAnswer {
  const seg = req.segments;
  const lower = seg.map((s) => s.toLowerCase());
  const n = seg.length;

  const ra = roleAssignmentIndex(lower);
  if (ra !== -1) return roleAssignmentRoute(world.store, req, seg.slice(0, ra), n === ra + 4 ? seg[n - 1] : undefined, pageSize);
  if (n > 4 && lower.slice(-4).join('/') === 'providers/microsoft.resources/tags/default') return tagsRoute(world, req, seg.slice(0, -4));

  if (n >= 2 && /^operation(results|statuses)$/.test(lower[n - 2] ?? '')) {
    if (req.method !== 'GET') throw methodNotAllowed(req);
    return world.lro.poll(seg[n - 1] ?? '');
  }
  if (lower[0] !== 'subscriptions' || seg[1] === undefined) throw unknownPath(req);
  const sub = seg[1];

  // Unsourced: list shape {value} as ARM lists answer; paging of system topics is not modelled.
  // Listings of system topics, per subscription or resource group.
  if (
    lower.slice(-3).join('/') === 'providers/microsoft.eventgrid/systemtopics' &&
    (n === 5 || (n === 7 && lower[2] === 'resourcegroups'))
  ) {
    if (req.method !== 'GET') throw methodNotAllowed(req);
    requireSubscription(sub);
    const group = n === 7 ? world.store.requireResourceGroup(sub, seg[3] ?? '') : undefined;
    const value = world.store
      .ofType(SYSTEM_TOPIC_TYPE)
      .filter((t) => !group || t.id.toLowerCase().startsWith(`${group.id.toLowerCase()}/`))
      .map((t) => cloneJson(t.body));
    return { status: 200, body: { value } };
  }

  if (lower[2] === 'providers' && (n === 4 || (n === 5 && lower[4] === 'register'))) return providerRoute(world, req, sub, seg[3] ?? '');
  if (lower[2] !== 'resourcegroups' || seg[3] === undefined) throw unknownPath(req);
  const rg = seg[3];
  if (n === 4) return resourceGroupRoute(world, req, sub, rg);
  if (lower[4] !== 'providers' || seg[5] === undefined || n < 8) throw unknownPath(req);
  const namespace = seg[5];
  const rest = seg.slice(6);
  const ns = namespace.toLowerCase();

  if (ns === 'microsoft.keyvault' && lower[6] === 'vaults') {
    const scope = world.store.resolveScope(seg.slice(0, 8));
    if (!scope.vault) throw unknownPath(req);
    if (n === 8) {
      if (req.method !== 'GET') throw methodNotAllowed(req);
      return { status: 200, body: vaultJson(scope.vault) };
    }
    if (n === 10 && lower[8] === 'accesspolicies') return accessPolicyRoute(scope.vault, req, seg[9] ?? '');
    throw unknownPath(req);
  }

  if (ns === 'microsoft.web' && lower[6] === 'sites' && n > 8) {
    const path: ResourcePath = { sub, rg, namespace, pairs: [[seg[6] ?? '', seg[7] ?? '']] };
    const site = siteOrThrow(world, path);
    return siteActionRoute(world, site, seg.slice(8), req);
  }

  if (rest.length % 2 !== 0) throw unknownPath(req);
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < rest.length; i += 2) pairs.push([rest[i] ?? '', rest[i + 1] ?? '']);
  for (const [type, name] of pairs.slice(1)) {
    if (SINGLETON_TYPES.has(type.toLowerCase()) && name.toLowerCase() !== 'default') throw unknownPath(req);
  }
  const kind = KINDS[[ns, ...pairs.map(([type]) => type.toLowerCase())].join('/')];
  if (!kind) throw unknownPath(req);
  return resourceRoute(world, kind, { sub, rg, namespace, pairs }, req);
}

function resourceGroupRoute(world: ArmWorld, req: ArmRequest, sub: string, rg: string): ArmAnswer {
  // REST spec: azure-rest-api-specs .../Microsoft.Resources/stable/2021-04-01/examples/CreateResourceGroup.json (201 created, 200 updated), CheckExistenceResourceGroups.json (HEAD 204/404)
  switch (req.method) {
    case 'GET':
      return { status: 200, body: cloneJson(world.store.requireResourceGroup(sub, rg).body) };
    case 'HEAD':
      try {
        world.store.requireResourceGroup(sub, rg);
        return { status: 204 };
      } catch {
        return { status: 404 };
      }
    case 'PUT': {
      const location = stringAt(req.body, 'location');
      // Learn: "Troubleshoot common Azure deployment errors" (LocationRequired)
      if (!location) throw new ArmError(400, 'LocationRequired', 'The location property is required for this definition.');
      const tags = objectAt(req.body, 'tags');
      const { created, body } = world.store.putResourceGroup(sub, rg, location, isJson(req.body?.['tags']) ? tags : {});
      return { status: created ? 201 : 200, body: cloneJson(body) };
    }
    default:
      throw methodNotAllowed(req);
  }
}

/**
 * `/{scope}/providers/Microsoft.Resources/tags/default` (Tags - Get/Update/Create Or Update At
 * Scope): the tags of any stored resource; PATCH takes `operation` `Merge`, `Replace` or `Delete`.
 */
function tagsRoute(world: ArmWorld, req: ArmRequest, scope: string[]): ArmAnswer {
  // REST spec: azure-rest-api-specs .../Microsoft.Resources/stable/2021-04-01/examples/UpdateAtScopeTags.json and PutTagsResource.json (Tags at scope, 200 with properties.tags)
  const scopeId = `/${scope.join('/')}`;
  const resource = world.store.get(scopeId);
  // Learn: "Troubleshoot common Azure deployment errors" (ResourceNotFound); message not verified
  if (!resource) throw new ArmError(404, 'ResourceNotFound', `The Resource '${scopeId}' was not found.`);
  const current = isJson(resource.body['tags']) ? cloneJson(resource.body['tags']) : {};
  const given = objectAt(objectAt(req.body, 'properties'), 'tags');
  let tags = current;
  if (req.method === 'PUT') tags = cloneJson(given);
  else if (req.method === 'PATCH') {
    const requested = req.body?.['operation'];
    const operation = typeof requested === 'string' ? requested.toLowerCase() : '';
    if (operation === 'merge') tags = { ...current, ...cloneJson(given) };
    else if (operation === 'replace') tags = cloneJson(given);
    else if (operation === 'delete') tags = Object.fromEntries(Object.entries(current).filter(([k]) => !(k in given)));
    // Unsourced: the code InvalidTagOperation and its message are not verified (the spec's operation enum is Merge, Replace, Delete).
    else
      throw new ArmError(
        400,
        'InvalidTagOperation',
        `The tag operation '${String(req.body?.['operation'])}' is not Merge, Replace or Delete.`,
      );
  } else if (req.method !== 'GET') throw methodNotAllowed(req);
  resource.body['tags'] = tags;
  return {
    status: 200,
    body: {
      id: `${resource.id}/providers/Microsoft.Resources/tags/default`,
      name: 'default',
      type: 'Microsoft.Resources/tags',
      properties: { tags: cloneJson(tags) },
    },
  };
}

/**
 * `/subscriptions/{id}/providers/{namespace}` (Providers - Get) and `.../register` (POST):
 * `registrationState` is `Registered` unless the test unregistered the namespace; registering answers
 * `Registering`, and the provider reads `Registered` from then on.
 */
function providerRoute(world: ArmWorld, req: ArmRequest, sub: string, namespace: string): ArmAnswer {
  // REST spec: azure-rest-api-specs .../Microsoft.Resources/stable/2021-04-01/examples/RegisterProviders.json (POST register answers 200); Registering-then-Registered is unverified
  requireSubscription(sub);
  const key = namespace.toLowerCase();
  const body = (state: string): Json => ({
    id: `/subscriptions/${sub}/providers/${namespace}`,
    namespace,
    registrationState: state,
    registrationPolicy: 'RegistrationRequired',
    resourceTypes: [],
  });
  if (req.segments.length === 5) {
    if (req.method !== 'POST') throw methodNotAllowed(req);
    const was = world.store.unregisteredProviders.delete(key);
    return { status: 200, body: body(was ? 'Registering' : 'Registered') };
  }
  if (req.method !== 'GET') throw methodNotAllowed(req);
  return { status: 200, body: body(world.store.unregisteredProviders.has(key) ? 'NotRegistered' : 'Registered') };
}

function siteOrThrow(world: ArmWorld, path: ResourcePath): StoredResource {
  const group = world.store.requireResourceGroup(path.sub, path.rg);
  const name = path.pairs[0]?.[1] ?? '';
  const site = world.store.get(`${group.id}/providers/Microsoft.Web/sites/${name}`);
  // Learn: "Troubleshoot common Azure deployment errors" (ResourceNotFound)
  if (!site || site.type !== SITE_TYPE) throw resourceNotFound(SITE_TYPE, name, String(group.body['name']));
  return site;
}

// Unsourced: the emulator's own 404 for a path it does not serve; not an Azure rule.
function unknownPath(req: ArmRequest): ArmError {
  return new ArmError(404, 'NotFound', `The path '${req.path}' is not served by the ARM emulator.`);
}
