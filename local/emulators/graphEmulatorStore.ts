// The Microsoft Graph emulator's directory: applications, their owners and password credentials.
// Sources are cited beside each rule (see docs/azure-fidelity.md).
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { applicationNotFound, invalidObjectId, passwordNotFound, tooManyPasswords } from './graphEmulatorErrors';

/** A password credential as the store keeps it; `secretText` never leaves through GET answers. */
interface StoredPassword {
  keyId: string;
  displayName: string | null;
  startDateTime: string;
  endDateTime: string;
  hint: string;
  secretText: string;
}

interface StoredApplication {
  id: string;
  appId: string;
  displayName: string;
  createdDateTime: string;
  owners: Set<string>;
  maxPasswords: number | undefined;
  passwords: StoredPassword[];
}

/** A password credential as Graph answers it in an application (Learn: "passwordCredential resource type"). */
export interface PasswordCredentialView {
  customKeyIdentifier: null;
  displayName: string | null;
  endDateTime: string;
  hint: string;
  keyId: string;
  /** Learn: "passwordCredential resource type": secretText is returned only by addPassword; GET answers null. */
  secretText: null;
  startDateTime: string;
}

/** The addPassword answer: the credential with its secret text, the only time Graph returns it. */
export type AddedPassword = Omit<PasswordCredentialView, 'secretText'> & { secretText: string };

/** An application to create through the control API. */
export interface EmulatorApplicationOptions {
  /** Object id (`id`); a new GUID by default. */
  objectId?: string;
  /** Application (client) id (`appId`); a new GUID by default. */
  appId?: string;
  displayName: string;
  /** Object ids of service principals (e.g. a managed identity's principal id) that own the application. */
  owners?: string[];
  /**
   * The most passwords the application may hold, as an application whose policy limits it answers
   * `TooManyAppPasswords` (public report Azure/azure-cli#12946). Unlimited by default: Learn documents no
   * general count limit for passwordCredentials.
   */
  maxPasswords?: number;
}

/** Learn: "passwordCredential resource type" / "application: addPassword" (request body properties). */
export interface NewPassword {
  displayName?: string | null;
  startDateTime?: string;
  endDateTime?: string;
}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Learn: "application: addPassword" (endDateTime): "The default value is startDateTime + 2 years". */
const DEFAULT_LIFETIME_YEARS = 2;
/** Learn: "passwordCredential resource type" (secretText): generated passwords are 16-64 characters; 40 is modelled. */
const SECRET_LENGTH = 40;
/** Unsourced: the generated alphabet is modelled (the documented example mixes letters, digits and punctuation). */
const SECRET_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-';

export function isGuid(value: string): boolean {
  return GUID_RE.test(value);
}

/** Graph timestamps: ISO 8601 in UTC with seven fractional digits (Learn addPassword example `2019-09-09T19:50:29.3086381Z`). */
function graphTimestamp(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$10000Z');
}

export class GraphStore {
  private readonly apps = new Map<string, StoredApplication>();

  createApplication(opts: EmulatorApplicationOptions): { objectId: string; appId: string } {
    const id = (opts.objectId ?? randomUUID()).toLowerCase();
    const appId = (opts.appId ?? randomUUID()).toLowerCase();
    if (!isGuid(id) || !isGuid(appId)) throw new Error('objectId and appId must be GUIDs');
    if (this.apps.has(id) || this.findByAppId(appId)) throw new Error(`An application with id ${id} or appId ${appId} exists`);
    if (opts.maxPasswords !== undefined && (!Number.isInteger(opts.maxPasswords) || opts.maxPasswords < 0)) {
      throw new Error('maxPasswords must be a non-negative integer');
    }
    this.apps.set(id, {
      id,
      appId,
      displayName: opts.displayName,
      createdDateTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      owners: new Set((opts.owners ?? []).map((o) => o.toLowerCase())),
      maxPasswords: opts.maxPasswords,
      passwords: [],
    });
    return { objectId: id, appId };
  }

  addOwner(objectId: string, principalId: string): void {
    this.get(objectId).owners.add(principalId.toLowerCase());
  }

  removeOwner(objectId: string, principalId: string): void {
    this.get(objectId).owners.delete(principalId.toLowerCase());
  }

  isOwner(app: StoredApplication, principalId: string): boolean {
    return app.owners.has(principalId.toLowerCase());
  }

