/**
 * Import torchvision's VGG19 weights (`vgg19-dcbb9e9d.pth`, REFERENCE §1) from a PyTorch zip checkpoint
 * (torch ≥ 1.6): `<top>/data.pkl` is a pickle (protocol 2) of the state dict, in which every tensor is
 * `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)` and every storage a persistent id
 * `('storage', torch.FloatStorage, key, location, numel)` whose raw bytes are `<top>/data/<key>`.
 *
 * The pickle is read with pickleparser, with a name resolver that knows only the handful of globals a
 * state dict uses; nothing in the file is executed, and any other global becomes an inert placeholder.
 * Only `features.N.weight/bias` of the 16 convs are taken; OIHW kernels are transposed to HWIO.
 */
import { unzipSync } from 'fflate';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Parser } from 'pickleparser';
import { StudioError } from '../../errors.ts';
import { bf16BitsToF32, bfloat16ToFloat32Array, f16BitsToF32, float16ToFloat32Array } from '../tensors/half.ts';
import { biasKey, kernelKey, TORCH_PREPROCESSING, type TensorMap, type Vgg19Weights } from './format.ts';
import { checkVgg19Tensors } from './store.ts';
import { torchvisionIndex, vgg19Convs, VGG19_BLOCKS } from './vgg19.ts';

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type ElementType = 'F32' | 'F16' | 'BF16' | 'F64' | 'other';

/** Legacy typed-storage classes as pickled by torch.save: name → element type and size. */
const STORAGE_TYPES: Record<string, { type: ElementType; size: number }> = {
  FloatStorage: { type: 'F32', size: 4 },
  HalfStorage: { type: 'F16', size: 2 },
  BFloat16Storage: { type: 'BF16', size: 2 },
  DoubleStorage: { type: 'F64', size: 8 },
  LongStorage: { type: 'other', size: 8 },
  IntStorage: { type: 'other', size: 4 },
  ShortStorage: { type: 'other', size: 2 },
  CharStorage: { type: 'other', size: 1 },
  ByteStorage: { type: 'other', size: 1 },
  BoolStorage: { type: 'other', size: 1 },
};

/** A global the pickle names (class or function) that we do not model. */
interface Placeholder {
  __global__: string;
  args: unknown[];
}

export class StorageRef {
  constructor(
    readonly key: string,
    readonly typeName: string,
    readonly location: string,
    readonly numel: number,
  ) {}
}

export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}

const num = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : (v as number));
const numList = (v: unknown): number[] => (Array.isArray(v) ? v.map(num) : []);

function placeholder(fq: string): (...args: unknown[]) => Placeholder {
  // Works both when REDUCE calls it and when NEWOBJ constructs it (a constructor may return an object).
  return function (...args: unknown[]): Placeholder {
    return { __global__: fq, args };
  };
}

function storageClass(name: string): (...args: unknown[]) => never {
  const f = () => {
    throw new Error(`torch.${name} cannot be called in a state dict`);
  };
  return Object.assign(f, { storageName: name });
}

function rebuildTensor(storage: unknown, offset: unknown, size: unknown, stride: unknown): TensorRef {
  if (!(storage instanceof StorageRef)) throw new Error('tensor without a storage reference');
  return new TensorRef(storage, num(offset), numList(size), numList(stride));
}

/** The globals a torch state dict uses; everything else resolves to an inert placeholder. */
const GLOBALS: Record<string, (...args: never[]) => unknown> = {
  'collections.OrderedDict': () => new Map(),
  'torch._utils._rebuild_tensor_v2': rebuildTensor,
  'torch._utils._rebuild_tensor': rebuildTensor,
  'torch._utils._rebuild_parameter': (data: unknown) => data,
  'torch._utils._rebuild_parameter_with_state': (data: unknown) => data,
  'torch._tensor._rebuild_from_type_v2': (func: (...a: unknown[]) => unknown, _type: unknown, args: unknown[]) => func(...args),
  ...Object.fromEntries(Object.keys(STORAGE_TYPES).map((n) => [`torch.${n}`, storageClass(n)])),
};

