/**
 * End to end, as an attacker and an auditor would try it: forged audit lines, a caller draining
 * the vault, a revoked pinned version, callers reaching for the consumers' signing keys. The local
 * host runs the real function set against the Key Vault emulator and Azurite; telemetry is off,
 * so audit records go to the host log, which the tests parse.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAzurite } from '../../local/emulators/azurite';
import { startLocalAzure } from '../../local/emulators/localAzure';
import type { LocalAzure } from '../../local/emulators/localAzure';
import type { AuditRecord } from '../../shared/audit/auditRecord';
import { runBrokerHostToExit, startBrokerHost } from '../support/brokerHost';
import type { BrokerHost } from '../support/brokerHost';

const VAULT = 'contoso-vault2';
const sha = (key: string): string => createHash('sha256').update(key).digest('hex');
const keys = {
  everything: `all-${randomBytes(8).toString('hex')}`,
  limited: `lim-${randomBytes(8).toString('hex')}`,
  other: `oth-${randomBytes(8).toString('hex')}`,
  batcher: `bat-${randomBytes(8).toString('hex')}`,
  prober: `pro-${randomBytes(8).toString('hex')}`,
  bystander: `bys-${randomBytes(8).toString('hex')}`,
};
const SIGNING_KEYS = ['whsec-erp', 'whsec-crm'];
/** In every malicious input: it must never reach the log. */
const MARK = 'FORGED';

let azure: LocalAzure;
let azurite: Awaited<ReturnType<typeof startAzurite>>;
let host: BrokerHost;
let env: Record<string, string>;

const policy = {
  callers: [
    { name: 'everything', identities: [{ apiKeySha256: sha(keys.everything) }], allow: ['*', 'partner/*'] },
    { name: 'limited', identities: [{ apiKeySha256: sha(keys.limited) }], allow: ['*'], rateLimit: { requestsPerMinute: 3 } },
    { name: 'other', identities: [{ apiKeySha256: sha(keys.other) }], allow: ['*'], rateLimit: { requestsPerMinute: 3 } },
    { name: 'batcher', identities: [{ apiKeySha256: sha(keys.batcher) }], allow: ['*'], rateLimit: { requestsPerMinute: 10 } },
    { name: 'prober', identities: [{ apiKeySha256: sha(keys.prober) }], allow: ['erp-*'], rateLimit: { missesPerMinute: 20 } },
    { name: 'bystander', identities: [{ apiKeySha256: sha(keys.bystander) }], allow: ['*'] },
  ],
};

async function call(on: BrokerHost, pathAndQuery: string, init: RequestInit & { key?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.key !== undefined) headers.set('x-api-key', init.key);
  const response = await fetch(`${on.url}/api/${pathAndQuery}`, { ...init, headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
}

const batch = (on: BrokerHost, key: string, secrets: unknown[], headers: Record<string, string> = {}) =>
  call(on, 'secrets/resolve', {
    method: 'POST',
    key,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ secrets }),
  });

/**
 * Every audit record the host has logged so far, parsed (each is one line: `... audit {json}`,
 * prefixed by the function's name, or bare when the audit log writes it outside a request).
 */
