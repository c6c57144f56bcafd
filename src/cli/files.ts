/** Reading the files a command is given, and making a directory for one it writes, with clear errors. */
import fs from 'node:fs';
import path from 'node:path';
import { INPUT_LIMITS, InputFileError, readTextBounded, fsErrorReason as reason } from '../bounded-read.js';
import { show, UsageError } from './errors.js';

/** A JSON file, or YAML by its extension (.yml / .yaml), as a plain object of settings. */
export async function readSettingsFile(file: string, flag: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = readTextBounded(file, INPUT_LIMITS.config, 'config file');
  } catch (e) {
    throw e instanceof InputFileError ? new UsageError(`${flag} ${e.message}`) : e;
  }
  let data: unknown;
  try {
    if (/\.ya?ml$/i.test(file)) {
      const { parse } = await import('yaml');
      data = parse(text) ?? {};
    } else data = JSON.parse(text);
  } catch (e) {
    const kind = /\.ya?ml$/i.test(file) ? 'YAML' : 'JSON';
    throw new UsageError(`${file}: not valid ${kind}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new UsageError(`${file}: an object of settings (key: value), got ${show(data)}`);
  return data as Record<string, unknown>;
}

/**
 * Creates the directory a file will be written in, one level at a time (Node's recursive mkdir never
 * returns for some paths, e.g. under /proc), with an error that names the path.
 */
export function prepareDir(dir: string, flag: string): void {
  const missing: string[] = [];
  let d = path.resolve(dir);
  for (;;) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new UsageError(`${flag} ${dir}: ${reason(e)}`);
    }
    if (st) {
      if (!st.isDirectory()) throw new UsageError(`${flag} ${dir}: ${d} is a file, not a directory`);
      break;
    }
    missing.unshift(d);
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  for (const m of missing) {
    try {
      fs.mkdirSync(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new UsageError(`${flag} ${dir}: cannot create ${m}: ${reason(e)}`);
    }
  }
}

export function prepareParentDir(file: string, flag: string): void {
  prepareDir(path.dirname(file), flag);
}
