// A child process of winograd.test.ts: one convolution on the wasm backend as STUDIO_WASM_THREADS,
// STUDIO_WINOGRAD_THREADS and the runtime's flags say; prints the threads, the Winograd build that ran,
// a hash of the output's bits and its largest difference from XNNPACK's (relative to the largest output).
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../src-main/engine/backend.ts';
import { winogradBuild } from '../../../src-main/engine/kernels/winograd.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';

const info = await initBackend('wasm');
const rng = mulberry32(9);
const x = tf.tensor4d(Float32Array.from({ length: 2 * 61 * 67 * 32 }, () => rng() - 0.5), [2, 61, 67, 32]);
const f = tf.tensor4d(Float32Array.from({ length: 9 * 32 * 64 }, () => (rng() - 0.5) * 0.1), [3, 3, 32, 64]);
const y = tf.conv2d(x, f, 1, 'same').dataSync();
const bits = new Int32Array(y.buffer);
let hash = 0;
for (const b of bits) hash = (Math.imul(hash, 31) + b) | 0;
process.env.STUDIO_WINOGRAD = '0';
const ref = tf.conv2d(x, f, 1, 'same').dataSync();
let diff = 0, scale = 0;
for (let i = 0; i < y.length; i++) { diff = Math.max(diff, Math.abs(y[i] - ref[i])); scale = Math.max(scale, Math.abs(ref[i])); }
console.log(JSON.stringify({ threads: info.threads, build: winogradBuild(), hash, error: diff / scale }));