/** Unpickle a torch `data.pkl` into Maps, arrays, numbers, strings and TensorRefs. */
export function unpickleTorch(pkl: Uint8Array): unknown {
  const parser = new Parser({
    unpicklingTypeOfDictionary: 'Map',
    nameResolver: {
      resolve: (module: string, name: string) => GLOBALS[`${module}.${name}`] ?? placeholder(`${module}.${name}`),
    },
    persistentResolver: {
      // BINPERSID hands over the whole persistent id tuple (the typings say string).
      resolve: (pid: unknown) => {
        if (!Array.isArray(pid) || pid[0] !== 'storage') throw new Error(`unknown persistent id ${JSON.stringify(pid)}`);
        const [, cls, key, location, numel] = pid as [string, { storageName?: string } | Placeholder, unknown, unknown, unknown];
        const typeName = (cls as { storageName?: string }).storageName ?? (cls as Placeholder).__global__ ?? String(cls);
        return new StorageRef(String(key), typeName, String(location), num(numel));
      },
    },
  });
  return parser.parse(pkl);
}

function findStateDict(obj: unknown, depth = 0): { dict: Map<unknown, unknown>; prefix: string } | undefined {
  if (!(obj instanceof Map) || depth > 3) return undefined;
  const keys = [...obj.keys()].filter((k): k is string => typeof k === 'string');
  const hit = keys.filter((k) => k.endsWith('features.0.weight')).sort((a, b) => a.length - b.length)[0];
  if (hit !== undefined) return { dict: obj, prefix: hit.slice(0, -'features.0.weight'.length) };
  for (const k of ['state_dict', 'model', 'model_state_dict', 'net', ...keys]) {
    const found = findStateDict(obj.get(k), depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** Gather a (possibly strided) tensor from its storage bytes into a contiguous float32 array. */
function gather(t: TensorRef, bytes: Uint8Array, littleEndian: boolean, what: string): Float32Array {
  const st = STORAGE_TYPES[t.storage.typeName];
  if (!st || st.type === 'other') {
    throw new StudioError('BAD_MODEL', `${what} is stored as ${t.storage.typeName}, expected a float storage (Float, Half, BFloat16, Double)`);
  }
  const n = t.size.reduce((a, b) => a * b, 1);
  if (t.stride.length !== t.size.length) throw new StudioError('BAD_MODEL', `${what}: size and stride disagree`);
  const out = new Float32Array(n);
  if (n === 0) return out;
  const last = t.offset + t.size.reduce((s, d, i) => s + (d - 1) * t.stride[i], 0);
  if (t.offset < 0 || t.stride.some((s) => s < 0) || last >= t.storage.numel) {
    throw new StudioError('BAD_MODEL', `${what}: offset ${t.offset} and strides [${t.stride}] reach outside its storage of ${t.storage.numel} elements`);
  }
  if (bytes.length < t.storage.numel * st.size) {
    throw new StudioError('BAD_FILE', `${what}: storage ${t.storage.key} has ${bytes.length} bytes, expected ${t.storage.numel * st.size}`);
  }
  // Fast path: a contiguous tensor (the usual case) on a little-endian host converts as one block.
  let contiguous = true;
  for (let d = t.size.length - 1, acc = 1; d >= 0; acc *= t.size[d], d--) {
    if (t.size[d] !== 1 && t.stride[d] !== acc) contiguous = false;
  }
  if (contiguous && littleEndian && LITTLE_ENDIAN_HOST) {
    const block = new Uint8Array(n * st.size); // a copy: aligned for the typed-array views
    block.set(bytes.subarray(t.offset * st.size, (t.offset + n) * st.size));
    if (st.type === 'F32') return new Float32Array(block.buffer);
    if (st.type === 'F16') return float16ToFloat32Array(new Uint16Array(block.buffer));
    if (st.type === 'BF16') return bfloat16ToFloat32Array(new Uint16Array(block.buffer));
    return Float32Array.from(new Float64Array(block.buffer));
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const read: (j: number) => number =
    st.type === 'F32' ? (j) => view.getFloat32(4 * j, littleEndian)
    : st.type === 'F16' ? (j) => f16BitsToF32(view.getUint16(2 * j, littleEndian))
    : st.type === 'BF16' ? (j) => bf16BitsToF32(view.getUint16(2 * j, littleEndian))
    : (j) => view.getFloat64(8 * j, littleEndian);
  // Walk the index space in C order, keeping the storage index incrementally.
  const dims = t.size.length;
  const idx = new Array<number>(dims).fill(0);
  let j = t.offset;
  for (let i = 0; i < n; i++) {
    out[i] = read(j);
    for (let d = dims - 1; d >= 0; d--) {
      idx[d]++;
      j += t.stride[d];
      if (idx[d] < t.size[d]) break;
      j -= t.stride[d] * t.size[d];
      idx[d] = 0;
    }
  }
  return out;
}

/** OIHW [out,in,kh,kw] → HWIO [kh,kw,in,out]. */
export function oihwToHwio(src: Float32Array, o: number, i: number, kh: number, kw: number): Float32Array {
  const dst = new Float32Array(src.length);
  for (let a = 0; a < o; a++) {
    for (let b = 0; b < i; b++) {
      for (let h = 0; h < kh; h++) {
        for (let w = 0; w < kw; w++) dst[((h * kw + w) * i + b) * o + a] = src[((a * i + b) * kh + h) * kw + w];
      }
    }
  }
  return dst;
}

const LEGACY_HINT = 're-save it with torch ≥ 1.6: torch.save(torch.load("old.pth"), "new.pth")';

export async function importTorchPth(path: string): Promise<Vgg19Weights> {
  const origin = basename(path);
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new StudioError('FILE_NOT_FOUND', `no such file: ${path}`, undefined, { cause: e });
    throw new StudioError('BAD_FILE', `cannot read ${path}: ${(e as Error).message}`, undefined, { cause: e });
  }
  const isZip = buf.length >= 4 && buf.readUInt32LE(0) === 0x04034b50;
  if (!isZip) {
    const legacyPickle = buf.length >= 2 && buf[0] === 0x80 && buf[1] <= 5;
    const legacyTar = buf.length > 262 && buf.toString('latin1', 257, 262) === 'ustar';
    if (legacyPickle || legacyTar) {
      throw new StudioError('BAD_FILE', `${path} is a legacy (pre-1.6, non-zip) PyTorch file, which is not supported`, LEGACY_HINT);
    }
    throw new StudioError('BAD_FILE', `${path} is not a PyTorch checkpoint (expected a zip archive with data.pkl)`);
  }
  // Pass 1: only the pickle (and the byte order note); the storages are extracted once we know which.
  let head: Record<string, Uint8Array>;
  try {
    head = unzipSync(buf, { filter: (f) => /(^|\/)data\.pkl$/.test(f.name) || /(^|\/)byteorder$/.test(f.name) });
  } catch (e) {
    throw new StudioError('BAD_FILE', `${path} is not a readable zip archive: ${(e as Error).message}`, undefined, { cause: e });
  }
  const pklName = Object.keys(head)
    .filter((n) => n.endsWith('data.pkl'))
    .sort((a, b) => a.split('/').length - b.split('/').length)[0];
  if (!pklName) throw new StudioError('BAD_FILE', `${path} is a zip archive without data.pkl, not a PyTorch checkpoint`);
  const prefix = pklName.slice(0, -'data.pkl'.length); // "archive/" (any top folder name)
  const byteorder = head[`${prefix}byteorder`];
  const littleEndian = !byteorder || Buffer.from(byteorder).toString('latin1').trim() !== 'big';

  let obj: unknown;
  try {
    obj = unpickleTorch(head[pklName]);
  } catch (e) {
    throw new StudioError('BAD_FILE', `${path}: cannot read ${pklName}: ${(e as Error).message}`, undefined, { cause: e });
  }
  const found = findStateDict(obj);
  if (!found) {
    const whole = obj && typeof obj === 'object' && '__global__' in obj ? ` (it holds a pickled ${(obj as Placeholder).__global__} object; save model.state_dict() instead)` : '';
    throw new StudioError('BAD_MODEL', `${origin}: no VGG features (features.0.weight) in this checkpoint${whole}; expected torchvision's vgg19`);
  }
  const { dict, prefix: keyPrefix } = found;

  const refs = new Map<string, { weight: TensorRef; bias: TensorRef }>();
  for (const c of vgg19Convs()) {
    const base = `${keyPrefix}features.${torchvisionIndex(c.name)}`;
    const weight = dict.get(`${base}.weight`);
    const bias = dict.get(`${base}.bias`);
    if (!(weight instanceof TensorRef)) throw new StudioError('BAD_MODEL', `${origin}: ${base}.weight (${c.name}) is missing`);
    if (!(bias instanceof TensorRef)) throw new StudioError('BAD_MODEL', `${origin}: ${base}.bias (${c.name}) is missing`);
    const s = weight.size;
    if (s.length !== 4 || s[2] !== 3 || s[3] !== 3 || bias.size.length !== 1 || bias.size[0] !== s[0]) {
      throw new StudioError(
        'BAD_MODEL',
        `${origin}: ${base} (${c.name}) has weight [${s.join(',')}] and bias [${bias.size.join(',')}], expected [out,in,3,3] and [out]`,
      );
    }
    refs.set(c.name, { weight, bias });
  }

  // Pass 2: the storages the convs use.
  const needed = new Set<string>();
  for (const { weight, bias } of refs.values()) {
    needed.add(`${prefix}data/${weight.storage.key}`);
    needed.add(`${prefix}data/${bias.storage.key}`);
  }
  let storages: Record<string, Uint8Array>;
  try {
    storages = unzipSync(buf, { filter: (f) => needed.has(f.name) });
  } catch (e) {
    throw new StudioError('BAD_FILE', `${path}: cannot extract the tensor data: ${(e as Error).message}`, undefined, { cause: e });
  }
  const bytesOf = (t: TensorRef, what: string): Uint8Array => {
    const b = storages[`${prefix}data/${t.storage.key}`];
    if (!b) throw new StudioError('BAD_FILE', `${origin}: ${what}: storage ${prefix}data/${t.storage.key} is missing from the archive`);
    return b;
  };

  const tensors: TensorMap = new Map();
  for (const [name, { weight, bias }] of refs) {
    const base = `${keyPrefix}features.${torchvisionIndex(name)}`;
    const [o, i, kh, kw] = weight.size;
    const w = gather(weight, bytesOf(weight, `${base}.weight`), littleEndian, `${origin}: ${base}.weight`);
    const b = gather(bias, bytesOf(bias, `${base}.bias`), littleEndian, `${origin}: ${base}.bias`);
    // Half storages are marked F16 (what the file held); everything else is held and marked as F32.
    const dtypeOf = (t: TensorRef) => (STORAGE_TYPES[t.storage.typeName].type === 'F16' ? 'F16' : 'F32');
    tensors.set(kernelKey(name), { dtype: dtypeOf(weight), shape: [kh, kw, i, o], data: oihwToHwio(w, o, i, kh, kw) });
    tensors.set(biasKey(name), { dtype: dtypeOf(bias), shape: [o], data: b });
  }
  const widths = VGG19_BLOCKS.map((_, bi) => refs.get(`conv${bi + 1}_1`)!.weight.size[0]);
  checkVgg19Tensors(tensors, widths, origin);
  return {
    architecture: 'vgg19',
    widths,
    preprocessing: { ...TORCH_PREPROCESSING, mean: [...TORCH_PREPROCESSING.mean], std: [...TORCH_PREPROCESSING.std] },
    tensors,
    source: origin,
  };
}
