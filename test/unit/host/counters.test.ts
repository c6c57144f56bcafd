/**
 * The cumulative request counters (slmgr /dlv, WMI SoftwareLicensingService; docs/host.md section 9):
 * what each fixed request moves, that they survive a restart of the service on the same store, that
 * POST /reset's service.reset() keeps them unless asked, and that group commit carries them.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/host/clock.js';
import { countRequest, emptyCounters, type RequestCounters } from '../../../src/host/counters.js';
import { SeededRandom } from '../../../src/host/random.js';
import { HEALTH_CHECK_CMID, KmsService } from '../../../src/host/service.js';
import { encodeRequest } from '../../../src/kms/envelope.js';
import type { KmsRequestBody } from '../../../src/kms/messages.js';
import { wrapRequestStub } from '../../../src/kms/stub.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { requestBody } from '../../helpers/raw-client.js';
import { removeDir, tempDir } from '../store/helpers.js';

const T0 = Date.UTC(2026, 0, 1);
const conn = { peer: '127.0.0.1:1', connectionId: 1 };

function service(store: Store = openStore('memory'), policy = {}) {
  return new KmsService({ clock: new ManualClock(T0), random: new SeededRandom('svc'), store, policy });
}

function stubOf(body: KmsRequestBody, damage?: (message: Uint8Array) => void): Uint8Array {
  const rnd = new SeededRandom(body.cmid);
  const { message } = encodeRequest(body, { random: (n) => rnd.bytes(n) });
  damage?.(message);
  return wrapRequestStub(message, 'ndr32');
}

/** A counters object with only the named fields set. */
const counters = (o: Partial<RequestCounters>): RequestCounters => ({ ...emptyCounters(), ...o });

describe('countRequest', () => {
  it('counts each LicenseStatus value in its own counter (spec c.1), others apart', () => {
    const c = emptyCounters();
    for (const s of [0, 1, 2, 3, 4, 5, 6, 7, 0xffffffff]) countRequest(c, s, false);
    countRequest(c, null, true);
    expect(c).toEqual(
      counters({
        total: 10,
        failed: 1,
        unlicensed: 1,
        licensed: 1,
        oobGrace: 1,
        ootGrace: 1,
        nonGenuineGrace: 1,
        notification: 1,
        extendedGrace: 1,
        otherLicenseStatus: 2,
      }),
    );
  });
});

describe('KmsService request counters', () => {
  it('count fixed requests by LicenseStatus, failures and undecodable ones; the probe is not counted', () => {
    const svc = service();
    const r = new SeededRandom('counters');
    // Two Licensed, one each of OOB grace, OOT grace, Non-genuine grace, Notification, Unlicensed.
    for (const licenseStatus of [1, 1, 2, 3, 4, 5, 0]) {
      expect(svc.handleCall(stubOf(requestBody(r, { licenseStatus }, T0)), 'ndr32', conn).kind).toBe(
        'response',
      );
    }
    // A refused request (RequiredClientCount over the policy's maximum): failed, and still counted by status.
    svc.handleCall(
      stubOf(requestBody(r, { licenseStatus: 2, requiredClientCount: 1001 }, T0)),
      'ndr32',
      conn,
    );
    // A message that does not decode (bad version), and a stub that contradicts its lengths.
    const bad = stubOf(requestBody(r, {}, T0), (m) => {
      m[2] = 7; // KMS protocol version 7 (spec c.0)
    });
    expect(svc.handleCall(bad, 'ndr32', conn).kind).toBe('response');
    expect(svc.handleCall(new Uint8Array([0xff, 0, 0, 0]), 'ndr32', conn).kind).toBe('fault');
    // The health-check probe is answered but never counted.
    svc.handleCall(stubOf(requestBody(r, { cmid: HEALTH_CHECK_CMID }, T0)), 'ndr32', conn);

    const want = counters({
      total: 10,
      failed: 3,
      unlicensed: 1,
      licensed: 2,
      oobGrace: 2,
      ootGrace: 1,
      nonGenuineGrace: 1,
      notification: 1,
    });
    expect(svc.state.counters).toEqual(want);
    const wmi = svc.status().wmi;
    expect(wmi).toMatchObject({
      IsKeyManagementServiceMachine: 1,
      KeyManagementServiceCurrentCount: 7,
      KeyManagementServiceTotalRequests: 10,
      KeyManagementServiceFailedRequests: 3,
      KeyManagementServiceUnlicensedRequests: 1,
      KeyManagementServiceLicensedRequests: 2,
      KeyManagementServiceOOBGraceRequests: 2,
      KeyManagementServiceOOTGraceRequests: 1,
      KeyManagementServiceNonGenuineGraceRequests: 1,
      KeyManagementServiceNotificationRequests: 1,
      KeyManagementServiceDnsPublishing: false,
      KeyManagementServiceLowPriority: false,
    });
    // Decision totals count decoded requests only (7 answered with a count, 1 refused).
    expect(svc.status().requests.total).toBe(8);
  });

  it('survive a restart on the same SQLite file, and reset() keeps them unless asked', () => {
    const dir = tempDir();
    try {
      const file = path.join(dir, 'kmslab.sqlite');
      const r = new SeededRandom('restart');
      let svc = service(openStore(file));
      for (const licenseStatus of [1, 2, 2])
        svc.handleCall(stubOf(requestBody(r, { licenseStatus }, T0)), 'ndr32', conn);
      svc.handleCall(new Uint8Array([0xff, 0, 0, 0]), 'ndr32', conn);
      svc.store.close();

      svc = service(openStore(file));
      const want = counters({ total: 4, failed: 1, licensed: 1, oobGrace: 2 });
      expect(svc.state.counters).toEqual(want);
      expect(svc.status().requests).toEqual({ total: 3, byResult: { 'count-insufficient': 3 } });

      expect(svc.reset()).toEqual({ countersReset: false });
      expect(svc.state.counters).toEqual(want);
      expect(svc.status().requests).toEqual({ total: 0, byResult: {} });
      svc.store.close();

      svc = service(openStore(file));
      expect(svc.state.counters).toEqual(want);
      expect(svc.status().requests).toEqual({ total: 0, byResult: {} });
      expect(svc.reset({ counters: true })).toEqual({ countersReset: true });
      svc.store.close();

      svc = service(openStore(file));
      expect(svc.state.counters).toEqual(emptyCounters());
      svc.store.close();
    } finally {
      removeDir(dir);
    }
  });

  it('ride on a commit group, undecodable-only groups included', () => {
    const store = openStore('memory');
    const svc = service(store);
    const r = new SeededRandom('group');
    const g = svc.openGroup();
    svc.handleCall(stubOf(requestBody(r, { licenseStatus: 1 }, T0)), 'ndr32', conn, undefined, g);
    svc.handleCall(new Uint8Array([0xff, 0, 0, 0]), 'ndr32', conn, undefined, g);
    // Staged, not yet in the store.
    expect(store.load().counters).toEqual({});
    svc.commitGroup(g);
    expect(store.load().counters).toMatchObject({
      'requests.total': 2,
      'requests.failed': 1,
      'requests.licensed': 1,
    });

    const only = svc.openGroup();
    svc.handleCall(new Uint8Array([0xff, 0, 0, 0]), 'ndr32', conn, undefined, only);
    expect(only.size).toBe(0);
    svc.commitGroup(only);
    expect(store.load().counters).toMatchObject({ 'requests.total': 3, 'requests.failed': 2 });
  });
});
