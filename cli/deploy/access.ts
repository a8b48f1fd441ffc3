/**
 * Who may do what: role assignments for the app's identity (storage, vaults, the notification
 * topic), for each system topic's identity (dead letters) and for the deployer (the smoke test's
 * report), and access policies on vaults that do not use RBAC.
 */
import { createHash } from 'node:crypto';
import type { Difference } from './changes';
import type { Ctx } from './infrastructure';
import { codeOf, statusOf } from './azureErrors';
import { orAbsent, reconcile, retrying, step } from './reconcile';

/** Built-in role definition ids (the same in every tenant). */
export const ROLES = {
  'Storage Blob Data Owner': 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
  'Storage Blob Data Contributor': 'ba92f5b4-2d11-453d-a403-e96b0029c9fe',
  'Storage Table Data Contributor': '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
  'Storage Table Data Reader': '76199698-9eea-4c19-bc75-cec21354c6b6',
  'Storage Queue Data Contributor': '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
  'Key Vault Secrets User': '4633458b-17de-408a-b874-0445c86b69e6',
  // Learn: "Azure built-in roles for Security" (Key Vault Secrets Officer: every action on secrets): the rotation identity's.
  'Key Vault Secrets Officer': 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7',
  Reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7',
  'EventGrid Data Sender': 'd5a91429-5739-47e2-a06b-3470a27159e7',
  'Monitoring Metrics Publisher': '3913510d-42f4-4e42-8a64-420c390055eb',
} as const;
export type RoleName = keyof typeof ROLES;

/** A principal that gets roles: a name for messages and its object id (undefined until Azure assigns it). */
export interface Principal {
  readonly label: string;
  readonly objectId: string | undefined;
  readonly type: 'ServicePrincipal' | 'User' | 'Group';
}

/** How long Azure may take to know a just-created identity (role assignments answer PrincipalNotFound until then). */
const REPLICATION_DEADLINE_MS = 5 * 60_000;
const REPLICATION_RETRY_MS = 10_000;

/**
 * A role assignment's name: a UUID derived from scope, role and principal, as Bicep's `guid()` is
 * used for the same purpose, so a second run finds the assignment the first one made.
 */
