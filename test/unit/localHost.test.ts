import { startLocalHost } from '../../local/host';
import type { FunctionDefinition } from '../../functions/index';

describe('the local host', () => {
  it('runs a timer function on its schedule and on demand, handing it a Timer', async () => {
    const inputs: unknown[] = [];
    const definitions: FunctionDefinition[] = [
      { kind: 'timer', name: 'tick', options: { schedule: '* * * * * *', handler: (timer) => void inputs.push(timer) } },
    ];
    const host = await startLocalHost({ definitions, port: 0, write: () => undefined });
    try {
      const deadline = Date.now() + 5_000;
      while (inputs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(inputs[0]).toEqual({ isPastDue: false, schedule: { adjustForDST: false } });
      const res = await fetch(`http://127.0.0.1:${host.port}/admin/functions/tick`, { method: 'POST', body: '{}' });
      expect(res.status).toBe(202);
      const unknown = await fetch(`http://127.0.0.1:${host.port}/admin/functions/nope`, { method: 'POST', body: '{}' });
      expect(unknown.status).toBe(404);
    } finally {
      await host.close();
    }
  });

  it('answers 405 with Allow for a known route and a wrong method, 404 elsewhere', async () => {
    const definitions: FunctionDefinition[] = [
      {
        kind: 'http',
        name: 'hello',
        options: { route: 'hello/{name}', methods: ['GET'], handler: (req) => Promise.resolve({ body: `hi ${req.params.name ?? ''}` }) },
      },
    ];
    const host = await startLocalHost({ definitions, port: 0, write: () => undefined });
    try {
      const ok = await fetch(`http://127.0.0.1:${host.port}/api/hello/w%C3%B6rld`);
      expect(await ok.text()).toBe('hi wörld');
      const wrong = await fetch(`http://127.0.0.1:${host.port}/api/hello/x`, { method: 'DELETE' });
      expect(wrong.status).toBe(405);
      expect(wrong.headers.get('allow')).toBe('GET');
      expect((await fetch(`http://127.0.0.1:${host.port}/api/nothing`)).status).toBe(404);
    } finally {
      await host.close();
    }
  });
});
