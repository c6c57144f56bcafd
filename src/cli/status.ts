/**
 * `kmslab status [--control HOST:PORT] [--json]`: the KMS host section of `slmgr /dlv`, read from a
 * running host's control API (`GET /status`), so a test can diff it against a genuine host's output.
 * Thin: one HTTP GET, a schema check of the answer, and the text slmgr prints (docs/cli.md,
 * "kmslab status"; the counters are docs/host.md section 9).
 */
import http from 'node:http';
import type { Command } from 'commander';
import { z } from 'zod';
import { parseDuration } from '../host/clock.js';
import type { ListenAddress } from '../server/tcp.js';
import { EXIT, UsageError } from './errors.js';
import { formatHostPort, parseHostPort } from './options.js';
import { readControlToken } from './serve.js';

/** The part of `GET /status` this command reads; anything else in the answer is ignored. */
const STATUS_ANSWER = z.object({
  pools: z.array(z.object({ applicationId: z.string(), name: z.string(), count: z.number() })),
  requestCounters: z.object({ extendedGrace: z.number() }),
  // Loose: --json prints every WMI property the host reports, not only those the text uses.
  wmi: z.looseObject({
    IsKeyManagementServiceMachine: z.number(),
    KeyManagementServiceCurrentCount: z.number(),
    KeyManagementServiceListeningPort: z.number(),
    KeyManagementServiceDnsPublishing: z.boolean(),
    KeyManagementServiceLowPriority: z.boolean(),
    KeyManagementServiceTotalRequests: z.number(),
    KeyManagementServiceFailedRequests: z.number(),
    KeyManagementServiceUnlicensedRequests: z.number(),
    KeyManagementServiceLicensedRequests: z.number(),
    KeyManagementServiceOOBGraceRequests: z.number(),
    KeyManagementServiceOOTGraceRequests: z.number(),
    KeyManagementServiceNonGenuineGraceRequests: z.number(),
    KeyManagementServiceNotificationRequests: z.number(),
  }),
});

export type HostStatus = z.infer<typeof STATUS_ANSWER>;
type Wmi = HostStatus['wmi'];

/** slmgr's default KMS port: it prints 1688 when KeyManagementServiceListeningPort is 0. */
const SLMGR_DEFAULT_PORT = 1688;

/**
 * The WMI object for one count pool: a genuine host keeps KeyManagementServiceCurrentCount on each
 * KMS host product (`slmgr /dlv <Activation ID>` shows the Office host's), and the host's `/status`
 * wmi carries the Windows pool's. `pool` (an application id or pool name, any case) picks another;
 * the cumulative counters are the host's one set whichever pool is shown.
 */
export function wmiForPool(s: HostStatus, pool?: string): Wmi {
  if (pool === undefined) return { ...s.wmi };
  const want = pool.toLowerCase();
  const p = s.pools.find((x) => x.applicationId.toLowerCase() === want || x.name.toLowerCase() === want);
  if (!p) {
    const names = s.pools.map((x) => `"${x.name}" (${x.applicationId})`).join(', ');
    throw new UsageError(`--pool: no pool "${pool}"; the host has ${names}`);
  }
  return { ...s.wmi, KeyManagementServiceCurrentCount: p.count };
}

/**
 * The host section of `slmgr /dlv`, line for line as slmgr.vbs prints it from the same WMI values:
 * the KMS lines and the cumulative-request lines indented by four spaces, a blank line between the
 * two blocks. The last line (extended grace, LicenseStatus 6) is not in every slmgr build: drop it
 * to diff against one that lacks it.
 */
export function formatDlvHostSection(w: Wmi, extendedGrace: number): string {
  const port = w.KeyManagementServiceListeningPort || SLMGR_DEFAULT_PORT;
  const lines = [
    'Key Management Service is enabled on this machine',
    `    Current count: ${w.KeyManagementServiceCurrentCount}`,
    `    Listening on Port: ${port}`,
    `    DNS publishing ${w.KeyManagementServiceDnsPublishing ? 'enabled' : 'disabled'}`,
    `    KMS priority: ${w.KeyManagementServiceLowPriority ? 'Low' : 'Normal'}`,
    '',
    'Key Management Service cumulative requests received from clients',
    `    Total requests received: ${w.KeyManagementServiceTotalRequests}`,
    `    Failed requests received: ${w.KeyManagementServiceFailedRequests}`,
    `    Requests with License Status Unlicensed: ${w.KeyManagementServiceUnlicensedRequests}`,
    `    Requests with License Status Licensed: ${w.KeyManagementServiceLicensedRequests}`,
    `    Requests with License Status Initial grace period: ${w.KeyManagementServiceOOBGraceRequests}`,
    `    Requests with License Status License expired or Hardware out of tolerance: ${w.KeyManagementServiceOOTGraceRequests}`,
    `    Requests with License Status Non-genuine grace period: ${w.KeyManagementServiceNonGenuineGraceRequests}`,
    `    Requests with License Status Notification: ${w.KeyManagementServiceNotificationRequests}`,
    `    Requests with License Status Extended grace period: ${extendedGrace >>> 0}`,
  ];
  return `${lines.join('\n')}\n`;
}

