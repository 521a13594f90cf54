/**
 * A reader for Torch7's binary serialization (`torch.save` in Lua; the `.t7` files of FastPhotoStyle's
 * models.zip and of the WCT/AdaIN papers). The format is torch7's File.lua `writeObject`, little-endian,
 * ints 4 bytes, longs 8:
 *
 *   object   := int type, then by type
 *     0 nil | 1 number: double | 5 boolean: int (1 = true) | 2 string: int length, bytes
 *     3 table:    int ref; if ref is new: int n, then n × (key object, value object)
 *     4 torch:    int ref; if new: string "V <version>" (absent in pre-versioning files), string class;
 *                 tensors: int ndim, long size[ndim], long stride[ndim], long offset (1-based), storage object;
 *                 storages: long n, n raw elements;
 *                 any other class (nn modules): one table object holding its fields
 *     6 function: int length, bytecode, upvalues object; 7/8 recursive function: int ref, then the same
 *
 * A ref already seen stands for the object read before (storages shared by several tensors, as after
 * `getParameters()`, and modules referenced twice). Nothing in the file is executed: function bytecode is
 * skipped. Every length and index is checked against the bytes that are there, so a truncated or damaged
 * file is a BAD_MODEL naming the file and the byte, never an out-of-bounds crash.
 */
import { StudioError } from '../../errors.ts';
import { f16BitsToF32 } from '../tensors/half.ts';
import { gatherStrided } from '../tensors/strided.ts';

export type T7Value = null | number | boolean | string | T7Table | T7Object | T7Tensor | T7Storage | T7Function;
export type T7Key = number | boolean | string | object;

/** A Lua table. Keys keep their Lua type (numbers for arrays, 1-based). */
export class T7Table {
  readonly entries = new Map<T7Key, T7Value>();
  get(key: T7Key): T7Value | undefined {
    return this.entries.get(key);
  }
  /** The array part, keys 1…n, in order (Lua's ipairs). */
  array(): T7Value[] {
    const out: T7Value[] = [];
    for (let i = 1; this.entries.has(i); i++) out.push(this.entries.get(i)!);
    return out;
  }
}

/** A Torch class instance written as its fields (nn modules). */
export class T7Object {
  readonly fields = new T7Table();
  constructor(readonly className: string, readonly version: number) {}
  get(field: string): T7Value | undefined {
    return this.fields.get(field);
  }
}

export class T7Storage {
  constructor(readonly className: string, readonly data: Float64Array | Float32Array | Int32Array | Int16Array | Int8Array | Uint8Array) {}
  get length(): number {
    return this.data.length;
  }
}

export class T7Tensor {
  constructor(
    readonly className: string,
    readonly shape: number[],
    readonly strides: number[],
    /** Element offset into the storage, 0-based. */
    readonly offset: number,
    readonly storage: T7Storage | null,
  ) {}
  get size(): number {
    return this.shape.reduce((a, b) => a * b, this.shape.length ? 1 : 0);
  }
  /** The elements in row-major order as float32 (whatever the stored type, strides and offset). */
  toFloat32(): Float32Array {
    if (this.size === 0) return new Float32Array(0);
    const src = this.storage!.data;
    return gatherStrided(this.shape, this.strides, this.offset, (j) => src[j]);
  }
}

export class T7Function {
  constructor(readonly bytecodeLength: number, readonly upvalues: T7Value) {}
}

type Element = 'f64' | 'f32' | 'f16' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8';
const ELEMENT_BYTES: Record<Element, number> = { f64: 8, f32: 4, f16: 2, i64: 8, i32: 4, i16: 2, i8: 1, u8: 1 };

/** Storage element types by Torch class (CPU and CUDA: cutorch writes the same raw elements). */
const STORAGES: Record<string, Element> = {
  'torch.DoubleStorage': 'f64', 'torch.FloatStorage': 'f32', 'torch.HalfStorage': 'f16', 'torch.LongStorage': 'i64',
  'torch.IntStorage': 'i32', 'torch.ShortStorage': 'i16', 'torch.CharStorage': 'i8', 'torch.ByteStorage': 'u8',
  'torch.CudaDoubleStorage': 'f64', 'torch.CudaStorage': 'f32', 'torch.CudaHalfStorage': 'f16', 'torch.CudaLongStorage': 'i64',
  'torch.CudaIntStorage': 'i32', 'torch.CudaShortStorage': 'i16', 'torch.CudaCharStorage': 'i8', 'torch.CudaByteStorage': 'u8',
};
const TENSORS = new Set(Object.keys(STORAGES).map((s) => s.replace(/Storage$/, 'Tensor')));