export function roleAssignmentName(scope: string, roleId: string, principalId: string): string {
  const hex = createHash('sha256').update(`${scope.toLowerCase()}|${roleId.toLowerCase()}|${principalId.toLowerCase()}`).digest('hex');
  const variant = ((parseInt(hex.slice(16, 17), 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** Whether `assigned` is `scope` or one of its ancestors (where a role is inherited from). */
function isAtOrAbove(assigned: string, scope: string): boolean {
  const a = assigned.toLowerCase().replace(/\/+$/, '');
  const s = scope.toLowerCase();
  return a === '' || s === a || s.startsWith(`${a}/`);
}

/** The last segment of a resource id, for messages. */
const shortScope = (scope: string): string => scope.split('/').slice(-1)[0] ?? scope;

/**
 * Gives `principal` the role at `scope`. Unchanged when it already holds the role there or at a
 * scope above (an assignment made by hand counts too).
 */
export async function assignRole(ctx: Ctx, principal: Principal, role: RoleName, scope: string): Promise<void> {
  const roleId = ROLES[role];
  const subscriptionId = /^\/subscriptions\/([^/]+)/i.exec(scope)?.[1] ?? ctx.d.subscriptionId;
  const client = ctx.clients.authorization(subscriptionId);
  const roleDefinitionId = `/subscriptions/${subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${roleId}`;
  const resource = `role ${role} for ${principal.label} on ${shortScope(scope)}`;
  const objectId = principal.objectId;
  await reconcile(ctx.run, {
    resource,
    // A scope that does not exist yet (first run, or --what-if) holds no assignment.
    read: () =>
      orAbsent(async () => {
        if (!objectId) return undefined;
        for await (const a of client.roleAssignments.listForScope(scope, { filter: `principalId eq '${objectId}'` })) {
          if (a.scope !== undefined && isAtOrAbove(a.scope, scope) && a.roleDefinitionId?.toLowerCase().endsWith(`/${roleId}`)) return a;
        }
        return undefined;
      }),
    desired: {},
    compare: (): Difference[] => [],
    apply: async () => {
      if (!objectId) throw new Error('the principal has no object id yet');
      const name = roleAssignmentName(scope, roleId, objectId);
      return retrying(
        async () => {
          try {
            return await client.roleAssignments.create(scope, name, {
              roleDefinitionId,
              principalId: objectId,
              principalType: principal.type,
            });
          } catch (err: unknown) {
            // Made meanwhile under another name: what this step wanted is there.
            if (codeOf(err) === 'RoleAssignmentExists') return {};
            throw err;
          }
        },
        (err) => codeOf(err) === 'PrincipalNotFound',
        {
          intervalMs: REPLICATION_RETRY_MS,
          deadlineMs: REPLICATION_DEADLINE_MS,
          onRetry: () =>
            ctx.run.progress.line(
              `  ${principal.label} is not known to Microsoft Entra ID yet; retrying in ${REPLICATION_RETRY_MS / 1000} s`,
            ),
        },
      );
    },
  });
}

/**
 * Secret permissions for `principal` on a vault that uses access policies: Get and List (the app's
 * reads), or `permissions` (the rotation identity's Get, List and Set). Permissions it holds already are kept.
 */
export async function grantAccessPolicy(
  ctx: Ctx,
  principal: Principal,
  vault: { subscriptionId: string; resourceGroup: string; name: string; tenantId: string },
  permissions: readonly string[] = ['get', 'list'],
): Promise<void> {
  const client = ctx.clients.keyVault(vault.subscriptionId);
  const objectId = principal.objectId;
  const needed = [...permissions];
  await reconcile(ctx.run, {
    resource: `access policy for ${principal.label} on vault ${vault.name}`,
    read: async () => {
      if (!objectId) return undefined;
      const current = await step(`vault ${vault.name}`, 'read', () => client.vaults.get(vault.resourceGroup, vault.name));
      const entry = current.properties.accessPolicies?.find((p) => p.objectId.toLowerCase() === objectId.toLowerCase() && !p.applicationId);
      return entry ? (entry.permissions.secrets ?? []).map((s) => s.toLowerCase()) : undefined;
    },
    desired: needed,
    compare: (secrets) =>
      secrets.includes('all') || needed.every((p) => secrets.includes(p))
        ? []
        : [{ path: 'permissions.secrets', from: secrets, to: [...new Set([...secrets, ...needed])] }],
    apply: async () => {
      if (!objectId) throw new Error('the principal has no object id yet');
      await client.vaults.updateAccessPolicy(vault.resourceGroup, vault.name, 'add', {
        properties: { accessPolicies: [{ tenantId: vault.tenantId, objectId, permissions: { secrets: needed } }] },
      });
      return needed;
    },
  });
}

/** The deployer as a principal, from its ARM token (`oid`; `idtyp` tells a user from an app), for the smoke test's reader role. */
export async function deployerPrincipal(ctx: Ctx): Promise<Principal> {
  const token = await step('your sign-in', 'token', () => ctx.clients.credential.getToken('https://management.azure.com/.default'));
  let claims: { oid?: unknown; idtyp?: unknown } = {};
  try {
    claims = JSON.parse(Buffer.from(token?.token.split('.')[1] ?? '', 'base64url').toString('utf8')) as typeof claims;
  } catch {
    // not a JWT: no object id
  }
  return {
    label: 'you (the deployer)',
    objectId: typeof claims.oid === 'string' ? claims.oid : undefined,
    type: claims.idtyp === 'app' ? 'ServicePrincipal' : 'User',
  };
}

/** True for an SDK failure that says the caller may not do this (for messages that name the missing right). */
export const isForbidden = (err: unknown): boolean => statusOf(err) === 403;
