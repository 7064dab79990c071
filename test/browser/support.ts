import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';

export const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts');

const BASE_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Debian's Chromium, headless; `fakeMicWav` feeds a WAV file as the microphone. */
export async function launchChromium(options: { fakeMicWav?: string } = {}): Promise<Browser> {
  const args = [...BASE_FLAGS];
  if (options.fakeMicWav) {
    args.push(
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${options.fakeMicWav}`,
      '--autoplay-policy=no-user-gesture-required',
    );
  }
  return chromium.launch({ executablePath: '/usr/bin/chromium', args, timeout: 30_000 });
}

/** Saves a full-page screenshot to test-artifacts/ (gitignored) for a human to look at. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  // a sticky header would otherwise be drawn where the page happened to be scrolled
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Collects page errors so a test can assert the front end ran without throwing. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (
      m.type() === 'error' &&
      !/Failed to load resource|ERR_CONNECTION_REFUSED|ERR_ADDRESS_UNREACHABLE/.test(m.text())
    ) {
      errors.push(m.text());
    }
  });
  return errors;
}

export async function signIn(page: Page, url: string, username: string, password: string): Promise<void> {
  await page.goto(`${url}/login`);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(/\/events/, { timeout: 10_000 }), page.click('button[type=submit]')]);
}
