// Debian's Chromium (/usr/bin/chromium, or CHROMIUM_PATH) driven by playwright-core, for
// the end-to-end scripts: never a downloaded browser. One page in a fresh profile, with
// the flags this closed network needs (no background connections), and a list of what
// went wrong in the page (console errors, page errors, 5xx answers) for the failure
// report.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Opens the browser; `close()` ends it and removes the profile. */
export async function openBrowser(profilePrefix, timeoutMs) {
  const profile = mkdtempSync(path.join(tmpdir(), profilePrefix));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeoutMs);
  const trouble = [];
  page.on('console', (m) => {
    if (m.type() === 'error') trouble.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => trouble.push(`page error: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 500) trouble.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, page, trouble, close };
}
