import {
  ARM_ENDPOINT,
  ArmError,
  methodNotAllowed,
  type ArmAnswer,
  type ArmRequest,
  GUID_RE,
  type Json,
  isAncestorOrSelf,
  objectAt,
  stringAt,
  subscriptionId,
} from './armCore';
import type { ArmStore, RoleAssignmentRecord } from './armStore';

/**
 * `{scope}/providers/Microsoft.Authorization/roleAssignments[/{name}]` of `@azure/arm-authorization`:
 * `listForScope` (GET the collection), `create` (PUT), `get`, `delete`. The scope is any existing
 * resource id (subscription, resource group, vault, storage account, table, system topic, …).
 */
export function roleAssignmentRoute(
  store: ArmStore,
  req: ArmRequest,
  scopeSegments: string[],
  name: string | undefined,
  pageSize: number,
): ArmAnswer {
  // REST spec: RoleAssignments ListForScope, Get, Create (200/201), Delete (200/204) — azure-rest-api-specs .../Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json
  if (name === undefined) {
    if (req.method !== 'GET') throw methodNotAllowed(req);
    return { status: 200, body: listRoleAssignments(store, scopeSegments, req, pageSize) };
  }
  const scope = store.resolveScope(scopeSegments);
  const index = store.assignments.findIndex(
    (a) => a.name.toLowerCase() === name.toLowerCase() && a.scope.toLowerCase() === scope.id.toLowerCase(),
  );
  const found = index === -1 ? undefined : store.assignments[index];
  switch (req.method) {
    case 'GET':
      if (!found) throw notFound(name);
      return { status: 200, body: roleAssignmentJson(found) };
    case 'DELETE':
      // REST spec: Delete answers 204 "Role assignment already deleted or does not exist" — authorization-RoleAssignmentsCalls.json
      if (!found) return { status: 204 };
      store.assignments.splice(index, 1);
      return { status: 200, body: roleAssignmentJson(found) };
    case 'PUT':
      return createRoleAssignment(store, req, scope.id, name);
    default:
      throw methodNotAllowed(req);
  }
}

function createRoleAssignment(store: ArmStore, req: ArmRequest, scope: string, name: string): ArmAnswer {
  // Public report: https://github.com/Azure/Azure-Landing-Zones/issues/3419 (InvalidRoleAssignmentId, this message)
  if (!GUID_RE.test(name)) {
    throw new ArmError(
      400,
      'InvalidRoleAssignmentId',
      `The role assignment ID '${name}' is not valid. The role assignment ID must be a GUID.`,
    );
  }
  const props = objectAt(req.body, 'properties');
  const roleDefinitionId = stringAt(props, 'roleDefinitionId') ?? '';
  const role = /^(?:\/subscriptions\/[^/]+)?\/providers\/Microsoft\.Authorization\/roleDefinitions\/([0-9a-f-]{36})$/i.exec(
    roleDefinitionId,
  )?.[1];
  // Public report: https://github.com/hashicorp/terraform-provider-azurerm/issues/8547 (400 InvalidRoleDefinitionId, this message)
  if (role === undefined || !GUID_RE.test(role)) {
    throw new ArmError(400, 'InvalidRoleDefinitionId', `The role definition ID '${roleDefinitionId}' is not valid.`);
  }
  const principalId = stringAt(props, 'principalId') ?? '';
  // Public report: https://github.com/Azure/azure-powershell/issues/16627 (400 InvalidPrincipalId, this message)
  if (!GUID_RE.test(principalId)) {
    throw new ArmError(400, 'InvalidPrincipalId', `The Principal ID '${principalId}' is not valid. Principal ID must be a GUID.`);
  }
  // Unsourced: the REST spec's default principalType is User; the emulator's principals are managed identities (ServicePrincipal).
  const principalType = stringAt(props, 'principalType') ?? 'ServicePrincipal';
  const sameName = store.assignments.find((a) => a.name.toLowerCase() === name.toLowerCase());
  if (sameName) {
    const same =
      sameName.scope.toLowerCase() === scope.toLowerCase() &&
      sameName.roleDefinitionGuid === role.toLowerCase() &&
      sameName.principalId.toLowerCase() === principalId.toLowerCase();
    // Learn: "Troubleshoot Azure RBAC", "ARM template role assignment returns BadRequest status" (RoleAssignmentUpdateNotPermitted, 400)
    if (!same) {
      throw new ArmError(
        400,
        'RoleAssignmentUpdateNotPermitted',
        'Tenant ID, application ID, principal ID, and scope are not allowed to be updated.',
      );
    }
    // REST spec: Create answers 200 or 201 (authorization-RoleAssignmentsCalls.json); which one an unchanged re-PUT gets is unverified.
    // Idempotent: the same assignment again is created again, as far as the caller can tell.
    return { status: 201, body: roleAssignmentJson(sameName) };
  }
  const duplicate = store.assignments.find(
    (a) =>
      a.scope.toLowerCase() === scope.toLowerCase() &&
      a.roleDefinitionGuid === role.toLowerCase() &&
      a.principalId.toLowerCase() === principalId.toLowerCase(),
  );
  // Public report: https://github.com/hashicorp/terraform-provider-azurerm/issues/28557 (409 RoleAssignmentExists; the id suffix is unverified)
  if (duplicate) {
    throw new ArmError(
      409,
      'RoleAssignmentExists',
      `The role assignment already exists. The ID of the existing role assignment is ${duplicate.name.replace(/-/g, '')}.`,
    );
  }
  const now = new Date().toISOString();
  const record: RoleAssignmentRecord = {
    name: name.toLowerCase(),
    principalId,
    roleDefinitionGuid: role.toLowerCase(),
    scope,
    principalType,
    description: stringAt(props, 'description') ?? null,
    createdOn: now,
    updatedOn: now,
  };
  store.assignments.push(record);
  return { status: 201, body: roleAssignmentJson(record) };
}

