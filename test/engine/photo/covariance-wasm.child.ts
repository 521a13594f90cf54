// Run by covariance-wasm.test.ts in a process of its own (STUDIO_WASM_THREADS picks tfjs-wasm's build):
// prints the in-place passes' results on a fixed matrix as one JSON line.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { featureStatsInPlace, inPlaceKernelsAvailable } from '../../../src-main/engine/photo/covariance-wasm.ts';

const info = await initBackend('wasm');
const x = tf.tensor2d(Array.from({ length: 600 * 16 }, (_, i) => Math.abs(Math.sin(i * 0.37)) * 50), [600, 16]);
const st = featureStatsInPlace(x);
console.log(JSON.stringify({ threads: info.threads, available: inPlaceKernelsAvailable(), scatter: Array.from(st.scatter), mean: Array.from(st.mean) }));