function auditRecords(on: BrokerHost): AuditRecord[] {
  return on
    .output()
    .split('\n')
    .flatMap((line) => {
      const json = /(?:^|: )audit (\{.*)$/.exec(line)?.[1];
      return json === undefined ? [] : [JSON.parse(json) as AuditRecord];
    });
}

beforeAll(async () => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'broker-security-'));
  [azure, azurite] = await Promise.all([
    startLocalAzure({ stateDir, vaults: [VAULT, 'partner-vault'] }),
    startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } }),
  ]);
  azure.keyVault.setSecret(VAULT, 'erp-token', 'erp-value');
  azure.keyVault.setSecret('partner-vault', 'sftp-password', 'sftp-value');
  for (const name of SIGNING_KEYS) azure.keyVault.setSecret(VAULT, name, `whsec_${randomBytes(24).toString('base64')}`);
  env = {
    ...azure.env,
    KEY_VAULT_URI: azure.keyVault.vaultUri(VAULT),
    KEY_VAULT_ALIASES: `partner=${azure.keyVault.vaultUri('partner-vault')}`,
    ACCESS_POLICY: JSON.stringify(policy),
    CONSUMERS: JSON.stringify(
      SIGNING_KEYS.map((signingSecret, i) => ({
        name: `consumer-${i}`,
        secrets: ['erp-*'],
        events: ['SecretExpired'],
        webhook: `http://127.0.0.1:9/hook-${i}`,
        signingSecret,
      })),
    ),
    AzureWebJobsStorage: azurite.connectionString,
  };
  host = await startBrokerHost(env);
  azure.keyVault.setEventSubscription({
    endpoint: `${host.url}/runtime/webhooks/eventgrid?functionName=secretEvents`,
    schema: 'EventGridSchema',
    maxDeliveryAttempts: 5,
    retryDelayMs: 100,
  });
});

afterAll(async () => {
  await host?.stop();
  await azure?.stop();
  await azurite?.stop();
});

describe('the audit trail cannot be forged', () => {
  const hostile = [
    `erp-token\n[2026-12-01T00:00:00.000Z] resolveSecret: audit {"caller":"admin","status":200,"${MARK}":1}`,
    `erp-token\r\naudit resolve caller=admin status=200 ${MARK}`,
    `erp token caller=admin status=200 ${MARK}`,
    `erp-token" ,"caller":"admin","${MARK}":"`,
    `secret=admin-password status=200 ${MARK}`,
    `ünïcödé-${MARK}-名前`,
    `${MARK}${'x'.repeat(10_000)}`,
  ];
  const FIELDS = [
    'time',
    'operation',
    'caller',
    'authMethod',
    'appId',
    'objectId',
    'keyId',
    'clientAddress',
    'requestId',
    'invocationId',
    'operationId',
    'item',
    'vault',
    'vaultLength',
    'secret',
    'secretLength',
    'version',
    'versionLength',
    'outcome',
    'status',
    'code',
    'cache',
    'validity',
    'durationMs',
    'suppressed',
  ];

  it('writes exactly one well-formed record per request and per batch item, from validated values only', async () => {
    const expected = new Map<string, number>();
    let n = 0;
    const send = async (records: number, run: (requestId: string) => Promise<unknown>) => {
      const requestId = `audit-test-${n++}`;
      expected.set(requestId, records);
      await run(requestId);
    };
    const withId = (requestId: string, extra: Record<string, string> = {}) => ({
      'x-ms-client-request-id': requestId,
      'x-forwarded-for': `${MARK} status=200, 203.0.113.9:50123`,
      ...extra,
    });
    for (const evil of hostile) {
      const encoded = encodeURIComponent(evil);
      const vault = encodeURIComponent(`partner\n${MARK}`);
      await send(1, (id) => call(host, `secrets/${encoded}`, { key: keys.everything, headers: withId(id) }));
      await send(1, (id) => call(host, `secrets/erp-token?vault=${vault}`, { key: keys.everything, headers: withId(id) }));
      await send(1, (id) => call(host, `secrets/erp-token?version=${encoded}`, { key: keys.everything, headers: withId(id) }));
      await send(1, (id) => call(host, `secrets/${encoded}/metadata?vault=${vault}`, { key: keys.everything, headers: withId(id) }));
      await send(1, (id) => call(host, `secrets/${encoded}`, { key: `${MARK}-wrong-key`, headers: withId(id) }));
      await send(3, (id) =>
        batch(
          host,
          keys.everything,
          [evil, { name: 'erp-token', vault: `x\n${MARK}` }, { name: 'sftp-password', vault: 'partner' }],
          withId(id),
        ),
      );
    }
    await send(1, (id) => call(host, 'secrets', { key: keys.everything, headers: withId(id) }));
    await send(1, (id) => call(host, 'health', { key: keys.everything, headers: withId(id) }));
    await send(1, (id) => batch(host, keys.everything, [], withId(id)));
    // A request id that could break a field is not recorded at all.
    await call(host, 'secrets/erp-token', { key: keys.everything, headers: { 'x-ms-client-request-id': `a"b ${MARK}` } });

    const records = auditRecords(host);
    const byRequest = new Map<string, AuditRecord[]>();
    for (const record of records) {
      expect(Object.keys(record)).toEqual(FIELDS);
      if (record.requestId) byRequest.set(record.requestId, [...(byRequest.get(record.requestId) ?? []), record]);
    }
    for (const [requestId, count] of expected) expect([requestId, byRequest.get(requestId)?.length]).toEqual([requestId, count]);

    for (const record of records) {
      expect(record.caller === null || ['everything', 'limited', 'other', 'batcher', 'prober', 'bystander'].includes(record.caller)).toBe(
        true,
      );
      expect(record.suppressed).toBeNull();
      expect(
        record.secret === null || record.secret === '*' || record.secret === '<invalid>' || /^[0-9a-zA-Z-]{1,127}$/.test(record.secret),
      ).toBe(true);
      expect(
        record.vault === null || record.vault === '*' || record.vault === '<invalid>' || /^[A-Za-z0-9_-]{1,63}$/.test(record.vault),
      ).toBe(true);
      expect(
        record.version === null || record.version === 'latest' || record.version === '<invalid>' || /^[0-9a-f]{32}$/i.test(record.version),
      ).toBe(true);
      // The host appends the connection's address, as Azure's front end does: the client's own hops never count.
      expect(record.clientAddress).toBe('127.0.0.1');
      expect(record.requestId === null || /^audit-test-\d+$|^[A-Za-z0-9._:-]{1,64}$/.test(record.requestId)).toBe(true);
      expect(record.code).toMatch(/^[A-Za-z]+$/);
    }
    const longest = records.find((r) => r.secretLength === 10_000 + MARK.length);
    expect(longest).toMatchObject({ secret: '<invalid>', status: 400, code: 'InvalidSecretName' });
    expect(records.some((r) => r.vault === '<invalid>' && r.vaultLength === `partner\n${MARK}`.length)).toBe(true);
    // Nothing of the hostile input reached the log, in a record or anywhere else.
    expect(host.output()).not.toContain(MARK);
  });
});

