// Smoothing worker entry when running from sources: TypeScript through tsx (as worker/boot.mjs).
import { register } from 'tsx/esm/api';

register();
await import('./smooth-worker.ts');
