/**
 * What the end-to-end suites share: `npm run serve`'s entry started with a models folder (resolving
 * with the URL it prints) and stopped, and Debian's Chromium launched the way this machine needs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env.STUDIO_CHROMIUM ?? '/usr/bin/chromium';
export const SHOTS = path.resolve('test-results/e2e');
export const SAMPLES = path.resolve('assets/samples');

/** Starts the server on the WebAssembly backend; its stderr goes to `log`. */
export async function startServe(modelsDir: string, log: string[], env: Record<string, string> = {}): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src-main/serve/main.ts'], {
    env: { ...process.env, STUDIO_MODELS_DIR: modelsDir, STUDIO_BACKEND: 'wasm', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: string[] = [];
  proc.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
  const found = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no URL in 120 s:\n${out.join('')}`)), 120_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out.push(d.toString());
      const m = /running at (http:\/\/127\.0\.0\.1:\d+\/[\w-]+\/)/.exec(out.join(''));
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited (${code}):\n${out.join('')}`)));
  });
  return { proc, url: found };
}

export async function stopServe(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

/** A fresh profile each run; the flags keep Chromium off the (closed) network. */
export function launchChromium(profileDir: string, opts: { acceptDownloads?: boolean } = {}): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1360, height: 860 },
    ...opts,
  });
}
