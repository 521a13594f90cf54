/**
 * Image decoding: a file on disk → the engine's image (RGB, row-major HWC, float32 in [0, 1], sRGB, upright).
 * Everything goes through sharp (libvips); nothing here touches tensors.
 *
 * API
 *   probeImage(path, { maxPixels? }) → SourceInfo
 *       Validates a file from its header alone (no pixel decode): it exists, is a non-empty regular file,
 *       is an accepted format and is within the pixel limit. Cheap; use it to fail early.
 *   readImage(path, { maxSide?, upscale?, maxPixels? }) → DecodedImage
 *       probeImage, then a full decode: EXIF orientation applied, embedded ICC profile converted to sRGB,
 *       alpha removed, then (if maxSide is given) the longest side resized to maxSide with lanczos3 —
 *       only ever down unless `upscale` is set. 16-bit sources are decoded at 16 bits, so the float data
 *       keeps their precision; 8-bit sources give exact multiples of 1/255.
 *   fitLongestSide(width, height, maxSide, upscale?) → the size readImage resizes to.
 *   ACCEPTED_FORMATS, DEFAULT_MAX_PIXELS.
 *
 * Formats. Accepted: JPEG, PNG, WebP, TIFF (8 or 16 bits per sample) and AVIF where this libvips has HEIF
 * input (sharp.format.heif). Rejected with UNSUPPORTED_FORMAT, with a hint to convert:
 *   - GIF (a palette of 256 colours: a poor style-transfer source) and SVG/PDF (vector; no intrinsic pixel
 *     size) — sharp reads them, we choose not to;
 *   - HEIC (HEVC-coded HEIF): the prebuilt libvips has no HEVC decoder;
 *   - camera RAW files (DNG, NEF, CR2, ARW, …), which are TIFF inside and would otherwise decode as their
 *     small embedded preview, recognised by extension;
 *   - 32-bit float / signed-integer samples and colour spaces other than RGB, grey and CMYK;
 *   - anything else sharp cannot read but we recognise (BMP, PSD, JPEG XL, JPEG 2000, OpenEXR, …).
 * Multi-page TIFF and animated WebP: the first page/frame is used (noted).
 *
 * Colour. The engine works in sRGB. An embedded ICC profile is applied with one transform straight to sRGB
 * (perceptual intent). Not sharp's default for 16-bit input, which converts RGB16 into Display P3, not sRGB
 * (its "processing profile" for 16-bit), so here the default input transform is switched off (ignoreIcc)
 * and the embedded profile is used as the source of a single transform to sRGB (withIccProfile('srgb'),
 * which prefers the embedded profile). CMYK goes through sharp's CMYK path (embedded profile, else a
 * generic one); greyscale becomes RGB (an 8-bit grey profile is applied, a 16-bit one is ignored: noted).
 * Untagged files are taken to be sRGB.
 *
 * Alpha. The engine has no alpha, so an alpha channel is removed by compositing over white, before any resize
 * (sharp's flatten). Simply dropping the channel would expose whatever colour the transparent pixels happen
 * to store, and resizing with alpha premultiplies, which turns transparent pixels black — so the result
 * would depend on the resize. Opaque pixels are unchanged. `hadAlpha` and a note report it.
 *
 * Errors (StudioError, each naming the file): FILE_NOT_FOUND (missing, or a path through a non-directory),
 * BAD_ARGUMENT (a directory or other non-regular file; a bad option), BAD_FILE (unreadable: permissions, I/O),
 * EMPTY_IMAGE (0 bytes or 0 pixels), NOT_AN_IMAGE, UNSUPPORTED_FORMAT, CORRUPT_IMAGE (bad header, truncated
 * or damaged pixel data: sharp runs with failOn 'warning', and a PNG without its IEND chunk is treated as
 * truncated), IMAGE_TOO_LARGE (width × height over maxPixels, default 100 megapixels, checked from the
 * header before any pixel is decoded; also when the float buffer cannot be allocated).
 */
