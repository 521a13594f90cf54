import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeSafetensors, decodeSafetensors } from '../../../src-main/engine/tensors/safetensors.ts';
import { roundToF16 } from '../../../src-main/engine/tensors/half.ts';
import type { TensorMap } from '../../../src-main/engine/models/format.ts';
import { StudioError } from '../../../src-main/errors.ts';
import { mulberry32, gaussian } from '../../../src-main/engine/random.ts';

function sample(): TensorMap {
  const rng = mulberry32(3);
  const t: TensorMap = new Map();
  t.set('b.kernel', { dtype: 'F32', shape: [3, 3, 2, 4], data: Float32Array.from({ length: 72 }, () => gaussian(rng) * 10) });
  t.set('a.bias', { dtype: 'F32', shape: [4], data: new Float32Array([0, -1e-8, 70000, 1 + 2 ** -11]) });
  t.set('scalar', { dtype: 'F32', shape: [], data: new Float32Array([42]) });
  t.set('empty', { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) });
  return t;
}

const badFile = (re: RegExp) => (e: unknown) => e instanceof StudioError && e.code === 'BAD_FILE' && re.test(e.message);

test('F32 round trip is exact, with metadata, and the layout follows the spec', () => {
  const t = sample();
  const buf = encodeSafetensors(t, { architecture: 'vgg19', note: 'ünïcode' });
  const n = Number(buf.readBigUInt64LE(0));
  assert.equal(n % 8, 0, 'header padded to 8 bytes');
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  assert.deepEqual(header['a.bias'], { dtype: 'F32', shape: [4], data_offsets: [0, 16] });
  assert.deepEqual(header.__metadata__, { architecture: 'vgg19', note: 'ünïcode' });
  assert.equal(buf.length, 8 + n + (72 + 4 + 1 + 0) * 4);
  const back = decodeSafetensors(buf);
  assert.deepEqual(back.metadata, { architecture: 'vgg19', note: 'ünïcode' });
  assert.equal(back.tensors.size, 4);
  for (const [k, v] of t) assert.deepEqual(back.tensors.get(k), v, k);
  assert.deepEqual(decodeSafetensors(encodeSafetensors(t)).metadata, {});
});

test('F16 round trip: every value is the nearest-even half of the original', () => {
  const t = sample();
  const buf = encodeSafetensors(t, undefined, 'F16');
  const back = decodeSafetensors(buf);
  for (const [k, v] of t) {
    const u = back.tensors.get(k)!;
    assert.equal(u.dtype, 'F16');
    assert.deepEqual(u.shape, v.shape);
    assert.deepEqual([...u.data], [...v.data].map(roundToF16), k);
  }
  assert.equal(back.tensors.get('a.bias')!.data[2], Infinity); // 70000 overflows half
  assert.equal(back.tensors.get('a.bias')!.data[3], 1); // tie → even
  // A tensor marked F16 keeps that type without the override.
  const mixed: TensorMap = new Map([['h', { dtype: 'F16', shape: [2], data: new Float32Array([0.1, 2]) }]]);
  const h = decodeSafetensors(encodeSafetensors(mixed)).tensors.get('h')!;
  assert.equal(h.dtype, 'F16');
  assert.equal(h.data[0], Math.fround(roundToF16(0.1)));
});

function rawFile(header: object, dataBytes: number): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.alloc(dataBytes)]);
}

test('reads BF16 as float32', () => {
  const buf = rawFile({ x: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] } }, 4);
  buf.writeUInt16LE(0x3f80, buf.length - 4); // 1
  buf.writeUInt16LE(0xc040, buf.length - 2); // -3
  assert.deepEqual([...decodeSafetensors(buf).tensors.get('x')!.data], [1, -3]);
});

test('invalid headers are BAD_FILE with a clear message', () => {
  assert.throws(() => decodeSafetensors(Buffer.alloc(4)), badFile(/shorter/));
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(1000n);
  assert.throws(() => decodeSafetensors(huge), badFile(/header length 1000/));
  const notJson = Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{{{{')]);
  assert.throws(() => decodeSafetensors(notJson), badFile(/not JSON/));
  assert.throws(() => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 16] } }, 8)), badFile(/outside the 8 data bytes/));
  assert.throws(() => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8)), badFile(/needs 12 bytes/));
  assert.throws(() => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 8] } }, 8)), badFile(/bad shape/));
  assert.throws(() => decodeSafetensors(rawFile({ x: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, 8)), badFile(/unsupported dtype I64/));
  assert.throws(
    () => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, y: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 8)),
    badFile(/overlap or leave a gap/),
  );
  assert.throws(() => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 8)), badFile(/cover 4 data bytes but the file has 8/));
  assert.throws(() => decodeSafetensors(rawFile({ __metadata__: { a: 1 }, x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4)), badFile(/__metadata__.a must be a string/));
});
