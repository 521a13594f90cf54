/**
 * The compute backends the numeric tests run on: every one that starts here, or those named in
 * STUDIO_TEST_BACKENDS (comma-separated). The plain CPU backend is the reference and always runs.
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
      if (wanted) throw e; // asked for by name: failing to start is a test failure
      console.log(`# backend ${name} not available here, its tests are skipped: ${(e as Error).message}`);
    }
  }
  cached = ok;
  return ok;
}
