import {
  DEFAULT_VALIDITY_DAYS,
  isTagRefusal,
  newVersionTags,
  readRotationTags,
  TAG_KEY_ID,
  TAG_ROTATION_ID,
} from '../../shared/rotation/rotationTags';

const APP = '0f0f0f0f-1111-4222-8333-444455556666';

describe('readRotationTags', () => {
  it('reads an opted-in secret, with the default validity', () => {
    expect(readRotationTags({ brokerRotation: 'entraApp', entraAppObjectId: APP })).toEqual({
      applicationObjectId: APP,
      validityDays: DEFAULT_VALIDITY_DAYS,
      keyId: undefined,
    });
    expect(DEFAULT_VALIDITY_DAYS).toBe(180);
  });

  it('reads validityDays and the entraKeyId a rotation wrote, object ids in lower case', () => {
    const keyId = 'AAAAAAAA-1111-4222-8333-444455556666';
    expect(
      readRotationTags({ brokerRotation: 'entraApp', entraAppObjectId: APP.toUpperCase(), validityDays: '730', entraKeyId: keyId }),
    ).toEqual({ applicationObjectId: APP, validityDays: 730, keyId: keyId.toLowerCase() });
  });

  it.each([
    [undefined, 'NotTagged', 'The secret is not tagged brokerRotation=entraApp, so the broker does not rotate it.'],
    [{ owner: 'erp' }, 'NotTagged', 'The secret is not tagged brokerRotation=entraApp, so the broker does not rotate it.'],
    [{ brokerRotation: 'timer', entraAppObjectId: APP }, 'InvalidTags', 'Tag brokerRotation must be "entraApp", got "timer".'],
    [{ brokerRotation: 'entraApp' }, 'InvalidTags', "Tag entraAppObjectId must be the Entra application's object id (a GUID), got none."],
    [
      { brokerRotation: 'entraApp', entraAppObjectId: 'my-app' },
      'InvalidTags',
      'Tag entraAppObjectId must be the Entra application\'s object id (a GUID), got "my-app".',
    ],
    [
      { brokerRotation: 'entraApp', entraAppObjectId: APP, validityDays: '0' },
      'InvalidTags',
      'Tag validityDays must be a whole number of days from 1 to 730, got "0".',
    ],
    [
      { brokerRotation: 'entraApp', entraAppObjectId: APP, validityDays: '731' },
      'InvalidTags',
      'Tag validityDays must be a whole number of days from 1 to 730, got "731".',
    ],
    [
      { brokerRotation: 'entraApp', entraAppObjectId: APP, validityDays: '90.5' },
      'InvalidTags',
      'Tag validityDays must be a whole number of days from 1 to 730, got "90.5".',
    ],
  ])('refuses %j with %s', (tags, code, message) => {
    const read = readRotationTags(tags);
    expect(isTagRefusal(read)).toBe(true);
    expect(read).toEqual({ code, message });
  });

  it('ignores an entraKeyId that is not a GUID', () => {
    const read = readRotationTags({ brokerRotation: 'entraApp', entraAppObjectId: APP, entraKeyId: 'nope' });
    expect(isTagRefusal(read) ? undefined : read.keyId).toBeUndefined();
  });
});

describe('newVersionTags', () => {
  it('carries every tag forward and sets this rotation’s keyId and id', () => {
    const carried = {
      brokerRotation: 'entraApp',
      entraAppObjectId: APP,
      owner: 'erp',
      [TAG_KEY_ID]: 'old-key',
      [TAG_ROTATION_ID]: 'rot-old',
    };
    expect(newVersionTags(carried, 'new-key', 'rot-new')).toEqual({
      brokerRotation: 'entraApp',
      entraAppObjectId: APP,
      owner: 'erp',
      entraKeyId: 'new-key',
      brokerRotationId: 'rot-new',
    });
    expect(carried[TAG_KEY_ID]).toBe('old-key');
  });
});
