// A child process of winograd.test.ts: one convolution on the wasm backend as STUDIO_WASM_THREADS and
// STUDIO_WINOGRAD_THREADS say; prints the threads and a hash of the output's bits.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';

const info = await initBackend('wasm');
const rng = mulberry32(9);
const x = tf.tensor4d(Float32Array.from({ length: 2 * 61 * 67 * 32 }, () => rng() - 0.5), [2, 61, 67, 32]);
const f = tf.tensor4d(Float32Array.from({ length: 9 * 32 * 64 }, () => (rng() - 0.5) * 0.1), [3, 3, 32, 64]);
const bits = new Int32Array(tf.conv2d(x, f, 1, 'same').dataSync().buffer);
let hash = 0;
for (const b of bits) hash = (Math.imul(hash, 31) + b) | 0;
console.log(JSON.stringify({ threads: info.threads, hash }));
