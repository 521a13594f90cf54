// Worker entry when running from sources: TypeScript through tsx, then the engine worker itself.
import { register } from 'tsx/esm/api';

register();
await import('./engine-worker.ts');
