/**
 * Runs rotations of Entra application client secrets (see docs/rotation.md): each step against
 * Microsoft Graph, Key Vault, the adoption reader and the consumers, the record persisted after
 * every step, and before a step writes to Graph or Key Vault a lease on the record (`claimedBy`,
 * `claimedUntil`, saved with the ETag), so two runs never act on one rotation at once and a crash
 * between any two steps resumes where it stopped: without a second password, and without skipping a step.
 *
 * A secret rotates only when `ROTATION_TARGETS` lists it with the application its tags name: tags
 * anyone with write access to a vault can set never choose an application alone (docs/rotation.md).
 *
 * The secret text exists only in the local variable between `addPassword` and `setSecret`: it is
 * never persisted, logged, or put into an error or a record.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { isRestError } from '@azure/core-rest-pipeline';
import type { SecretClient } from '@azure/keyvault-secrets';
import type { AdoptionReader } from '../adoption/adoptionTypes';
import { rotationTargetKey } from '../config';
import { GraphError } from '../graph/graphClient';
import type { GraphClient } from '../graph/graphClient';
import { BrokerRefusal, failureOf, vaultCall, vaultError } from './rotationErrors';
import {
  decideRetirement,
  findOldKeyId,
  leaseHeldByOther,
  LEASE_MS,
  newRotationRecord,
  passwordEndDate,
  planPassword,
  resumeState,
  retirementDeadline,
  rotationIdOf,
  stepOf,
} from './rotationSteps';
import { isTagRefusal, newVersionTags, readRotationTags, TAG_KEY_ID, TAG_ROTATION_ID } from './rotationTags';
import type { RetirementSettings, RotationReason, RotationRecord, RotationStep } from './rotationTypes';
import { RotationConflictError, type RotationStore } from './tableRotationStore';

/** The Graph calls a rotation makes (the GraphClient of the rotation identity). */
export type RotationGraph = Pick<GraphClient, 'getApplication' | 'addPassword' | 'removePassword'>;

/** The Key Vault calls a rotation makes: a SecretClient built with the rotation identity's credential. */
export type RotationVault = Pick<SecretClient, 'getSecret' | 'setSecret' | 'updateSecretProperties' | 'listPropertiesOfSecretVersions'>;

/**
 * Tells consumers. Both may be called again for the same rotation after a crash: the rotation id
 * is the stable key that lets the delivery ledger send each at most once per consumer.
 */
export interface RotationNotifier {
  /** The new version is stored (`secretbroker.secret.rotated`). */
  rotated(vault: string, secret: string, version: string, rotationId: string): Promise<void>;
  /** The old version is disabled and its password removed (`secretbroker.secret.retired`). */
  retired(vault: string, secret: string, oldVersion: string, rotationId: string): Promise<void>;
}

export interface RotationRunnerDeps {
  graph: RotationGraph;
  /** A writer per vault alias. */
  vaults: ReadonlyMap<string, RotationVault>;
  store: RotationStore;
  adoption: AdoptionReader;
  notify: RotationNotifier;
  /** Drops the cached value on every instance (cache coherence), as for any new version. */
  refresh(vault: string, secret: string, version: string): Promise<void>;
  settings: RetirementSettings;
  /**
   * `ROTATION_TARGETS`: `alias/name` (lower case) → the application object id (lower case) the secret
   * may rotate. A secret not listed, or whose `entraAppObjectId` tag names another application, is refused.
   */
  targets: ReadonlyMap<string, string>;
  /** Default: the system clock. */
  now?: () => Date;
  /** Lines without secrets: ids, states, services' codes. */
  log?: (line: string) => void;
  /** Random hex for rotation ids (default: 3 random bytes). */
  randomHex?: () => string;
}

/** Why a secret cannot be rotated at all (a 409-like answer: nothing was started). */
export type RotationRefusalCode = 'NotTagged' | 'InvalidTags' | 'NotATarget' | 'UnknownVault' | 'SecretNotFound';

export type RotationStartResult =
  { outcome: 'started' | 'resumed'; record: RotationRecord } | { outcome: 'refused'; code: RotationRefusalCode; message: string };

/** The latest persisted record of one advance. */
interface Cursor {
  record: RotationRecord;
}
/** Saves the record with a patch (and a new `updatedAt`), keeping the cursor current. */
type Persist = (r: RotationRecord, patch: Partial<RotationRecord>) => Promise<RotationRecord>;

