/** Types for build-wasm.mjs (imported by its freshness test). */
export function generate(): Promise<string>;
