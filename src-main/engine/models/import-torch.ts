/**
 * Import torchvision's VGG19 weights (`vgg19-dcbb9e9d.pth`, REFERENCE §1) from a torch.save file, in
 * either of its two serializations:
 *
 * - zip (torch ≥ 1.6): `<top>/data.pkl` is a pickle (protocol 2) of the state dict, in which every tensor
 *   is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)` and every storage a persistent
 *   id `('storage', torch.FloatStorage, key, location, numel)` whose raw bytes are `<top>/data/<key>`.
 * - legacy (torch < 1.6, and the published 2017 file): `torch.serialization._legacy_save` writes pickles
 *   back to back (the magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict,
 *   the state dict with storages as persistent ids `('storage', type, key, location, numel, view)`, the
 *   list of storage keys), then per listed key an int64 element count and the raw elements, always
 *   little-endian. Tensors there are `_rebuild_tensor_v2` or (torch 0.1–0.3) `_rebuild_tensor`.
 *
 * The pickles are read with pickleparser, with a name resolver that knows only the handful of globals a
 * state dict uses; nothing in the file is executed, and any other global becomes an inert placeholder.
 * Only `features.N.weight/bias` of the 16 convs are taken; OIHW kernels are transposed to HWIO.
 */
import { unzipSync } from 'fflate';
import { basename } from 'node:path';
import { BufferReader, Parser } from 'pickleparser';
import { StudioError } from '../../errors.ts';
import { readFileChecked } from '../../io/files.ts';
import { gatherStrided } from '../tensors/strided.ts';
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
  ComplexFloatStorage: { type: 'other', size: 8 },
  ComplexDoubleStorage: { type: 'other', size: 16 },
  QUInt8Storage: { type: 'other', size: 1 },
  QInt8Storage: { type: 'other', size: 1 },
  QInt32Storage: { type: 'other', size: 4 },
};

/** A global the pickle names (class or function) that we do not model. */
interface Placeholder {
  __global__: string;
  args: unknown[];
}

/** A storage, or (legacy files) a view of `numel` elements at element `viewOffset` of the storage `key`. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly typeName: string,
    readonly location: string,
    readonly numel: number,
    readonly viewOffset = 0,
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
const isPlaceholder = (v: unknown): v is Placeholder => typeof v === 'object' && v !== null && '__global__' in v;
/** A tuple of ints (or a pickled torch.Size wrapping one). */
const numList = (v: unknown): number[] =>
  Array.isArray(v) ? v.map(num) : isPlaceholder(v) && Array.isArray(v.args[0]) ? (v.args[0] as unknown[]).map(num) : [];
/** A Python 3 str, or a Python 2 str / bytes (SHORT_BINSTRING gives a string, BINBYTES a byte array). */
const str = (v: unknown): string => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : String(v));

function placeholder(fq: string): ((...args: unknown[]) => Placeholder) & { globalName: string } {
  // Works both when REDUCE calls it and when NEWOBJ constructs it (a constructor may return an object).
  const f = function (...args: unknown[]): Placeholder {
    return { __global__: fq, args };
  };
  return Object.assign(f, { globalName: fq });
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
  // Python 3 pickles OrderedDict() then sets the items; Python 2.7 passes them: OrderedDict([[k, v], …]).
  'collections.OrderedDict': (items?: unknown) =>
    new Map(Array.isArray(items) ? items.filter((kv): kv is [unknown, unknown] => Array.isArray(kv) && kv.length === 2) : []),
  'torch._utils._rebuild_tensor_v2': rebuildTensor,
  'torch._utils._rebuild_tensor': rebuildTensor,
  'torch._utils._rebuild_parameter': (data: unknown) => data,
  'torch._utils._rebuild_parameter_with_state': (data: unknown) => data,
  'torch._tensor._rebuild_from_type_v2': (func: (...a: unknown[]) => unknown, _type: unknown, args: unknown[]) => func(...args),
  ...Object.fromEntries(Object.keys(STORAGE_TYPES).map((n) => [`torch.${n}`, storageClass(n)])),
};

/**
 * Unpickle a torch state dict pickle (`data.pkl`, or the main pickle of a legacy file, read from `reader`
 * where it stands) into Maps, arrays, numbers, strings and TensorRefs. Each storage met is recorded in
 * `storages` by key (views under their storage's key, with the storage's own size).
 */
