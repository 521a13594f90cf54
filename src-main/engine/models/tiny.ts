/**
 * The tiny VGG19 (widths 8/16/32/64/64) that tests, CI and demos use in place of the real weights,
 * and writers for the published formats (Keras HDF5, PyTorch zip and legacy torch.save) so the importers
 * are tested on files laid out exactly like the real ones.
 */
import { zipSync, type Zippable } from 'fflate';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { StudioError } from '../../errors.ts';
import { encoderHash, saveDecoder } from './decoders.ts';
import { initDecoder, LEVELS } from '../photo/autoencoder.ts';
import { fillGaussian, mulberry32 } from '../random.ts';
import { float32ToFloat16Array } from '../tensors/half.ts';
import { biasKey, CAFFE_PREPROCESSING, kernelKey, type Preprocessing, type StoredDtype, type TensorMap, type Vgg19Weights } from './format.ts';
import { saveVgg19 } from './store.ts';
import { kerasName, torchvisionIndex, TINY_WIDTHS, vgg19Convs, vgg19Layers } from './vgg19.ts';

/**
 * A VGG19 of the given widths with He-initialised kernels (zero-mean Gaussian, variance 2/(3·3·in)),
 * zero biases, deterministic from the seed. Kernels are drawn conv by conv in HWIO order.
 */
export function randomVgg19(
  widths: readonly number[],
  seed = 1,
  opts: { preprocessing?: Preprocessing; source?: string } = {},
): Vgg19Weights {
  const rng = mulberry32(seed);
  const tensors: TensorMap = new Map();
  for (const c of vgg19Convs(widths)) {
    const std = Math.sqrt(2 / (9 * c.inChannels));
    const kernel = fillGaussian(new Float32Array(9 * c.inChannels * c.outChannels), rng, std);
    tensors.set(kernelKey(c.name), { dtype: 'F32', shape: [3, 3, c.inChannels, c.outChannels], data: kernel });
    tensors.set(biasKey(c.name), { dtype: 'F32', shape: [c.outChannels], data: new Float32Array(c.outChannels) });
  }
  const p = opts.preprocessing ?? CAFFE_PREPROCESSING;
  return {
    architecture: 'vgg19',
    widths: [...widths],
    preprocessing: { ...p, mean: [...p.mean], std: [...p.std] },
    tensors,
    source: opts.source ?? `random vgg19 [${widths.join(',')}] seed ${seed}`,
  };
}

/** The tiny network (TINY_WIDTHS), Caffe preprocessing (the reference's 0–255 scale). */
export function tinyVgg19(seed = 1): Vgg19Weights {
  return randomVgg19(TINY_WIDTHS, seed, { source: `tiny seed ${seed}` });
}

// ---------------------------------------------------------------------------------------------
// Keras HDF5

/** Keras' layer list for the notop model: input, then convs and pools in order. */
function kerasLayerNames(): string[] {
  return ['input_1', ...vgg19Layers().map((l) => (l.kind === 'conv' ? kerasName(l.conv.name) : `block${l.block}_pool`))];
}

/**
 * Write weights as Keras Applications lays out the notop file: root attribute `layer_names`; per layer a
 * group with attribute `weight_names`, and for convs the datasets `<layer>/<layer>/kernel:0` (HWIO)
 * and `<layer>/<layer>/bias:0`.
 */
