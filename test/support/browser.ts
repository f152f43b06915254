// A headless Chromium for the dashboard's browser tests that needs nothing beyond `npm install`:
// @sparticuz/chromium ships the browser inside its npm tarball and unpacks it on first use (into
// the OS temp dir, about 2 s once). CHROMIUM_PATH points at another Chromium instead (Debian's,
// say); no test ever downloads a browser.
import sparticuz from '@sparticuz/chromium';
import { chromium, type Browser } from 'playwright-core';

/**
 * Sparticuz's flags minus the ones that switch the browser's own security off
 * (`--disable-web-security` and friends: the dashboard's tests rely on same-origin rules and CSP
 * behaving as in a user's browser) and `--single-process` (meant for AWS Lambda; with it, closing
 * a second browser context takes the whole browser down).
 */
const DROPPED = new Set(['--disable-web-security', '--allow-running-insecure-content', '--disable-site-isolation-trials', '--single-process']);

export async function launchChromium(): Promise<Browser> {
  const override = process.env.CHROMIUM_PATH;
  if (override) {
    return chromium.launch({ executablePath: override, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  }
  const executablePath = await sparticuz.executablePath();
  return chromium.launch({ executablePath, args: sparticuz.args.filter((a) => !DROPPED.has(a)) });
}
