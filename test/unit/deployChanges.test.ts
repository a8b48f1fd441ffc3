import { describeChange, differences, sameLocation, settingDifferences, summarise } from '../../cli/deploy/changes';
import { identityDiff, siteIdentity, type AppIdentity } from '../../cli/deploy/infrastructure';

describe('differences', () => {
  it('compares only what the deployment manages, key by key', () => {
    const actual = {
      kind: 'StorageV2',
      sku: { name: 'Standard_LRS', tier: 'Standard' },
      provisioningState: 'Succeeded',
      allowSharedKeyAccess: true,
    };
    expect(differences({ kind: 'StorageV2', sku: { name: 'Standard_LRS' } }, actual)).toEqual([]);
    expect(differences({ kind: 'StorageV2', sku: { name: 'Standard_LRS' }, allowSharedKeyAccess: false }, actual)).toEqual([
      { path: 'allowSharedKeyAccess', from: true, to: false },
    ]);
    expect(differences({ siteConfig: { minTlsVersion: '1.2' } }, { siteConfig: {} })).toEqual([
      { path: 'siteConfig.minTlsVersion', from: undefined, to: '1.2' },
    ]);
    expect(differences({ a: { b: 1 } }, undefined)).toEqual([{ path: 'a.b', from: undefined, to: 1 }]);
  });

  it('compares strings without regard to case, as ARM does ids and enum values, but tag values exactly', () => {
    expect(
      differences(
        { serverFarmId: '/subscriptions/S/resourceGroups/RG/providers/Microsoft.Web/serverfarms/P' },
        { serverFarmId: '/subscriptions/s/resourcegroups/rg/providers/microsoft.web/serverFarms/p' },
      ),
    ).toEqual([]);
    expect(differences({ sku: { name: 'PerGB2018' } }, { sku: { name: 'pergb2018' } })).toEqual([]);
    expect(differences({ kind: 'functionapp,linux' }, { kind: 'app' })).toHaveLength(1);
    expect(differences({ tags: { owner: 'Ops' } }, { tags: { owner: 'ops' } })).toEqual([{ path: 'tags.owner', from: 'ops', to: 'Ops' }]);
  });

  it('compares lists as wholes, in order unless told otherwise', () => {
    expect(differences({ types: ['a', 'b'] }, { types: ['b', 'a'] })).toHaveLength(1);
    expect(differences({ types: ['a', 'b'] }, { types: ['b', 'a'] }, { unordered: true })).toEqual([]);
    expect(differences({ types: ['a', 'b'] }, { types: ['a'] }, { unordered: true })).toEqual([
      { path: 'types', from: ['a'], to: ['a', 'b'] },
    ]);
  });

  it('ignores desired properties left undefined', () => {
    expect(differences({ a: undefined, b: 1 }, { b: 1 })).toEqual([]);
  });
});

describe('sameLocation', () => {
  it('takes display names and region names as the same region', () => {
    expect(sameLocation('westeurope', 'West Europe')).toBe(true);
    expect(sameLocation('westeurope', 'northeurope')).toBe(false);
  });
});

describe('settingDifferences', () => {
  it('names added, changed and removed settings without their values', () => {
    const diff = settingDifferences({ A: '1', B: 'new', C: '3' }, { A: '1', B: 'old', D: '4' });
    expect(diff).toEqual([
      { path: 'B', from: 'set', to: 'set' },
      { path: 'C', from: 'absent', to: 'set' },
      { path: 'D', from: 'set', to: 'absent' },
    ]);
    const lines = describeChange({ resource: 'app settings of x', action: 'update', differences: diff, hideValues: true });
    expect(lines).toEqual(['~ app settings of x: update', '    B: changed', '    C: added', '    D: removed (not in the deployment file)']);
    expect(lines.join('\n')).not.toMatch(/old|new|[34]$/m);
    // --what-if says what a run would do: a setting added by hand in the portal goes.
    expect(describeChange({ resource: 'app settings of x', action: 'update', differences: diff, hideValues: true }, true)[3]).toBe(
      '    D: will be removed (not in the deployment file)',
    );
  });
});

describe('describeChange and summarise', () => {
  it('prints a symbol per action and the differing properties of an update', () => {
    expect(describeChange({ resource: 'storage account s', action: 'create', differences: [] })).toEqual(['+ storage account s: create']);
    expect(describeChange({ resource: 'storage account s', action: 'unchanged', differences: [] })).toEqual(['= storage account s']);
    expect(
      describeChange({
        resource: 'storage account s',
        action: 'update',
        differences: [{ path: 'minimumTlsVersion', from: 'TLS1_0', to: 'TLS1_2' }],
      }),
    ).toEqual(['~ storage account s: update', '    minimumTlsVersion: TLS1_0 -> TLS1_2']);
    expect(
      summarise([
        { resource: 'a', action: 'create', differences: [] },
        { resource: 'b', action: 'unchanged', differences: [] },
        { resource: 'c', action: 'unchanged', differences: [] },
      ]),
    ).toBe('1 to create, 0 to update, 2 unchanged');
  });
});

describe('the site identity with rotation', () => {
  const id = (name: string): string =>
    `/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;
  const named: AppIdentity = { id: id('broker-id'), name: 'broker-id', principalId: 'p', clientId: 'c' };
  const rotation = { id: id('broker-rotation') };

  it('adds the rotation identity beside the system one, or beside the named one', () => {
    expect(siteIdentity(undefined, undefined)).toEqual({ type: 'SystemAssigned' });
    expect(siteIdentity(undefined, rotation)).toEqual({
      type: 'SystemAssigned, UserAssigned',
      userAssignedIdentities: { [rotation.id]: {} },
    });
    expect(siteIdentity(named, rotation)).toEqual({
      type: 'UserAssigned',
      userAssignedIdentities: { [named.id]: {}, [rotation.id]: {} },
    });
  });

  it('finds a site without the rotation identity changed, and one with it unchanged (type spacing and id casing aside)', () => {
    expect(identityDiff({ type: 'SystemAssigned' }, undefined, rotation)).toEqual([
      { path: 'identity.type', from: 'SystemAssigned', to: 'SystemAssigned, UserAssigned' },
      { path: 'identity.userAssignedIdentities', from: [], to: [rotation.id] },
    ]);
    expect(
      identityDiff(
        { type: 'SystemAssigned,UserAssigned', userAssignedIdentities: { [rotation.id.toUpperCase()]: {} } },
        undefined,
        rotation,
      ),
    ).toEqual([]);
    // Rotation turned off again: the identity leaves the site.
    expect(identityDiff({ type: 'SystemAssigned, UserAssigned', userAssignedIdentities: { [rotation.id]: {} } }, undefined)).toEqual([
      { path: 'identity.type', from: 'SystemAssigned, UserAssigned', to: 'SystemAssigned' },
      { path: 'identity.userAssignedIdentities', from: [rotation.id], to: [] },
    ]);
  });
});
