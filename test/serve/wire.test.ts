import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, encodeFrame } from '../../src-main/wire.ts';

test('frames carry byte arrays raw and round-trip nested structures', () => {
  const a = new Uint8Array([1, 2, 3, 250]);
  const b = new Uint8Array(70_000).map((_, i) => i % 256);
  const msg = { t: 'call', id: 7, method: 'uploadImage', payload: { name: 'ünïcode.jpg', bytes: a, nested: [{ more: b }, null, 1.5] } };
  const frame = encodeFrame(msg);
  assert.ok(frame.byteLength < 4 + 200 + a.byteLength + b.byteLength, 'no base64 inflation');
  const back = decodeFrame(frame) as typeof msg;
  assert.deepEqual(back.payload.bytes, a);
  assert.ok(back.payload.bytes instanceof Uint8Array);
  assert.deepEqual((back.payload.nested[0] as { more: Uint8Array }).more, b);
  assert.equal(back.payload.name, 'ünïcode.jpg');
  assert.deepEqual(back.payload.nested.slice(1), [null, 1.5]);
});

test('a frame whose byte references point outside it is refused', () => {
  const json = new TextEncoder().encode(JSON.stringify({ x: { $bin: 0, n: 100 } }));
  const frame = new Uint8Array(4 + json.byteLength + 10);
  new DataView(frame.buffer).setUint32(0, json.byteLength, true);
  frame.set(json, 4);
  assert.throws(() => decodeFrame(frame), /outside the frame/);
  assert.throws(() => decodeFrame(new Uint8Array(2)), /too short/);
  const lying = new Uint8Array(8);
  new DataView(lying.buffer).setUint32(0, 1000, true);
  assert.throws(() => decodeFrame(lying), /longer than the frame/);
});
