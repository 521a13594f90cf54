import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeNpy, decodeNpy, writeNpy, readNpy, npyHeader } from '../../../src-main/engine/tensors/npy.ts';
import { StudioError } from '../../../src-main/errors.ts';

/** What `np.save(f, np.zeros((2, 3), np.float32))` writes before the data, byte for byte. */
function numpyHeader2x3(): Buffer {
  const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const total = 128; // 10-byte prefix + dict + spaces + '\n', padded to a multiple of 64
  return Buffer.concat([
    Buffer.from([0x93]), Buffer.from('NUMPY', 'latin1'), Buffer.from([1, 0]),
    Buffer.from([total - 10, 0]), // header length, little-endian uint16 = 118
    Buffer.from(dict + ' '.repeat(total - 10 - dict.length - 1) + '\n', 'latin1'),
  ]);
}

function header(descr: string, shape: string, fortran = 'False'): Buffer {
  const dict = `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
  const len = Math.ceil((10 + dict.length + 1) / 64) * 64 - 10;
  return Buffer.concat([Buffer.from([0x93]), Buffer.from('NUMPY'), Buffer.from([1, 0, len & 0xff, len >> 8]), Buffer.from(dict.padEnd(len - 1) + '\n')]);
}

test('the header is byte-identical to NumPy for shape (2, 3), and the data follows it', () => {
  const data = new Float32Array([1, 2, 3, 4, 5, -6.5]);
  const buf = encodeNpy(data, [2, 3]);
  assert.deepEqual(buf.subarray(0, 128), numpyHeader2x3());
  assert.equal(buf.length, 128 + 24);
  assert.equal(buf.readFloatLE(128 + 20), -6.5);
  assert.equal(npyHeader([2, 3]).length % 64, 0);
});

test('round trips of several shapes (0-d, 1-d, empty, 4-d)', () => {
  for (const shape of [[], [5], [0], [2, 3, 4, 5], [1, 1, 1]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: n }, (_, i) => i * 0.25 - 3);
    const buf = encodeNpy(data, shape);
    assert.equal(buf.indexOf(0x0a) + 1, buf.length - n * 4, 'header ends with a newline right before the data');
    assert.equal((buf.length - n * 4) % 64, 0);
    const back = decodeNpy(buf);
    assert.deepEqual(back.shape, shape);
    assert.deepEqual(back.data, data);
  }
  assert.ok(encodeNpy(new Float32Array(5), [5]).includes(Buffer.from("'shape': (5,), ")));
});

test('reads float64, float16 and big-endian float32 by converting', () => {
  const f8 = Buffer.alloc(16);
  f8.writeDoubleLE(1.5, 0);
  f8.writeDoubleLE(-2.25, 8);
  assert.deepEqual([...decodeNpy(Buffer.concat([header('<f8', '(2,)'), f8])).data], [1.5, -2.25]);
  const f2 = Buffer.from([0x00, 0x3c, 0x00, 0xc0]); // 1, -2
  assert.deepEqual([...decodeNpy(Buffer.concat([header('<f2', '(1, 2)'), f2])).data], [1, -2]);
  const be = Buffer.alloc(4);
  be.writeFloatBE(3.25, 0);
  assert.deepEqual([...decodeNpy(Buffer.concat([header('>f4', '(1,)'), be])).data], [3.25]);
});

test('other dtypes, Fortran order, bad magic and truncation are BAD_FILE', () => {
  const bad = (buf: Buffer, re: RegExp) =>
    assert.throws(() => decodeNpy(buf, 'x.npy'), (e: unknown) => e instanceof StudioError && e.code === 'BAD_FILE' && re.test(e.message));
  bad(Buffer.concat([header('<i4', '(2,)'), Buffer.alloc(8)]), /unsupported dtype '<i4'/);
  bad(Buffer.concat([header('|u1', '(2,)'), Buffer.alloc(2)]), /unsupported dtype/);
  bad(Buffer.concat([header('<f4', '(2, 2)', 'True'), Buffer.alloc(16)]), /Fortran/);
  bad(Buffer.concat([header('<f4', '(2, 2)'), Buffer.alloc(12)]), /truncated/);
  bad(Buffer.from('PK\x03\x04 not numpy'), /not a NumPy/);
});

test('writeNpy / readNpy through a file; a missing file is FILE_NOT_FOUND', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'npy-'));
  try {
    const p = join(dir, 'a.npy');
    await writeNpy(p, new Float32Array([7, 8]), [1, 2]);
    assert.deepEqual(await readNpy(p), { data: new Float32Array([7, 8]), shape: [1, 2] });
    await assert.rejects(readNpy(join(dir, 'none.npy')), (e: unknown) => e instanceof StudioError && e.code === 'FILE_NOT_FOUND');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
