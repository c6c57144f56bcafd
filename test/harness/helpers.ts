import { type LabHost, type LabHostOptions, startLabHost } from '../../src/harness/lab-host.js';

/** Starts a lab host, runs `fn`, always closes it. */
export async function withHost<T>(opts: LabHostOptions, fn: (host: LabHost) => Promise<T>): Promise<T> {
  const host = await startLabHost(opts);
  try {
    return await fn(host);
  } finally {
    await host.close();
  }
}

export const WIN10_ENT = 'Windows 10 Enterprise';
export const OFFICE_2019 = 'Office Professional Plus 2019';

/** GET/POST JSON on a lab host's control API. */
export async function control(
  host: LabHost,
  method: string,
  path: string,
  body?: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: JSON bodies of several shapes
): Promise<{ status: number; json: any }> {
  const res = await fetch(`${host.controlUrl}${path}`, {
    method,
    // Every mutation needs a JSON body (the control API refuses any other content type).
    ...(body !== undefined || (method !== 'GET' && method !== 'HEAD')
      ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) }
      : {}),
  });
  return { status: res.status, json: await res.json() };
}
