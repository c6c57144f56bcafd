import { Writable } from 'node:stream';

/** A small human formatter for pino's JSON lines (`--pretty`), without another dependency. */
const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'type']);

export function prettyStream(out: NodeJS.WritableStream = process.stderr): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const o = JSON.parse(line) as Record<string, unknown>;
          const t = new Date(Number(o['time'])).toISOString().slice(11, 23);
          const rest = Object.entries(o)
            .filter(([k, v]) => !SKIP.has(k) && v !== '' && v !== null)
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ');
          out.write(
            `${t} ${LEVELS[Number(o['level'])] ?? o['level']} ${o['msg'] ?? ''}${rest ? `  ${rest}` : ''}\n`,
          );
        } catch {
          out.write(`${line}\n`);
        }
      }
      cb();
    },
  });
}
