import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { newSigningSecret, startWebhookReceiver } from '../../local/emulators/webhookReceiver';
import { deliverNotifications } from '../../shared/notify/deliverNotifications';
import type { PendingNotification } from '../../shared/notify/deliverNotifications';
import { createMemoryDeliveryLedger } from '../../shared/notify/deliveryLedger';
import { sendWebhook } from '../../shared/notify/sendWebhook';
import type { WebhookResult } from '../../shared/notify/sendWebhook';
import { createTelemetry } from '../../shared/telemetry';

const telemetry = createTelemetry(undefined);
const ok: WebhookResult = { status: 200, ok: true, error: null, durationMs: 1 };
const down: WebhookResult = { status: 503, ok: false, error: 'HTTP 503', durationMs: 1 };

function pending(consumer: string, send: () => Promise<WebhookResult>, eventId = 'event-1'): PendingNotification {
  return {
    consumer,
    sourceEventId: eventId,
    type: 'secretbroker.secret.rotated',
    subject: 'default/erp-token',
    eventTime: new Date().toISOString(),
    webhookId: `msg_${consumer}`,
    send: jest.fn(send),
  };
}

describe('deliverNotifications', () => {
  it('delivers to each consumer once and skips those that already answered 2xx', async () => {
    const ledger = createMemoryDeliveryLedger();
    const log: string[] = [];
    const first = [pending('erp', () => Promise.resolve(ok)), pending('crm', () => Promise.resolve(down))];
    const outcomes = await deliverNotifications(first, { ledger, telemetry, log: (l) => log.push(l) });
    expect(outcomes.map((o) => [o.consumer, o.state, o.attempt])).toEqual([
      ['erp', 'delivered', 1],
      ['crm', 'failed', 1],
    ]);
    // Event Grid redelivers: erp is not sent it again, crm is retried.
    const again = [pending('erp', () => Promise.resolve(ok)), pending('crm', () => Promise.resolve(ok))];
    const retried = await deliverNotifications(again, { ledger, telemetry, log: (l) => log.push(l) });
    expect(retried.map((o) => [o.consumer, o.state, o.attempt])).toEqual([
      ['erp', 'alreadyDelivered', 1],
      ['crm', 'delivered', 2],
    ]);
    expect(again[0]!.send).not.toHaveBeenCalled();
    expect(log.some((l) => l.includes('consumer=crm') && l.includes('outcome=failed'))).toBe(true);
  });

  it('dead-letters a consumer after the last attempt and stops sending to it', async () => {
    const ledger = createMemoryDeliveryLedger();
    const states: string[] = [];
    for (let i = 0; i < 4; i++) {
      const [outcome] = await deliverNotifications([pending('gone', () => Promise.resolve(down))], {
        ledger,
        telemetry,
        log: () => undefined,
        maxAttempts: 3,
      });
      states.push(outcome!.state);
    }
    expect(states).toEqual(['failed', 'failed', 'deadLettered', 'alreadyDeadLettered']);
    const dead = await ledger.listDeadLetters();
    expect(dead).toEqual([
      expect.objectContaining({
        eventId: 'event-1',
        consumer: 'gone',
        webhookId: 'msg_gone',
        attempts: 3,
        reason: expect.stringContaining('no 2xx after 3 attempts'),
      }),
    ]);
  });

  it('sends to every consumer at once, so one slow webhook does not hold up the others', async () => {
    let inFlight = 0;
    let peak = 0;
    const slow = async (): Promise<WebhookResult> => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 20));
      inFlight--;
      return ok;
    };
    await deliverNotifications(
      Array.from({ length: 30 }, (_, i) => pending(`c${i}`, slow)),
      { ledger: createMemoryDeliveryLedger(), telemetry, log: () => undefined },
    );
    expect(peak).toBe(30);
  });
});

describe('sendWebhook', () => {
  it('signs per Standard Webhooks so a consumer verifies it, as a CloudEvents structured body', async () => {
    const signingKey = newSigningSecret();
    const receiver = await startWebhookReceiver({ signingSecret: signingKey });
    try {
      const body = JSON.stringify({ specversion: '1.0', id: 'msg_1', type: 'secretbroker.secret.rotated', source: '/vaults/default' });
      const result = await sendWebhook({ url: receiver.url, webhookId: 'msg_1', body, signingKey });
      expect(result).toMatchObject({ status: 200, ok: true, error: null });
      const [request] = receiver.received();
      expect(request).toMatchObject({ verified: true });
      expect(request!.headers['content-type']).toBe('application/cloudevents+json; charset=utf-8');
      expect(request!.headers['webhook-id']).toBe('msg_1');
      // The same headers do not verify a tampered body.
      expect(() => new Webhook(signingKey).verify(body.replace('rotated', 'expired'), request!.headers)).toThrow();
    } finally {
      await receiver.stop();
    }
  });

  it('takes the status and cancels the body, so a consumer whose body never ends does not hold it', async () => {
    let closed!: () => void;
    const connectionClosed = new Promise<void>((resolve) => (closed = resolve));
    const consumer = http.createServer((req, res) => {
      req.resume();
      res.on('close', () => closed());
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('x'.repeat(64 * 1024)); // and never ends
    });
    await new Promise<void>((resolve) => consumer.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(consumer.address() as AddressInfo).port}/hook`;
      // A timeout past the test's own: only cancelling the body lets this return.
      const result = await sendWebhook({ url, webhookId: 'msg_5', body: '{}', signingKey: newSigningSecret(), timeoutMs: 600_000 });
      expect(result).toMatchObject({ status: 200, ok: true, error: null });
      await connectionClosed;
    } finally {
      consumer.closeAllConnections();
      await new Promise((resolve) => consumer.close(resolve));
    }
  });

  it('reports a consumer that is down or slow without throwing', async () => {
    const receiver = await startWebhookReceiver({ signingSecret: newSigningSecret(), delayMs: 500 });
    try {
      const slow = await sendWebhook({ url: receiver.url, webhookId: 'msg_2', body: '{}', signingKey: newSigningSecret(), timeoutMs: 50 });
      expect(slow).toMatchObject({ status: null, ok: false, error: 'no answer within 50 ms' });
    } finally {
      await receiver.stop();
    }
    const refused = await sendWebhook({ url: receiver.url, webhookId: 'msg_3', body: '{}', signingKey: newSigningSecret() });
    expect(refused).toMatchObject({ status: null, ok: false, error: 'ECONNREFUSED' });
    const badKey = await sendWebhook({ url: receiver.url, webhookId: 'msg_4', body: '{}', signingKey: 'whsec_not base64!' });
    expect(badKey).toMatchObject({ ok: false, error: 'signing key is not a valid whsec_ key' });
  });
});