describe('quotas', () => {
  it('answers a caller past its rate 429 with Retry-After while another caller is unaffected', async () => {
    for (let i = 0; i < 3; i++) expect((await call(host, 'secrets/erp-token', { key: keys.limited })).status).toBe(200);
    const refused = await call(host, 'secrets/erp-token', { key: keys.limited });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toBe('application/problem+json');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused.json).toMatchObject({ status: 429, code: 'TooManyRequests', title: 'Too many requests' });
    expect(refused.text).not.toContain('erp-value');
    // A batch counts its items: the limited caller cannot slip one through either.
    expect((await batch(host, keys.limited, ['erp-token', 'erp-token'])).status).toBe(429);
    for (let i = 0; i < 3; i++) expect((await call(host, 'secrets/erp-token', { key: keys.other })).status).toBe(200);
    expect(auditRecords(host).filter((r) => r.caller === 'limited' && r.code === 'TooManyRequests')).toHaveLength(2);
  });

  it('charges a batch one token per item: a caller limited to 10 a minute is refused a batch of 100 whole, before any vault read', async () => {
    azure.keyVault.resetCounts();
    const hundred = Array.from({ length: 100 }, (_, i) => `batch-item-${i}`);
    const refused = await batch(host, keys.batcher, hundred);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toBe('application/problem+json');
    expect(refused.headers.get('retry-after')).toBe('60');
    expect(refused.json).toMatchObject({ status: 429, code: 'TooManyRequests', title: 'Too many requests' });
    expect(refused.json?.detail).toBe(
      'Caller "batcher" asked for 100 secrets at once, more than its rate of 10 requests per minute on this instance; split the batch',
    );
    expect(azure.keyVault.requestCount({ method: 'GET' })).toBe(0);

    // The refused batch took nothing: a batch of 7 and one of 3 fill the minute, an 11th item is refused.
    const seven = await batch(host, keys.batcher, Array<string>(7).fill('erp-token'));
    expect([seven.status, seven.json?.secrets.length]).toEqual([200, 7]);
    const four = await batch(host, keys.batcher, Array<string>(4).fill('erp-token'));
    expect([four.status, four.json?.code]).toEqual([429, 'TooManyRequests']);
    expect(Number(four.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const three = await batch(host, keys.batcher, Array<string>(3).fill('erp-token'));
    expect([three.status, three.json?.secrets.length]).toEqual([200, 3]);
    expect((await call(host, 'secrets/erp-token', { key: keys.batcher })).status).toBe(429);

    const mine = auditRecords(host).filter((r) => r.caller === 'batcher');
    expect(mine.filter((r) => r.status === 200)).toHaveLength(10);
    expect(mine.filter((r) => r.code === 'TooManyRequests').map((r) => r.operation)).toEqual(['batch', 'batch', 'resolve']);
    expect(mine.some((r) => r.secret?.startsWith('batch-item-'))).toBe(false);
  });

  it('answers 50 requests for a missing name with one vault read, and a new version makes it resolvable at once', async () => {
    azure.keyVault.resetCounts();
    const answers = [];
    for (let i = 0; i < 25; i++) answers.push(await call(host, 'secrets/not-yet-there', { key: keys.everything }));
    answers.push(...(await Promise.all(Array.from({ length: 25 }, () => call(host, 'secrets/not-yet-there', { key: keys.everything })))));
    expect(answers.map((a) => a.status)).toEqual(Array<number>(50).fill(404));
    expect(azure.keyVault.requestCount({ method: 'GET', path: '/secrets/not-yet-there' })).toBe(1);

    const { eventId } = azure.keyVault.setSecret(VAULT, 'not-yet-there', 'arrived');
    expect(await azure.keyVault.whenDelivered(eventId!)).toMatchObject({ status: 200 });
    const now = await call(host, 'secrets/not-yet-there', { key: keys.everything });
    expect(now.status).toBe(200);
    expect(now.json?.value).toBe('arrived');
  });
});

describe('misses cost the caller who causes them', () => {
  it('answers 100 random versions of one name with a handful of vault requests, 404s then 429 past the miss budget; another caller is not paused', async () => {
    azure.keyVault.setSecret(VAULT, 'bystander-secret', 'bystander-value');
    // The host's vault client has met the auth challenge already (the tests above), so each read is one counted GET.
    expect((await call(host, 'secrets/erp-token', { key: keys.everything })).status).toBe(200);
    azure.keyVault.resetCounts();
    // A reduced vault limit: 100 vault reads would be throttled, and the vault paused for every caller.
    azure.keyVault.setRateLimit({ requests: 10, windowMs: 60_000, retryAfter: 'always' });
    try {
      const answers = [];
      for (let i = 0; i < 100; i++) {
        const version = randomBytes(16).toString('hex');
        const res = await call(host, `secrets/erp-token?version=${version}`, { key: keys.prober });
        answers.push({ version, ...res });
      }
      const statuses = answers.map((a) => `${a.status} ${a.json?.code}`);
      // Its budget (20 misses a minute) answers the first 20 from the name's version list: 404 naming the version.
      expect(statuses.slice(0, 20)).toEqual(Array<string>(20).fill('404 SecretNotFound'));
      expect(answers[0]?.json?.detail).toBe(`No version "${answers[0]?.version}" of secret "erp-token" in vault "default"`);
      // Past it 429 (the budget refills one every 3 s, so a slow run may slip a 404 or two in).
      expect(new Set(statuses)).toEqual(new Set(['404 SecretNotFound', '429 TooManyRequests']));
      expect(statuses.filter((s) => s === '429 TooManyRequests').length).toBeGreaterThanOrEqual(70);
      const refused = answers.find((a) => a.status === 429);
      expect(refused?.headers.get('content-type')).toBe('application/problem+json');
      expect(Number(refused?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(refused?.json?.detail).toMatch(
        /^Caller "prober" is over its budget of 20 vault reads per minute on this instance \(reads the cache could not answer\); retry after \d+ s$/,
      );
      // The vault saw a listing of the name (and at most two re-lists), never a read of a version.
      const listings = azure.keyVault.requestCount({ vault: VAULT, method: 'GET', path: '/secrets/erp-token/versions' });
      expect(listings).toBeGreaterThanOrEqual(1);
      expect(listings).toBeLessThanOrEqual(3);
      expect(azure.keyVault.requestCount({ vault: VAULT })).toBe(listings);
      expect(azure.keyVault.injectedCounts().throttledByLimit).toBe(0);

      // Another caller's first read of another secret: answered by the vault, which never throttled, so the broker never paused it.
      const bystander = await call(host, 'secrets/bystander-secret', { key: keys.bystander });
      expect([bystander.status, bystander.json?.value, bystander.headers.get('x-cache')]).toEqual([200, 'bystander-value', 'MISS']);
      expect(azure.keyVault.requestCount({ vault: VAULT, method: 'GET', path: '/secrets/bystander-secret' })).toBe(1);
      expect(azure.keyVault.injectedCounts()).toMatchObject({ throttledByLimit: 0, throttledByFault: 0 });
    } finally {
      azure.keyVault.setRateLimit(null);
    }
    const mine = auditRecords(host).filter((r) => r.caller === 'prober');
    expect(mine).toHaveLength(100);
    expect(
      mine.filter((r) => r.code === 'TooManyRequests').every((r) => r.secret === 'erp-token' && /^[0-9a-f]{32}$/.test(r.version ?? '')),
    ).toBe(true);
  });
});

describe('refusals are bounded per client address', () => {
  it('answers 2,000 bad-key requests with 60 audited 401s, then 429 without a record each, one aggregate record; a valid caller still gets 200', async () => {
    // A host of its own: its refusal windows start empty, and the other tests' refusals (same address) are not limited.
    const flood = await startBrokerHost(env);
    try {
      const statuses = new Map<string, number>();
      const count = (key: string) => statuses.set(key, (statuses.get(key) ?? 0) + 1);
      const valid: number[] = [];
      for (let round = 0; round < 100; round++) {
        const answers = await Promise.all(
          Array.from({ length: 20 }, () => call(flood, 'secrets/erp-token', { key: `wrong-${randomBytes(4).toString('hex')}` })),
        );
        for (const a of answers) {
          count(`${a.status} ${a.json?.code} retry-after=${a.headers.get('retry-after') === null ? 'no' : 'yes'}`);
          if (a.status === 429) expect(a.headers.get('www-authenticate')).toBeNull();
        }
        if (round % 10 === 0) {
          const ok = await call(flood, 'secrets/erp-token', { key: keys.everything });
          expect(ok.json?.value).toBe('erp-value');
          valid.push(ok.status);
        }
      }
      expect(Object.fromEntries(statuses)).toEqual({
        '401 Unauthenticated retry-after=no': 60,
        '429 TooManyRequests retry-after=yes': 1_940,
      });
      expect(valid).toEqual(Array<number>(10).fill(200));
      // An authenticated caller's 403 from the same address counts as a refusal too.
      const forbidden = await call(flood, `secrets/${SIGNING_KEYS[0]}`, { key: keys.everything });
      expect([forbidden.status, forbidden.json?.code]).toEqual([429, 'TooManyRequests']);
      expect(forbidden.json?.detail).toMatch(
        /^Too many refused requests from this client address \(more than 60 in 60 s\); retry after \d+ s$/,
      );
      expect(forbidden.text).not.toContain('whsec_');

      const during = auditRecords(flood);
      expect(during.filter((r) => r.status === 401)).toHaveLength(60);
      expect(during.filter((r) => r.status === 200 && r.caller === 'everything')).toHaveLength(10);
      expect(during).toHaveLength(70);
    } finally {
      await flood.stop();
    }
    // The window was still open: stopping the host writes its one aggregate record (read to the end of its output).
    for (let i = 0; i < 50 && !auditRecords(flood).some((r) => r.operation === 'refusals'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const records = auditRecords(flood);
    expect(records).toHaveLength(71);
    expect(records.filter((r) => r.operation === 'refusals')).toEqual([
      expect.objectContaining({
        operation: 'refusals',
        caller: null,
        clientAddress: '127.0.0.1',
        outcome: 'denied',
        status: 429,
        code: 'TooManyRequests',
        suppressed: 1_941,
      }),
    ]);
  });
});

describe('revocation', () => {
  it('answers 409 SecretDisabled for a pinned version disabled in the vault, within one TTL', async () => {
    const short = await startBrokerHost({ ...env, CACHE_TTL_SECONDS: '1' });
    try {
      const { version } = azure.keyVault.setSecret(VAULT, 'erp-revoked', 'compromised');
      const pinned = `secrets/erp-revoked?version=${version}`;
      expect((await call(short, pinned, { key: keys.everything })).status).toBe(200);
      expect((await call(short, pinned, { key: keys.everything })).headers.get('x-cache')).toBe('HIT');
      azure.keyVault.updateSecret(VAULT, 'erp-revoked', version, { enabled: false });
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const refused = await call(short, pinned, { key: keys.everything });
      expect(refused.status).toBe(409);
      expect(refused.json).toMatchObject({ code: 'SecretDisabled' });
      expect(refused.text).not.toContain('compromised');
    } finally {
      await short.stop();
    }
  });
});

describe('signing keys are not for callers', () => {
  it.each(SIGNING_KEYS.flatMap((name) => [name, name.toUpperCase()]))(
    'refuses %s to a caller allowed everything, on every route and in a batch',
    async (name) => {
      for (const route of [`secrets/${name}`, `secrets/${name}/metadata`, `secrets/${name}?vault=default`]) {
        const res = await call(host, route, { key: keys.everything });
        expect([route, res.status, res.json?.code]).toEqual([route, 403, 'Forbidden']);
      }
      const res = await batch(host, keys.everything, [name, { name, vault: 'default' }, 'erp-token']);
      expect(res.status).toBe(200);
      expect(res.json?.secrets.map((s: { error?: { code: string } }) => s.error?.code ?? 'OK')).toEqual(['Forbidden', 'Forbidden', 'OK']);
      expect(res.text).not.toContain('whsec_');
    },
  );

  it('leaves signing keys out of the list route', async () => {
    const res = await call(host, 'secrets', { key: keys.everything });
    expect(res.status).toBe(200);
    const names = (res.json?.secrets as { name: string }[]).map((s) => s.name);
    expect(names).toContain('erp-token');
    for (const name of SIGNING_KEYS) expect(names).not.toContain(name);
  });

  it('stops start-up when a second alias names the vault that holds them (no ?vault=<twin> around a reservation or a deny)', async () => {
    const twin = azure.keyVault.vaultUri(VAULT).toUpperCase().replace(/\/$/, ':443');
    const { code, output } = await runBrokerHostToExit({
      ...env,
      KEY_VAULT_ALIASES: `partner=${azure.keyVault.vaultUri('partner-vault')};erp=${twin}`,
    });
    expect(code).toBe(1);
    expect(output.trim()).toBe(`KEY_VAULT_ALIASES: "erp" names the same vault as "default" (https://${VAULT}.vault.azure.net/)`);
  });
});

describe('transport', () => {
  it('stops start-up for plain http to a loopback form other than localhost, 127.0.0.1 or [::1]', async () => {
    const webhook = 'http://127.1:9/hook';
    const { code, output } = await runBrokerHostToExit({
      ...env,
      CONSUMERS: JSON.stringify([{ name: 'erp', events: ['SecretExpired'], webhook, signingSecret: 'whsec-erp' }]),
    });
    expect(code).toBe(1);
    expect(output.trim()).toBe(
      `CONSUMERS: [0].webhook must be an https URL (http only to localhost for local development), got "${webhook}"`,
    );
  });
});
