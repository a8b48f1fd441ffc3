import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type { LocalAzure } from '../../local/emulators/localAzure';

/** Everything that could steer DefaultAzureCredential or the SDK's proxy away from the emulators. */
const ENV_KEYS = [
  'IDENTITY_ENDPOINT',
  'IDENTITY_HEADER',
  'IDENTITY_SERVER_THUMBPRINT',
  'IMDS_ENDPOINT',
  'MSI_ENDPOINT',
  'MSI_SECRET',
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'ALL_PROXY',
  'all_proxy',
  'NO_PROXY',
  'no_proxy',
  'AZURE_CLIENT_ID',
  'AZURE_TENANT_ID',
  'AZURE_CLIENT_SECRET',
  'AZURE_CLIENT_CERTIFICATE_PATH',
  'AZURE_USERNAME',
  'AZURE_FEDERATED_TOKEN_FILE',
  'AZURE_TOKEN_CREDENTIALS',
];

/**
 * Points the real SDK clients built in this (jest) process at the emulators, through the same
 * standard settings a host process gets. NODE_EXTRA_CA_CERTS is read only at process start;
 * `tls.setDefaultCACertificates` is its in-process equivalent.
 * @returns a function that puts the CA list and the environment back.
 */
export function useLocalAzureInProcess(azure: LocalAzure): () => void {
  const savedCAs = tls.getCACertificates('default');
  tls.setDefaultCACertificates([...savedCAs, azure.certPem]);
  const savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
  for (const k of ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'HTTPS_PROXY', 'NO_PROXY'] as const) {
    process.env[k] = azure.env[k];
  }
  return () => {
    tls.setDefaultCACertificates(savedCAs);
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

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
