/**
 * Headless Chromium for the browser tests (Debian's /usr/bin/chromium driven by playwright-core), in a
 * throw-away profile. Launching is meant to run inside a test, not a hook, so a missing Chromium is a
 * failed test, never a skipped one: CI installs it (.ci/run).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

const CHROMIUM = process.env.KMSLAB_CHROMIUM ?? '/usr/bin/chromium';

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Closes the browser and removes its profile; idempotent. */
  close(): Promise<void>;
}

export async function launchChromium(viewport = { width: 1280, height: 900 }): Promise<Browser> {
  const profileDir = mkdtempSync(path.join(tmpdir(), 'kmslab-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
      viewport,
      timeout: 20_000,
    });
  } catch (e) {
    rmSync(profileDir, { recursive: true, force: true });
    throw new Error(
      `Chromium could not be launched from ${CHROMIUM} (install it: apt-get install -y chromium): ${(e as Error).message}`,
    );
  }
  const page = context.pages()[0] ?? (await context.newPage());
  let closed = false;
  return {
    context,
    page,
    async close() {
      if (closed) return;
      closed = true;
      await context.close();
      rmSync(profileDir, { recursive: true, force: true });
    },
  };
}