export function unpickleTorch(pkl: Uint8Array | BufferReader, storages?: Map<string, StorageRef>, foreign?: Set<string>): unknown {
  const parser = new Parser({
    unpicklingTypeOfDictionary: 'Map',
    nameResolver: {
      resolve: (module: string, name: string) => {
        const known = GLOBALS[`${module}.${name}`];
        if (known) return known;
        foreign?.add(`${module}.${name}`); // named but never loaded or called: said in the error if the import fails
        return placeholder(`${module}.${name}`);
      },
    },
    persistentResolver: {
      // BINPERSID hands over the whole persistent id tuple (the typings say string).
      resolve: (pid: unknown) => {
        // Legacy files pickle an nn.Module class as ('module', cls, source_file, source): keep the (inert) class.
        if (Array.isArray(pid) && str(pid[0]) === 'module') return pid[1];
        if (!Array.isArray(pid) || str(pid[0]) !== 'storage') throw new Error(`unknown persistent id ${JSON.stringify(pid)}`);
        const [, cls, key, location, numel, view] = pid as [unknown, { storageName?: string; globalName?: string } | undefined, unknown, unknown, unknown, unknown];
        const typeName = cls?.storageName ?? cls?.globalName ?? String(cls);
        const root = new StorageRef(str(key), typeName, str(location), num(numel));
        if (storages && !storages.has(root.key)) storages.set(root.key, root);
        // Legacy view metadata: (view_key, offset, size) in elements of the storage.
        if (Array.isArray(view)) return new StorageRef(root.key, typeName, root.location, num(view[2]), num(view[1]));
        return root;
      },
    },
  });
  return pkl instanceof BufferReader ? parser.read(pkl) : parser.parse(pkl);
}

