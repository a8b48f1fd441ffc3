import { randomBytes } from 'node:crypto';
import { SharedCacheDecryptError } from '../../shared/secrets/sealedValue';
import {
  CLOCK_SKEW_MS,
  isHeld,
  isStorable,
  openRow,
  rowStanding,
  sealRow,
  sharedCachePartition,
  slotOf,
  writerOf,
} from '../../shared/secrets/sharedCacheRows';
import type { RowColumns, RowStamp, Slot } from '../../shared/secrets/sharedCacheRows';
import type { VaultSecret } from '../../shared/secrets/vaultGateway';

const KEY = randomBytes(32);
const BROKER = 'contoso-broker';
const VAULT_URI = 'https://contoso-vault2.vault.azure.net/';
const VAULTS: ReadonlyMap<string, string> = new Map([['default', VAULT_URI]]);
const VERSION = '0123456789abcdef0123456789abcdef';
const NOW = Date.parse('2030-01-01T00:00:00.000Z');
const TTL_MS = 300_000;
const EXPIRES_AT = new Date(NOW + TTL_MS).toISOString();
const VALUE = 'Pa55w0rd-row-value';

const secret: VaultSecret = {
  name: 'erp-password',
  vault: 'default',
  version: VERSION,
  value: VALUE,
  contentType: 'text/plain',
  enabled: true,
  notBefore: null,
  expiresOn: null,
  updatedOn: '2025-01-02T03:04:05.000Z',
};

function slot(version?: string, name = 'erp-password'): Slot {
  const found = slotOf(BROKER, VAULTS, 'default', name, version);
  if (!found) throw new Error('no slot');
  return found;
}

function stamp(overrides: Partial<RowStamp> = {}): RowStamp {
  return { broker: BROKER, generation: 'mark-1', expiresAt: EXPIRES_AT, writtenBy: 'instance-a', ...overrides };
}

describe('slotOf', () => {
  it('keys a secret by broker and vault URI, lower-case name and slot', () => {
    expect(slot()).toEqual({
      alias: 'default',
      vaultUri: VAULT_URI,
      partition: sharedCachePartition(BROKER, VAULT_URI),
      name: 'erp-password',
      slot: 'latest',
      rowKey: 'erp-password@latest',
      leaseKey: 'erp-password@latest:lease',
      markKey: 'erp-password:rotation',
      label: 'default/erp-password@latest',
    });
    expect(slot(VERSION.toUpperCase(), 'ERP-Password')).toMatchObject({
      rowKey: `erp-password@${VERSION}`,
      markKey: 'erp-password:rotation',
      slot: VERSION,
    });
  });

  it('gives no slot for an unknown alias or a name, version or alias unsafe in a key', () => {
    expect(slotOf(BROKER, VAULTS, 'partner', 'erp-password', undefined)).toBeUndefined();
    expect(slotOf(BROKER, VAULTS, 'default', 'erp/password', undefined)).toBeUndefined();
    expect(slotOf(BROKER, VAULTS, 'default', 'erp-password', 'not-a-version')).toBeUndefined();
    expect(slotOf(BROKER, VAULTS, 'de/fault', 'erp-password', undefined)).toBeUndefined();
  });
});

