/**
 * The dashboard in a real browser: a host on loopback with a manual clock, a few activations from the
 * client emulator, then headless Chromium (Debian's /usr/bin/chromium driven by playwright-core) reads
 * the counts, advances the clock 31 days and sees the pools empty. Saves docs/img/dashboard.png.
 *
 * If Chromium cannot be launched this test FAILS (it is never skipped): CI installs it (.ci/run).
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activate } from '../../src/client/client.js';
import { DAY, HOUR, type ManualClock } from '../../src/host/clock.js';
import { SeededRandom } from '../../src/host/random.js';
import { dashboardRoute } from '../../src/server/dashboard/index.js';
import { createMetrics, type ExtraRoute, type HostMetrics } from '../../src/server/metrics.js';
import { type HostRuntime, startHostRuntime } from '../../src/server/runtime.js';
import { type Browser, launchChromium } from '../helpers/chromium.js';

const SCREENSHOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/img/dashboard.png');

const WINDOWS = '55c92734-d682-4d71-983e-d6ec3f16059f';
const OFFICE = '0ff1ce15-a989-479d-af46-f275c6370663';

let rt: HostRuntime;
let metrics: HostMetrics | null = null;
let browser: Browser | undefined;
let page: Page;
let base: string;

async function activateAs(product: string, workstation: string, seed: string) {
  const kms = rt.addresses[0]!;
  const [r] = await activate({
    host: kms.host,
    port: kms.port,
    product,
    workstation,
    random: new SeededRandom(seed),
    clock: rt.clock,
    timeoutMs: 5000,
  });
  expect(r?.error, `${workstation}: ${JSON.stringify(r?.error)}`).toBeUndefined();
  return r!;
}

/** The page polls the host every second: wait up to 5 s for what it shows. */
const poll = <T>(fn: () => Promise<T>) => expect.poll(fn, { timeout: 5000, interval: 100 });

/** The text of a pool's count once it equals `want` (the page polls every second). */
async function waitForCount(applicationId: string, want: string): Promise<void> {
  const count = page.locator(`section[data-application-id="${applicationId}"] [data-field="count"]`);
  await poll(() => count.textContent()).toBe(want);
}

beforeAll(async () => {
  const late: ExtraRoute = (req, res, url) => metrics?.route(req, res, url) ?? false;
  rt = await startHostRuntime({
    clock: 'manual',
    store: 'memory',
    seed: 20260101,
    listen: [{ host: '127.0.0.1', port: 0 }],
    control: { host: '127.0.0.1', port: 0 },
    extraRoutes: [dashboardRoute(), late],
  });
  metrics = createMetrics(rt);
  base = `http://127.0.0.1:${rt.control!.address.port}`;

  // A small lab: three Windows 10/11 clients and a server on day 1; a second server and an Office
  // client on day 2.
  await activateAs('Windows 10/11 Enterprise', 'PC-001', 'pc1');
  await activateAs('Windows 10/11 Enterprise', 'PC-002', 'pc2');
  (rt.clock as ManualClock).advance(6 * HOUR);
  await activateAs('Windows 10/11 Pro', 'PC-003', 'pc3');
  await activateAs('Windows Server 2022 Standard', 'SRV-01', 'srv1');
  (rt.clock as ManualClock).advance(DAY);
  const last = await activateAs('Windows Server 2022 Datacenter', 'SRV-02', 'srv2');
  expect(last.count).toBe(5);
  expect(last.activated).toBe(true);
  await activateAs('Office LTSC Professional Plus 2021', 'PC-001', 'office1');
  (rt.clock as ManualClock).advance(2 * HOUR);
}, 30_000);

afterAll(async () => {
  await browser?.close();
  metrics?.dispose();
  await rt?.close();
});

describe('dashboard in headless Chromium', () => {
  it('shows the pools, thresholds, clients and events; advancing 31 days empties the pools', async () => {
    browser = await launchChromium();
    page = browser.page;
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    const res = await page.goto(`${base}/`);
    expect(res?.status()).toBe(200);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 5000 });

    await waitForCount(WINDOWS, '5');
    await waitForCount(OFFICE, '1');
    const windows = page.getByRole('region', { name: 'Windows', exact: true });
    await poll(() => windows.locator('[data-field="capacity"]').textContent()).toBe('50');
    const t5 = await windows.locator('[data-threshold="5"]').textContent();
    const t25 = await windows.locator('[data-threshold="25"]').textContent();
    expect(t5).toContain('✓ met');
    expect(t25).toContain('✗ not met');
    expect(t25).toContain('20 more machines needed');
    // Clients table: one row per machine, with headers.
    const table = windows.getByRole('table');
    expect(await table.locator('thead th').allTextContents()).toContain('Expires');
    expect(await table.locator('tbody tr').count()).toBe(5);
    expect(await table.textContent()).toContain('SRV-02');
    expect(await table.textContent()).toContain('Windows Server 2022 Datacenter');
    // The chart has a text alternative and a drawn line.
    expect(await windows.locator('svg[role="img"] desc').textContent()).toContain('count now 5');
    // The live event log.
    const log = page.getByRole('log');
    await poll(() => log.locator('li').count()).toBe(6);
    expect(await log.locator('li').first().textContent()).toContain('Office LTSC Professional Plus 2021');

    // A new activation shows up without reloading.
    await activateAs('Windows 10/11 Enterprise', 'PC-004', 'pc4');
    await waitForCount(WINDOWS, '6');
    await poll(() => log.locator('li').count()).toBe(7);
    // The cumulative request counters, slmgr /dlv's labels and WMI's values.
    const counters = page.getByRole('region', { name: 'Cumulative requests received from clients' });
    await poll(() => counters.locator('[data-wmi="KeyManagementServiceTotalRequests"]').textContent()).toBe(
      '7',
    );
    expect(await counters.textContent()).toContain('Total requests received');

    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);

    // Keyboard: focus the button and press Enter.
    const advance = page.getByRole('button', { name: 'Advance 31 days' });
    await advance.focus();
    await page.keyboard.press('Enter');
    await waitForCount(WINDOWS, '0');
    await waitForCount(OFFICE, '0');
    expect(await page.getByRole('status').textContent()).toContain('Clock advanced by 31 days');
    expect(await windows.locator('[data-threshold="5"]').textContent()).toContain('✗ not met');
    expect(await table.locator('tbody').textContent()).toContain('No machine is counted');
    expect(await windows.locator('svg[role="img"] desc').textContent()).toContain(
      'highest count 6, count now 0',
    );
    expect(rt.service.countFor(WINDOWS)).toBe(0);

    // Reset empties the event log too.
    await page.getByRole('button', { name: 'Reset pools and history' }).click();
    await poll(() => log.locator('li').count()).toBe(0);
    expect(rt.store.historyCount()).toBe(0);
    // Reset keeps the cumulative counters, as a genuine host does.
    expect(await counters.locator('[data-wmi="KeyManagementServiceTotalRequests"]').textContent()).toBe('7');
    expect(errors).toEqual([]);
  });

  it('serves /metrics beside the page with the same counts', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('kmslab_pool_count{application="Windows"'));
    expect(line?.split(' ').at(-1)).toBe(String(rt.service.countFor(WINDOWS)));
    expect(text).toMatch(/kmslab_requests_total\{[^}]*\} \d/);
  });
});