import { open, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { StudioError } from '../errors.ts';
// The working size's arithmetic is shared with the window (browser-safe), so it lives beside the memory estimate.
import { fitLongestSide } from '../engine/memory.ts';
export { fitLongestSide };

export const DEFAULT_MAX_PIXELS = 100e6;

/** Formats readImage accepts, as SourceInfo.format names them. 'avif' only where libvips has HEIF input. */
export const ACCEPTED_FORMATS: readonly string[] = ['jpeg', 'png', 'webp', 'tiff', ...(sharp.format.heif?.input.file ? ['avif'] : [])];

export interface SourceInfo {
  /** The path as given. */
  path: string;
  /** 'jpeg' | 'png' | 'webp' | 'tiff' | 'avif'. */
  format: string;
  /** Bits per sample of the source (1-, 2- and 4-bit PNGs count as 8). */
  bitDepth: 8 | 16;
  /** Size after EXIF orientation, before any resize. */
  width: number;
  height: number;
  hadAlpha: boolean;
  /** EXIF orientation (1–8) when the file has one. */
  orientation?: number;
  hasIcc: boolean;
  /** Raw EXIF block as sharp reports it (JPEG: with its "Exif\0\0" header; PNG/WebP: bare TIFF structure). */
  exif?: Buffer;
  icc?: Buffer;
  /** Things the caller should tell the user (alpha removed, orientation applied, profile converted, …). */
  notes: string[];
}

export interface DecodedImage {
  width: number;
  height: number;
  /** RGB, row-major HWC, sRGB values in [0, 1]. */
  data: Float32Array;
  source: SourceInfo;
}

export interface ProbeOptions {
  /** Largest width × height accepted (default 100e6). Infinity: no limit. */
  maxPixels?: number;
}

export interface ReadOptions extends ProbeOptions {
  /** Resize so the longest side is this many pixels; never enlarges unless `upscale`. */
  maxSide?: number;
  upscale?: boolean;
  /** Resize to exactly this size (aspect not kept; takes precedence over maxSide). */
  size?: { width: number; height: number };
}

const RAW_EXTENSIONS = new Set([
  '.dng', '.nef', '.nrw', '.cr2', '.cr3', '.crw', '.arw', '.srf', '.sr2', '.orf', '.rw2', '.raf', '.pef', '.srw',
  '.3fr', '.erf', '.kdc', '.dcr', '.mef', '.mos', '.mrw', '.x3f', '.iiq', '.rwl',
]);

type Sniffed = { accepted: 'jpeg' | 'png' | 'webp' | 'tiff' | 'heif' } | { rejected: string };

const ascii = (b: Buffer, start: number, end: number) => b.toString('latin1', start, Math.min(end, b.length));

/** Recognises a format from the first bytes of a file. */
function sniff(b: Buffer): Sniffed | undefined {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return { accepted: 'jpeg' };
  if (ascii(b, 0, 8) === '\x89PNG\r\n\x1a\n') return { accepted: 'png' };
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return { accepted: 'webp' };
  const t4 = ascii(b, 0, 4);
  if (t4 === 'II*\0' || t4 === 'MM\0*' || t4 === 'II+\0' || t4 === 'MM\0+') return { accepted: 'tiff' };
  if (ascii(b, 4, 8) === 'ftyp') {
    const brand = ascii(b, 8, 12);
    if (['avif', 'avis', 'heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1'].includes(brand)) return { accepted: 'heif' };
    if (brand === 'jxl ') return { rejected: 'JPEG XL' };
    if (brand.startsWith('jp2') || brand === 'jpx ') return { rejected: 'JPEG 2000' };
    if (brand === 'crx ') return { rejected: 'camera RAW (CR3)' };
    return undefined;
  }
  if (t4 === 'GIF8') return { rejected: 'GIF' };
  if (t4 === '%PDF') return { rejected: 'PDF' };
  if (t4 === '8BPS') return { rejected: 'Photoshop (PSD)' };
  if (t4 === 'qoif') return { rejected: 'QOI' };
  if (t4 === 'v/1\x01') return { rejected: 'OpenEXR' };
  if (t4 === '\x08\xf2\xa6\xb6' || t4 === '\xb6\xa6\xf2\x08') return { rejected: 'VIPS' };
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0x0a) return { rejected: 'JPEG XL' };
  if (ascii(b, 0, 12) === '\0\0\0\x0cJXL \r\n\x87\n') return { rejected: 'JPEG XL' };
  if (ascii(b, 0, 12) === '\0\0\0\x0cjP  \r\n\x87\n' || ascii(b, 0, 4) === '\xff\x4f\xff\x51') return { rejected: 'JPEG 2000' };
  if (ascii(b, 0, 15) === 'FUJIFILMCCD-RAW') return { rejected: 'camera RAW (RAF)' };
  if (ascii(b, 0, 2) === 'BM' && b.length >= 18 && [12, 40, 52, 56, 64, 108, 124].includes(b.readUInt32LE(14))) return { rejected: 'BMP' };
  if (ascii(b, 0, 10) === '#?RADIANCE' || ascii(b, 0, 6) === '#?RGBE') return { rejected: 'Radiance HDR' };
  if (/^P[1-7]\s/.test(ascii(b, 0, 3))) return { rejected: 'PNM (PPM/PGM/PBM)' };
  if (ascii(b, 0, 9) === 'SIMPLE  =') return { rejected: 'FITS' };
  const text = b.toString('utf8').replace(/^\uFEFF/, '').trimStart();
  if (/^(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*(<!DOCTYPE svg[^>]*>\s*)?<svg[\s>]/i.test(text)) return { rejected: 'SVG' };
  return undefined;
}

function ioError(e: unknown, file: string, what: string): StudioError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return new StudioError('FILE_NOT_FOUND', `image not found: ${file}`, 'check the path and file name');
  if (code === 'ENOTDIR') return new StudioError('FILE_NOT_FOUND', `image not found: ${file} (a part of the path is not a directory)`);
  if (code === 'EISDIR') return new StudioError('BAD_ARGUMENT', `${file} is a directory, not an image file`, 'pass the path of an image file');
  if (code === 'EACCES' || code === 'EPERM') {
    return new StudioError('BAD_FILE', `cannot read ${file}: permission denied`, 'check the file permissions', { cause: e });
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new StudioError('BAD_FILE', `cannot ${what} ${file}: ${msg}`, undefined, { cause: e });
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n').map((s) => s.trim()).filter(Boolean)[0] ?? 'unknown error';
}

function checkMaxPixels(maxPixels: number | undefined): number {
  const m = maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(m > 0)) throw new StudioError('BAD_ARGUMENT', `maxPixels must be a positive number, not ${maxPixels}`);
  return m;
}

