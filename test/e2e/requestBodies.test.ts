/**
 * End to end: request bodies are bounded while they stream. The local host process hands the batch
 * route a body that streams from the socket; the route reads at most its byte limit and answers
 * 413 TooManySecrets past it, or past 100 items, and the host then closes a connection whose body
 * was not read to its end, so a caller cannot make it buffer a large body or hold the connection.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLocalAzure } from '../../local/emulators/localAzure';
import type { LocalAzure } from '../../local/emulators/localAzure';
import { MAX_BATCH_BODY_BYTES } from '../../shared/secrets/batchRequest';
import { startBrokerHost } from '../support/brokerHost';
import type { BrokerHost } from '../support/brokerHost';
import { filler, streamingPost } from '../support/streamingPost';
import type { StreamingPostResult } from '../support/streamingPost';

const KEY = `bulk-${randomBytes(8).toString('hex')}`;
const policy = {
  callers: [{ name: 'bulk', identities: [{ apiKeySha256: createHash('sha256').update(KEY).digest('hex') }], allow: ['*'] }],
};
const TEN_MIB = 10 * 1024 * 1024;
const CHUNK = 64 * 1024;

let azure: LocalAzure;
let host: BrokerHost;

beforeAll(async () => {
  azure = await startLocalAzure({ stateDir: mkdtempSync(path.join(os.tmpdir(), 'broker-bodies-')), vaults: ['contoso-vault2'] });
  azure.keyVault.setSecret('contoso-vault2', 'erp-token', 'erp-value');
  azure.keyVault.setSecret('contoso-vault2', 'crm-token', 'crm-value');
  host = await startBrokerHost({ ...azure.env, ACCESS_POLICY: JSON.stringify(policy) });
});

afterAll(async () => {
  await host?.stop();
  await azure?.stop();
});

const resolveUrl = (): string => `${host.url}/api/secrets/resolve`;
const headers = (extra: Record<string, string> = {}): Record<string, string> => ({
  'x-api-key': KEY,
  'content-type': 'application/json',
  ...extra,
});

const CLOSED_UNREAD = 'closed the connection of POST /api/secrets/resolve without reading the rest of its body';

/** The host's output lines after the first `from` that contain `text`, once `count` of them arrived. */
async function hostLinesSince(from: number, text: string, count: number): Promise<string[]> {
  const lines = (): string[] =>
    host
      .output()
      .split('\n')
      .slice(from)
      .filter((line) => line.includes(text));
  // The host writes each line when its side of the connection closes, which the client may see first.
  for (let waited = 0; lines().length < count && waited < 10_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  return lines();
}

function expectTooManySecrets(res: StreamingPostResult): void {
  expect(res.status).toBe(413);
  expect(res.headers['content-type']).toBe('application/problem+json');
  expect(res.json).toMatchObject({ status: 413, code: 'TooManySecrets' });
}

describe('batch bodies', () => {
  it.each([
    ['one-letter names, within the byte limit', Array.from({ length: 10_000 }, () => 'a')],
    ['distinct names, past the byte limit', Array.from({ length: 10_000 }, (_, i) => `secret-${i}`)],
  ])('refuses a 10,000-item batch of %s with 413 TooManySecrets', async (_label, secrets) => {
    const body = JSON.stringify({ secrets });
    const res = await streamingPost(resolveUrl(), {
      headers: headers({ 'content-length': String(Buffer.byteLength(body)) }),
      chunks: [body],
      end: true,
    });
    expectTooManySecrets(res);
    res.destroy();
  });

  it('refuses a 10 MiB body sent with Content-Length before it is sent, then closes the connection', async () => {
    const res = await streamingPost(resolveUrl(), {
      headers: headers({ 'content-length': String(TEN_MIB) }),
      chunks: filler(TEN_MIB / CHUNK, CHUNK),
      end: true,
    });
    expectTooManySecrets(res);
    expect(res.headers.connection).toBe('close');
    expect(res.endedAtAnswer).toBe(false);
    expect(res.writtenAtAnswer).toBeLessThan(TEN_MIB);
    expect(await res.closed).toBeLessThan(TEN_MIB);
  });

  it('refuses a chunked body past the limit that never ends with 413 while it is open, then closes the connection', async () => {
    const res = await streamingPost(resolveUrl(), {
      headers: headers(),
      // Four times the limit, in 4 KiB chunks, and never the terminating chunk.
      chunks: filler(Math.ceil((4 * MAX_BATCH_BODY_BYTES) / 4096), 4096),
      end: false,
    });
    expectTooManySecrets(res);
    expect(res.headers.connection).toBe('close');
    expect(res.endedAtAnswer).toBe(false);
    // The server closes it: the client never ends the request nor closes the socket itself.
    await res.closed;
  });

  it('does not read twenty 10 MiB bodies sent at once: each is refused and its connection closed after little of it was read', async () => {
    const linesBefore = host.output().split('\n').length - 1;
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        streamingPost(resolveUrl(), {
          headers: headers({ 'content-length': String(TEN_MIB) }),
          chunks: filler(TEN_MIB / CHUNK, CHUNK),
          end: true,
        }),
      ),
    );
    for (const res of results) expectTooManySecrets(res);
    // The client could not send its whole body before the server closed the connection (what it
    // did send sits mostly in the two sockets' kernel buffers).
    const sent = await Promise.all(results.map((res) => res.closed));
    for (const bytes of sent) expect(bytes).toBeLessThan(TEN_MIB);
    // What the host process took off each connection (socket.bytesRead, as it logs on closing one
    // whose body it did not read to its end): a few chunks, never the body.
    const closedLines = await hostLinesSince(linesBefore, CLOSED_UNREAD, 20);
    expect(closedLines.length).toBeGreaterThanOrEqual(20);
    for (const line of closedLines) {
      const bytesRead = Number(/\((\d+) bytes read from it\)/.exec(line)?.[1]);
      expect(bytesRead).toBeGreaterThan(0);
      expect(bytesRead).toBeLessThan(1024 * 1024);
    }
    // And the host still serves.
    const after = await streamingPost(resolveUrl(), { headers: headers(), chunks: ['{"secrets":["erp-token"]}'], end: true });
    expect(after.status).toBe(200);
    after.destroy();
  });

  it.each([
    ['with Content-Length', true],
    ['chunked', false],
  ])('resolves a valid small batch sent %s', async (_label, withLength) => {
    const body = JSON.stringify({ secrets: ['erp-token', { name: 'crm-token' }, 'missing-one'] });
    const res = await streamingPost(resolveUrl(), {
      headers: headers(withLength ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
      // Chunked: the body arrives in three parts.
      chunks: withLength ? [body] : [body.slice(0, 10), body.slice(10, 30), body.slice(30)],
      end: true,
    });
    expect(res.status).toBe(200);
    expect(res.headers.connection).not.toBe('close');
    const items = res.json?.secrets as { value?: string; error?: { code: string } }[];
    expect(items.map((item) => item.value ?? item.error?.code)).toEqual(['erp-value', 'crm-value', 'SecretNotFound']);
    res.destroy();
  });
});
