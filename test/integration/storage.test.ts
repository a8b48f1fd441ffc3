/**
 * Table storage pieces against a real Azurite (started from the npm package, in memory, on free
 * ports) through the real @azure/data-tables client: the delivery ledger (and its in-memory twin,
 * held to the same cases), cross-instance cache coherence, and the connection-string handling.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureDevelopmentStorage, startAzurite } from '../../local/emulators/azurite';
import type { Azurite } from '../../local/emulators/azurite';
import { createTableCacheCoherence, INVALIDATIONS_TABLE, RETENTION_MS } from '../../shared/events/cacheCoherence';
import {
  createMemoryDeliveryLedger,
  createTableDeliveryLedger,
  DEAD_LETTERS_TABLE,
  DELIVERIES_TABLE,
} from '../../shared/notify/deliveryLedger';
import type { DeliveryLedger } from '../../shared/notify/deliveryLedger';
import { createTableClient, developmentConnectionString, ensureTable, tableErrorStatus } from '../../shared/storage/tableStorage';

let azurite: Azurite;

beforeAll(async () => {
  azurite = await startAzurite({ inMemory: true, ports: { blob: 0, queue: 0, table: 0 } });
});

afterAll(async () => {
  await azurite?.stop();
});

const unique = (label: string): string => `${label}-${randomBytes(6).toString('hex')}`;

/** Waits for `condition` by checking it again and again; fails after `rounds` checks. */
async function waitFor(condition: () => boolean, what: string, rounds = 500): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (condition()) return;
    await new Promise((done) => setTimeout(done, 20));
  }
  throw new Error(`Never happened: ${what}`);
}

describe('startAzurite', () => {
  it('listens on three distinct ports and names them in the connection string', () => {
    const ports = new Set([azurite.blobPort, azurite.queuePort, azurite.tablePort]);
    expect(ports.size).toBe(3);
    expect(ports.has(0)).toBe(false);
    expect(azurite.connectionString).toBe(
      developmentConnectionString({ blob: azurite.blobPort, queue: azurite.queuePort, table: azurite.tablePort }),
    );
    expect(azurite.connectionString).toContain(`TableEndpoint=http://127.0.0.1:${azurite.tablePort}/devstoreaccount1`);
  });

  it('refuses oauth without https, which Azurite requires for bearer tokens', async () => {
    await expect(startAzurite({ oauth: 'basic' })).rejects.toThrow(
      'startAzurite: oauth needs https (Azurite takes bearer tokens over HTTPS only)',
    );
  });

  it('refuses inMemory together with a location', async () => {
    await expect(startAzurite({ inMemory: true, location: os.tmpdir() })).rejects.toThrow(
      'startAzurite: inMemory and location exclude each other',
    );
  });
});

