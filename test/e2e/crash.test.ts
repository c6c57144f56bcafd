/**
 * Crash safety end to end: the real CLI (`kmslab serve` on a SQLite store) in a child process, a load
 * of activations with distinct CMIDs over several connections, SIGKILL in the middle of it, a restart
 * on the same store. Every CMID whose S_OK answer a client received must be in the store: read
 * directly (read-only, while no host runs) and through the restarted host's control API.
 *
 * test/unit/store/sqlite.test.ts checks the store alone (a child commits and prints, the parent
 * kills it); this one checks the whole path: wire, service, store, and the order "commit, then answer".
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { HResult } from '../../src/kms/hresult.js';
import { RawKmsClient } from '../helpers/raw-client.js';

const ROOT = new URL('../../', import.meta.url).pathname;

interface Child {
  proc: ChildProcess;
  port: number;
  control: number | null;
  /** Resolves with the exit signal (or code). */
  exited: Promise<string>;
  stderr: string[];
}

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Starts `kmslab serve` and reads its listening port (and control port) from the JSON start-up line on stdout. */
async function serve(store: string, extra: string[] = []): Promise<Child> {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/bin.ts',
      'serve',
      '--store',
      store,
      '--listen',
      '127.0.0.1:0',
      '--clock',
      'system',
      '--seed',
      'crash',
      '--log-level',
      'info',
      ...extra,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(proc);
  const stderr: string[] = [];
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
  const exited = new Promise<string>((r) => proc.once('exit', (code, signal) => r(signal ?? String(code))));
  const started = new Promise<{ port: number; control: number | null }>((resolve, reject) => {
    let buf = '';
    const onData = (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let j: { msg?: string; listen?: string[]; control?: string | null };
        try {
          j = JSON.parse(line);
        } catch {
          continue;
        }
        if (j.listen && j.msg?.includes('listening')) {
          const port = (s: string) => Number(s.slice(s.lastIndexOf(':') + 1));
          resolve({ port: port(j.listen[0]!), control: j.control ? port(j.control) : null });
        }
      }
    };
    // Keep draining stdout (one info line per activation) so the child never blocks on a full pipe.
    proc.stdout!.setEncoding('utf8').on('data', onData);
    void exited.then((how) =>
      reject(new Error(`kmslab serve exited (${how}) before listening: ${stderr.join('')}`)),
    );
    setTimeout(
      () => reject(new Error(`kmslab serve did not start in 20 s: ${stderr.join('')}`)),
      20_000,
    ).unref();
  });
  const { port, control } = await started;
  return { proc, port, control, exited, stderr };
}

describe('crash safety: SIGKILL during a load of activations', () => {
  it('every CMID a client got an answer for is in the store after the restart (two kills)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kmslab-crash-'));
    dirs.push(dir);
    const store = path.join(dir, 'kms.sqlite');
    const acked: string[] = [];
    let unanswered = 0;
    // Two rounds on the same store: start, load, SIGKILL. The second starts from what the first left.
    for (const round of [1, 2]) {
      const host = await serve(store);
      // 8 connections, each sending activations back to back with fresh CMIDs; kill once 200 more were
      // answered, with the others still in flight.
      const KILL_AT = acked.length + 200;
      const inFlight = new Set<string>();
      let killed = false;
      const worker = async (w: number) => {
        const c = await RawKmsClient.connect(
          { host: '127.0.0.1', port: host.port },
          { seed: `crash-${round}-${w}`, nowMs: Date.now() },
        );
        try {
          for (;;) {
            const cmid = c.body().cmid;
            inFlight.add(cmid);
            const a = await c.activate({ cmid, workstation: `crash-${round}-${w}` });
            inFlight.delete(cmid);
            expect(a.hresult).toBe(HResult.S_OK);
            expect(a.body!.cmid).toBe(cmid);
            acked.push(cmid);
            if (acked.length === KILL_AT) {
              killed = true;
              host.proc.kill('SIGKILL');
            }
          }
        } catch (e) {
          // The connection died with the host: expected once it was killed.
          if (!killed) throw e;
        } finally {
          c.close();
        }
      };
      await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
      expect(await host.exited).toBe('SIGKILL');
      expect(acked.length).toBeGreaterThanOrEqual(KILL_AT);
      unanswered += inFlight.size;
    }
    // The kill left committed transactions in the write-ahead log, not checkpointed into the file.
    expect(statSync(`${store}-wal`).size).toBeGreaterThan(0);

    // 1. The file as the crash left it (the WAL is replayed by the reader), read-only, no host running.
    const db = new Database(store, { readonly: true, fileMustExist: true });
    const stored = new Set(
      (db.prepare('SELECT cmid FROM history').all() as { cmid: string }[]).map((r) => r.cmid),
    );
    db.close();
    const lost = acked.filter((c) => !stored.has(c));
    expect(lost, `${lost.length} acknowledged CMIDs lost`).toEqual([]);
    // At most the requests in flight at the kill were stored without their answer reaching the client.
    expect(stored.size).toBeGreaterThanOrEqual(acked.length);
    expect(stored.size).toBeLessThanOrEqual(acked.length + unanswered);
    console.info(
      `crash.test.ts: ${acked.length} answered CMIDs over two SIGKILLs, ${stored.size} stored (${unanswered} were in flight)`,
    );

    // 2. Restart on the same store: the host loads it, reports it, and serves.
    const again = await serve(store, ['--control', '127.0.0.1:0']);
    const get = async (p: string) => {
      const res = await fetch(`http://127.0.0.1:${again.control}${p}`);
      expect(res.status).toBe(200);
      return res.json() as Promise<Record<string, unknown>>;
    };
    const history = (await get('/history')) as { records: { cmid: string }[] };
    const served = new Set(history.records.map((r) => r.cmid));
    expect(acked.filter((c) => !served.has(c))).toEqual([]);
    expect(served.size).toBe(stored.size);
    // The Windows pool holds its 50 most recent CMIDs, all among the stored ones.
    const clients = (await get('/clients')) as { clients: { cmid: string }[] };
    expect(clients.clients.length).toBe(Math.min(50, stored.size));
    for (const c of clients.clients) expect(stored.has(c.cmid)).toBe(true);
    const after = await RawKmsClient.connect(
      { host: '127.0.0.1', port: again.port },
      { seed: 'after', nowMs: Date.now() },
    );
    try {
      const a = await after.activate();
      expect(a.hresult).toBe(HResult.S_OK);
      expect(a.body!.currentCount).toBe(50);
    } finally {
      after.close();
    }
    again.proc.kill('SIGTERM');
    expect(await again.exited).toBe('0');

    // 3. After a clean stop the file passes SQLite's integrity check.
    const check = new Database(store, { readonly: true, fileMustExist: true });
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(check.prepare('SELECT count(*) AS n FROM history').get()).toEqual({ n: stored.size + 1 });
    check.close();
  }, 60_000);
});