export async function writeKerasH5(path: string, w: Vgg19Weights): Promise<void> {
  // Loaded on demand: users of tinyVgg19 alone (tests, benchmarks, the worker) never start the wasm module.
  const { default: h5wasm } = await import('h5wasm/node');
  await h5wasm.ready;
  const abs = resolve(path);
  await mkdir(dirname(abs), { recursive: true });
  await rm(abs, { force: true });
  const f = new h5wasm.File(abs, 'w');
  try {
    const names = kerasLayerNames();
    const fixed = (list: string[]) => `S${Math.max(1, ...list.map((s) => s.length))}`;
    f.create_attribute('layer_names', names, [names.length], fixed(names));
    f.create_attribute('backend', 'tensorflow');
    const convs = new Map(vgg19Convs(w.widths).map((c) => [kerasName(c.name), c]));
    for (const layer of names) {
      const g = f.create_group(layer);
      const c = convs.get(layer);
      if (!c) continue; // input and pool layers: empty groups, as in the real file
      const weightNames = [`${layer}/kernel:0`, `${layer}/bias:0`];
      g.create_attribute('weight_names', weightNames, [2], fixed(weightNames));
      const inner = g.create_group(layer);
      const k = w.tensors.get(kernelKey(c.name))!;
      const b = w.tensors.get(biasKey(c.name))!;
      inner.create_dataset({ name: 'kernel:0', data: k.data, shape: k.shape, dtype: '<f' });
      inner.create_dataset({ name: 'bias:0', data: b.data, shape: b.shape, dtype: '<f' });
    }
  } finally {
    f.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Pickle (protocol 2) and the PyTorch formats (zip, legacy)

/**
 * Python values the pickle writer knows. Plain JS strings, numbers and bigints (ints), booleans and null
 * map directly.
 */
export type PyValue = null | boolean | number | bigint | string | PyTuple | PyList | PyDict | PyGlobal | PyReduce | PyPersistent;
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
export class PyList {
  constructor(readonly items: PyValue[]) {}
}
export class PyDict {
  constructor(readonly entries: Array<[PyValue, PyValue]>) {}
}
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
}
/** `func(*args)`, then dict items set on the result, then `state` applied (BUILD): what __reduce__ gives. */
export class PyReduce {
  constructor(
    readonly func: PyGlobal,
    readonly args: PyTuple,
    readonly dictitems?: Array<[PyValue, PyValue]>,
    readonly state?: PyValue,
  ) {}
}
/** An object saved by persistent id (BINPERSID): torch's storages. */
export class PyPersistent {
  constructor(readonly pid: PyValue) {}
}

/**
 * A pickle writer that emits what CPython's Pickler writes at protocol 2 for these values (opcodes,
 * memo puts and gets in the same places). Strings are memoised by value (CPython memoises by identity;
 * for the interned literals torch uses the result is the same). With `python2`, JS strings are written
 * as Python 2 `str` (SHORT_BINSTRING / BINSTRING, latin-1), as Python 2.7's Pickler writes them.
 */
export class PickleWriter {
  private parts: number[] = [];
  private memo = new Map<unknown, number>();

  private constructor(private readonly python2: boolean) {}

  static dumps(v: PyValue, opts: { python2?: boolean } = {}): Uint8Array {
    const w = new PickleWriter(opts.python2 ?? false);
    w.byte(0x80, 2); // PROTO 2
    w.save(v);
    w.byte(0x2e); // STOP
    return Uint8Array.from(w.parts);
  }

  private byte(...b: number[]): void {
    for (const x of b) this.parts.push(x);
  }
  private u32(n: number): void {
    this.byte(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  private put(key: unknown): void {
    const i = this.memo.size;
    this.memo.set(key, i);
    if (i < 256) this.byte(0x71, i); // BINPUT
    else {
      this.byte(0x72); // LONG_BINPUT
      this.u32(i);
    }
  }
  private get(key: unknown): boolean {
    const i = this.memo.get(key);
    if (i === undefined) return false;
    if (i < 256) this.byte(0x68, i); // BINGET
    else {
      this.byte(0x6a); // LONG_BINGET
      this.u32(i);
    }
    return true;
  }
  private int(n: number | bigint): void {
    if (typeof n === 'number' && !Number.isSafeInteger(n)) throw new Error(`pickle: ${n} is not an integer`);
    const big = BigInt(n);
    if (big >= -0x80000000n && big <= 0x7fffffffn) {
      const i = Number(big);
      if (i >= 0 && i <= 0xff) this.byte(0x4b, i); // BININT1
      else if (i >= 0 && i <= 0xffff) this.byte(0x4d, i & 0xff, i >>> 8); // BININT2
      else {
        this.byte(0x4a); // BININT
        this.u32(i >>> 0);
      }
      return;
    }
    // LONG1: little-endian two's complement, minimal length.
    const bytes: number[] = [];
    let v = big;
    for (;;) {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
      if ((v === 0n && (bytes[bytes.length - 1] & 0x80) === 0) || (v === -1n && (bytes[bytes.length - 1] & 0x80) !== 0)) break;
    }
    if (bytes.length > 255) throw new Error('pickle: integer too large for LONG1');
    this.byte(0x8a, bytes.length, ...bytes);
  }

  private save(v: PyValue): void {
    if (v === null) return this.byte(0x4e); // NONE
    if (v === true) return this.byte(0x88); // NEWTRUE
    if (v === false) return this.byte(0x89); // NEWFALSE
    if (typeof v === 'number' || typeof v === 'bigint') return this.int(v);
    if (typeof v === 'string') {
      if (this.get(`str:${v}`)) return;
      if (this.python2) {
        const b = Buffer.from(v, 'latin1');
        if (b.length < 256) this.byte(0x55, b.length); // SHORT_BINSTRING
        else {
          this.byte(0x54); // BINSTRING
          this.u32(b.length);
        }
        this.byte(...b);
      } else {
        const b = Buffer.from(v, 'utf8');
        this.byte(0x58); // BINUNICODE
        this.u32(b.length);
        this.byte(...b);
      }
      return this.put(`str:${v}`);
    }
    if (v instanceof PyPersistent) {
      this.save(v.pid);
      return this.byte(0x51); // BINPERSID
    }
    if (this.get(v)) return;
    if (v instanceof PyGlobal) {
      const key = `global:${v.module}\n${v.name}`;
      if (this.get(key)) return;
      this.byte(0x63, ...Buffer.from(`${v.module}\n${v.name}\n`, 'utf8')); // GLOBAL
      return this.put(key);
    }
    if (v instanceof PyTuple) {
      const n = v.items.length;
      if (n === 0) return this.byte(0x29); // EMPTY_TUPLE
      if (n <= 3) {
        for (const x of v.items) this.save(x);
        this.byte([0x85, 0x86, 0x87][n - 1]); // TUPLE1..3
      } else {
        this.byte(0x28); // MARK
        for (const x of v.items) this.save(x);
        this.byte(0x74); // TUPLE
      }
      return this.put(v);
    }
    if (v instanceof PyList) {
      this.byte(0x5d); // EMPTY_LIST
      this.put(v);
      for (let i = 0; i < v.items.length; i += 1000) {
        const batch = v.items.slice(i, i + 1000);
        if (batch.length === 1) {
          this.save(batch[0]);
          this.byte(0x61); // APPEND
        } else {
          this.byte(0x28); // MARK
          for (const x of batch) this.save(x);
          this.byte(0x65); // APPENDS
        }
      }
      return;
    }
    if (v instanceof PyDict) {
      this.byte(0x7d); // EMPTY_DICT
      this.put(v);
      return this.setitems(v.entries);
    }
    if (v instanceof PyReduce) {
      this.save(v.func);
      this.save(v.args);
      this.byte(0x52); // REDUCE
      this.put(v);
      if (v.dictitems) this.setitems(v.dictitems);
      if (v.state !== undefined) {
        this.save(v.state);
        this.byte(0x62); // BUILD
      }
      return;
    }
    throw new Error('pickle: unsupported value');
  }

  private setitems(entries: Array<[PyValue, PyValue]>): void {
    for (let i = 0; i < entries.length; i += 1000) {
      const batch = entries.slice(i, i + 1000);
      if (batch.length === 1) {
        this.save(batch[0][0]);
        this.save(batch[0][1]);
        this.byte(0x73); // SETITEM
      } else {
        this.byte(0x28); // MARK
        for (const [k, x] of batch) {
          this.save(k);
          this.save(x);
        }
        this.byte(0x75); // SETITEMS
      }
    }
  }
}

function hwioToOihw(src: Float32Array, kh: number, kw: number, i: number, o: number): Float32Array {
  const dst = new Float32Array(src.length);
  for (let h = 0; h < kh; h++) {
    for (let w = 0; w < kw; w++) {
      for (let b = 0; b < i; b++) {
        for (let a = 0; a < o; a++) dst[((a * i + b) * kh + h) * kw + w] = src[((h * kw + w) * i + b) * o + a];
      }
    }
  }
  return dst;
}

function contiguousStride(size: number[]): number[] {
  const s = new Array<number>(size.length);
  let acc = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= size[d];
  }
  return s;
}

interface StateDictStyle {
  dtype: StoredDtype;
  /** Storage key of the i-th tensor's storage. */
  key: (i: number) => string;
  /** The storage's persistent id (zip: 5 fields; legacy: 6, the last the view metadata). */
  pid: (storageType: PyGlobal, key: string, numel: number) => PyTuple;
  /** torch 0.1–0.3 on Python 2.7: `_rebuild_tensor(storage, offset, size, stride)`, Python 2 OrderedDict, no `_metadata`. */
  python2: boolean;
}

/** One tensor of a state dict, in the file's own layout (OIHW kernels), C-contiguous. */
export interface TorchTensor {
  shape: number[];
  data: Float32Array;
}

interface PickledStateDict {
  stateDict: PyReduce;
  storages: Array<[string, Uint8Array, number]>;
}

/** A torchvision-layout state dict (`features.N.weight` OIHW, `features.N.bias`) and its storages' bytes (little-endian). */
function torchStateDict(w: Vgg19Weights, style: StateDictStyle): PickledStateDict {
  const items: Array<[string, TorchTensor]> = [];
  for (const c of vgg19Convs(w.widths)) {
    const k = w.tensors.get(kernelKey(c.name))!;
    const b = w.tensors.get(biasKey(c.name))!;
    const [kh, kw, i, o] = k.shape;
    const n = torchvisionIndex(c.name);
    items.push([`features.${n}.weight`, { shape: [o, i, kh, kw], data: hwioToOihw(k.data, kh, kw, i, o) }]);
    items.push([`features.${n}.bias`, { shape: [o], data: b.data }]);
  }
  return stateDictPickle(items, ['', 'features', ...Array.from({ length: 37 }, (_, i) => `features.${i}`)], style);
}

/**
 * Any state dict of named tensors, pickled as `Module.state_dict()` gives it to torch.save, with one
 * `_metadata` entry per module in `modules` ('' being the model itself).
 */
function stateDictPickle(named: Array<[string, TorchTensor]>, modules: string[], style: StateDictStyle): PickledStateDict {
  const orderedDict = new PyGlobal('collections', 'OrderedDict');
  const rebuild = new PyGlobal('torch._utils', style.python2 ? '_rebuild_tensor' : '_rebuild_tensor_v2');
  const storageType = new PyGlobal('torch', style.dtype === 'F16' ? 'HalfStorage' : 'FloatStorage');
  const storages: Array<[string, Uint8Array, number]> = [];
  const items: Array<[PyValue, PyValue]> = [];
  const tensor = (data: Float32Array, size: number[]): PyReduce => {
    const key = style.key(storages.length);
    const raw = style.dtype === 'F16' ? float32ToFloat16Array(data) : Float32Array.from(data);
    storages.push([key, new Uint8Array(raw.buffer), data.length]); // little-endian hosts only
    const pid = new PyPersistent(style.pid(storageType, key, data.length));
    const stride = new PyTuple(contiguousStride(size));
    const args = style.python2
      ? new PyTuple([pid, 0, new PyTuple(size), stride])
      : new PyTuple([pid, 0, new PyTuple(size), stride, false, new PyReduce(orderedDict, new PyTuple([]))]);
    return new PyReduce(rebuild, args);
  };
  for (const [name, t] of named) items.push([name, tensor(t.data, t.shape)]);
  if (style.python2) {
    // Python 2.7's OrderedDict.__reduce__: (OrderedDict, ([[key, value], ...],)).
    return { stateDict: new PyReduce(orderedDict, new PyTuple([new PyList(items.map(([k, v]) => new PyList([k, v])))])), storages };
  }
  // state_dict()._metadata: one {'version': 1} per module, '' being the model itself.
  const metadata = new PyReduce(orderedDict, new PyTuple([]), modules.map((m) => [m, new PyDict([['version', 1]])]));
  return { stateDict: new PyReduce(orderedDict, new PyTuple([]), items, new PyDict([['_metadata', metadata]])), storages };
}

/**
 * A torchvision-layout state dict (`features.N.weight` OIHW, `features.N.bias`) as the bytes torch.save
 * writes (zip of `<archive>/data.pkl`, `<archive>/byteorder`, `<archive>/data/<key>`, `<archive>/version`).
 * `dtype: 'F16'` stores HalfStorages (values rounded to nearest-even half).
 */
export function encodeTorchPth(w: Vgg19Weights, opts: { dtype?: StoredDtype; archiveName?: string } = {}): Uint8Array {
  return zipCheckpoint(torchStateDict(w, zipStyle(opts.dtype)), opts.archiveName);
}

const zipStyle = (dtype: StoredDtype = 'F32'): StateDictStyle => ({
  dtype,
  key: (i) => String(i),
  pid: (type, key, numel) => new PyTuple(['storage', type, key, 'cpu', numel]),
  python2: false,
});

function zipCheckpoint({ stateDict, storages }: PickledStateDict, archiveName?: string): Uint8Array {
  const archive = archiveName ?? 'archive';
  const stored = { level: 0 as const, mtime: new Date(1980, 0, 1) };
  const files: Zippable = {};
  files[`${archive}/data.pkl`] = [PickleWriter.dumps(stateDict), stored];
  files[`${archive}/byteorder`] = [Buffer.from('little'), stored];
  for (const [key, bytes] of storages) files[`${archive}/data/${key}`] = [bytes, stored];
  files[`${archive}/version`] = [Buffer.from('3\n'), stored];
  return zipSync(files);
}

/** torch.serialization's MAGIC_NUMBER and PROTOCOL_VERSION for the legacy (non-zip) format. */
export const TORCH_LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
export const TORCH_LEGACY_PROTOCOL = 1001;

/**
 * The same state dict in the legacy (pre-1.6) torch.save layout, as `_legacy_save` writes it: pickles of
 * the magic number, the protocol version and sys_info, then the state dict (storages as persistent ids
 * `('storage', torch.FloatStorage, key, 'cpu', numel, None)`), then the list of storage keys sorted as
 * strings, then per key an int64 little-endian element count and the raw little-endian elements.
 * `python2` writes what torch 0.1–0.3 on Python 2.7 wrote (how the 2017 torchvision files were made):
 * py2 strings, `_rebuild_tensor`, Python 2's OrderedDict pickling; keys there were storage addresses.
 */
export function encodeTorchPthLegacy(w: Vgg19Weights, opts: { dtype?: StoredDtype; python2?: boolean } = {}): Uint8Array {
  return legacyCheckpoint(torchStateDict(w, legacyStyle(opts.dtype, opts.python2)), opts.python2 ?? false);
}

const legacyStyle = (dtype: StoredDtype = 'F32', python2 = false): StateDictStyle => ({
  dtype,
  key: python2 ? (i) => String(94_000_000 + 9000 * i) : (i) => String(i),
  pid: (type, key, numel) => new PyTuple(['storage', type, key, 'cpu', numel, null]),
  python2,
});

function legacyCheckpoint({ stateDict, storages }: PickledStateDict, python2: boolean): Uint8Array {
  const dump = (v: PyValue) => PickleWriter.dumps(v, { python2 });
  // dict(protocol_version=…, little_endian=…, type_sizes=dict(short=2, int=4, long=8)); Python 2 pickles dicts in hash order.
  const typeSizes = new PyDict(python2 ? [['int', 4], ['short', 2], ['long', 8]] : [['short', 2], ['int', 4], ['long', 8]]);
  const sysInfo = new PyDict(
    python2
      ? [['protocol_version', TORCH_LEGACY_PROTOCOL], ['type_sizes', typeSizes], ['little_endian', true]]
      : [['protocol_version', TORCH_LEGACY_PROTOCOL], ['little_endian', true], ['type_sizes', typeSizes]],
  );
  const keys = storages.map(([k]) => k).sort(); // Python's sorted() on str keys: code-point order
  const byKey = new Map(storages.map(([k, bytes, numel]) => [k, { bytes, numel }]));
  const parts: Uint8Array[] = [dump(TORCH_LEGACY_MAGIC), dump(TORCH_LEGACY_PROTOCOL), dump(sysInfo), dump(stateDict), dump(new PyList(keys))];
  for (const k of keys) {
    const { bytes, numel } = byKey.get(k)!;
    const size = Buffer.alloc(8);
    size.writeBigInt64LE(BigInt(numel));
    parts.push(size, bytes);
  }
  return Buffer.concat(parts);
}

export type TorchFormat = 'zip' | 'legacy';

export async function writeTorchPth(path: string, w: Vgg19Weights, opts: { dtype?: StoredDtype; format?: TorchFormat } = {}): Promise<void> {
  await mkdir(dirname(resolve(path)), { recursive: true });
  await writeFile(path, opts.format === 'legacy' ? encodeTorchPthLegacy(w, opts) : encodeTorchPth(w, opts));
}

/**
 * Any state dict of named tensors (in order, in the file's layout) as torch.save writes it: the zip of
 * torch ≥ 1.6 or the legacy format (`python2`: as torch 0.1–0.3 on Python 2.7). For fixtures of other
 * networks than VGG19, e.g. FastPhotoStyle's photo_wct.pth.
 */
export function encodeTorchStateDict(
  named: Array<[string, TorchTensor]>,
  opts: { dtype?: StoredDtype; format?: TorchFormat; python2?: boolean } = {},
): Uint8Array {
  // Every module on the way to a parameter gets its _metadata entry, as Module.state_dict() records them.
  const modules = new Set<string>(['']);
  for (const [name] of named) {
    const parts = name.split('.').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) modules.add(parts.slice(0, i).join('.'));
  }
  return opts.format === 'legacy'
    ? legacyCheckpoint(stateDictPickle(named, [...modules], legacyStyle(opts.dtype, opts.python2)), opts.python2 ?? false)
    : zipCheckpoint(stateDictPickle(named, [...modules], zipStyle(opts.dtype)));
}

/**
 * The tiny network in all three formats under `dir`: a model folder (project format), a Keras-layout
 * `.h5` and a torchvision-layout `.pth` (`dtype` picks the .pth's storage type, `torchFormat` its
 * serialization: the zip of torch ≥ 1.6, the default, or the legacy one of the published 2017 file).
 */
export async function writeTinyFixtures(
  dir: string,
  opts: { seed?: number; dtype?: StoredDtype; torchFormat?: TorchFormat } = {},
): Promise<{ modelDir: string; h5Path: string; pthPath: string }> {
  const w = tinyVgg19(opts.seed ?? 1);
  const modelDir = join(dir, 'tiny-vgg19');
  const h5Path = join(dir, 'tiny_vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5');
  const legacy = opts.torchFormat === 'legacy' ? '_legacy' : '';
  const pthPath = join(dir, `${opts.dtype === 'F16' ? 'tiny_vgg19_fp16' : 'tiny_vgg19'}${legacy}.pth`);
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new StudioError('UNWRITABLE_OUTPUT', `cannot create ${dir}: ${(e as Error).message}`, undefined, { cause: e });
  }
  await saveVgg19(modelDir, w);
  await writeKerasH5(h5Path, w);
  await writeTorchPth(pthPath, w, { dtype: opts.dtype, format: opts.torchFormat });
  // Untrained (He-initialised) PhotoWCT decoders, so the photo pipeline runs end to end on the tiny
  // network too; `studio train decoder --model DIR` replaces them with trained ones.
  const hash = await encoderHash(modelDir);
  for (const level of LEVELS) {
    await saveDecoder(join(modelDir, 'decoders'), initDecoder(level, w.widths, mulberry32((opts.seed ?? 1) * 31 + level)), { level, encoderSha256: hash, widths: w.widths });
  }
  return { modelDir, h5Path, pthPath };
}