describe('createTableClient', () => {
  it('maps UseDevelopmentStorage=true to Azurite on 127.0.0.1:10002', () => {
    const client = createTableClient('UseDevelopmentStorage=true', 'brokerdeliveries');
    expect(client.url).toBe('http://127.0.0.1:10002/devstoreaccount1');
    expect(client.tableName).toBe('brokerdeliveries');
  });

  it.each([
    [
      'an account key string with EndpointSuffix',
      'DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey=a2V5;EndpointSuffix=core.windows.net',
      'https://contoso.table.core.windows.net',
    ],
    ['an account key string without EndpointSuffix', 'AccountName=contoso;AccountKey=a2V5', 'https://contoso.table.core.windows.net'],
    [
      'a SAS string',
      'TableEndpoint=https://contoso.table.core.windows.net/;SharedAccessSignature=sv=2024-11-04&sig=abc%3D',
      'https://contoso.table.core.windows.net',
    ],
    ['an identity-based endpoint', 'TableEndpoint=https://contoso.table.core.windows.net', 'https://contoso.table.core.windows.net'],
  ])('takes %s', (_label, connectionString, url) => {
    expect(createTableClient(connectionString, 't1').url).toBe(url);
  });

  it('names what is missing from a connection string without an account', () => {
    expect(() => createTableClient('AccountKey=a2V5', 't1')).toThrow(
      'Storage connection string names neither TableEndpoint nor AccountName',
    );
  });

  it.each([
    ['the identity-based setting', 'https://contoso.table.core.windows.net'],
    ['a loopback emulator URI', 'http://127.0.0.1:10002/devstoreaccount1'],
  ])('takes %s with the credential it is given', (_label, tableServiceUri) => {
    const credential = { getToken: () => Promise.resolve(null) };
    const client = createTableClient({ kind: 'identity', tableServiceUri, clientId: undefined, resourceId: undefined }, 't1', credential);
    expect(client.url).toBe(tableServiceUri);
    expect(client.tableName).toBe('t1');
  });

  it('takes the connection-string setting as the string itself', () => {
    expect(createTableClient({ kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' }, 't1').url).toBe(
      'http://127.0.0.1:10002/devstoreaccount1',
    );
  });

  it('tolerates a table another instance created (409 TableAlreadyExists) and creates it once', async () => {
    const name = `t${randomBytes(6).toString('hex')}`;
    await createTableClient(azurite.connectionString, name).createTable();
    const client = createTableClient(azurite.connectionString, name);
    await expect(ensureTable(client)).resolves.toBeUndefined();
    await expect(ensureTable(client)).resolves.toBeUndefined();
    await client.createEntity({ partitionKey: 'p', rowKey: 'r', n: 1 });
    expect((await client.getEntity('p', 'r')).n).toBe(1);
    await client.createEntity({ partitionKey: 'p', rowKey: 'r', n: 2 }).then(
      () => expect('a second create').toBe('refused'),
      (err: unknown) => expect(tableErrorStatus(err)).toBe(409),
    );
  });
});

const ledgers: Array<[string, () => DeliveryLedger]> = [
  ['table', () => createTableDeliveryLedger(azurite.connectionString)],
  ['memory', () => createMemoryDeliveryLedger()],
];

describe.each(ledgers)('DeliveryLedger (%s)', (_kind, create) => {
  const attempt = (eventId: string, status: number | null, error: string | null, at: string) => ({
    eventId,
    consumer: 'erp',
    webhookId: `msg_${eventId}`,
    eventType: 'secretbroker.secret.rotated',
    subject: 'contoso-vault2/erp-api-key',
    status,
    error,
    at: new Date(at),
  });

  it('records attempt, attempt, delivered', async () => {
    const ledger = create();
    const id = unique('evt');
    expect(await ledger.get(id, 'erp')).toBeUndefined();

    const first = await ledger.recordAttempt(attempt(id, 503, 'HTTP 503 from consumer', '2025-03-01T10:00:00.000Z'));
    expect(first).toEqual({
      eventId: id,
      consumer: 'erp',
      webhookId: `msg_${id}`,
      state: 'pending',
      attempts: 1,
      firstAttemptAt: '2025-03-01T10:00:00.000Z',
      lastAttemptAt: '2025-03-01T10:00:00.000Z',
      lastStatus: 503,
      lastError: 'HTTP 503 from consumer',
      deliveredAt: null,
      eventType: 'secretbroker.secret.rotated',
      subject: 'contoso-vault2/erp-api-key',
    });

    const second = await ledger.recordAttempt(attempt(id, null, 'connection refused', '2025-03-01T10:01:00.000Z'));
    expect(second).toMatchObject({
      state: 'pending',
      attempts: 2,
      firstAttemptAt: '2025-03-01T10:00:00.000Z',
      lastAttemptAt: '2025-03-01T10:01:00.000Z',
      lastStatus: null,
      lastError: 'connection refused',
    });

    await ledger.recordAttempt(attempt(id, 204, null, '2025-03-01T10:02:00.000Z'));
    await ledger.markDelivered(id, 'erp', new Date('2025-03-01T10:02:00.000Z'), 204);
    expect(await ledger.get(id, 'erp')).toEqual({
      ...first,
      state: 'delivered',
      attempts: 3,
      lastAttemptAt: '2025-03-01T10:02:00.000Z',
      lastStatus: 204,
      lastError: null,
      deliveredAt: '2025-03-01T10:02:00.000Z',
    });
  });

  it('keeps a delivered record delivered when a late attempt or a second mark arrives', async () => {
    const ledger = create();
    const id = unique('evt');
    await ledger.recordAttempt(attempt(id, 200, null, '2025-03-01T10:00:00.000Z'));
    await ledger.markDelivered(id, 'erp', new Date('2025-03-01T10:00:01.000Z'), 200);

    const late = await ledger.recordAttempt(attempt(id, 500, 'HTTP 500 from consumer', '2025-03-01T10:00:02.000Z'));
    await ledger.markDelivered(id, 'erp', new Date('2025-03-01T10:05:00.000Z'), 202);
    await ledger.markDeadLettered(id, 'erp', new Date('2025-03-01T10:06:00.000Z'), 'gave up');

    expect(late).toMatchObject({ state: 'delivered', attempts: 1, lastStatus: 200, lastError: null });
    expect(await ledger.get(id, 'erp')).toMatchObject({
      state: 'delivered',
      attempts: 1,
      lastStatus: 200,
      deliveredAt: '2025-03-01T10:00:01.000Z',
    });
    expect((await ledger.listDeadLetters()).filter((d) => d.eventId === id)).toEqual([]);
  });

  it('loses no attempt and no delivered mark when instances write at once', async () => {
    const ledger = create();
    const id = unique('evt');
    const attempts = Array.from({ length: 5 }, (_, i) =>
      ledger.recordAttempt(attempt(id, 503, 'HTTP 503 from consumer', `2025-03-01T10:00:0${i}.000Z`)),
    );
    await Promise.all(attempts);
    expect(await ledger.get(id, 'erp')).toMatchObject({ state: 'pending', attempts: 5 });

    await Promise.all([
      ledger.markDelivered(id, 'erp', new Date('2025-03-01T10:01:00.000Z'), 200),
      ledger.recordAttempt(attempt(id, 500, 'HTTP 500 from consumer', '2025-03-01T10:01:01.000Z')),
      ledger.recordAttempt(attempt(id, 500, 'HTTP 500 from consumer', '2025-03-01T10:01:02.000Z')),
    ]);
    const final = await ledger.get(id, 'erp');
    expect(final?.state).toBe('delivered');
    expect(final?.deliveredAt).toBe('2025-03-01T10:01:00.000Z');
    expect(final?.lastStatus).toBe(200);
  });

  it('writes a dead-letter record that listDeadLetters returns', async () => {
    const ledger = create();
    const id = unique('evt');
    await ledger.recordAttempt(attempt(id, 500, 'HTTP 500 from consumer', '2025-03-02T23:59:00.000Z'));
    await ledger.recordAttempt(attempt(id, 500, 'HTTP 500 from consumer', '2025-03-02T23:59:30.000Z'));
    await ledger.markDeadLettered(id, 'erp', new Date('2025-03-02T23:59:59.000Z'), 'no 2xx after 2 attempts');
    // A retry after a crash, or a second instance: the same single row.
    await ledger.markDeadLettered(id, 'erp', new Date('2025-03-03T00:00:05.000Z'), 'another reason');

    expect(await ledger.get(id, 'erp')).toMatchObject({ state: 'deadLettered', attempts: 2 });
    const mine = (await ledger.listDeadLetters()).filter((d) => d.eventId === id);
    expect(mine).toEqual([
      {
        eventId: id,
        consumer: 'erp',
        webhookId: `msg_${id}`,
        eventType: 'secretbroker.secret.rotated',
        subject: 'contoso-vault2/erp-api-key',
        attempts: 2,
        lastStatus: 500,
        lastError: 'HTTP 500 from consumer',
        reason: 'no 2xx after 2 attempts',
        at: '2025-03-02T23:59:59.000Z',
      },
    ]);
    const fromNextDay = await ledger.listDeadLetters({ since: new Date('2025-03-03T00:00:00.000Z') });
    expect(fromNextDay.filter((d) => d.eventId === id)).toEqual([]);
  });

  it('lets a late success win over a dead letter', async () => {
    const ledger = create();
    const id = unique('evt');
    await ledger.recordAttempt(attempt(id, 500, 'HTTP 500 from consumer', '2025-03-01T10:00:00.000Z'));
    await ledger.markDeadLettered(id, 'erp', new Date('2025-03-01T10:10:00.000Z'), 'gave up');
    const counted = await ledger.recordAttempt(attempt(id, 200, null, '2025-03-01T10:11:00.000Z'));
    expect(counted).toMatchObject({ state: 'deadLettered', attempts: 2, lastStatus: 200 });
    await ledger.markDelivered(id, 'erp', new Date('2025-03-01T10:11:00.000Z'), 200);
    expect(await ledger.get(id, 'erp')).toMatchObject({ state: 'delivered', deliveredAt: '2025-03-01T10:11:00.000Z' });
  });

  it('keeps event ids and consumers with characters Table keys forbid apart and readable', async () => {
    const ledger = create();
    const base = unique('evt');
    const odd = [`${base}/a\\b#c?d`, `${base}\u0001\u007f\u0085 é ' "`, `${base}/a\\b#c?e`];
    for (const [i, id] of odd.entries()) {
      await ledger.recordAttempt({ ...attempt(id, 500, 'x', '2025-03-01T10:00:00.000Z'), consumer: `c/${i}#?` });
    }
    for (const [i, id] of odd.entries()) {
      expect(await ledger.get(id, `c/${i}#?`)).toMatchObject({ eventId: id, consumer: `c/${i}#?`, attempts: 1 });
      expect(await ledger.get(id, `c/${(i + 1) % odd.length}#?`)).toBeUndefined();
    }
  });

  it('records the results of one event for many consumers in one batch, after reading them in one query', async () => {
    const ledger = create();
    const id = unique('evt');
    const at = '2025-03-01T10:00:00.000Z';
    const forConsumer = (consumer: string, status: number | null) => ({
      ...attempt(id, status, status === 200 ? null : 'HTTP 503', at),
      consumer,
    });
    // One consumer already has a failed attempt on record.
    await ledger.recordAttempt(forConsumer('c1', 503));
    const known = await ledger.forEvent(id);
    expect([...known.keys()]).toEqual(['c1']);
    const records = await ledger.recordResults([
      { attempt: forConsumer('c1', 200), result: { delivered: true, maxAttempts: 2, reason: 'r' } },
      { attempt: forConsumer('c2', 503), result: { delivered: false, maxAttempts: 2, reason: 'r' } },
      { attempt: forConsumer('c3', 503), result: { delivered: false, maxAttempts: 1, reason: 'gave up' } },
    ]);
    expect(records.map((r) => [r.consumer, r.state, r.attempts])).toEqual([
      ['c1', 'delivered', 2],
      ['c2', 'pending', 1],
      ['c3', 'deadLettered', 1],
    ]);
    expect((await ledger.listDeadLetters()).filter((d) => d.eventId === id).map((d) => [d.consumer, d.reason])).toEqual([
      ['c3', 'gave up'],
    ]);
    expect(await ledger.get(id, 'c1')).toMatchObject({ state: 'delivered', attempts: 2 });
  });

  it('falls back to one write per consumer when another instance wrote after the batch was planned', async () => {
    const ledger = create();
    const id = unique('evt');
    const at = '2025-03-01T10:00:00.000Z';
    const forConsumer = (consumer: string, status: number) => ({
      ...attempt(id, status, status === 200 ? null : 'HTTP 500', at),
      consumer,
    });
    await ledger.recordAttempt(forConsumer('c1', 500));
    await ledger.forEvent(id);
    // Another instance delivers to c1 in between: the planned batch must not overwrite that.
    // (Memory ledgers share nothing across instances, so there the same ledger plays the other.)
    const other = _kind === 'memory' ? ledger : create();
    await other.markDelivered(id, 'c1', new Date(at), 200);
    const records = await ledger.recordResults([
      { attempt: forConsumer('c1', 500), result: { delivered: false, maxAttempts: 5, reason: 'r' } },
      { attempt: forConsumer('c2', 200), result: { delivered: true, maxAttempts: 5, reason: 'r' } },
    ]);
    expect(records.map((r) => [r.consumer, r.state])).toEqual([
      ['c1', 'delivered'],
      ['c2', 'delivered'],
    ]);
  });

  it('cuts long error messages short', async () => {
    const ledger = create();
    const id = unique('evt');
    const record = await ledger.recordAttempt(attempt(id, 500, 'e'.repeat(5000), '2025-03-01T10:00:00.000Z'));
    expect(record.lastError).toHaveLength(300);
    expect(record.lastError?.endsWith('…')).toBe(true);
  });
});

describe('DeliveryLedger in Table storage', () => {
  it('keeps the readable event id and consumer in columns next to hashed keys', async () => {
    const ledger = createTableDeliveryLedger(azurite.connectionString);
    const id = unique('evt/with#odd?chars');
    await ledger.recordAttempt({
      eventId: id,
      consumer: 'erp',
      webhookId: 'msg_1',
      eventType: 'secretbroker.secret.rotated',
      subject: 'v/s',
      status: 500,
      error: 'HTTP 500 from consumer',
      at: new Date('2025-03-01T10:00:00.000Z'),
    });
    const raw = createTableClient(azurite.connectionString, DELIVERIES_TABLE);
    const rows = [];
    for await (const row of raw.listEntities({ queryOptions: { filter: `eventId eq '${id}'` } })) rows.push(row);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.partitionKey).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0]!.rowKey).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0]).toMatchObject({ eventId: id, consumer: 'erp', state: 'pending', attempts: 1 });
    // Nulls are left out, not stored as strings.
    expect(rows[0]).not.toHaveProperty('deliveredAt');
  });

  it('writes dead letters to their own table, partitioned by UTC day', async () => {
    const ledger = createTableDeliveryLedger(azurite.connectionString);
    const id = unique('evt');
    await ledger.markDeadLettered(id, 'erp', new Date('2025-04-05T06:07:08.000Z'), 'consumer gone');
    const raw = createTableClient(azurite.connectionString, DEAD_LETTERS_TABLE);
    const rows = [];
    for await (const row of raw.listEntities({ queryOptions: { filter: `eventId eq '${id}'` } })) rows.push(row);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.partitionKey).toBe('2025-04-05');
    expect(rows[0]!.rowKey).toMatch(/^2025-04-05T06:07:08\.000Z_[0-9a-f]{64}$/);
    expect(rows[0]).toMatchObject({ eventId: id, consumer: 'erp', reason: 'consumer gone', attempts: 0 });
  });
});

