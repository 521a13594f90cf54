/**
 * Builds the renderer for `npm run serve` with Vite (the same sources and plugin as electron-vite's
 * renderer build, relative asset URLs so they load under the token path), into out/serve-renderer.
 * Skipped when the build is newer than every source it depends on.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

async function newestMtime(paths: string[]): Promise<number> {
  let newest = 0;
  for (const p of paths) {
    const st = await stat(p).catch(() => undefined);
    if (!st) continue;
    if (st.isDirectory()) {
      const names = await readdir(p);
      newest = Math.max(newest, await newestMtime(names.map((n) => path.join(p, n))));
    } else {
      newest = Math.max(newest, st.mtimeMs);
    }
  }
  return newest;
}

export async function buildRenderer(root: string, opts: { force?: boolean; log?: (s: string) => void } = {}): Promise<string> {
  const outDir = path.join(root, 'out', 'serve-renderer');
  // What the renderer bundle imports: its own folder and the browser-safe contract files.
  const sources = [path.join(root, 'src-renderer'), ...['api-contract.ts', 'batch-contract.ts', 'protocol.ts', 'wire.ts', 'errors.ts'].map((f) => path.join(root, 'src-main', f))];
  const built = (await stat(path.join(outDir, 'index.html')).catch(() => undefined))?.mtimeMs ?? 0;
  if (!opts.force && built > (await newestMtime(sources))) return outDir;
  opts.log?.('building the renderer…');
  const { build } = await import('vite');
  const react = (await import('@vitejs/plugin-react')).default;
  await build({
    configFile: false,
    root: path.join(root, 'src-renderer'),
    base: './',
    logLevel: 'warn',
    plugins: [react()],
    build: { outDir, emptyOutDir: true },
  });
  return outDir;
}