interface StatusFlags {
  control: string;
  controlToken?: string;
  json?: boolean;
  pool?: string;
  timeout: string;
}

/** The control API's answer to one GET; a body over this is not a kmslab host's /status. */
const MAX_ANSWER_BYTES = 1 << 20;

/**
 * GET /status from the control API: the parsed answer, or an error with its exit code (2 refused,
 * 3 transport). node:http, not fetch: fetch refuses the ports on the WHATWG "bad port" list, and a
 * lab host's control API may listen on any port.
 */
async function fetchStatus(
  addr: ListenAddress,
  token: string | null,
  timeoutMs: number,
): Promise<HostStatus> {
  const where = formatHostPort(addr);
  const fail = (why: string, code: number = EXIT.FAILED) =>
    new UsageError(`--control ${where}: ${why}`, code);
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = http.get(
      {
        host: addr.host,
        port: addr.port,
        path: '/status',
        headers: token ? { authorization: `Bearer ${token}` } : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (b: Buffer) => {
          size += b.length;
          if (size > MAX_ANSWER_BYTES) req.destroy(fail(`/status answered over ${MAX_ANSWER_BYTES} bytes`));
          else chunks.push(b);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(fail(`cannot read /status: no answer within ${timeoutMs} ms`)));
    req.on('error', (e: Error & { code?: string }) =>
      reject(e instanceof UsageError ? e : fail(`cannot read /status: ${e.code ?? e.message}`)),
    );
  });
  if (status !== 200) {
    let msg = text.slice(0, 200);
    try {
      msg = String((JSON.parse(text) as { error?: unknown }).error ?? msg);
    } catch {
      // not JSON: the raw text
    }
    throw fail(`/status answered ${status}: ${msg}`, EXIT.REFUSED);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw fail('/status answered with something not JSON');
  }
  const parsed = STATUS_ANSWER.safeParse(body);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw fail(`/status is not a kmslab host's (${first?.path.join('.') || 'answer'}: ${first?.message})`);
  }
  return parsed.data;
}

async function runStatus(flags: StatusFlags): Promise<number> {
  let addr: ListenAddress;
  let timeoutMs: number;
  try {
    addr = parseHostPort(flags.control, 8688);
  } catch (e) {
    throw new UsageError(`--control: ${(e as Error).message}`);
  }
  try {
    timeoutMs = parseDuration(flags.timeout);
  } catch (e) {
    throw new UsageError(`--timeout: ${(e as Error).message}`);
  }
  if (timeoutMs <= 0) throw new UsageError(`--timeout: a duration > 0, got "${flags.timeout}"`);
  const token = readControlToken(flags.controlToken);
  const status = await fetchStatus(addr, token, timeoutMs);
  const wmi = wmiForPool(status, flags.pool);
  process.stdout.write(
    flags.json
      ? `${JSON.stringify(wmi, null, 2)}\n`
      : formatDlvHostSection(wmi, status.requestCounters.extendedGrace),
  );
  return EXIT.OK;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      "print a running host's KMS host section as `slmgr /dlv` does (current count, port, DNS publishing, priority, cumulative requests), read from its control API",
    )
    .option('--control <host:port>', "the host's control API", '127.0.0.1:8688')
    .option(
      '--control-token <file|->',
      'the bearer token the control API needs, read from FILE or stdin (or KMSLAB_CONTROL_TOKEN)',
    )
    .option('--pool <name|id>', 'show this count pool in "Current count" (default: Windows, as WMI does)')
    .option('--json', 'print the SoftwareLicensingService WMI properties as one JSON object')
    .option('--timeout <duration>', 'how long to wait for the control API', '10s')
    .action(async (flags: StatusFlags) => {
      process.exitCode = await runStatus(flags);
    });
}