interface Filter {
  principalId: string | undefined;
  atScope: boolean;
}

function listRoleAssignments(store: ArmStore, segments: string[], req: ArmRequest, pageSize: number): Json {
  const scope = store.resolveScope(segments);
  const filterText = req.query.get('$filter');
  const filter = parseFilter(filterText);
  // REST spec: $filter atScope() is at or above the scope; principalId eq also below it (RoleAssignmentFilterParameter)
  const matching = store.assignments.filter((a) => {
    const applies = isAncestorOrSelf(a.scope, scope.id) || (!filter.atScope && isAncestorOrSelf(scope.id, a.scope));
    return applies && (filter.principalId === undefined || a.principalId.toLowerCase() === filter.principalId);
  });
  const skipToken = req.query.get('$skiptoken');
  const start = skipToken === null ? 0 : Number(Buffer.from(skipToken, 'base64url').toString('utf8'));
  // Unsourced: modelled from ARM paging; the code InvalidSkipToken is not verified.
  if (!Number.isInteger(start) || start < 0) throw new ArmError(400, 'InvalidSkipToken', `The skip token '${skipToken}' is invalid.`);
  const page = matching.slice(start, start + pageSize);
  const out: Json = { value: page.map((a) => roleAssignmentJson(a)) };
  if (start + pageSize < matching.length) {
    // REST spec: RoleAssignmentListResult.nextLink with x-ms-pageable — authorization-RoleAssignmentsCalls.json
    // Absolute and self-contained (filter, api-version), as ARM's are: the SDK GETs it verbatim.
    const params = [
      `api-version=${encodeURIComponent(req.apiVersion)}`,
      `$skiptoken=${Buffer.from(String(start + pageSize)).toString('base64url')}`,
    ];
    if (filterText !== null) params.unshift(`$filter=${encodeURIComponent(filterText)}`);
    out['nextLink'] = `${ARM_ENDPOINT}${scope.id}/providers/Microsoft.Authorization/roleAssignments?${params.join('&')}`;
  }
  return out;
}

/** The role-assignment `$filter` forms ARM documents; anything else is ARM's 400. */
function parseFilter(text: string | null): Filter {
  // Learn: "List Azure role assignments using the REST API" ($filter forms); refusal text: https://github.com/Azure/azure-xplat-cli/issues/1692
  const out: Filter = { principalId: undefined, atScope: false };
  if (text === null || text.trim() === '') return out;
  for (const clause of text.trim().split(/\s+and\s+/i)) {
    const principal = /^principalId\s+eq\s+'([^']+)'$/i.exec(clause) ?? /^assignedTo\('([^']+)'\)$/i.exec(clause);
    if (principal?.[1] !== undefined) {
      out.principalId = principal[1].toLowerCase();
    } else if (/^atScope\(\)$/i.test(clause)) {
      out.atScope = true;
    } else {
      // Unsourced: the code UnsupportedQuery is not verified (the message follows azure-xplat-cli#1692).
      throw new ArmError(
        400,
        'UnsupportedQuery',
        `The filter '${text}' is not supported. Supported filters are either 'atScope()' or 'principalId eq '{value}'' or 'assignedTo('{value}')'.`,
      );
    }
  }
  return out;
}

// REST spec: RoleAssignment / RoleAssignmentProperties (scope, createdOn, updatedOn read-only) — authorization-RoleAssignmentsCalls.json
export function roleAssignmentJson(a: RoleAssignmentRecord): Json {
  return {
    properties: {
      roleDefinitionId: `${subscriptionId()}/providers/Microsoft.Authorization/roleDefinitions/${a.roleDefinitionGuid}`,
      principalId: a.principalId,
      principalType: a.principalType,
      scope: a.scope,
      condition: null,
      conditionVersion: null,
      createdOn: a.createdOn,
      updatedOn: a.updatedOn,
      delegatedManagedIdentityResourceId: null,
      description: a.description,
    },
    id: `${a.scope}/providers/Microsoft.Authorization/roleAssignments/${a.name}`,
    type: 'Microsoft.Authorization/roleAssignments',
    name: a.name,
  };
}

// Unsourced: modelled from ARM's not-found errors; the code RoleAssignmentNotFound is not verified.
function notFound(name: string): ArmError {
  return new ArmError(404, 'RoleAssignmentNotFound', `The role assignment '${name}' is not found.`);
}