describe('sharedCachePartition', () => {
  it('names the same vault the same way, whatever the spelling of its URI, and keeps brokers apart', () => {
    const partition = sharedCachePartition(BROKER, VAULT_URI);
    expect(sharedCachePartition(BROKER, 'HTTPS://Contoso-Vault2.vault.azure.net:443')).toBe(partition);
    expect(JSON.parse(Buffer.from(partition, 'base64url').toString('utf8'))).toEqual([BROKER, VAULT_URI]);
    expect(partition).not.toMatch(/[/\\#?]/);
    expect(sharedCachePartition('other-broker', VAULT_URI)).not.toBe(partition);
  });
});

describe('rowStanding', () => {
  const row: RowColumns = { expiresAt: EXPIRES_AT, generation: 'mark-1' };

  it('is current under the same mark until its expiry', () => {
    expect(rowStanding(row, 'mark-1', NOW, TTL_MS)).toEqual({ kind: 'current', expiresAt: NOW + TTL_MS });
    expect(rowStanding(row, 'mark-1', NOW + TTL_MS - 1, TTL_MS)).toEqual({ kind: 'current', expiresAt: NOW + TTL_MS });
  });

  it('is expired at its expiry, without one, or when it claims more than this TTL (plus clock skew)', () => {
    expect(rowStanding(row, 'mark-1', NOW + TTL_MS, TTL_MS)).toEqual({ kind: 'expired' });
    expect(rowStanding({ generation: 'mark-1' }, 'mark-1', NOW, TTL_MS)).toEqual({ kind: 'expired' });
    expect(rowStanding({ ...row, expiresAt: 'soon' }, 'mark-1', NOW, TTL_MS)).toEqual({ kind: 'expired' });
    const shortTtl = 60_000;
    expect(rowStanding(row, 'mark-1', NOW, shortTtl)).toEqual({ kind: 'expired' });
    expect(rowStanding(row, 'mark-1', NOW, TTL_MS - CLOCK_SKEW_MS)).toEqual({ kind: 'current', expiresAt: NOW + TTL_MS });
  });

  it("refuses a row stored under another rotation mark than the name's now; a missing mark is ''", () => {
    expect(rowStanding(row, 'mark-2', NOW, TTL_MS)).toEqual({ kind: 'olderMark' });
    expect(rowStanding(row, '', NOW, TTL_MS)).toEqual({ kind: 'olderMark' });
    expect(rowStanding({ expiresAt: EXPIRES_AT }, '', NOW, TTL_MS)).toEqual({ kind: 'current', expiresAt: NOW + TTL_MS });
    expect(rowStanding({ expiresAt: EXPIRES_AT }, 'mark-1', NOW, TTL_MS)).toEqual({ kind: 'olderMark' });
  });
});

describe('sealRow and openRow', () => {
  it('seal a row that holds no value in the clear and opens to the secret, under the alias asked with', () => {
    const row = sealRow(KEY, slot(), secret, stamp());
    expect(row).toMatchObject({
      partitionKey: slot().partition,
      rowKey: 'erp-password@latest',
      broker: BROKER,
      vault: VAULT_URI,
      name: 'erp-password',
      version: VERSION,
      expiresAt: EXPIRES_AT,
      generation: 'mark-1',
      writtenBy: 'instance-a',
    });
    for (const part of [row.iv, row.ciphertext, row.tag]) {
      expect(Buffer.from(part).toString('latin1')).not.toContain(VALUE);
    }
    expect(JSON.stringify({ ...row, iv: undefined, ciphertext: undefined, tag: undefined })).not.toContain(VALUE);
    expect(openRow(KEY, BROKER, slot(), row)).toEqual(secret);
    const pinned = slot(VERSION);
    expect(openRow(KEY, BROKER, pinned, sealRow(KEY, pinned, secret, stamp({ generation: '' })))).toEqual(secret);
  });

  it.each<[string, (row: RowColumns) => RowColumns]>([
    ['its expiry extended', (row) => ({ ...row, expiresAt: new Date(NOW + TTL_MS + 1).toISOString() })],
    ['its mark relabelled', (row) => ({ ...row, generation: 'mark-2' })],
    ['another version named', (row) => ({ ...row, version: 'fedcba9876543210fedcba9876543210' })],
    ['a bit of its ciphertext flipped', (row) => ({ ...row, ciphertext: flipped(row.ciphertext) })],
    ['no sealed value', (row) => ({ ...row, tag: undefined })],
  ])('refuses a row with %s, with an error that holds no value', (_label, alter) => {
    const row = alter(sealRow(KEY, slot(), secret, stamp()));
    expectRefused(() => openRow(KEY, BROKER, slot(), row));
  });

  it('refuses a row under another key, broker, vault, name or slot', () => {
    const row = sealRow(KEY, slot(), secret, stamp());
    expectRefused(() => openRow(randomBytes(32), BROKER, slot(), row));
    expectRefused(() => openRow(KEY, 'other-broker', slot(), row));
    const otherVault = slotOf(BROKER, new Map([['default', 'https://other.vault.azure.net/']]), 'default', 'erp-password', undefined);
    expectRefused(() => openRow(KEY, BROKER, otherVault as Slot, row));
    expectRefused(() => openRow(KEY, BROKER, slot(undefined, 'crm-token'), row));
    expectRefused(() => openRow(KEY, BROKER, slot(VERSION), row));
  });

  it('opens a disabled secret to nothing', () => {
    const row = sealRow(KEY, slot(), { ...secret, enabled: false }, stamp());
    expect(openRow(KEY, BROKER, slot(), row)).toBeUndefined();
  });
});

describe('isStorable', () => {
  it('stores an enabled secret of the name, and of the pinned version asked for', () => {
    expect(isStorable(slot(), secret)).toBe(true);
    expect(isStorable(slot(), { ...secret, name: 'ERP-PASSWORD' })).toBe(true);
    expect(isStorable(slot(VERSION.toUpperCase()), secret)).toBe(true);
    expect(isStorable(slot(), { ...secret, enabled: false })).toBe(false);
    expect(isStorable(slot(), { ...secret, name: 'crm-token' })).toBe(false);
    expect(isStorable(slot('fedcba9876543210fedcba9876543210'), secret)).toBe(false);
  });
});

describe('isHeld and writerOf', () => {
  it('holds a lease until its leaseUntil, and names a row writer when the row says', () => {
    expect(isHeld({ leaseUntil: new Date(NOW + 1).toISOString() }, NOW)).toBe(true);
    expect(isHeld({ leaseUntil: new Date(NOW).toISOString() }, NOW)).toBe(false);
    expect(isHeld({}, NOW)).toBe(false);
    expect(writerOf({ writtenBy: 'instance-a' })).toBe(' written by instance-a');
    expect(writerOf({})).toBe('');
  });
});

function flipped(bytes: Uint8Array | undefined): Uint8Array {
  const copy = Buffer.from(bytes ?? []);
  copy[0] = (copy[0] ?? 0) ^ 0x01;
  return copy;
}

function expectRefused(open: () => unknown): void {
  let error: unknown;
  try {
    open();
  } catch (err: unknown) {
    error = err;
  }
  expect(error).toBeInstanceOf(SharedCacheDecryptError);
  expect(String((error as Error).message)).not.toContain(VALUE);
}
