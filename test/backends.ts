/**
 * The compute backends the numeric tests run on: every one that starts here (WebGPU also on a
 * software adapter), or those named in STUDIO_TEST_BACKENDS (comma-separated). In CI (CI=true) a
 * missing WebGPU adapter fails the run: CI installs Mesa's software Vulkan precisely to prove that path.
 */
import { initBackend, BACKEND_NAMES, type BackendName } from '../src-main/engine/backend.ts';

let cached: BackendName[] | undefined;

export async function testBackends(): Promise<BackendName[]> {
  if (cached) return cached;
  const wanted = process.env.STUDIO_TEST_BACKENDS?.split(',').map((s) => s.trim()).filter(Boolean);
  const candidates = (wanted ?? [...BACKEND_NAMES]) as BackendName[];
  const ok: BackendName[] = [];
  for (const name of candidates) {
    try {
      await initBackend(name);
      ok.push(name);
    } catch (e) {
      // Asked for by name, or the GPU path in CI: failing to start is a failure, not a skip.
      if (wanted || (name === 'webgpu' && process.env.CI === 'true')) throw e;
      console.log(`# SKIPPED: the ${name} tests, because that backend cannot start here: ${(e as Error).message}`);
    }
  }
  cached = ok;
  return ok;
}

/** Whether a backend is in the test set (for tests that compare two backends). */
export async function hasBackend(name: BackendName): Promise<boolean> {
  return (await testBackends()).includes(name);
}
