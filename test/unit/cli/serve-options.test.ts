import { describe, expect, it } from 'vitest';
import { buildRuntimeOptions } from '../../../src/cli/serve.js';
import { DAY, HOUR, MINUTE } from '../../../src/host/clock.js';
import { DEFAULT_STORE_PATH } from '../../../src/store/store.js';

describe('kmslab serve flags → host options', () => {
  it('defaults: loopback 1688, embedded SQLite store, system clock, permissive policy', () => {
    const o = buildRuntimeOptions({});
    expect(o.listen).toEqual([{ host: '127.0.0.1', port: 1688 }]);
    expect(o.store).toBe('data/kmslab.sqlite');
    // The one default (src/defaults.ts) that serve's help and the store both use.
    expect(o.store).toBe(DEFAULT_STORE_PATH);
    expect(o.clock).toBe('system');
    expect(o.policy).toEqual({});
    expect(o.profile).toEqual({ ndr64: true, btfn: true });
  });

  it('maps every policy, identity, interval and limit flag', () => {
    const o = buildRuntimeOptions({
      listen: ['0.0.0.0:1688', '[::1]:1689'],
      store: 'memory',
      clock: 'manual',
      seed: 7,
      control: '127.0.0.1:8688',
      epid: ['Windows=03612-00206-556-123727-03-1033-17763.0000-2972018'],
      hwid: '3A1C049600B60076',
      refuseUnknown: true,
      refuseRetail: true,
      refuseMismatch: true,
      maxClockSkew: true,
      activationInterval: '2h',
      renewalInterval: '7d',
      idleTimeout: '5s',
      maxConnections: 10,
      maxPduSize: 4096,
      maxCallSize: 8192,
      maxConnectionLifetime: '1m',
      maxUnsentBytes: 4096,
      maxRequestsPerConnection: 3,
      maxActivationLogLines: 7,
      ndr64: false,
      btfn: false,
    });
    expect(o.listen).toEqual([
      { host: '0.0.0.0', port: 1688 },
      { host: '::1', port: 1689 },
    ]);
    expect(o.control).toEqual({ host: '127.0.0.1', port: 8688 });
    expect(o.policy).toEqual({
      refuseUnknown: true,
      refuseRetail: true,
      refuseMismatch: true,
      maxClockSkewMs: 4 * HOUR,
      activationInterval: 120,
      renewalInterval: (7 * DAY) / MINUTE,
    });
    expect(o.identity?.epids?.['Windows']).toBe('03612-00206-556-123727-03-1033-17763.0000-2972018');
    expect(Buffer.from(o.identity!.hwid!).toString('hex')).toBe('3a1c049600b60076');
    expect(o.limits).toEqual({
      idleTimeoutMs: 5000,
      maxConnections: 10,
      maxPduSize: 4096,
      maxCallSize: 8192,
      maxConnectionLifetimeMs: MINUTE,
      maxUnsentBytes: 4096,
      maxRequestsPerConnection: 3,
      maxActivationLogLinesPerSecond: 7,
    });
    expect(o.profile).toEqual({ ndr64: false, btfn: false });
  });

  it('refuses malformed values with a clear message', () => {
    expect(() => buildRuntimeOptions({ epid: ['nonsense'] })).toThrow(/GROUP=EPID/);
    expect(() => buildRuntimeOptions({ hwid: 'xyz' })).toThrow(/16 hex digits/);
    expect(() => buildRuntimeOptions({ maxConnections: 'many' })).toThrow(
      /--max-connections: an integer ≥ 1, got "many"/,
    );
    expect(() => buildRuntimeOptions({ activationInterval: '10s' })).toThrow(
      /--activation-interval: an interval of at least 1 minute, got "10s"/,
    );
    expect(() => buildRuntimeOptions({ historyLimit: '0' })).toThrow(
      /--history-limit: an integer ≥ 1, got "0"/,
    );
  });

  it('--history-limit bounds the memory store history; absent, the store keeps its default', () => {
    expect(buildRuntimeOptions({ store: 'memory', historyLimit: '2500' }).historyLimit).toBe(2500);
    expect(buildRuntimeOptions({ store: 'memory' })).not.toHaveProperty('historyLimit');
  });
});
