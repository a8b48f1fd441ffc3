import { randomBytes } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';

/**
 * The claims of a genuine token re-signed with HS256 under a random symmetric key, with the same
 * `kid`: what an attacker tries against a verifier that lets the token pick its algorithm.
 */
export async function hs256Token(genuine: string): Promise<string> {
  const { kid } = decodeProtectedHeader(genuine);
  return new SignJWT(decodeJwt(genuine)).setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid }).sign(randomBytes(32));
}

/** The claims of a genuine token with `alg: none` and an empty signature, built by hand. */
export function unsignedToken(genuine: string): string {
  const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
  const payload = genuine.split('.')[1] ?? '';
  return `${header}.${payload}.`;
}
