import net from 'node:net';
import { register } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { activate } from '../../../src/client/client.js';
import { DAY, type ManualClock } from '../../../src/host/clock.js';
import { SeededRandom } from '../../../src/host/random.js';
import { DASHBOARD_JS, dashboardRoute } from '../../../src/server/dashboard/index.js';
import { createMetrics, type ExtraRoute, type HostMetrics } from '../../../src/server/metrics.js';
import { type HostRuntime, type HostRuntimeOptions, startHostRuntime } from '../../../src/server/runtime.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { StoreChange } from '../../../src/store/store.js';

const WINDOWS = '55c92734-d682-4d71-983e-d6ec3f16059f';

interface Lab {
  rt: HostRuntime;
  metrics: HostMetrics;
  base: string;
}

const labs: Lab[] = [];

afterEach(async () => {
  for (const l of labs.splice(0)) {
    l.metrics.dispose();
    await l.rt.close();
  }
});

/** A host on loopback with metrics and the dashboard on its control port. */
async function startLab(extra: Partial<HostRuntimeOptions> = {}): Promise<Lab> {
  let metrics: HostMetrics | null = null;
  const late: ExtraRoute = (req, res, url) => metrics?.route(req, res, url) ?? false;
  const rt = await startHostRuntime({
    clock: 'manual',
    store: 'memory',
    seed: 7,
    listen: [{ host: '127.0.0.1', port: 0 }],
    control: { host: '127.0.0.1', port: 0 },
    extraRoutes: [late, dashboardRoute()],
    ...extra,
  });
  metrics = createMetrics(rt);
  const lab = { rt, metrics, base: `http://127.0.0.1:${rt.control!.address.port}` };
  labs.push(lab);
  return lab;
}

async function run(lab: Lab, product: string, seed: string, workstation = seed) {
  const a = lab.rt.addresses[0]!;
  const [r] = await activate({
    host: a.host,
    port: a.port,
    product,
    workstation,
    random: new SeededRandom(seed),
    clock: lab.rt.clock,
    timeoutMs: 3000,
  });
  return r!;
}