describe('CacheCoherence over Table storage', () => {
  // Each test runs at its own fake time, later than every earlier test's, so the rows other tests
  // left in the shared partition are either too old to be read or not written yet.
  let day = 0;
  const clock = () => {
    let t = Date.UTC(2100, 0, 1) + ++day * 10 * RETENTION_MS;
    return {
      now: () => new Date(t),
      advance: (ms: number) => {
        t += ms;
      },
    };
  };

  it('applies what another instance published, for exactly that vault and secret, once', async () => {
    const time = clock();
    const a = createTableCacheCoherence(azurite.connectionString, { now: time.now, instanceId: 'a' });
    const b = createTableCacheCoherence(azurite.connectionString, { now: time.now, instanceId: 'b' });
    await a.publish('contoso-vault2', 'erp-api-key', 'v2');
    time.advance(1000);

    const seen: Array<[string, string]> = [];
    expect(await b.pollOnce((vault, secret) => seen.push([vault, secret]))).toBe(1);
    expect(seen).toEqual([['contoso-vault2', 'erp-api-key']]);
    time.advance(5000);
    expect(await b.pollOnce((vault, secret) => seen.push([vault, secret]))).toBe(0);
    expect(seen).toHaveLength(1);
  });

  it('skips the rows it published itself, and passes the published version on', async () => {
    const time = clock();
    const a = createTableCacheCoherence(azurite.connectionString, { now: time.now, instanceId: 'instance-a' });
    const b = createTableCacheCoherence(azurite.connectionString, { now: time.now, instanceId: 'instance-b' });
    await a.publish('contoso-vault2', 'own-row', 'f'.repeat(32));
    time.advance(1);
    await a.publish('contoso-vault2', 'no-version', null);
    time.advance(1000);

    const seenByA: string[] = [];
    expect(await a.pollOnce((vault, secret, version) => seenByA.push(`${vault}/${secret}@${version}`))).toBe(0);
    expect(seenByA).toEqual([]);
    const seenByB: string[] = [];
    expect(await b.pollOnce((vault, secret, version) => seenByB.push(`${vault}/${secret}@${version}`))).toBe(2);
    expect(seenByB).toEqual([`contoso-vault2/own-row@${'f'.repeat(32)}`, 'contoso-vault2/no-version@undefined']);
  });

  it('reads rows stamped a little in the past (a slower clock) and never re-reads old ones', async () => {
    const time = clock();
    const a = createTableCacheCoherence(azurite.connectionString, { now: time.now });
    const b = createTableCacheCoherence(azurite.connectionString, { now: time.now });
    const seen: string[] = [];
    const apply = (vault: string, secret: string) => seen.push(`${vault}/${secret}`);
    expect(await b.pollOnce(apply)).toBe(0);

    time.advance(5000);
    await a.publish('v', 'skewed', null, new Date(time.now().getTime() - 20_000));
    expect(await b.pollOnce(apply)).toBe(1);

    time.advance(120_000);
    await a.publish('v', 'later', '3');
    expect(await b.pollOnce(apply)).toBe(1);
    time.advance(5000);
    expect(await b.pollOnce(apply)).toBe(0);
    expect(seen).toEqual(['v/skewed', 'v/later']);
  });

  it('ignores rows from before it started and deletes rows past retention', async () => {
    const time = clock();
    const a = createTableCacheCoherence(azurite.connectionString, { now: time.now });
    await a.publish('v', 'ancient', '1', new Date(time.now().getTime() - 2 * RETENTION_MS));
    await a.publish('v', 'before-start', '1', new Date(time.now().getTime() - 60_000));
    const raw = createTableClient(azurite.connectionString, INVALIDATIONS_TABLE);
    const secrets = async () => {
      const names: unknown[] = [];
      for await (const row of raw.listEntities()) names.push(row.secret);
      return names;
    };
    expect(await secrets()).toEqual(expect.arrayContaining(['ancient', 'before-start']));

    const b = createTableCacheCoherence(azurite.connectionString, { now: time.now });
    const seen: string[] = [];
    expect(await b.pollOnce((_vault, secret) => seen.push(secret))).toBe(0);
    expect(seen).toEqual([]);
    const left = await secrets();
    expect(left).not.toContain('ancient');
    expect(left).toContain('before-start');
  });

  it('polls on its own once started and stops when told', async () => {
    const time = clock();
    const a = createTableCacheCoherence(azurite.connectionString, { now: time.now });
    const logged: string[] = [];
    const b = createTableCacheCoherence(azurite.connectionString, {
      now: time.now,
      pollIntervalMs: 50,
      log: (line) => logged.push(line),
    });
    const seen: string[] = [];
    b.start((vault, secret) => seen.push(`${vault}/${secret}`));
    await a.publish('contoso-vault2', 'rotated-while-running', 'v9');
    await waitFor(() => seen.includes('contoso-vault2/rotated-while-running'), 'the timer applied the invalidation');
    b.stop();
    expect(seen).toEqual(['contoso-vault2/rotated-while-running']);
    expect(logged).toEqual([]);
    // Waits for a poll the timer may have started just before stop().
    await b.pollOnce(() => undefined);
  });

  it('logs a failing poll, keeps polling, and never throws', async () => {
    // Answers 403 at once: the SDK does not retry it, so each poll fails quickly.
    const server = createServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' }).end('{"odata.error":{"code":"AuthorizationFailure"}}');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    const logged: string[] = [];
    const coherence = createTableCacheCoherence(developmentConnectionString({ blob: port, queue: port, table: port }), {
      pollIntervalMs: 20,
      log: (line) => logged.push(line),
    });
    try {
      expect(() => coherence.start(() => undefined)).not.toThrow();
      await waitFor(() => logged.length >= 2, 'two failed polls were logged');
      expect(logged[0]).toMatch(/^Cache coherence poll failed, retrying in 20 ms: 403 /);
    } finally {
      coherence.stop();
      await coherence.pollOnce().catch(() => undefined);
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    }
  });
});

