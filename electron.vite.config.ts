// electron-vite builds the three sides of the desktop app into out/: the main process (with the engine
// worker as a second entry, so the engine never runs on the main thread), the preload, and the React
// renderer. Dependencies stay external (native addons such as sharp and Dawn load from node_modules).
import { resolve } from 'node:path';
import { defineConfig } from 'electron-vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  main: {
    build: {
      rollupOptions: {
        input: {
          index: resolve('src-main/app/main.ts'),
          'engine-worker': resolve('src-main/worker/engine-worker.ts'),
          // The smoothing solver's thread pool (smooth-pool.ts finds it next to the engine worker).
          'smooth-worker': resolve('src-main/engine/photo/smooth-worker.ts'),
        },
      },
    },
  },
  preload: {
    build: {
      // A sandboxed renderer's preload cannot be an ES module.
      rollupOptions: { input: { index: resolve('src-main/preload/index.ts') }, output: { format: 'cjs' } },
    },
  },
  renderer: {
    root: 'src-renderer',
    build: { rollupOptions: { input: resolve('src-renderer/index.html') } },
    plugins: [react()],
  },
});