const MAX_DEPTH = 256;
const MAX_DIMS = 64;

/** Parse one Torch7 object from `bytes`; `origin` names the file in errors. */
export function readTorch7(bytes: Uint8Array, origin: string): T7Value {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const refs = new Map<number, T7Value>();
  let pos = 0;
  let depth = 0;

  const fail = (what: string): never => {
    throw new StudioError('BAD_MODEL', `${origin}: not a readable Torch7 file (${what} at byte ${pos})`,
      'the file may be truncated or damaged; download it again');
  };
  const need = (n: number) => {
    if (!(n >= 0) || pos + n > bytes.length) fail(`${n} bytes wanted, ${Math.max(0, bytes.length - pos)} left`);
  };
  const int = () => {
    need(4);
    const v = view.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const long = () => {
    need(8);
    const v = view.getBigInt64(pos, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) fail(`a long of ${v}`);
    pos += 8;
    return Number(v);
  };
  const double = () => {
    need(8);
    const v = view.getFloat64(pos, true);
    pos += 8;
    return v;
  };
  const string = () => {
    const n = int();
    need(n);
    const s = new TextDecoder('latin1').decode(bytes.subarray(pos, pos + n));
    pos += n;
    return s;
  };

  const storage = (className: string, element: Element): T7Storage => {
    const n = long();
    const size = ELEMENT_BYTES[element];
    if (n < 0) fail(`a storage of ${n} elements`);
    need(n * size);
    const raw = bytes.slice(pos, pos + n * size); // a copy: aligned for the typed array
    pos += n * size;
    const buf = raw.buffer;
    switch (element) {
      case 'f64': return new T7Storage(className, new Float64Array(buf));
      case 'f32': return new T7Storage(className, new Float32Array(buf));
      case 'f16': {
        const bits = new Uint16Array(buf);
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = f16BitsToF32(bits[i]);
        return new T7Storage(className, out);
      }
      case 'i64': {
        const big = new BigInt64Array(buf);
        const out = new Float64Array(n);
        for (let i = 0; i < n; i++) out[i] = Number(big[i]);
        return new T7Storage(className, out);
      }
      case 'i32': return new T7Storage(className, new Int32Array(buf));
      case 'i16': return new T7Storage(className, new Int16Array(buf));
      case 'i8': return new T7Storage(className, new Int8Array(buf));
      default: return new T7Storage(className, new Uint8Array(buf));
    }
  };

  const tensor = (className: string): T7Tensor => {
    const nd = int();
    if (nd < 0 || nd > MAX_DIMS) fail(`a tensor of ${nd} dimensions`);
    const shape = Array.from({ length: nd }, long);
    const strides = Array.from({ length: nd }, long);
    const offset = long() - 1; // Lua's 1-based storage offset
    const s = object();
    if (s !== null && !(s instanceof T7Storage)) fail(`${className} whose storage is not a storage`);
    const t = new T7Tensor(className, shape, strides, offset, s as T7Storage | null);
    if (shape.some((d) => d < 0)) fail(`${className} of shape [${shape.join(',')}]`);
    if (t.size > 0) {
      // The last element the strides reach must be inside the storage.
      let last = offset;
      for (let d = 0; d < nd; d++) {
        if (strides[d] < 0) fail(`${className} with a negative stride`);
        last += (shape[d] - 1) * strides[d];
      }
      if (!t.storage || offset < 0 || last >= t.storage.length) fail(`${className} of shape [${shape.join(',')}] beyond its storage (${t.storage?.length ?? 0} elements)`);
    }
    return t;
  };

  const object = (): T7Value => {
    if (++depth > MAX_DEPTH) fail(`objects nested deeper than ${MAX_DEPTH}`);
    try {
      const type = int();
      switch (type) {
        case 0: return null;
        case 1: return double();
        case 2: return string();
        case 5: return int() === 1;
        case 6: {
          const n = int();
          need(n);
          pos += n; // Lua bytecode: never run
          return new T7Function(n, object());
        }
        case 3: case 4: case 7: case 8: {
          const ref = int();
          if (refs.has(ref)) return refs.get(ref)!;
          if (type === 7 || type === 8) {
            const n = int();
            need(n);
            pos += n; // bytecode: never run
            refs.set(ref, new T7Function(n, null)); // its upvalues may refer to it
            const f = new T7Function(n, object());
            refs.set(ref, f);
            return f;
          }
          if (type === 3) {
            const table = new T7Table();
            refs.set(ref, table);
            const n = int();
            if (n < 0) fail(`a table of ${n} entries`);
            for (let i = 0; i < n; i++) {
              const key = object();
              const value = object();
              if (key === null) fail('a table key that is nil');
              table.entries.set(key as T7Key, value);
            }
            return table;
          }
          let className = string();
          let version = 0;
          const v = /^V (.*)$/.exec(className);
          if (v) {
            version = Number(v[1]);
            className = string();
          }
          if (className in STORAGES) {
            const s = storage(className, STORAGES[className]);
            refs.set(ref, s);
            return s;
          }
          if (TENSORS.has(className)) {
            const t = tensor(className);
            refs.set(ref, t);
            return t;
          }
          if (/^torch\.\w*(Tensor|Storage)$/.test(className)) fail(`an unsupported ${className}`);
          const obj = new T7Object(className, version);
          refs.set(ref, obj);
          const fields = object();
          if (!(fields instanceof T7Table)) fail(`${className} whose fields are not a table`);
          for (const [k, val] of (fields as T7Table).entries) obj.fields.entries.set(k, val);
          return obj;
        }
        default:
          return fail(`an unknown object type ${type}`);
      }
    } finally {
      depth--;
    }
  };

  const root = object();
  return root;
}

/** The modules of an nn container (nn.Sequential and kin) in order, 0-based as torch.legacy's `get(i)`. */
export function t7Modules(root: T7Value, origin: string): T7Object[] {
  const modules = root instanceof T7Object ? root.get('modules') : undefined;
  if (!(root instanceof T7Object) || !(modules instanceof T7Table)) {
    throw new StudioError('BAD_MODEL', `${origin}: not a Torch7 network (expected an nn.Sequential, found ${describeT7(root)})`);
  }
  return modules.array().map((m, i) => {
    if (!(m instanceof T7Object)) throw new StudioError('BAD_MODEL', `${origin}: module ${i} is ${describeT7(m)}, not an nn module`);
    return m;
  });
}

/** A convolution module's weight (OIHW, as nn.SpatialConvolution keeps it) and bias. */
export function t7Convolution(mod: T7Object, where: string): { shape: number[]; weight: Float32Array; bias: Float32Array } {
  if (!/SpatialConvolution/.test(mod.className)) {
    throw new StudioError('BAD_MODEL', `${where} is ${mod.className}, expected a SpatialConvolution`);
  }
  const weight = mod.get('weight');
  const bias = mod.get('bias');
  if (!(weight instanceof T7Tensor) || !(bias instanceof T7Tensor)) throw new StudioError('BAD_MODEL', `${where} (${mod.className}) has no weight or bias tensor`);
  const num = (k: string) => {
    const v = mod.get(k);
    return typeof v === 'number' ? v : undefined;
  };
  const o = num('nOutputPlane') ?? weight.shape[0];
  const i = num('nInputPlane') ?? weight.shape[1];
  const kh = num('kH') ?? weight.shape[2] ?? 1;
  const kw = num('kW') ?? weight.shape[3] ?? 1;
  const shape = [o, i, kh, kw];
  // nn.SpatialConvolutionMM keeps the same elements as a 2-D [o, i·kh·kw] matrix.
  if (weight.size !== o * i * kh * kw || (weight.shape.length === 4 && weight.shape.some((d, k) => d !== shape[k]))) {
    throw new StudioError('BAD_MODEL', `${where}: weight of shape [${weight.shape.join(',')}] does not match ${i}→${o} channels, ${kh}×${kw}`);
  }
  if (bias.size !== o) throw new StudioError('BAD_MODEL', `${where}: bias of ${bias.size} values for ${o} outputs`);
  return { shape, weight: weight.toFloat32(), bias: bias.toFloat32() };
}

export function describeT7(v: T7Value | undefined): string {
  if (v === undefined || v === null) return 'nothing';
  if (v instanceof T7Object || v instanceof T7Tensor || v instanceof T7Storage) return v.className;
  if (v instanceof T7Table) return 'a table';
  if (v instanceof T7Function) return 'a function';
  return `a ${typeof v}`;
}