export class RotationRunner {
  private readonly now: () => Date;
  private readonly log: (line: string) => void;
  private readonly randomHex: () => string;

  constructor(private readonly deps: RotationRunnerDeps) {
    this.now = deps.now ?? (() => new Date());
    this.log = deps.log ?? (() => undefined);
    this.randomHex = deps.randomHex ?? (() => randomBytes(3).toString('hex'));
  }

  /**
   * Starts a rotation of the secret, or resumes its active one (a failed one included), and runs
   * every step that can run now. Refused, with nothing started, when the vault is unknown, the
   * secret is missing, or its tags do not opt it in.
   */
  async start(vault: string, secret: string, reason: RotationReason): Promise<RotationStartResult> {
    const client = this.deps.vaults.get(vault);
    if (!client) return { outcome: 'refused', code: 'UnknownVault', message: `No vault writer for alias "${vault}".` };
    const active = await this.deps.store.active(vault, secret);
    if (active) return { outcome: 'resumed', record: await this.resume(active) };

    let latest: Awaited<ReturnType<RotationVault['getSecret']>>['properties'];
    try {
      // Only the properties are kept; the value is not needed here.
      latest = (await client.getSecret(secret)).properties;
    } catch (err: unknown) {
      if (isRestError(err) && err.statusCode === 404) {
        return { outcome: 'refused', code: 'SecretNotFound', message: `Secret ${secret} does not exist in vault "${vault}".` };
      }
      throw vaultError(err);
    }
    const tags = readRotationTags(latest.tags);
    if (isTagRefusal(tags)) return { outcome: 'refused', code: tags.code, message: tags.message };
    const notTarget = this.targetRefusal(vault, secret, tags.applicationObjectId);
    if (notTarget) return { outcome: 'refused', code: 'NotATarget', message: notTarget };
    const now = this.now();
    const record = newRotationRecord({
      id: rotationIdOf(now, this.randomHex()),
      vault,
      secret,
      applicationObjectId: tags.applicationObjectId,
      validityDays: tags.validityDays,
      reason,
      oldVersion: latest.version ?? '',
      oldExpiresOn: latest.expiresOn,
      carriedTags: { ...latest.tags },
      now,
    });
    const begun = await this.deps.store.begin(record);
    if (!begun.won) return { outcome: 'resumed', record: await this.resume(begun.active) };
    this.log(`rotation ${record.id} ${vault}/${secret}: started (${reason})`);
    return { outcome: 'started', record: await this.resume(begun.record) };
  }

  /**
   * Why the secret may not rotate the application its tag names, or undefined when ROTATION_TARGETS
   * lists it with exactly that application.
   */
  private targetRefusal(vault: string, secret: string, applicationObjectId: string): string | undefined {
    const key = rotationTargetKey(vault, secret);
    const listed = this.deps.targets.get(key);
    if (listed === applicationObjectId.toLowerCase()) return undefined;
    if (this.deps.targets.size === 0) {
      return `ROTATION_TARGETS lists no secret, so none rotates (deny by default): add "${key}": "<application object id>" to it.`;
    }
    if (listed === undefined) return `Secret ${key} is not listed in ROTATION_TARGETS: add "${key}": "<application object id>" to it.`;
    return `Tag entraAppObjectId names application ${applicationObjectId}, but ROTATION_TARGETS lists ${listed} for ${key}: correct the tag or ROTATION_TARGETS.`;
  }

  /**
   * The `brokerRotationId` tag of one version of a secret (one Key Vault read; only its properties
   * are kept), or undefined when it has none or the version cannot be read.
   */
  async rotationIdOfVersion(vault: string, secret: string, version: string): Promise<string | undefined> {
    const client = this.deps.vaults.get(vault);
    if (!client) return undefined;
    try {
      return (await client.getSecret(secret, { version })).properties.tags?.[TAG_ROTATION_ID];
    } catch (err: unknown) {
      if (isRestError(err)) return undefined;
      throw err;
    }
  }

  /** Advances a rotation found active; when another run is moving it on right now, answers it as stored. */
  private async resume(record: RotationRecord): Promise<RotationRecord> {
    try {
      return await this.advance(record);
    } catch (err: unknown) {
      if (!(err instanceof RotationConflictError)) throw err;
      return (await this.deps.store.get(record.vault, record.secret, record.id)) ?? record;
    }
  }

