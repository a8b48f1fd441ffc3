import http from 'node:http';
import https from 'node:https';
import type { LocalAzure } from '../../local/emulators/localAzure';

export { useLocalAzureInProcess } from '../../local/emulators/inProcessAzure';

/** Fetches a token for `resource` from the emulated App Service identity endpoint, as msal-node does. */
export function managedIdentityToken(azure: LocalAzure, resource: string): Promise<string> {
  const url = `${azure.identity.endpoint}?api-version=2019-08-01&resource=${encodeURIComponent(resource)}`;
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { 'X-IDENTITY-HEADER': azure.identity.header } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve((JSON.parse(body) as { access_token: string }).access_token));
      })
      .on('error', reject);
  });
}

/**
 * A plain HTTPS request straight to an emulator on 127.0.0.1, verifying its certificate for the
 * service's host name (e.g. `contoso.vault.azure.net`, `management.azure.com`).
 */
export function rawHttps(
  azure: LocalAzure,
  target: { port: number; host: string },
  method: string,
  pathAndQuery: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: target.port,
        servername: target.host,
        method,
        path: pathAndQuery,
        headers: { host: target.host, ...headers },
        ca: azure.certPem,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
