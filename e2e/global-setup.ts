/** Before the suite: a Chromium to drive (installed if there is none), and which one, said once. */
import { ensureChromium } from './browser.ts';

export default function globalSetup(): void {
  const chosen = ensureChromium();
  process.stdout.write(`e2e: driving ${chosen.which}\n`);
}
