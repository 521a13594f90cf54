/**
 * What a batch computes once and every file reuses, kept in the engine worker between jobs that ask
 * for it (`cacheStyle`): the style's Gram matrices (Gatys) or per-level statistics (PhotoWCT), and
 * the model weights read from disk. Plain arrays, not tensors, so every job still returns tfjs
 * memory to where it started. One entry per kind: a new style or new settings replace the old, so
 * memory stays bounded whatever the batch.
 */
import { stat } from 'node:fs/promises';

const entries = new Map<string, { key: string; value: unknown }>();

/** A key that changes when any of the files change (path, size, modification time) or the settings do. */
export async function cacheKey(files: string[], settings: unknown): Promise<string> {
  const stamps = await Promise.all(files.map(async (f) => {
    const s = await stat(f);
    return [f, s.size, s.mtimeMs];
  }));
  return JSON.stringify([stamps, settings]);
}

/** The cached value of `kind` for `key`, made (and kept) by `make` when absent or stale. */
export async function cached<T>(kind: string, key: string, make: () => T | Promise<T>): Promise<{ value: T; hit: boolean }> {
  const e = entries.get(kind);
  if (e && e.key === key) return { value: e.value as T, hit: true };
  entries.delete(kind); // drop the old one before making the new (bounded memory)
  const value = await make();
  entries.set(kind, { key, value });
  return { value, hit: false };
}

/** Forgets everything (a batch ended). */
export function clearStyleCache(): void {
  entries.clear();
}
