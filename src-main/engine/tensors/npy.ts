/**
 * NumPy `.npy` files (format spec: numpy/lib/format.py). Writes float32, little-endian, C order, with
 * the header NumPy itself writes (version 1.0, keys sorted, 21-digit growth space, padded with spaces
 * and a newline to a multiple of 64 bytes). Reads versions 1.0–3.0 with dtype f4, f8 or f2 in either
 * byte order (converted to float32); anything else is a BAD_FILE error.
 */
import { writeFile } from 'node:fs/promises';
import { StudioError } from '../../errors.ts';
import { readFileChecked } from '../../io/files.ts';
import { float16ToFloat32Array } from './half.ts';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ARRAY_ALIGN = 64;
const GROWTH_AXIS_MAX_DIGITS = 21;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function pyTuple(shape: readonly number[]): string {
  if (shape.length === 0) return '()';
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/** The header block (magic … final newline) exactly as `numpy.save` writes it for a float32 C-order array. */
export function npyHeader(shape: readonly number[], descr = '<f4'): Buffer {
  for (const d of shape) if (!Number.isInteger(d) || d < 0) throw new Error(`bad npy shape ${JSON.stringify(shape)}`);
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${pyTuple(shape)}, }`;
  if (shape.length > 0) dict += ' '.repeat(GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length);
  const hlen = dict.length + 1; // + '\n'
  let version = 1;
  let prefixLen = MAGIC.length + 2 + 2;
  let padlen = ARRAY_ALIGN - ((prefixLen + hlen) % ARRAY_ALIGN);
  if (hlen + padlen > 0xffff) {
    version = 2;
    prefixLen = MAGIC.length + 2 + 4;
    padlen = ARRAY_ALIGN - ((prefixLen + hlen) % ARRAY_ALIGN);
  }
  const out = Buffer.alloc(prefixLen + hlen + padlen);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  if (version === 1) out.writeUInt16LE(hlen + padlen, 8);
  else out.writeUInt32LE(hlen + padlen, 8);
  out.write(dict + ' '.repeat(padlen) + '\n', prefixLen, 'latin1');
  return out;
}

export function encodeNpy(data: Float32Array, shape: readonly number[]): Buffer {
  if (numel(shape) !== data.length) {
    throw new Error(`npy: shape ${JSON.stringify(shape)} holds ${numel(shape)} values, data has ${data.length}`);
  }
  const header = npyHeader(shape);
  const out = Buffer.alloc(header.length + data.length * 4);
  header.copy(out, 0);
  if (LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), header.length);
  } else {
    for (let i = 0; i < data.length; i++) out.writeFloatLE(data[i], header.length + 4 * i);
  }
  return out;
}

function bad(msg: string, file?: string): StudioError {
  return new StudioError('BAD_FILE', file ? `${file}: ${msg}` : msg);
}

interface NpyHeader {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  dataOffset: number;
}

function parseHeader(buf: Uint8Array, file?: string): NpyHeader {
  if (buf.length < 10 || MAGIC.some((b, i) => buf[i] !== b)) throw bad('not a NumPy .npy file (no \\x93NUMPY magic)', file);
  const major = buf[6];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let hlen: number;
  let start: number;
  if (major === 1) {
    hlen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw bad('truncated .npy header', file);
    hlen = view.getUint32(8, true);
    start = 12;
  } else {
    throw bad(`unsupported .npy format version ${major}.${buf[7]}`, file);
  }
  if (start + hlen > buf.length) throw bad('truncated .npy header', file);
  const text = Buffer.from(buf.buffer, buf.byteOffset + start, hlen).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text);
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  const shape = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr) {
    if (/['"]descr['"]\s*:\s*\[/.test(text)) throw bad('structured (record) arrays are not supported; expected a float32 array', file);
    throw bad(`cannot read the .npy header: ${JSON.stringify(text.trim())}`, file);
  }
  if (!fortran || !shape) throw bad(`cannot read the .npy header: ${JSON.stringify(text.trim())}`, file);
  const dims = shape[1]
    .split(',')
    .map((s) => s.trim().replace(/L$/, ''))
    .filter((s) => s.length > 0)
    .map((s) => {
      if (!/^\d+$/.test(s)) throw bad(`bad shape in .npy header: (${shape[1]})`, file);
      return Number(s);
    });
  return { descr: descr[1], fortranOrder: fortran[1] === 'True', shape: dims, dataOffset: start + hlen };
}

export function decodeNpy(buf: Uint8Array, file?: string): { data: Float32Array; shape: number[] } {
  const h = parseHeader(buf, file);
  if (h.fortranOrder) throw bad('Fortran-order arrays are not supported; save with np.ascontiguousarray(a) first', file);
  const m = /^([<>=|])?([a-zA-Z])(\d+)$/.exec(h.descr);
  const order = m?.[1] ?? '=';
  const kind = m?.[2];
  const size = Number(m?.[3]);
  if (!m || kind !== 'f' || ![2, 4, 8].includes(size) || order === '|') {
    throw bad(`unsupported dtype '${h.descr}'; expected float32 ('<f4'), or float64 / float16`, file);
  }
  const little = order !== '>'; // '=' is native, and NumPy writes '<' on every little-endian machine
  const n = numel(h.shape);
  const need = n * size;
  const have = buf.length - h.dataOffset;
  if (have < need) throw bad(`truncated: shape ${pyTuple(h.shape)} needs ${need} data bytes, the file has ${have}`, file);
  const bytes = new Uint8Array(need);
  bytes.set(buf.subarray(h.dataOffset, h.dataOffset + need));
  const view = new DataView(bytes.buffer);
  let data: Float32Array;
  if (size === 4) {
    if (little && LITTLE_ENDIAN_HOST) data = new Float32Array(bytes.buffer);
    else {
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getFloat32(4 * i, little);
    }
  } else if (size === 8) {
    data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = view.getFloat64(8 * i, little);
  } else {
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, little);
    data = float16ToFloat32Array(bits);
  }
  return { data, shape: h.shape };
}

export async function writeNpy(path: string, data: Float32Array, shape: readonly number[]): Promise<void> {
  try {
    await writeFile(path, encodeNpy(data, shape));
  } catch (e) {
    if (e instanceof StudioError) throw e;
    throw new StudioError('UNWRITABLE_OUTPUT', `cannot write ${path}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

export async function readNpy(path: string): Promise<{ data: Float32Array; shape: number[] }> {
  const buf = await readFileChecked(path);
  return decodeNpy(buf, path);
}
