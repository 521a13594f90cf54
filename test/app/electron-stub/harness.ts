// Starts and quits src-main/app/main.ts against the stand-in for Electron (electron.mjs), with the
// tiny network and decoders in a temporary models folder: the set-up the main-process tests share.
import { register } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTinyFixtures } from '../../../src-main/engine/models/tiny.ts';

/** The stand-in's state the harness itself uses; each test declares the rest it reads. */
interface StubBase {
  handlers: Map<string, unknown>;
  appListeners: Record<string, ((...a: unknown[]) => void)[]>;
  quitCalls: number;
}

/**
 * Makes the temporary folder, installs the stand-in's state and module hooks, runs `beforeMain`
 * (to wrap parts of the stand-in) and loads the main process, until its IPC handler is registered.
 */
export async function startMain<S extends StubBase>(prefix: string, beforeMain?: () => Promise<void>): Promise<{ tmp: string; stub: S }> {
  const tmp = await mkdtemp(path.join(tmpdir(), prefix));
  await writeTinyFixtures(path.join(tmp, 'models'));
  process.env.STUDIO_MODELS_DIR = path.join(tmp, 'models');
  process.env.STUDIO_BACKEND = 'wasm';
  // Every field the stand-in uses (see electron.mjs).
  const state = {
    windows: [], handlers: new Map(), appListeners: {}, contentsCreated: [], menu: null, sent: [], opened: [], quitCalls: 0,
    userData: tmp,
  };
  (globalThis as unknown as { __electronStub: unknown }).__electronStub = state;
  register('./hooks.mjs', import.meta.url);
  await beforeMain?.();
  await import('../../../src-main/app/main.ts');
  for (let i = 0; i < 50 && !state.handlers.has('studio:call'); i++) await new Promise((r) => setTimeout(r, 20));
  return { tmp, stub: state as unknown as S };
}

/** Quits the app if a test did not (the engine worker would keep the process alive), then removes the folder. */
export async function quitMain(stub: StubBase | undefined, tmp: string | undefined): Promise<void> {
  if (stub && stub.quitCalls === 0) {
    for (const fn of stub.appListeners['before-quit'] ?? []) fn({ preventDefault: () => undefined });
    for (let i = 0; i < 200 && stub.quitCalls === 0; i++) await new Promise((r) => setTimeout(r, 25));
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
}
