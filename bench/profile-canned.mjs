// The load tool's ceiling: a no-op "host" that answers each PDU of the captured vlmcsd V6 conversation
// (fixtures/vectors/vlmcsd/v6-win10.json) with the captured answer bytes, framed by frag_length, no KMS
// work at all. `node bench/profile-canned.mjs PORT`, or through the harness:
//   npx tsx bench/profile-load.ts --server-cmd "node bench/profile-canned.mjs" --wait-quiet
import fs from 'node:fs';
import net from 'node:net';

const vector = JSON.parse(
  fs.readFileSync(new URL('../fixtures/vectors/vlmcsd/v6-win10.json', import.meta.url), 'utf8'),
);
/** PTYPE of a client PDU → the captured answer to it. */
const answers = new Map();
let last = -1;
for (const p of vector.pdus) {
  const b = Buffer.from(p.hex, 'hex');
  if (p.dir === 'c2s') last = b[2];
  else answers.set(last, b);
}
net
  .createServer({ noDelay: true }, (s) => {
    let buf = null;
    s.on('data', (d) => {
      buf = buf ? Buffer.concat([buf, d]) : d;
      while (buf && buf.length >= 10) {
        const n = buf.readUInt16LE(8);
        if (buf.length < n) break;
        const type = buf[2];
        buf = buf.length === n ? null : buf.subarray(n);
        s.write(answers.get(type));
      }
    });
    s.on('error', () => {});
  })
  .listen(Number(process.argv[2] ?? 17750), '127.0.0.1');