async function scrape(lab: Lab): Promise<string> {
  const res = await fetch(`${lab.base}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
}

/** The value of the sample `name` whose labels include `labels` (undefined when there is none). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[3] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}

describe('metrics', () => {
  it('counts requests by protocol, application, result and NDR syntax, with pool gauges and thresholds', async () => {
    const lab = await startLab();
    for (let i = 1; i <= 3; i++)
      expect((await run(lab, 'Windows 10/11 Enterprise', `pc${i}`)).error).toBeUndefined();
    for (let i = 1; i <= 2; i++)
      expect((await run(lab, 'Windows Server 2022 Standard', `srv${i}`)).error).toBeUndefined();
    expect((await run(lab, 'Office LTSC Professional Plus 2021', 'office1')).error).toBeUndefined();
    const text = await scrape(lab);

    expect(
      sample(text, 'kmslab_requests_total', { protocol: '6', application: 'Windows', result: '0x00000000' }),
    ).toBe(5);
    expect(sample(text, 'kmslab_requests_total', { application: 'Office2013+', result: '0x00000000' })).toBe(
      1,
    );
    expect(text).toMatch(/kmslab_requests_total\{[^}]*ndr="ndr(32|64)"/);
    expect(
      sample(text, 'kmslab_activation_decisions_total', { application: 'Windows', decision: 'activated' }),
    ).toBe(1);
    expect(
      sample(text, 'kmslab_activation_decisions_total', {
        application: 'Windows',
        decision: 'count_insufficient',
      }),
    ).toBe(4);

    expect(sample(text, 'kmslab_pool_count', { application: 'Windows', application_id: WINDOWS })).toBe(5);
    expect(sample(text, 'kmslab_pool_capacity', { application: 'Windows' })).toBe(50);
    expect(sample(text, 'kmslab_pool_capacity', { application: 'Office2013+' })).toBe(10);
    expect(sample(text, 'kmslab_pool_count', { application: 'Office2010' })).toBe(0);
    expect(sample(text, 'kmslab_pool_threshold_met', { application: 'Windows', required_count: '5' })).toBe(
      1,
    );
    expect(sample(text, 'kmslab_pool_threshold_met', { application: 'Windows', required_count: '25' })).toBe(
      0,
    );
    // Both servers would activate now; the three clients (threshold 25) would not.
    expect(
      sample(text, 'kmslab_pool_would_activate_clients', { application: 'Windows', required_count: '5' }),
    ).toBe(2);
    expect(
      sample(text, 'kmslab_pool_would_activate_clients', { application: 'Windows', required_count: '25' }),
    ).toBe(0);
    expect(
      sample(text, 'kmslab_pool_would_activate_clients', { application: 'Office2013+', required_count: '5' }),
    ).toBe(0);

    expect(sample(text, 'kmslab_connections_total')).toBe(6);
    expect(sample(text, 'kmslab_binds_total')).toBeGreaterThanOrEqual(6);
    expect(sample(text, 'kmslab_request_duration_seconds_count', { protocol: '6' })).toBe(6);
    expect(sample(text, 'kmslab_request_duration_seconds_bucket', { protocol: '6', le: '+Inf' })).toBe(6);
    expect(sample(text, 'kmslab_store_errors_total')).toBe(0);
    expect(sample(text, 'kmslab_clock_time_seconds')).toBe(lab.rt.clock.now() / 1000);
    expect(sample(text, 'kmslab_history_records')).toBe(6);

    // 31 virtual days later every CMID has expired.
    (lab.rt.clock as ManualClock).advance(31 * DAY);
    const later = await scrape(lab);
    expect(sample(later, 'kmslab_pool_count', { application: 'Windows' })).toBe(0);
    expect(sample(later, 'kmslab_pool_threshold_met', { application: 'Windows', required_count: '5' })).toBe(
      0,
    );
    expect(
      sample(later, 'kmslab_pool_would_activate_clients', { application: 'Windows', required_count: '5' }),
    ).toBe(0);
  });

  it('keeps one registry per host: two hosts in one process, nothing in the global registry', async () => {
    const a = await startLab();
    const b = await startLab();
    await run(a, 'Windows 10/11 Enterprise', 'only-a');
    expect(sample(await scrape(a), 'kmslab_pool_count', { application: 'Windows' })).toBe(1);
    expect(sample(await scrape(b), 'kmslab_pool_count', { application: 'Windows' })).toBe(0);
    expect(a.metrics.registry).not.toBe(b.metrics.registry);
    expect((await register.getMetricsAsJSON()).filter((m) => m.name.startsWith('kmslab_'))).toEqual([]);
  });

  it('counts /healthz self-activations apart, never as a request of an unknown protocol', async () => {
    const a = await startLab();
    const res = await fetch(`${a.base}/healthz`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { ok: boolean }).ok).toBe(true);
    const text = await scrape(a);
    expect(sample(text, 'kmslab_health_checks_total')).toBe(1);
    expect(text).not.toMatch(/^kmslab_requests_total\{/m);
    expect(sample(text, 'kmslab_binds_total')).toBeGreaterThanOrEqual(1);
  });

  it("reports the process's memory and CPU under the usual Prometheus names, read at scrape time", async () => {
    const a = await startLab();
    const text = await scrape(a);
    const rss = sample(text, 'process_resident_memory_bytes')!;
    // Within 20 % of what the process itself says now (the scrape ran a moment ago).
    expect(Math.abs(rss - process.memoryUsage.rss()) / rss).toBeLessThan(0.2);
    expect(sample(text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(1e6);
    expect(sample(text, 'nodejs_heap_size_total_bytes')).toBeGreaterThanOrEqual(
      sample(text, 'nodejs_heap_size_used_bytes')!,
    );
    const cpu = sample(text, 'process_cpu_seconds_total')!;
    expect(cpu).toBeGreaterThan(0);
    expect(sample(await scrape(a), 'process_cpu_seconds_total')).toBeGreaterThanOrEqual(cpu);
    const start = sample(text, 'process_start_time_seconds')!;
    expect(Math.abs(start - (Date.now() / 1000 - process.uptime()))).toBeLessThan(2);
    expect(text).toMatch(/# TYPE process_cpu_seconds_total counter/);
  });

  it('counts rejected connections, RPC protocol errors and open connections', async () => {
    let accept = true;
    const lab = await startLab({
      hooks: { faults: { accept: () => accept, bind: () => null, call: () => null } },
    });
    accept = false;
    const refused = await run(lab, 'Windows 10/11 Enterprise', 'refused');
    expect(refused.error?.kind).toBe('transport');
    accept = true;

    // A bind header whose frag_length (8) is shorter than the header: the host closes with a protocol error.
    const { port } = lab.rt.addresses[0]!;
    const sock = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    const open = await scrape(lab);
    expect(sample(open, 'kmslab_open_connections')).toBe(1);
    const header = Buffer.from('05000b03100000000800000001000000', 'hex');
    sock.write(header);
    await new Promise<void>((resolve) => {
      sock.once('close', () => resolve());
      sock.resume();
    });
    const text = await scrape(lab);
    expect(sample(text, 'kmslab_connections_rejected_total', { reason: 'fault' })).toBe(1);
    expect(sample(text, 'kmslab_protocol_errors_total', { layer: 'rpc' })).toBe(1);
    expect(sample(text, 'kmslab_connections_total')).toBe(1);
    await expect
      .poll(async () => sample(await scrape(lab), 'kmslab_open_connections'), { timeout: 3000 })
      .toBe(0);
  });

  it('counts store errors: calls that failed with a non-protocol error and got an RPC fault', async () => {
    class FlakyStore extends MemoryStore {
      fail = false;
      override commit(change: StoreChange): number {
        if (this.fail && change.history) throw new Error('disk full');
        return super.commit(change);
      }
    }
    const store = new FlakyStore();
    const lab = await startLab({ store });
    expect((await run(lab, 'Windows 10/11 Enterprise', 'ok1')).error).toBeUndefined();
    store.fail = true;
    const failed = await run(lab, 'Windows 10/11 Enterprise', 'bad1');
    expect(failed.error?.kind).toBe('rpc');
    store.fail = false;
    const text = await scrape(lab);
    expect(sample(text, 'kmslab_store_errors_total')).toBe(1);
    expect(sample(text, 'kmslab_rpc_faults_total', { status: '0x1C010001' })).toBe(1);
    expect(sample(text, 'kmslab_requests_total', { result: '0x00000000' })).toBe(1);
    // A second scrape does not count it again.
    expect(sample(await scrape(lab), 'kmslab_store_errors_total')).toBe(1);
  });

  it('answers 405 to other methods on /metrics and leaves other paths to the control API', async () => {
    const lab = await startLab();
    expect(
      (
        await fetch(`${lab.base}/metrics`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        })
      ).status,
    ).toBe(405);
    expect((await fetch(`${lab.base}/status`)).status).toBe(200);
    expect((await fetch(`${lab.base}/nothing-here`)).status).toBe(404);
  });
});

describe('dashboard routes', () => {
  it('serve the page, its script, styles and catalog with a strict content security policy', async () => {
    const lab = await startLab();
    const page = await fetch(`${lab.base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<html lang="en">');
    expect(html).toContain('Advance 31 days');
    expect(html).toContain('role="log"');
    const js = await fetch(`${lab.base}/dashboard/app.js`);
    expect(js.headers.get('content-type')).toContain('javascript');
    const code = await js.text();
    expect(code).toBe(DASHBOARD_JS);
    expect(() => new Function(code)).not.toThrow();
    expect(code).not.toContain('innerHTML');
    expect((await fetch(`${lab.base}/dashboard/app.css`)).headers.get('content-type')).toContain('text/css');
    const cat = (await (await fetch(`${lab.base}/dashboard/catalog.json`)).json()) as {
      skus: Record<string, string>;
      kmsIds: Record<string, { requiredCount: number }>;
    };
    expect(cat.skus['73111121-5638-40f6-bc11-f1d7b0d64300']).toBe('Windows 10/11 Enterprise');
    expect(Object.values(cat.kmsIds).some((k) => k.requiredCount === 25)).toBe(true);
    expect((await fetch(`${lab.base}/dashboard/missing.js`)).status).toBe(404);
  });
});
