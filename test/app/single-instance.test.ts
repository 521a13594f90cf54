/**
 * The second instance of the app (its own process, as Electron's would be): it does not get the
 * single-instance lock, so it opens no window, registers no IPC, starts no engine and quits; the
 * first instance is told (second-instance) and comes forward (main-process.test.ts).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { quitMain, startMain } from './electron-stub/harness.ts';

interface Stub { windows: unknown[]; handlers: Map<string, unknown>; appListeners: Record<string, ((...a: unknown[]) => void)[]>; quitCalls: number }
let tmp: string | undefined;

after(async () => {
  if (tmp) await quitMain(undefined, tmp);
});

test('a second instance quits at once: no window, no IPC, no engine', async () => {
  const started = await startMain<Stub>('studio-second-', async () => {
    (globalThis as unknown as { __electronStub: { singleInstanceLock?: boolean } }).__electronStub.singleInstanceLock = false;
  });
  tmp = started.tmp;
  const stub = started.stub;
  assert.equal(stub.quitCalls, 1, 'quit');
  assert.equal(stub.windows.length, 0, 'no window');
  assert.equal(stub.handlers.size, 0, 'no IPC handler');
});
