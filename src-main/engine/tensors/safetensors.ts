/**
 * safetensors (huggingface/safetensors): an 8-byte little-endian header length N, N bytes of JSON
 * `{ "__metadata__": {str: str}, name: { dtype, shape, data_offsets: [begin, end] }, … }` (offsets
 * relative to the byte after the header, padded with spaces to a multiple of 8), then the raw
 * little-endian tensor data, back to back. Writes F32 or F16; reads F32, F16, BF16 and F64 (all held as
 * float32 in memory; BF16 and F64 tensors come back marked 'F32').
 */
import { StudioError } from '../../errors.ts';
import type { NamedTensor, StoredDtype, TensorMap } from '../models/format.ts';
import { bfloat16ToFloat32Array, float16ToFloat32Array, float32ToFloat16Array } from './half.ts';
import { numel } from './npy.ts';

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** The reference implementation refuses headers above 100 MB; so do we (a corrupt length is caught early). */
const MAX_HEADER = 100_000_000;

const READ_SIZES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

export interface SafetensorsFile {
  tensors: TensorMap;
  metadata: Record<string, string>;
}

function bytesOf(t: NamedTensor, dtype: StoredDtype): Uint8Array {
  if (dtype === 'F16') {
    const h = float32ToFloat16Array(t.data);
    if (LITTLE_ENDIAN_HOST) return new Uint8Array(h.buffer);
    const b = Buffer.alloc(h.length * 2);
    h.forEach((v, i) => b.writeUInt16LE(v, 2 * i));
    return b;
  }
  if (LITTLE_ENDIAN_HOST) return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const b = Buffer.alloc(t.data.length * 4);
  t.data.forEach((v, i) => b.writeFloatLE(v, 4 * i));
  return b;
}

/**
 * Encode tensors (sorted by name, for byte-identical output from equal input). `dtype` forces every
 * tensor to that element type; without it each tensor keeps its own.
 */
export function encodeSafetensors(tensors: TensorMap, metadata?: Record<string, string>, dtype?: StoredDtype): Buffer {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors metadata values must be strings (${k})`);
    }
    header.__metadata__ = metadata;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new Error('a tensor cannot be named __metadata__');
    const t = tensors.get(name)!;
    if (numel(t.shape) !== t.data.length) {
      throw new Error(`tensor ${name}: shape ${JSON.stringify(t.shape)} holds ${numel(t.shape)} values, data has ${t.data.length}`);
    }
    const dt = dtype ?? t.dtype;
    const bytes = bytesOf(t, dt);
    header[name] = { dtype: dt, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const jsonLen = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonLen % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

function bad(msg: string, file?: string): StudioError {
  return new StudioError('BAD_FILE', `${file ? `${file}: ` : ''}${msg}`);
}

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** Parse and validate the header only (cheap: for listing a file's contents). */
export function readSafetensorsHeader(buf: Uint8Array, file?: string): { entries: SafetensorsEntry[]; metadata: Record<string, string>; dataStart: number } {
  if (buf.length < 8) throw bad('not a safetensors file (shorter than its 8-byte header length)', file);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER) || Number(n64) > buf.length - 8) {
    throw bad(`not a safetensors file (header length ${n64} does not fit in ${buf.length} bytes)`, file);
  }
  const n = Number(n64);
  if (n < 2) throw bad('not a safetensors file (empty header)', file);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, n).toString('utf8'));
  } catch {
    throw bad('not a safetensors file (the header is not JSON)', file);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('safetensors header is not a JSON object', file);
  const dataStart = 8 + n;
  const dataLen = buf.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('__metadata__ must be an object of strings', file);
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string') throw bad(`__metadata__.${k} must be a string`, file);
        metadata[k] = s;
      }
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw bad(`tensor ${name}: entry is not an object`, file);
    if (typeof e.dtype !== 'string') throw bad(`tensor ${name}: missing dtype`, file);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`tensor ${name}: bad shape ${JSON.stringify(e.shape)}`, file);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`tensor ${name}: bad data_offsets ${JSON.stringify(off)}`, file);
    }
    const [begin, end] = off as number[];
    if (begin > end || end > dataLen) {
      throw bad(`tensor ${name}: data_offsets [${begin}, ${end}] outside the ${dataLen} data bytes (truncated file?)`, file);
    }
    const size = READ_SIZES[e.dtype];
    if (size !== undefined && end - begin !== numel(e.shape as number[]) * size) {
      throw bad(
        `tensor ${name}: shape ${JSON.stringify(e.shape)} of ${e.dtype} needs ${numel(e.shape as number[]) * size} bytes, data_offsets give ${end - begin}`,
        file,
      );
    }
    entries.push({ name, dtype: e.dtype, shape: e.shape as number[], begin, end });
  }
  // As the reference reader: tensors tile the data section with no gaps or overlaps.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.begin !== pos) throw bad(`tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] overlap or leave a gap (expected to start at ${pos})`, file);
    pos = e.end;
  }
  if (pos !== dataLen) throw bad(`the tensors cover ${pos} data bytes but the file has ${dataLen}`, file);
  return { entries, metadata, dataStart };
}

export function decodeSafetensors(buf: Uint8Array, file?: string): SafetensorsFile {
  const { entries, metadata, dataStart } = readSafetensorsHeader(buf, file);
  const tensors: TensorMap = new Map();
  for (const e of entries) {
    if (READ_SIZES[e.dtype] === undefined) {
      throw bad(`tensor ${e.name}: unsupported dtype ${e.dtype} (expected F32, F16, BF16 or F64)`, file);
    }
    const n = numel(e.shape);
    const raw = new Uint8Array(e.end - e.begin);
    raw.set(buf.subarray(dataStart + e.begin, dataStart + e.end)); // copy: aligned, and detached from buf
    const view = new DataView(raw.buffer);
    let data: Float32Array;
    let dtype: StoredDtype = 'F32';
    if (e.dtype === 'F32') {
      if (LITTLE_ENDIAN_HOST) data = new Float32Array(raw.buffer);
      else {
        data = new Float32Array(n);
        for (let i = 0; i < n; i++) data[i] = view.getFloat32(4 * i, true);
      }
    } else if (e.dtype === 'F64') {
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getFloat64(8 * i, true);
    } else {
      let bits: Uint16Array;
      if (LITTLE_ENDIAN_HOST) bits = new Uint16Array(raw.buffer);
      else {
        bits = new Uint16Array(n);
        for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true);
      }
      if (e.dtype === 'F16') {
        data = float16ToFloat32Array(bits);
        dtype = 'F16';
      } else {
        data = bfloat16ToFloat32Array(bits);
      }
    }
    tensors.set(e.name, { dtype, shape: [...e.shape], data });
  }
  return { tensors, metadata };
}