  /**
   * Runs every step that can run now, persisting after each; stops when the rotation waits for
   * adoption, is retired, or fails (the failure is persisted, not thrown). A failed record is
   * retried from the step that failed. A record another run holds the lease of (unexpired) is answered
   * as it is: that run moves it on; an expired lease is taken over.
   * @throws RotationConflictError when another run moved the rotation on meanwhile; storage errors.
   */
  async advance(record: RotationRecord): Promise<RotationRecord> {
    const from = resumeState(record);
    if (from === undefined) return record;
    const runId = randomUUID();
    if (leaseHeldByOther(record, runId, this.now())) {
      this.log(`rotation ${record.id} ${record.vault}/${record.secret}: held by another run until ${record.claimedUntil ?? '?'}`);
      return record;
    }
    // The latest persisted record (with its ETag), so a failure is written over the step's last save.
    const cur: Cursor = { record: record.state === 'failed' ? { ...record, state: from, failure: undefined } : record };
    let r = cur.record;
    for (;;) {
      const step = stepOf(r.state);
      if (!step) break;
      const before = r.state;
      try {
        r = await this.run(step, cur, runId);
      } catch (err: unknown) {
        const failure = failureOf(err, step, cur.record, resumeState(cur.record) ?? 'started', this.now());
        if (!failure) throw err;
        const released = withoutLease(cur.record);
        r = await this.deps.store.save({ ...released, state: 'failed', failure, updatedAt: failure.at });
        this.log(`rotation ${r.id} ${r.vault}/${r.secret}: failed at ${step}: ${failure.service} ${failure.code}`);
        return r;
      }
      if (r.state === before) break;
      this.log(`rotation ${r.id} ${r.vault}/${r.secret}: ${before} -> ${r.state}`);
    }
    // The lease ends with the run: the next run (a timer, an operator) need not wait for it to expire.
    if (r.claimedBy === runId) r = cur.record = await this.deps.store.save(withoutLease(r));
    if (r.state === 'retired') await this.deps.store.release(r);
    return r;
  }

  /** Advances every active rotation (failed ones are retried); for a timer. One rotation's trouble stops no other. */
  async advanceAll(): Promise<RotationRecord[]> {
    const out: RotationRecord[] = [];
    for (const record of await this.deps.store.listActive()) {
      try {
        out.push(await this.advance(record));
      } catch (err: unknown) {
        const what =
          err instanceof RotationConflictError ? 'moved on by another run' : `not advanced: ${err instanceof Error ? err.name : 'error'}`;
        this.log(`rotation ${record.id} ${record.vault}/${record.secret}: ${what}`);
      }
    }
    return out;
  }

  private async run(step: RotationStep, cur: Cursor, runId: string): Promise<RotationRecord> {
    // Every save of a run holding the lease renews it.
    const persist = async (r: RotationRecord, patch: Partial<RotationRecord>): Promise<RotationRecord> => {
      const now = this.now();
      const lease =
        r.claimedBy === runId || patch.claimedBy === runId ? { claimedUntil: new Date(now.getTime() + LEASE_MS).toISOString() } : {};
      cur.record = await this.deps.store.save({ ...r, ...patch, ...lease, updatedAt: now.toISOString() });
      return cur.record;
    };
    // The lease, saved with the ETag before the step writes to Graph or Key Vault: of two runs holding
    // the same record, the second's save fails, and a run that reads the record later finds the lease.
    // Awaiting adoption writes only the record, whose ETag guards it.
    if (step !== 'awaitAdoption' && cur.record.claimedBy !== runId) await persist(cur.record, { claimedBy: runId });
    const r = cur.record;
    switch (step) {
      case 'newPassword':
        return this.newPassword(r, persist);
      case 'announce':
        return this.announce(r, persist);
      case 'awaitAdoption':
        return this.awaitAdoption(r, persist);
      case 'removeOldPassword':
        return this.removeOldPassword(r, persist);
      case 'disableOldVersion':
        return this.disableOldVersion(r, persist);
      case 'notifyRetired':
        return this.notifyRetired(r, persist);
    }
  }

