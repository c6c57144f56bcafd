import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { HistoryRecord, PoolEntry, Store } from '../../../src/store/store.js';
import { openStore } from '../../../src/store/store.js';

export const APP_WIN = '55c92734-d682-4d71-983e-d6ec3f16059f';
export const APP_OFFICE = '0ff1ce15-a989-479d-af46-f275c6370663';

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'kmslab-'));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Opens a store of the given kind; `dispose` closes it and removes any temp dir. */
export interface Opened {
  store: Store;
  dispose(): void;
}

export function openKind(kind: 'memory' | 'sqlite'): Opened {
  if (kind === 'memory') {
    const store = openStore('memory');
    return { store, dispose: () => store.close() };
  }
  const dir = tempDir();
  const store = openStore(path.join(dir, 'kmslab.sqlite'));
  return {
    store,
    dispose: () => {
      store.close();
      removeDir(dir);
    },
  };
}

export function cmid(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

export function entry(n: number, over: Partial<PoolEntry> = {}): PoolEntry {
  return {
    applicationId: APP_WIN,
    cmid: cmid(n),
    firstSeen: 1_700_000_000_000 + n,
    lastSeen: 1_700_000_000_000 + n * 1000,
    workstation: `WS-${n}`,
    skuId: 'ae2ee509-1b34-41c0-acb7-6d4650168915',
    kmsId: '212a64dc-43b1-4d3d-a30c-2fc69d2095c6',
    ...over,
  };
}

export function record(n: number, over: Partial<HistoryRecord> = {}): HistoryRecord {
  return {
    time: 1_700_000_000_000 + n * 1000,
    connectionId: n,
    peer: `192.0.2.${n % 250}:${49152 + n}`,
    cmid: cmid(n),
    previousCmid: '00000000-0000-0000-0000-000000000000',
    applicationId: APP_WIN,
    skuId: 'ae2ee509-1b34-41c0-acb7-6d4650168915',
    kmsId: '212a64dc-43b1-4d3d-a30c-2fc69d2095c6',
    requiredCount: 25,
    count: n,
    wouldActivate: n >= 25,
    hresult: 0,
    protocol: 6,
    ndr: 'ndr32',
    workstation: `WS-${n}`,
    epid: '06401-00206-551-000000-03-1033-17763.0000-1232024',
    licenseStatus: 2,
    vm: false,
    ...over,
  };
}