/** Reads the start (and for PNG the end) of the file. */
async function readHeadAndTail(file: string, st: Stats): Promise<{ head: Buffer; tail: Buffer }> {
  let fh;
  try {
    fh = await open(file, 'r');
    const head = Buffer.alloc(Math.min(st.size, 1024));
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const tailLen = Math.min(st.size, 64 * 1024);
    const tail = Buffer.alloc(tailLen);
    const t = await fh.read(tail, 0, tailLen, st.size - tailLen);
    return { head: head.subarray(0, bytesRead), tail: tail.subarray(0, t.bytesRead) };
  } catch (e) {
    throw ioError(e, file, 'read');
  } finally {
    await fh?.close();
  }
}

const IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

function unsupported(file: string, what: string): StudioError {
  return new StudioError('UNSUPPORTED_FORMAT', `${file}: ${what} images are not supported`,
    `convert it to JPEG, PNG, TIFF${ACCEPTED_FORMATS.includes('avif') ? ', WebP or AVIF' : ' or WebP'} first`);
}

/** Validates a file from its header (no pixel decode) and describes it. */
export async function probeImage(file: string, opts: ProbeOptions = {}): Promise<SourceInfo> {
  return (await probe(file, checkMaxPixels(opts.maxPixels))).info;
}

async function probe(file: string, maxPixels: number): Promise<{ info: SourceInfo; space: string }> {
  let st: Stats;
  try {
    st = await stat(file);
  } catch (e) {
    throw ioError(e, file, 'open');
  }
  if (st.isDirectory()) throw new StudioError('BAD_ARGUMENT', `${file} is a directory, not an image file`, 'pass the path of an image file');
  if (!st.isFile()) throw new StudioError('BAD_ARGUMENT', `${file} is not a regular file`, 'pass the path of an image file');
  if (st.size === 0) throw new StudioError('EMPTY_IMAGE', `${file} is empty (0 bytes)`);

  const { head, tail } = await readHeadAndTail(file, st);
  const sniffed = sniff(head);
  if (sniffed && 'rejected' in sniffed) throw unsupported(file, sniffed.rejected);
  const ext = path.extname(file).toLowerCase();
  if (sniffed?.accepted === 'tiff' && RAW_EXTENSIONS.has(ext)) throw unsupported(file, `camera RAW (${ext.slice(1).toUpperCase()})`);

  if (sniffed?.accepted === 'png' && head.length >= 24 && ascii(head, 12, 16) === 'IHDR' && (head.readUInt32BE(16) === 0 || head.readUInt32BE(20) === 0)) {
    throw new StudioError('EMPTY_IMAGE', `${file} has no pixels (${head.readUInt32BE(16)}×${head.readUInt32BE(20)})`);
  }

  let meta: Metadata;
  try {
    meta = await sharp(file, { failOn: 'warning', limitInputPixels: false }).metadata();
  } catch (e) {
    if (!sniffed) {
      throw new StudioError('NOT_AN_IMAGE', `${file} is not an image (or not one in a format this program knows)`,
        `expected JPEG, PNG, WebP, TIFF${ACCEPTED_FORMATS.includes('avif') ? ' or AVIF' : ''}`, { cause: e });
    }
    throw new StudioError('CORRUPT_IMAGE', `${file} looks like ${sniffed.accepted.toUpperCase()} but its header cannot be read: ${firstLine(e)}`,
      'the file is damaged or incomplete; re-export or re-download it', { cause: e });
  }

  let format: string;
  if (meta.format === 'heif') {
    if (meta.compression === 'hevc') throw unsupported(file, 'HEIC (HEVC-coded HEIF)');
    format = 'avif';
  } else if (meta.format === 'jpeg' || meta.format === 'png' || meta.format === 'webp' || meta.format === 'tiff') {
    format = meta.format;
  } else {
    throw unsupported(file, meta.format.toUpperCase());
  }
  if (!ACCEPTED_FORMATS.includes(format)) throw unsupported(file, format.toUpperCase());

  if (format === 'png' && !tail.includes(IEND)) {
    throw new StudioError('CORRUPT_IMAGE', `${file} is a truncated PNG (no IEND chunk at the end)`,
      'the file is incomplete; re-export or re-download it');
  }

  let bitDepth: 8 | 16;
  if (meta.depth === 'uchar') bitDepth = 8;
  else if (meta.depth === 'ushort') bitDepth = 16;
  else throw unsupported(file, `${meta.depth === 'float' || meta.depth === 'double' ? 'floating-point' : `'${meta.depth}' sample`} ${format.toUpperCase()}`);

  const rgb = ['srgb', 'rgb', 'rgb16'].includes(meta.space);
  const grey = meta.space === 'b-w' || meta.space === 'grey16';
  if (!rgb && !grey && meta.space !== 'cmyk') throw unsupported(file, `${meta.space} colour space`);

  if (!(meta.width > 0 && meta.height > 0)) throw new StudioError('EMPTY_IMAGE', `${file} has no pixels (${meta.width}×${meta.height})`);
  if (meta.width * meta.height > maxPixels) {
    throw new StudioError('IMAGE_TOO_LARGE',
      `${file} is ${meta.width}×${meta.height} (${(meta.width * meta.height / 1e6).toFixed(1)} megapixels), over the limit of ${(maxPixels / 1e6).toFixed(1)} megapixels`,
      'downscale it first, or raise the limit (--max-pixels)');
  }

  const notes: string[] = [];
  const orientation = meta.orientation;
  if (orientation && orientation !== 1) notes.push(`EXIF orientation ${orientation} applied (image rotated/flipped upright)`);
  if (meta.hasAlpha) notes.push('alpha channel removed: transparent areas composited over white');
  if (meta.hasProfile) {
    if (meta.space === 'grey16') notes.push('embedded ICC profile ignored (16-bit greyscale)');
    else notes.push('converted from its embedded ICC profile to sRGB');
  }
  if (meta.space === 'cmyk') notes.push(`CMYK converted to sRGB${meta.hasProfile ? '' : ' with a generic CMYK profile'}`);
  if (grey) notes.push('greyscale image');
  if ((meta.pages ?? 1) > 1) {
    notes.push(format === 'avif' ? `contains ${meta.pages} images; the primary one is used`
      : format === 'webp' ? `animated (${meta.pages} frames); only the first frame is used`
        : `has ${meta.pages} pages; only the first is used`);
  }

  const info: SourceInfo = {
    path: file,
    format,
    bitDepth,
    width: meta.autoOrient?.width ?? meta.width,
    height: meta.autoOrient?.height ?? meta.height,
    hadAlpha: meta.hasAlpha,
    ...(orientation ? { orientation } : {}),
    hasIcc: meta.hasProfile,
    ...(meta.exif ? { exif: meta.exif } : {}),
    ...(meta.icc ? { icc: meta.icc } : {}),
    notes,
  };
  return { info, space: meta.space };
}