  /** `started` / `passwordAdded` → `stored`: find or add the password, and store its text as a new version. */
  private async newPassword(record: RotationRecord, persist: Persist): Promise<RotationRecord> {
    const vault = this.vault(record.vault);
    // The lease (see run) was saved before anything is added.
    let r = record;
    const app = await this.deps.graph.getApplication(r.applicationObjectId);
    const stored = await vaultCall(() => storedKeyIds(vault, r.secret));
    const plan = planPassword(r.displayName, app.passwordCredentials, new Map([...stored].map(([k, v]) => [k, v.version])));

    if (plan.kind === 'adopt') {
      // A crash came after the write: the version exists; only the record is behind.
      for (const keyId of plan.remove) await this.removeIfPresent(r.applicationObjectId, keyId);
      const cred = app.passwordCredentials.find((p) => p.keyId === plan.keyId);
      const createdOn = stored.get(plan.keyId.toLowerCase())?.createdOn ?? this.now();
      return persist(r, {
        state: 'stored',
        newKeyId: plan.keyId,
        newEndDateTime: cred?.endDateTime ?? r.newEndDateTime,
        newVersion: plan.version,
        newVersionCreatedAt: createdOn.toISOString(),
        deadline: this.deadlineOf(r, createdOn),
      });
    }
    if (plan.kind === 'refuse') {
      throw new BrokerRefusal(
        'TooManyPasswords',
        `Application ${r.applicationObjectId} holds ${plan.foreign.length} passwords the broker did not add (keyIds ${plan.foreign.join(', ')}); adding one would exceed two.`,
      );
    }

    // The old password, found before the new one exists (the hint compare reads the old value only
    // here). A keyId from the `entraKeyId` tag counts only when that password's hint matches the old value.
    if (r.oldKeyIdSource === undefined) {
      const tagKeyId = readTagKeyId(r.carriedTags);
      const oldValue = (await vaultCall(() => vault.getSecret(r.secret, { version: r.oldVersion }))).value;
      const old = findOldKeyId(tagKeyId, app.passwordCredentials, r.displayName, oldValue);
      r = await persist(r, { oldKeyId: old.keyId, oldKeyIdSource: old.source });
    }
    // Ours whose text is lost (added, then a crash before the write) go first: never three passwords.
    for (const keyId of plan.remove) await this.removeIfPresent(r.applicationObjectId, keyId);

    const end = passwordEndDate(this.now(), r.validityDays);
    const added = await this.deps.graph.addPassword(r.applicationObjectId, { displayName: r.displayName, endDateTime: end });
    const secretText = added.secretText;
    const newEnd = added.endDateTime ?? end.toISOString();
    r = await persist(r, { state: 'passwordAdded', newKeyId: added.keyId, newEndDateTime: newEnd });
    const written = await vaultCall(
      () => vault.setSecret(r.secret, secretText, { expiresOn: new Date(newEnd), tags: newVersionTags(r.carriedTags, added.keyId, r.id) }),
      secretText,
    );
    const createdOn = written.properties.createdOn ?? this.now();
    return persist(r, {
      state: 'stored',
      newVersion: written.properties.version ?? '',
      newVersionCreatedAt: createdOn.toISOString(),
      deadline: this.deadlineOf(r, createdOn),
    });
  }

  /** `stored` → `awaitingAdoption`: every cache refreshed, consumers told (again after a crash: same ids). */
  private async announce(r: RotationRecord, persist: Persist): Promise<RotationRecord> {
    const version = r.newVersion ?? '';
    await this.deps.refresh(r.vault, r.secret, version);
    await this.deps.notify.rotated(r.vault, r.secret, version, r.id);
    return persist(r, { state: 'awaitingAdoption', announcedAt: this.now().toISOString() });
  }

  /** `awaitingAdoption` → `retiring` once every recent reader of the old version moved, or at the deadline. */
  private async awaitAdoption(r: RotationRecord, persist: Persist): Promise<RotationRecord> {
    const rows = await this.deps.adoption.read(r.vault, r.secret);
    const now = this.now();
    const decision = decideRetirement(r, rows, now, this.deps.settings);
    const deadline = decision.deadline.toISOString();
    if (!decision.retire) {
      const unchanged = r.deadline === deadline && r.holders.join('\n') === decision.holders.join('\n');
      return unchanged ? r : persist(r, { holders: decision.holders, deadline });
    }
    return persist(r, {
      state: 'retiring',
      holders: decision.holders,
      deadline,
      retiringAt: now.toISOString(),
      retireReason: decision.reason,
    });
  }