/** Three ports nothing listens on right now (the system picks them; they are released at once). */
async function freePorts(): Promise<{ blob: number; queue: number; table: number }> {
  const servers = [createServer(), createServer(), createServer()];
  await Promise.all(servers.map((s) => new Promise<void>((done) => s.listen(0, '127.0.0.1', done))));
  const [blob, queue, table] = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
  return { blob: blob!, queue: queue!, table: table! };
}

describe('ensureDevelopmentStorage', () => {
  // Not on 10000-10002: those belong to the developer (and to other test files' hosts).
  it('starts Azurite when its ports are free, persisting data across restarts', async () => {
    const location = mkdtempSync(path.join(os.tmpdir(), 'broker-azurite-'));
    const ports = await freePorts();
    const connectionString = developmentConnectionString(ports);
    const tableName = `t${randomBytes(6).toString('hex')}`;

    const first = await ensureDevelopmentStorage({ location, ports });
    try {
      expect(first.started).toBe(true);
      const client = createTableClient(connectionString, tableName);
      await ensureTable(client);
      await client.createEntity({ partitionKey: 'p', rowKey: 'r', kept: 'yes' });
    } finally {
      await first.stop();
    }

    const second = await ensureDevelopmentStorage({ location, ports });
    try {
      expect(second.started).toBe(true);
      expect((await createTableClient(connectionString, tableName).getEntity('p', 'r')).kept).toBe('yes');
    } finally {
      await second.stop();
    }
  });

  it('leaves the ports alone when something already listens there', async () => {
    const ports = { ...(await freePorts()), table: azurite.tablePort };
    const storage = await ensureDevelopmentStorage({ location: os.tmpdir(), ports });
    expect(storage.started).toBe(false);
    await expect(storage.stop()).resolves.toBeUndefined();
    // The running Azurite is untouched.
    await expect(ensureTable(createTableClient(azurite.connectionString, DELIVERIES_TABLE))).resolves.toBeUndefined();
  });
});