/** A decoded image as integers: RGB HWC, 8 or 16 bits (the source's depth), sRGB, upright, alpha removed. */
export interface RawImage {
  width: number;
  height: number;
  bitDepth: 8 | 16;
  samples: Uint8Array | Uint16Array;
  source: SourceInfo;
}

/**
 * Decodes a file to integer RGB at the source's bit depth (what full-resolution work streams through:
 * a 45-megapixel photo is 135 MB of 8-bit samples, against 540 MB as float32).
 */
export async function readImageRaw(file: string, opts: ReadOptions = {}): Promise<RawImage> {
  if (opts.maxSide !== undefined && !(Number.isInteger(opts.maxSide) && opts.maxSide >= 1)) {
    throw new StudioError('BAD_ARGUMENT', `maxSide must be a positive integer, not ${opts.maxSide}`);
  }
  const maxPixels = checkMaxPixels(opts.maxPixels);
  const { info, space } = await probe(file, maxPixels);
  const source: SourceInfo = { ...info, notes: [...info.notes] };
  if (opts.size && !(Number.isInteger(opts.size.width) && Number.isInteger(opts.size.height) && opts.size.width >= 1 && opts.size.height >= 1)) {
    throw new StudioError('BAD_ARGUMENT', `size must be positive integers, not ${opts.size.width}×${opts.size.height}`);
  }
  const target = opts.size ?? fitLongestSide(info.width, info.height, opts.maxSide, opts.upscale);
  const sixteen = info.bitDepth === 16;

  // See the header: one ICC transform, embedded profile → sRGB, at the source's depth.
  const rgbWithProfile = info.hasIcc && ['srgb', 'rgb', 'rgb16'].includes(space);

  const limit = Number.isFinite(maxPixels) ? Math.min(Math.floor(maxPixels), Number.MAX_SAFE_INTEGER) : false;
  let img = sharp(file, { failOn: 'warning', limitInputPixels: limit, autoOrient: true, ignoreIcc: rgbWithProfile });
  if (info.hadAlpha) img = img.flatten({ background: { r: 255, g: 255, b: 255 } });
  if (target.width !== info.width || target.height !== info.height) {
    img = img.resize({ width: target.width, height: target.height, fit: 'fill', kernel: 'lanczos3', fastShrinkOnLoad: false });
    source.notes.push(`resized from ${info.width}×${info.height} to ${target.width}×${target.height}`);
  }
  if (rgbWithProfile) img = img.withIccProfile('srgb');
  img = img.toColourspace(sixteen ? 'rgb16' : 'srgb').raw({ depth: sixteen ? 'ushort' : 'uchar' });

  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await img.toBuffer({ resolveWithObject: true });
  } catch (e) {
    const msg = firstLine(e);
    if (/missing|no such file/i.test(msg)) throw new StudioError('FILE_NOT_FOUND', `image not found: ${file}`, undefined, { cause: e });
    if (/pixel limit/i.test(msg)) {
      throw new StudioError('IMAGE_TOO_LARGE', `${file} is over the limit of ${(maxPixels / 1e6).toFixed(1)} megapixels`, undefined, { cause: e });
    }
    throw new StudioError('CORRUPT_IMAGE', `${file} is damaged or truncated: ${msg}`,
      'the file is incomplete or corrupt; re-export or re-download it', { cause: e });
  }
  const { width, height, channels } = out.info;
  if (channels !== 3 || width !== target.width || height !== target.height) {
    throw new StudioError('INTERNAL', `decoding ${file} gave ${width}×${height}×${channels}, expected ${target.width}×${target.height}×3`);
  }

  const bytes = sixteen && out.data.byteOffset % 2 !== 0 ? Buffer.from(out.data) : out.data;
  const samples = sixteen ? new Uint16Array(bytes.buffer, bytes.byteOffset, width * height * 3) : new Uint8Array(bytes.buffer, bytes.byteOffset, width * height * 3);
  return { width, height, bitDepth: sixteen ? 16 : 8, samples, source };
}

/** Decodes a file to RGB float32 HWC in [0, 1], sRGB, upright, alpha removed, optionally resized. */
export async function readImage(file: string, opts: ReadOptions = {}): Promise<DecodedImage> {
  const { width, height, bitDepth, samples, source } = await readImageRaw(file, opts);
  let data: Float32Array;
  try {
    data = new Float32Array(width * height * 3);
  } catch (e) {
    throw new StudioError('IMAGE_TOO_LARGE', `${file}: not enough memory for ${width}×${height} pixels`,
      'use a smaller size, or downscale the image first', { cause: e });
  }
  if (bitDepth === 16) {
    for (let i = 0; i < data.length; i++) data[i] = samples[i] / 65535;
  } else {
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = v / 255;
    for (let i = 0; i < data.length; i++) data[i] = lut[samples[i]];
  }
  return { width, height, data, source };
}