  /** Looks an application up by object id or by `appId` (the alternate key); throws Graph's 400/404. */
  resolve(key: { id: string } | { appId: string }): StoredApplication {
    if ('id' in key) {
      // Unsourced: a malformed id answering 400 rather than 404 is modelled.
      if (!isGuid(key.id)) throw invalidObjectId(key.id);
      const app = this.apps.get(key.id.toLowerCase());
      if (!app) throw applicationNotFound(key.id);
      return app;
    }
    const app = this.findByAppId(key.appId);
    if (!app) throw applicationNotFound(key.appId);
    return app;
  }

  /** The application as GET answers it: Learn "application resource type" (id, appId, displayName, createdDateTime, keyCredentials, passwordCredentials). */
  view(app: StoredApplication): Record<string, unknown> {
    return {
      id: app.id,
      appId: app.appId,
      displayName: app.displayName,
      createdDateTime: app.createdDateTime,
      keyCredentials: [],
      passwordCredentials: app.passwords.map((p) => passwordView(p)),
    };
  }

  /**
   * Learn: "application: addPassword": adds a strong password generated by the service; start defaults
   * to now, end to start + 2 years; the answer is the passwordCredential with `secretText` (and only this
   * answer carries it).
   */
  addPassword(app: StoredApplication, body: NewPassword): AddedPassword {
    // Public report Azure/azure-cli#12946: the count in the message is the one the request would reach.
    if (app.maxPasswords !== undefined && app.passwords.length + 1 > app.maxPasswords) {
      throw tooManyPasswords(app.passwords.length + 1, app.maxPasswords);
    }
    const start = body.startDateTime ? new Date(body.startDateTime) : new Date();
    const end = body.endDateTime ? new Date(body.endDateTime) : addYears(start, DEFAULT_LIFETIME_YEARS);
    const secretText = generateSecret();
    const stored: StoredPassword = {
      keyId: randomUUID(),
      displayName: body.displayName ?? null,
      startDateTime: graphTimestamp(start),
      endDateTime: graphTimestamp(end),
      // Learn: "passwordCredential resource type" (hint): the first three characters of the password.
      hint: secretText.slice(0, 3),
      secretText,
    };
    app.passwords.push(stored);
    return { ...passwordView(stored), secretText };
  }

  /** Learn: "application: removePassword": removes the password with `keyId`; unknown keyId is a 400 (see graphEmulatorErrors). */
  removePassword(app: StoredApplication, keyId: string): void {
    const index = app.passwords.findIndex((p) => p.keyId === keyId.toLowerCase());
    if (index === -1) throw passwordNotFound(keyId);
    app.passwords.splice(index, 1);
  }

  /** Control API: the password credentials of an application, without secret text. */
  passwords(objectId: string): PasswordCredentialView[] {
    return this.get(objectId).passwords.map((p) => passwordView(p));
  }

  /** Control API: whether `text` is the secret of password `keyId` (compared in constant time). */
  secretMatches(objectId: string, keyId: string, text: string): boolean {
    const stored = this.get(objectId).passwords.find((p) => p.keyId === keyId.toLowerCase());
    if (!stored) return false;
    const a = Buffer.from(stored.secretText);
    const b = Buffer.from(text);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** Control API: an application by object id, or an Error (not a Graph answer). */
  get(objectId: string): StoredApplication {
    const app = this.apps.get(objectId.toLowerCase());
    if (!app) throw new Error(`Unknown application: ${objectId}`);
    return app;
  }

  private findByAppId(appId: string): StoredApplication | undefined {
    const wanted = appId.toLowerCase();
    for (const app of this.apps.values()) if (app.appId === wanted) return app;
    return undefined;
  }
}

export type { StoredApplication };

function passwordView(p: StoredPassword): PasswordCredentialView {
  return {
    customKeyIdentifier: null,
    displayName: p.displayName,
    endDateTime: p.endDateTime,
    hint: p.hint,
    keyId: p.keyId,
    secretText: null,
    startDateTime: p.startDateTime,
  };
}

function addYears(date: Date, years: number): Date {
  const d = new Date(date.getTime());
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d;
}

function generateSecret(): string {
  const bytes = randomBytes(SECRET_LENGTH);
  let out = '';
  for (const b of bytes) out += SECRET_ALPHABET[b % SECRET_ALPHABET.length];
  return out;
}
