import { InvalidRequestError, TooManySecretsError, VaultThrottledError } from '../../shared/errors';
import { problemResponse, toProblem } from '../../shared/http/problem';
import { LONGEST_BATCH_ITEM_BYTES, MAX_BATCH_BODY_BYTES, MAX_BATCH_SECRETS, parseBatchRequest } from '../../shared/secrets/batchRequest';

describe('parseBatchRequest', () => {
  it('reads names and objects, leaving per-item checks to the resolver', () => {
    expect(parseBatchRequest({ secrets: ['a', { name: 'b', version: 'v', vault: 'x' }, { name: 'bad name!' }] })).toEqual([
      { name: 'a' },
      { name: 'b', version: 'v', vault: 'x' },
      { name: 'bad name!', version: undefined, vault: undefined },
    ]);
  });

  it.each([
    [null, 'The body must be {"secrets": [...]}'],
    [[], 'The body must be {"secrets": [...]}'],
    [{ secrets: 'a' }, 'The body must be {"secrets": [...]}'],
    [{ secrets: [] }, '"secrets" must name at least one secret'],
    [{ secrets: [1] }, 'secrets[0] must be a name or an object'],
    [{ secrets: [{ version: 'x' }] }, 'secrets[0].name must be a string'],
    [{ secrets: ['a', { name: 'b', value: 'x' }] }, 'secrets[1] has unknown field "value"'],
  ])('refuses %j as a whole', (body, message) => {
    expect(() => parseBatchRequest(body)).toThrow(InvalidRequestError);
    expect(() => parseBatchRequest(body)).toThrow(message);
  });

  it('refuses more than 100 secrets with TooManySecrets', () => {
    const body = { secrets: Array.from({ length: MAX_BATCH_SECRETS + 1 }, (_, i) => `s${i}`) };
    expect(() => parseBatchRequest(body)).toThrow(TooManySecretsError);
    expect(parseBatchRequest({ secrets: body.secrets.slice(1) })).toHaveLength(MAX_BATCH_SECRETS);
  });

  it('refuses 10,000 secrets with TooManySecrets', () => {
    const body = { secrets: Array.from({ length: 10_000 }, (_, i) => `s${i}`) };
    expect(() => parseBatchRequest(body)).toThrow(TooManySecretsError);
    expect(() => parseBatchRequest(body)).toThrow('A batch may ask for at most 100 secrets; this one asks for 10000');
  });

  it('sizes the body limit so 100 of the longest items fit, pretty-printed too', () => {
    const longest = { name: 'n'.repeat(127), version: 'f'.repeat(32), vault: 'v'.repeat(63) };
    expect(JSON.stringify(longest)).toHaveLength(LONGEST_BATCH_ITEM_BYTES);
    expect(MAX_BATCH_BODY_BYTES).toBe(51_628);
    const body = { secrets: Array.from({ length: MAX_BATCH_SECRETS }, () => longest) };
    expect(Buffer.byteLength(JSON.stringify(body, null, 4).replace(/\n/g, '\r\n'))).toBeLessThan(MAX_BATCH_BODY_BYTES);
    expect(Buffer.byteLength(JSON.stringify(body, null, '\t'))).toBeLessThan(MAX_BATCH_BODY_BYTES);
    expect(parseBatchRequest(body)).toHaveLength(MAX_BATCH_SECRETS);
  });
});

describe('toProblem', () => {
  it('shows our own errors with their code and Retry-After', () => {
    const { problem, headers, internal } = toProblem(
      new VaultThrottledError('Vault "default" is throttling requests', { retryAfterSeconds: 12 }),
      '/api/secrets/x',
    );
    expect(internal).toBe(false);
    expect(problem).toMatchObject({
      status: 429,
      code: 'VaultThrottled',
      title: 'Vault throttled',
      detail: 'Vault "default" is throttling requests',
      instance: '/api/secrets/x',
    });
    expect(headers).toEqual({ 'Retry-After': '12' });
  });

  it('hides anything else behind a generic 500 with an error id', () => {
    const { problem, internal } = toProblem(new Error('connection string AccountKey=abc leaked'));
    expect(internal).toBe(true);
    expect(problem.status).toBe(500);
    expect(problem.detail).toMatch(/^Something went wrong; quote error id [0-9a-f-]{36}$/);
    const response = problemResponse(problem);
    expect(response.headers).toMatchObject({ 'Content-Type': 'application/problem+json' });
    expect(response.body as string).not.toContain('AccountKey');
  });
});
