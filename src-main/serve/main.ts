/**
 * `npm run serve [-- --port N]`: the studio in a browser. Starts the engine worker and the local
 * server (127.0.0.1 only, a random token in the URL) and prints the URL to open. Ctrl-C cancels any
 * run and stops. STUDIO_BACKEND and STUDIO_MODELS_DIR apply as for the CLI.
 */
import { parseArgs } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineClient } from '../worker/client.ts';
import { buildRenderer } from './build-renderer.ts';
import { startServer } from './server.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const { values } = parseArgs({ options: { port: { type: 'string' }, backend: { type: 'string' }, rebuild: { type: 'boolean' } } });
const port = values.port ? Number(values.port) : 0;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`error: --port must be 0–65535, not ${values.port}\n`);
  process.exit(2);
}
const rendererDir = await buildRenderer(root, { force: values.rebuild, log: (s) => process.stderr.write(`${s}\n`) });
const engine = new EngineClient({ backend: values.backend });
let server: Awaited<ReturnType<typeof startServer>>;
try {
  server = await startServer({
    engine, rendererDir: path.resolve(rendererDir), port, onLog: (m) => process.stderr.write(`engine: ${m}\n`),
    // The Batch panel's engines take the same --backend.
    makeEngine: (wasmThreads) => new EngineClient({ backend: values.backend, wasmThreads }),
  });
} catch (e) {
  const inUse = (e as NodeJS.ErrnoException).code === 'EADDRINUSE';
  process.stderr.write(`error: ${inUse ? `port ${port} is in use; choose another with --port, or leave it out for a free one` : (e as Error).message}\n`);
  await engine.close();
  process.exit(2);
}
process.stdout.write(`Style Studio is running at ${server.url}\n(open it in a browser on this machine; Ctrl-C stops it)\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await server.close();
  await engine.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
