/**
 * Child process for the crash test: commits one request after another and, after each commit returns,
 * "answers the client" by writing the seq to stdout synchronously. The parent SIGKILLs it mid-stream.
 * Usage: node --import tsx crash-child.ts <file> <durability>
 */
import fs from 'node:fs';
import { openStore } from '../../../src/store/store.js';
import { entry, record } from './helpers.js';

const [file, durability] = process.argv.slice(2);
const store = openStore(file!, { durability: durability === 'full' ? 'full' : 'normal' });
store.setMeta('epid', 'child');
for (let n = 1; ; n++) {
  const seq = store.commit({ upsert: [entry(n)], history: record(n), meta: { requests: String(n) } });
  fs.writeSync(1, `${seq}\n`);
}
