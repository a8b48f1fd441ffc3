import { Webhook } from 'standardwebhooks';
import { describeNotification, startDemoConsumer, type DemoConsumer } from '../../local/demoConsumer';
import { newSigningSecret } from '../../local/emulators/webhookReceiver';
import { sendWebhook } from '../../shared/notify/sendWebhook';

const VERSION = '3f2a9c0d5e6b4a1c8d7e6f5a4b3c2d1e';

const rotated = {
  specversion: '1.0',
  id: 'msg_abc',
  source: '/vaults/default',
  type: 'secretbroker.secret.rotated',
  subject: 'default/demo-api-key',
  time: '2026-12-01T00:00:00.000Z',
  datacontenttype: 'application/json',
  data: { vault: 'default', secret: 'demo-api-key', version: VERSION },
};

describe('demo consumer', () => {
  const key = newSigningSecret();
  const lines: string[] = [];
  let consumer: DemoConsumer;

  beforeAll(async () => {
    consumer = await startDemoConsumer({ signingSecret: key, write: (line) => lines.push(line) });
  });
  afterAll(() => consumer.stop());
  beforeEach(() => (lines.length = 0));

  it('verifies a notification signed as the broker signs it, answers 2xx and prints one line', async () => {
    const result = await sendWebhook({ url: consumer.url, webhookId: 'msg_abc', body: JSON.stringify(rotated), signingKey: key });
    expect(result.ok).toBe(true);
    expect(lines).toEqual([`demo consumer: secretbroker.secret.rotated default/demo-api-key version ${VERSION} (signature verified)`]);
  });

  it('handles a webhook-id once: a redelivery is answered 2xx and printed as one', async () => {
    const body = JSON.stringify({ ...rotated, id: 'msg_twice' });
    const first = await sendWebhook({ url: consumer.url, webhookId: 'msg_twice', body, signingKey: key });
    const again = await sendWebhook({ url: consumer.url, webhookId: 'msg_twice', body, signingKey: key });
    expect([first.ok, again.ok]).toEqual([true, true]);
    expect(lines).toEqual([
      `demo consumer: secretbroker.secret.rotated default/demo-api-key version ${VERSION} (signature verified)`,
      `demo consumer: secretbroker.secret.rotated default/demo-api-key version ${VERSION} (signature verified; a redelivery of msg_twice, already handled)`,
    ]);
  });

  it('rejects a notification signed with another key: 401, and says so', async () => {
    const result = await sendWebhook({
      url: consumer.url,
      webhookId: 'msg_abc',
      body: JSON.stringify(rotated),
      signingKey: newSigningSecret(),
    });
    expect(result.status).toBe(401);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^demo consumer: rejected a notification: .+ \(answered 401\)$/);
    expect(lines[0]).not.toContain('verified)');
  });

  it('rejects a body changed after signing', async () => {
    const at = new Date();
    const body = JSON.stringify(rotated);
    const signature = new Webhook(key).sign('msg_abc', at, body);
    const res = await fetch(consumer.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/cloudevents+json; charset=utf-8',
        'webhook-id': 'msg_abc',
        'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
        'webhook-signature': signature,
      },
      body: body.replace(VERSION, 'f'.repeat(32)),
    });
    expect(res.status).toBe(401);
    expect(lines[0]).toContain('rejected a notification');
  });

  it('rejects a request without the Standard Webhooks headers', async () => {
    const res = await fetch(consumer.url, { method: 'POST', body: JSON.stringify(rotated) });
    expect(res.status).toBe(401);
    expect(lines[0]).toContain('rejected a notification');
  });
});

describe('describeNotification', () => {
  it('names a health failure by its failing checks, with secret names but not long targets', () => {
    const failed = {
      type: 'secretbroker.health.failed',
      subject: 'default',
      data: {
        vault: 'default',
        status: 'failed',
        checks: [
          { check: 'listSecrets', target: null, cause: 'ForbiddenByFirewall' },
          { check: 'getSecret', target: 'demo-api-key', cause: 'ForbiddenByFirewall' },
          { check: 'firewall', target: 'expected off, is on (0 IP rule(s), 0 VNet rule(s))', cause: 'FirewallNotAsExpected' },
        ],
      },
    };
    expect(describeNotification(failed)).toBe(
      'secretbroker.health.failed default status failed: listSecrets ForbiddenByFirewall, getSecret demo-api-key ForbiddenByFirewall, firewall FirewallNotAsExpected',
    );
  });

  it('names a recovery by its status', () => {
    expect(describeNotification({ type: 'secretbroker.health.recovered', subject: 'default', data: { status: 'ok', checks: [] } })).toBe(
      'secretbroker.health.recovered default status ok',
    );
  });

  it("names a rotation's retirement by the old version and the rotation's id", () => {
    const retired = {
      type: 'secretbroker.secret.retired',
      subject: 'default/demo-app-secret',
      data: {
        vault: 'default',
        secret: 'demo-app-secret',
        version: VERSION,
        sourceEventId: 'rot-20261206T212800Z-3f9a1c',
        sourceEventType: 'SecretBroker.Rotation',
      },
    };
    expect(describeNotification(retired)).toBe(
      `secretbroker.secret.retired default/demo-app-secret version ${VERSION} (rotation rot-20261206T212800Z-3f9a1c)`,
    );
  });

  it('prints no rotation id that is not one: a line, never free text from the event', () => {
    const line = describeNotification({
      type: 'secretbroker.secret.rotated',
      subject: 'a',
      data: { version: 'v', sourceEventId: 'x y\nz', sourceEventType: 'SecretBroker.Rotation' },
    });
    expect(line).toBe('secretbroker.secret.rotated a version v');
  });

  it('keeps a line one line whatever the event says', () => {
    const line = describeNotification({ type: 'secretbroker.secret.rotated\nforged', subject: 'a', data: { version: 'v' } });
    expect(line).not.toContain('\n');
  });
});