/** The (possibly nested) state dict holding `marker`, and the key prefix before it. */
function findStateDict(obj: unknown, marker = 'features.0.weight', depth = 0): { dict: Map<unknown, unknown>; prefix: string } | undefined {
  if (!(obj instanceof Map) || depth > 3) return undefined;
  const keys = [...obj.keys()].filter((k): k is string => typeof k === 'string');
  const hit = keys.filter((k) => k.endsWith(marker)).sort((a, b) => a.length - b.length)[0];
  if (hit !== undefined) return { dict: obj, prefix: hit.slice(0, -marker.length) };
  for (const k of ['state_dict', 'model', 'model_state_dict', 'net', ...keys]) {
    const found = findStateDict(obj.get(k), marker, depth + 1);
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
  const { viewOffset } = t.storage;
  if (viewOffset < 0 || bytes.length < (viewOffset + t.storage.numel) * st.size) {
    throw new StudioError('BAD_FILE', `${what}: storage ${t.storage.key} has ${bytes.length} bytes, expected ${(viewOffset + t.storage.numel) * st.size}`);
  }
  bytes = bytes.subarray(viewOffset * st.size, (viewOffset + t.storage.numel) * st.size);
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
  return gatherStrided(t.size, t.stride, t.offset, read);
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

const LEGACY_HINT = 're-save it with a current torch: torch.save(torch.load("old.pth"), "new.pth")';

/** torch.serialization's MAGIC_NUMBER and PROTOCOL_VERSION (legacy format). */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/** What the two formats have in common once the state dict pickle is read. */
interface Checkpoint {
  obj: unknown;
  littleEndian: boolean;
  /** The bytes of the storages with these keys (extracted only now for a zip); a missing key throws BAD_FILE. */
  storages(keys: Set<string>): (key: string, what: string) => Uint8Array;
  /** Globals the pickle names outside the allow-list (inert placeholders). */
  foreign: Set<string>;
}

/** The part of an error that says which globals outside the allow-list a file named (none were loaded). */
function foreignNote(ckpt: Checkpoint): string {
  const names = [...ckpt.foreign].filter((n) => !/^(copy_reg|copyreg|__builtin__|builtins)\./.test(n) && !/^torch\.nn\./.test(n));
  return names.length ? `; its pickle names ${names.slice(0, 4).join(', ')}${names.length > 4 ? '…' : ''}, outside the classes a weights file needs, so nothing of it was loaded or run` : '';
}

function readZip(buf: Buffer, path: string, origin: string): Checkpoint {
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
  const foreign = new Set<string>();
  try {
    obj = unpickleTorch(head[pklName], undefined, foreign);
  } catch (e) {
    throw new StudioError('BAD_FILE', `${path}: cannot read ${pklName}: ${(e as Error).message}`, undefined, { cause: e });
  }
  return {
    obj,
    littleEndian,
    foreign,
    storages(keys) {
      // Pass 2: the storages the convs use.
      const names = new Set([...keys].map((k) => `${prefix}data/${k}`));
      let files: Record<string, Uint8Array>;
      try {
        files = unzipSync(buf, { filter: (f) => names.has(f.name) });
      } catch (e) {
        throw new StudioError('BAD_FILE', `${path}: cannot extract the tensor data: ${(e as Error).message}`, undefined, { cause: e });
      }
      return (key, what) => {
        const b = files[`${prefix}data/${key}`];
        if (!b) throw new StudioError('BAD_FILE', `${origin}: ${what}: storage ${prefix}data/${key} is missing from the archive`);
        return b;
      };
    },
  };
}

/**
 * If `buf` starts with a pickle of the legacy magic number, the offset just past that pickle. Decoded
 * here rather than by pickleparser, which reads LONG1 integers of at most 8 bytes (the magic has 10).
 * Accepts what any pickle protocol writes for it: [PROTO n] [FRAME len] (LONG1 n bytes | LONG "…L\n") STOP.
 */
export function legacyMagicEnd(buf: Uint8Array): number | undefined {
  let p = 0;
  if (buf[p] === 0x80) p += 2; // PROTO
  if (buf[p] === 0x95) p += 9; // FRAME (protocol ≥ 4)
  let value: bigint;
  if (buf[p] === 0x8a) {
    // LONG1: a length byte, then little-endian two's complement
    const n = buf[p + 1];
    if (n === undefined || p + 2 + n > buf.length) return undefined;
    value = 0n;
    for (let i = n - 1; i >= 0; i--) value = (value << 8n) | BigInt(buf[p + 2 + i]);
    if (n > 0 && buf[p + 1 + n] & 0x80) value -= 1n << BigInt(8 * n);
    p += 2 + n;
  } else if (buf[p] === 0x4c) {
    // LONG (protocols 0 and 1): decimal digits, an optional 'L', a newline
    const nl = buf.indexOf(0x0a, p);
    if (nl < 0 || nl - p > 64) return undefined;
    const text = Buffer.from(buf.subarray(p + 1, nl)).toString('latin1').replace(/L$/, '');
    if (!/^-?\d+$/.test(text)) return undefined;
    value = BigInt(text);
    p = nl + 1;
  } else return undefined;
  return value === LEGACY_MAGIC && buf[p] === 0x2e ? p + 1 : undefined;
}

/** A legacy torch.save file (see the top of this file), laid out as torch.serialization._legacy_load reads it. */
function readLegacy(buf: Buffer, path: string, start: number): Checkpoint {
  const reader = new BufferReader(buf);
  reader.skip(start);
  // The small pickles (version, sys_info, key list) need no globals; any they name stays inert.
  const plain = new Parser({
    unpicklingTypeOfDictionary: 'Map',
    nameResolver: { resolve: (module: string, name: string) => placeholder(`${module}.${name}`) },
  });
  const read = <T>(what: string, parse: () => T): T => {
    const at = reader.position;
    try {
      return parse();
    } catch (e) {
      if (reader.position >= buf.length || /end of (file|line)/i.test((e as Error).message)) {
        throw new StudioError('BAD_FILE', `${path} is truncated: it ends inside the ${what} (a legacy PyTorch file; download it again)`, undefined, { cause: e });
      }
      throw new StudioError('BAD_FILE', `${path}: cannot read the ${what} of this legacy PyTorch file (at byte ${at}): ${(e as Error).message}`, undefined, { cause: e });
    }
  };
  const version = read('protocol version', () => plain.read<unknown>(reader));
  if (num(version) !== LEGACY_PROTOCOL) {
    throw new StudioError('BAD_FILE', `${path}: legacy PyTorch file with protocol version ${String(version)}, expected ${LEGACY_PROTOCOL}`);
  }
  read('sys_info', () => plain.read<unknown>(reader)); // the writer's host; the data is little-endian regardless
  const roots = new Map<string, StorageRef>();
  const foreign = new Set<string>();
  const obj = read('state dict pickle', () => unpickleTorch(reader, roots, foreign));
  const keyList = read('storage key list', () => plain.read<unknown>(reader));
  if (!Array.isArray(keyList)) throw new StudioError('BAD_FILE', `${path}: legacy PyTorch file without its storage key list`);
  const keys = keyList.map(str);

  // The storages follow in the list's order, each as an int64 element count and the elements.
  const data = new Map<string, Uint8Array>();
  let off = reader.position;
  for (const [i, key] of keys.entries()) {
    const root = roots.get(key);
    if (!root) throw new StudioError('BAD_FILE', `${path}: storage ${key} is listed but no tensor in the pickle uses it`);
    const st = STORAGE_TYPES[root.typeName];
    if (!st) throw new StudioError('BAD_FILE', `${path}: storage ${key} is a ${root.typeName}, whose element size is unknown, so the data after it cannot be found`);
    const truncated = (end: number) =>
      new StudioError('BAD_FILE', `${path} is truncated: storage ${i + 1} of ${keys.length} (${key}) needs ${end} bytes, the file has ${buf.length} (download it again)`);
    if (off + 8 > buf.length) throw truncated(off + 8);
    const count = buf.readBigInt64LE(off);
    if (count !== BigInt(root.numel)) {
      throw new StudioError('BAD_FILE', `${path}: storage ${key} holds ${count} elements but the pickle says ${root.numel}`);
    }
    const end = off + 8 + root.numel * st.size;
    if (end > buf.length) throw truncated(end);
    data.set(key, buf.subarray(off + 8, end));
    off = end;
  }
  return {
    obj,
    foreign,
    littleEndian: true, // torch writes legacy storages little-endian on any host
    storages: () => (key, what) => {
      const b = data.get(key);
      if (!b) throw new StudioError('BAD_FILE', `${basename(path)}: ${what}: storage ${key} is not in the file's storage list`);
      return b;
    },
  };
}

/** Reads a PyTorch checkpoint (zip or legacy) up to its pickled object. */
async function readCheckpoint(path: string): Promise<Checkpoint> {
  const origin = basename(path);
  const buf = await readFileChecked(path);
  const magicEnd = legacyMagicEnd(buf);
  if (buf.length >= 4 && buf.readUInt32LE(0) === 0x04034b50) return readZip(buf, path, origin);
  if (magicEnd !== undefined) return readLegacy(buf, path, magicEnd);
  if (buf.length > 262 && buf.toString('latin1', 257, 262) === 'ustar') {
    throw new StudioError('BAD_FILE', `${path} is a tar-format PyTorch file (torch ≤ 0.1.9), which is not supported`, LEGACY_HINT);
  }
  if (buf.length >= 2 && buf[0] === 0x80 && buf[1] <= 5) {
    throw new StudioError('BAD_FILE', `${path} is a Python pickle but not a PyTorch checkpoint (no torch.save magic number)`);
  }
  throw new StudioError('BAD_FILE', `${path} is not a PyTorch checkpoint (expected a zip archive with data.pkl, or a legacy torch.save file)`);
}

/** Whether a PyTorch checkpoint has a state dict with a key ending in `marker`; reads the pickle, not the tensors. */
export async function torchCheckpointHas(path: string, marker: string): Promise<boolean> {
  return findStateDict((await readCheckpoint(path)).obj, marker) !== undefined;
}

/**
 * Every float tensor of the state dict that holds `marker` (prefix stripped from the names), as
 * contiguous float32 in the file's own layout. For importers of other networks than VGG19.
 */
export async function readTorchStateDict(path: string, marker: string): Promise<Map<string, { shape: number[]; data: Float32Array; dtype: 'F32' | 'F16' }>> {
  const origin = basename(path);
  const ckpt = await readCheckpoint(path);
  const found = findStateDict(ckpt.obj, marker);
  if (!found) throw new StudioError('BAD_MODEL', `${origin}: no ${marker} in this checkpoint${foreignNote(ckpt)}`);
  const refs = [...found.dict].filter((e): e is [string, TensorRef] => typeof e[0] === 'string' && e[0].startsWith(found.prefix) && e[1] instanceof TensorRef);
  const storageOf = ckpt.storages(new Set(refs.map(([, t]) => t.storage.key)));
  const out = new Map<string, { shape: number[]; data: Float32Array; dtype: 'F32' | 'F16' }>();
  for (const [key, t] of refs) {
    const data = gather(t, storageOf(t.storage.key, key), ckpt.littleEndian, `${origin}: ${key}`);
    out.set(key.slice(found.prefix.length), { shape: [...t.size], data, dtype: STORAGE_TYPES[t.storage.typeName].type === 'F16' ? 'F16' : 'F32' });
  }
  return out;
}

export async function importTorchPth(path: string): Promise<Vgg19Weights> {
  const origin = basename(path);
  const ckpt = await readCheckpoint(path);
  const { obj, littleEndian } = ckpt;
  const found = findStateDict(obj);
  if (!found) {
    const whole = obj && typeof obj === 'object' && '__global__' in obj ? ` (it holds a pickled ${(obj as Placeholder).__global__} object; save model.state_dict() instead)` : '';
    throw new StudioError('BAD_MODEL', `${origin}: no VGG features (features.0.weight) in this checkpoint${whole}${foreignNote(ckpt)}; expected torchvision's vgg19`);
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

  const needed = new Set<string>();
  for (const { weight, bias } of refs.values()) needed.add(weight.storage.key).add(bias.storage.key);
  const storageOf = ckpt.storages(needed);
  const bytesOf = (t: TensorRef, what: string): Uint8Array => storageOf(t.storage.key, what);

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
