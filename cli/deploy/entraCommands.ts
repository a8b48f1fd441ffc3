/**
 * What rotation needs from Microsoft Entra ID and the deployment cannot do with an Azure sign-in:
 * the Microsoft Graph app role `Application.ReadWrite.OwnedBy` for the rotation identity, and that
 * identity as an owner of each application whose client secret it rotates (the distinct applications of
 * the deployment file's `rotation.targets`, one command each). Both need an Entra admin,
 * so `npm run deploy` prints the Azure CLI commands (bash) with the identity's principal id filled
 * in; it never runs them (docs/deploying.md, "Rotation").
 */
import type { RotationRef } from './deploymentFile';

/** Learn: "Microsoft Graph permissions reference": Microsoft Graph's application id, the same in every tenant. */
export const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';
/** Learn: "Microsoft Graph permissions reference" (Application.ReadWrite.OwnedBy, application permission identifier). */
export const APPLICATION_READWRITE_OWNEDBY = '18a4783c-866b-4cc7-a460-3d5e5662c884';
/** Stands for the principal id of an identity that does not exist yet (`--what-if` before the first run). */
export const PRINCIPAL_KNOWN_AFTER_CREATE = '<principal id of the rotation identity, known after create>';
/** Stands for an application when the deployment file's `rotation.targets` lists none. */
const APPLICATION_PLACEHOLDER = '<application object id>';

/**
 * The lines to print: a heading, then each command. `principalId` undefined: the identity does not
 * exist yet, and a placeholder stands for it.
 */
export function entraAdminCommands(rotation: RotationRef, principalId: string | undefined): string[] {
  const principal = principalId ?? PRINCIPAL_KNOWN_AFTER_CREATE;
  const applications = rotation.applications.length > 0 ? rotation.applications : [APPLICATION_PLACEHOLDER];
  return [
    '',
    `Needs a Microsoft Entra admin (not run by this tool): for rotation identity ${rotation.identityName} (principal id ${principal})`,
    `  # 1. Microsoft Graph app role Application.ReadWrite.OwnedBy (a Privileged Role Administrator). Learn: "Grant an appRoleAssignment for a service principal"`,
    `  #    resourceId is the object id of Microsoft Graph's service principal in your tenant, looked up first.`,
    ...graphAppRoleCommands(principal).map((line) => `  ${line}`),
    `  # 2. The rotation identity as an owner of each application whose client secret it rotates (an Application Administrator, or an owner). Learn: "Add an owner to an application"`,
    ...applications.map((app) => `  ${ownerCommand(app, principal)}`),
  ];
}

/**
 * Learn: "Grant an appRoleAssignment for a service principal" (`POST /servicePrincipals/{resource
 * service principal id}/appRoleAssignedTo` with `principalId`, `resourceId`, `appRoleId`).
 */
export function graphAppRoleCommands(principalId: string): string[] {
  const body = `{\\"principalId\\":\\"${principalId}\\",\\"resourceId\\":\\"$graphSp\\",\\"appRoleId\\":\\"${APPLICATION_READWRITE_OWNEDBY}\\"}`;
  return [
    `graphSp=$(az ad sp show --id ${GRAPH_APP_ID} --query id --output tsv)`,
    `az rest --method post --url "https://graph.microsoft.com/v1.0/servicePrincipals/$graphSp/appRoleAssignedTo" --headers Content-Type=application/json --body "${body}"`,
  ];
}

/**
 * Learn: "Add an owner to an application" (`POST /applications/{id}/owners/$ref` with
 * `{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/{id}"}`).
 */
export function ownerCommand(applicationObjectId: string, principalId: string): string {
  return `az rest --method post --url 'https://graph.microsoft.com/v1.0/applications/${applicationObjectId}/owners/$ref' --headers Content-Type=application/json --body '{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/${principalId}"}'`;
}
