/** Types for build-wasm.mjs (imported by the generated modules' freshness tests). */
export function generate(name?: 'stencil' | 'covariance' | 'eigen' | 'winograd' | 'pool' | 'mask'): Promise<string>;