  /** `retiring` → `passwordRemoved`: the old password goes first (a keyId already gone counts as done). */
  private async removeOldPassword(r: RotationRecord, persist: Persist): Promise<RotationRecord> {
    // A duplicate of ours (an addPassword retried after Graph had added it) is removed too: ours, and its text unused.
    const app = await this.deps.graph.getApplication(r.applicationObjectId);
    for (const p of app.passwordCredentials) {
      if (p.displayName === r.displayName && r.newKeyId && p.keyId.toLowerCase() !== r.newKeyId.toLowerCase()) {
        await this.removeIfPresent(r.applicationObjectId, p.keyId);
      }
    }
    const keyId = r.oldKeyId;
    if (!keyId || keyId === r.newKeyId) {
      // Unknown old password: none is removed (the broker never deletes a password it cannot name).
      return persist(r, { state: 'passwordRemoved', oldPassword: 'kept', passwordRemovedAt: this.now().toISOString() });
    }
    const outcome = await this.removeIfPresent(r.applicationObjectId, keyId);
    return persist(r, { state: 'passwordRemoved', oldPassword: outcome, passwordRemovedAt: this.now().toISOString() });
  }

  /** `passwordRemoved` → `oldVersionDisabled` (an already disabled or deleted version counts as done). */
  private async disableOldVersion(r: RotationRecord, persist: Persist): Promise<RotationRecord> {
    const vault = this.vault(r.vault);
    if (r.oldVersion && r.oldVersion !== r.newVersion) {
      await vaultCall(async () => {
        try {
          await vault.updateSecretProperties(r.secret, r.oldVersion, { enabled: false });
        } catch (err: unknown) {
          if (!(isRestError(err) && err.statusCode === 404)) throw err;
        }
      });
    }
    return persist(r, { state: 'oldVersionDisabled', oldVersionDisabledAt: this.now().toISOString() });
  }

  /** `oldVersionDisabled` → `retired`. */
  private async notifyRetired(r: RotationRecord, persist: Persist): Promise<RotationRecord> {
    await this.deps.notify.retired(r.vault, r.secret, r.oldVersion, r.id);
    return persist(r, { state: 'retired', retiredAt: this.now().toISOString() });
  }

  /** Removes a password; one already gone counts as done. */
  private async removeIfPresent(objectId: string, keyId: string): Promise<'removed' | 'alreadyGone'> {
    const app = await this.deps.graph.getApplication(objectId);
    const present = (id: string): boolean => id.toLowerCase() === keyId.toLowerCase();
    if (!app.passwordCredentials.some((p) => present(p.keyId))) return 'alreadyGone';
    try {
      await this.deps.graph.removePassword(objectId, keyId);
      return 'removed';
    } catch (err: unknown) {
      // Graph answers 400 for a keyId it does not hold: gone meanwhile is done too.
      if (err instanceof GraphError && (err.status === 400 || err.status === 404)) {
        const again = await this.deps.graph.getApplication(objectId);
        if (!again.passwordCredentials.some((p) => present(p.keyId))) return 'alreadyGone';
      }
      throw err;
    }
  }

  private deadlineOf(r: RotationRecord, createdOn: Date): string {
    return retirementDeadline(
      createdOn,
      r.oldExpiresOn ? new Date(r.oldExpiresOn) : null,
      this.deps.settings.retireAfterHours,
    ).toISOString();
  }

  private vault(alias: string): RotationVault {
    const client = this.deps.vaults.get(alias);
    if (!client) throw new BrokerRefusal('UnknownVault', `No vault writer for alias "${alias}".`);
    return client;
  }
}

/** keyId (lower case) → the version carrying it, for every version of the secret tagged `entraKeyId`. */
async function storedKeyIds(vault: RotationVault, secret: string): Promise<Map<string, { version: string; createdOn: Date | undefined }>> {
  const out = new Map<string, { version: string; createdOn: Date | undefined }>();
  for await (const props of vault.listPropertiesOfSecretVersions(secret)) {
    const keyId = props.tags?.[TAG_KEY_ID];
    if (keyId && props.version) out.set(keyId.toLowerCase(), { version: props.version, createdOn: props.createdOn });
  }
  return out;
}

/** The record without a lease. */
function withoutLease(r: RotationRecord): RotationRecord {
  const out = { ...r };
  delete out.claimedBy;
  delete out.claimedUntil;
  return out;
}

function readTagKeyId(tags: Readonly<Record<string, string>>): string | undefined {
  const read = readRotationTags(tags);
  return isTagRefusal(read) ? undefined : read.keyId;
}
