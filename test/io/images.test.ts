import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { StudioError } from '../../src-main/errors.ts';
import { fitLongestSide, probeImage, readImage } from '../../src-main/io/images.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'studio-images-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});
const f = (name: string) => path.join(dir, name);

function raw8(width: number, height: number, fn: (x: number, y: number, c: number) => number): Buffer {
  const b = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) b[(y * width + x) * 3 + c] = fn(x, y, c);
  return b;
}
const smooth = (x: number, y: number, c: number) => Math.round(40 + 3 * x + 2 * y + 30 * c); // up to 40×20
const ramp = (x: number, y: number, c: number) => Math.round(10 + 0.4 * x + 0.3 * y + 20 * c); // up to 300×200

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Stored 16-bit samples of a file, its ICC profile ignored. */
async function stored16(file: string): Promise<Uint16Array> {
  const b = await sharp(file, { ignoreIcc: true }).toColourspace('rgb16').raw({ depth: 'ushort' }).toBuffer();
  return new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
}

/** Display P3 (encoded) → sRGB (encoded), both with the sRGB transfer curve, D65. */
function p3ToSrgb(rgb: number[]): number[] {
  const lin = (v: number) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  const enc = (v: number) => (v <= 0.0031308 ? 12.92 * v : 1.055 * v ** (1 / 2.4) - 0.055);
  const [r, g, b] = rgb.map(lin);
  const M = [[1.224940, -0.224940, 0], [-0.042057, 1.042057, 0], [-0.019638, -0.078636, 1.098274]];
  return M.map((row) => enc(Math.min(1, Math.max(0, row[0] * r + row[1] * g + row[2] * b))));
}

function crc32(b: Buffer): number {
  let c = ~0;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return ~c >>> 0;
}

async function rejects(p: Promise<unknown>, code: string, file?: string): Promise<StudioError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof StudioError, `expected a StudioError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    assert.equal(e.exitCode, 2);
    if (file) assert.ok(e.message.includes(path.basename(file)), `message names the file: ${e.message}`);
    return e;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

describe('readImage: formats and values', () => {
  it('decodes lossless 8-bit PNG, TIFF and WebP exactly to v/255', async () => {
    const px = raw8(17, 11, (x, y, c) => (x * 29 + y * 7 + c * 101) % 256);
    const expected = Float32Array.from(px, (v) => v / 255);
    for (const [name, enc] of [['a.png', (s: Sharp) => s.png()], ['a.tif', (s: Sharp) => s.tiff({ compression: 'lzw' })], ['a.webp', (s: Sharp) => s.webp({ lossless: true })]] as const) {
      await enc(sharp(px, { raw: { width: 17, height: 11, channels: 3 } })).toFile(f(name));
      const img = await readImage(f(name));
      assert.equal(img.width, 17);
      assert.equal(img.height, 11);
      assert.equal(img.source.bitDepth, 8);
      assert.equal(img.source.hadAlpha, false);
      assert.ok(maxDiff(img.data, expected) < 1e-7, name);
    }
  });

  it('decodes JPEG (and AVIF where available) close to the original', async () => {
    const px = raw8(32, 24, smooth);
    const expected = Float32Array.from(px, (v) => v / 255);
    await sharp(px, { raw: { width: 32, height: 24, channels: 3 } }).jpeg({ quality: 98, chromaSubsampling: '4:4:4' }).toFile(f('b.jpg'));
    const jpg = await readImage(f('b.jpg'));
    assert.equal(jpg.source.format, 'jpeg');
    assert.ok(maxDiff(jpg.data, expected) < 4 / 255);
    if (sharp.format.heif?.output.buffer) {
      await sharp(px, { raw: { width: 32, height: 24, channels: 3 } }).avif({ quality: 90 }).toFile(f('b.avif'));
      const avif = await readImage(f('b.avif'));
      assert.equal(avif.source.format, 'avif');
      assert.ok(maxDiff(avif.data, expected) < 12 / 255);
    }
  });

  it('keeps 16-bit precision (PNG and TIFF)', async () => {
    const w = 64;
    const h = 4;
    // Values that fall between 8-bit levels: 257·k + 100 + small offsets.
    const px = new Uint16Array(w * h * 3).map((_, i) => 257 * (i % 250) + 100 + (i % 7) * 3);
    const expected = Float32Array.from(px, (v) => v / 65535);
    for (const name of ['g16.png', 'g16.tif']) {
      const s = sharp(px, { raw: { width: w, height: h, channels: 3 } }).toColourspace('rgb16');
      await (name.endsWith('.png') ? s.png() : s.tiff({ compression: 'deflate' })).toFile(f(name));
      const img = await readImage(f(name));
      assert.equal(img.source.bitDepth, 16, name);
      assert.ok(maxDiff(img.data, expected) < 2 / 65535, name);
      // and not merely 8-bit levels
      const off8 = Math.max(...Array.from(img.data, (v) => Math.abs(v - Math.round(v * 255) / 255)));
      assert.ok(off8 > 1e-3, name);
    }
    // Resizing and alpha removal stay at 16 bits as well.
    const rgba = new Uint16Array(w * h * 4).map((_, i) => (i % 4 === 3 ? 65535 : 257 * (i % 200) + 77));
    await sharp(rgba, { raw: { width: w, height: h, channels: 4 } }).toColourspace('rgb16').png().toFile(f('g16a.png'));
    const small = await readImage(f('g16a.png'), { maxSide: 32 });
    assert.equal(small.source.hadAlpha, true);
    assert.deepEqual([small.width, small.height], [32, 2]);
    assert.ok(Math.max(...Array.from(small.data, (v) => Math.abs(v * 65535 - Math.round(v * 255) * 257))) > 20);
  });

  it('converts an embedded ICC profile to sRGB, at 8 and at 16 bits', async () => {
    const colours = [[200, 60, 40], [50, 180, 90], [60, 80, 200], [128, 128, 128], [220, 200, 60], [90, 40, 120]];
    const px = Buffer.from(colours.flat());
    // 8-bit: sRGB pixels converted into Display P3 and tagged P3; decoding must give the sRGB values back.
    await sharp(px, { raw: { width: 3, height: 2, channels: 3 } }).withIccProfile('p3').png().toFile(f('p3.png'));
    await sharp(px, { raw: { width: 3, height: 2, channels: 3 } }).withIccProfile('p3').jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toFile(f('p3.jpg'));
    const storedP3 = await sharp(f('p3.png'), { ignoreIcc: true }).raw().toBuffer();
    assert.ok(maxDiff(storedP3, px) >= 15, 'the fixture really holds P3 values');
    const png8 = await readImage(f('p3.png'));
    assert.equal(png8.source.hasIcc, true);
    assert.ok(png8.source.icc && png8.source.icc.length > 100);
    assert.ok(png8.source.notes.some((n) => /ICC/.test(n)));
    assert.ok(maxDiff(png8.data, Float32Array.from(px, (v) => v / 255)) <= 2.5 / 255);
    const jpg8 = await readImage(f('p3.jpg'));
    assert.ok(maxDiff(jpg8.data, Float32Array.from(px, (v) => v / 255)) <= 7 / 255); // JPEG rounding on a 3×2 patchwork; P3 values are ≥ 15 off

    // 16-bit: a P3-tagged 16-bit PNG; the result must be sRGB (sharp's own default would give Display P3 here).
    const px16 = Uint16Array.from(colours.flat(), (v) => v * 257 + 99);
    await sharp(px16, { raw: { width: 3, height: 2, channels: 3 } }).toColourspace('rgb16').withIccProfile('p3').png().toFile(f('p3-16.png'));
    const st = await stored16(f('p3-16.png'));
    const img = await readImage(f('p3-16.png'));
    assert.equal(img.source.bitDepth, 16);
    for (let i = 0; i < 6; i++) {
      const want = p3ToSrgb(Array.from(st.subarray(i * 3, i * 3 + 3), (v) => v / 65535));
      const got = Array.from(img.data.subarray(i * 3, i * 3 + 3));
      assert.ok(maxDiff(got, want) < 1.5 / 255, `pixel ${i}: ${got} vs ${want}`);
    }
  });

  it('applies EXIF orientation (2×3 tagged 6 reads as 3×2, rotated clockwise)', async () => {
    const R = [255, 0, 0], G = [0, 255, 0], B = [0, 0, 255], Y = [255, 255, 0], C = [0, 255, 255], M = [255, 0, 255];
    // stored rows: R G / B Y / C M
    const px = Buffer.from([R, G, B, Y, C, M].flat());
    await sharp(px, { raw: { width: 2, height: 3, channels: 3 } }).withMetadata({ orientation: 6 }).png().toFile(f('o6.png'));
    const info = await probeImage(f('o6.png'));
    assert.deepEqual([info.width, info.height, info.orientation], [3, 2, 6]);
    const img = await readImage(f('o6.png'));
    assert.deepEqual([img.width, img.height], [3, 2]);
    // displayed: C B R / M Y G
    assert.deepEqual(Array.from(img.data, (v) => Math.round(v * 255)), [C, B, R, M, Y, G].flat());
    assert.ok(img.source.notes.some((n) => /orientation 6/.test(n)));
    // JPEG too (orientation is where cameras put it)
    await sharp(raw8(40, 20, smooth), { raw: { width: 40, height: 20, channels: 3 } }).withMetadata({ orientation: 6 }).jpeg().toFile(f('o6.jpg'));
    const jpg = await readImage(f('o6.jpg'), { maxSide: 10 });
    assert.deepEqual([jpg.source.width, jpg.source.height, jpg.width, jpg.height], [20, 40, 5, 10]);
  });

  it('removes alpha by compositing over white and says so', async () => {
    const px = Buffer.from([10, 20, 30, 255, 200, 0, 0, 0, 0, 0, 200, 128]);
    await sharp(px, { raw: { width: 3, height: 1, channels: 4 } }).png().toFile(f('alpha.png'));
    const img = await readImage(f('alpha.png'));
    assert.equal(img.source.hadAlpha, true);
    assert.ok(img.source.notes.some((n) => /alpha/.test(n)));
    const got = Array.from(img.data, (v) => Math.round(v * 255));
    assert.deepEqual(got.slice(0, 3), [10, 20, 30]); // opaque: unchanged
    assert.deepEqual(got.slice(3, 6), [255, 255, 255]); // transparent: white, not its stored red
    assert.ok(Math.abs(got[6] - 127) <= 2 && Math.abs(got[8] - 227) <= 2); // half: blended
    const opaque = await readImage(f('a.png'));
    assert.equal(opaque.source.hadAlpha, false);
  });

  it('resizes the longest side with lanczos3, never up unless asked', async () => {
    await sharp(raw8(300, 200, ramp), { raw: { width: 300, height: 200, channels: 3 } }).png().toFile(f('big.png'));
    const small = await readImage(f('big.png'), { maxSide: 100 });
    assert.deepEqual([small.width, small.height, small.source.width, small.source.height], [100, 67, 300, 200]);
    assert.ok(small.source.notes.some((n) => /resized from 300×200 to 100×67/.test(n)));
    // a smooth ramp stays a ramp: the middle pixel matches the source's middle
    const mid = small.data[(33 * 100 + 50) * 3];
    assert.ok(Math.abs(mid * 255 - ramp(150, 99, 0)) < 2.5);
    const same = await readImage(f('big.png'), { maxSide: 1000 });
    assert.deepEqual([same.width, same.height], [300, 200]);
    assert.ok(!same.source.notes.some((n) => /resized/.test(n)));
    const up = await readImage(f('big.png'), { maxSide: 600, upscale: true });
    assert.deepEqual([up.width, up.height], [600, 400]);
    assert.deepEqual(fitLongestSide(3, 1000, 10), { width: 1, height: 10 });
    assert.deepEqual(fitLongestSide(30, 10, 100), { width: 30, height: 10 });
    await rejects(readImage(f('big.png'), { maxSide: 0 }), 'BAD_ARGUMENT');
    // a real photo
    const photo = await readImage(path.resolve('assets/samples/large-Dune.jpg'), { maxSide: 256 });
    assert.equal(Math.max(photo.width, photo.height), 256);
  });

  it('turns greyscale and CMYK into RGB', async () => {
    await sharp(Buffer.from([0, 100, 255, 7]), { raw: { width: 2, height: 2, channels: 1 } }).png().toFile(f('grey.png'));
    const grey = await readImage(f('grey.png'));
    assert.deepEqual(Array.from(grey.data, (v) => Math.round(v * 255)), [0, 0, 0, 100, 100, 100, 255, 255, 255, 7, 7, 7]);
    await sharp(raw8(8, 8, () => 0).fill(200), { raw: { width: 8, height: 8, channels: 3 } }).toColourspace('cmyk').jpeg().toFile(f('cmyk.jpg'));
    assert.equal((await sharp(f('cmyk.jpg')).metadata()).space, 'cmyk');
    const cmyk = await readImage(f('cmyk.jpg'));
    assert.equal(cmyk.data.length, 8 * 8 * 3);
    assert.ok(cmyk.source.notes.some((n) => /CMYK/.test(n)));
    assert.ok(Math.abs(cmyk.data[0] - 200 / 255) < 0.08 && Math.abs(cmyk.data[0] - cmyk.data[2]) < 0.05);
  });

  it('uses the first page of a multi-page TIFF and notes it', async () => {
    const stack = raw8(4, 8, (_x, y) => (y < 4 ? 10 : 200));
    await sharp(stack, { raw: { width: 4, height: 8, channels: 3, pageHeight: 4 } }).tiff().toFile(f('pages.tif'));
    assert.equal((await sharp(f('pages.tif')).metadata()).pages, 2);
    const img = await readImage(f('pages.tif'));
    assert.deepEqual([img.width, img.height, Math.round(img.data[0] * 255), Math.round(img.data.at(-1)! * 255)], [4, 4, 10, 10]);
    assert.ok(img.source.notes.some((n) => /2 pages/.test(n)));
  });
});

describe('readImage / probeImage: errors', () => {
  it('FILE_NOT_FOUND for a missing file or a path through a file', async () => {
    await rejects(readImage(f('nope.jpg')), 'FILE_NOT_FOUND', 'nope.jpg');
    await writeFile(f('plain.txt'), 'hello');
    await rejects(probeImage(f('plain.txt/x.png')), 'FILE_NOT_FOUND', 'x.png');
  });

  it('BAD_ARGUMENT for a directory', async () => {
    await mkdir(f('adir.png'));
    const e = await rejects(readImage(f('adir.png')), 'BAD_ARGUMENT', 'adir.png');
    assert.match(e.message, /directory/);
  });

  it('EMPTY_IMAGE for an empty file or a PNG of 0 pixels', async () => {
    await writeFile(f('empty.jpg'), '');
    await rejects(readImage(f('empty.jpg')), 'EMPTY_IMAGE', 'empty.jpg');
    const png = Buffer.from(await sharp(raw8(4, 4, smooth), { raw: { width: 4, height: 4, channels: 3 } }).png().toBuffer());
    png.writeUInt32BE(0, 16);
    await writeFile(f('zero.png'), png);
    await rejects(probeImage(f('zero.png')), 'EMPTY_IMAGE', 'zero.png');
  });

  it('NOT_AN_IMAGE for text and random bytes', async () => {
    await writeFile(f('notes.jpg'), 'this is not a picture\n'.repeat(20));
    await rejects(readImage(f('notes.jpg')), 'NOT_AN_IMAGE', 'notes.jpg');
    await writeFile(f('noise.bin'), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251)));
    await rejects(readImage(f('noise.bin')), 'NOT_AN_IMAGE', 'noise.bin');
  });

  it('UNSUPPORTED_FORMAT for GIF, SVG, BMP and camera RAW', async () => {
    await sharp(raw8(4, 4, smooth), { raw: { width: 4, height: 4, channels: 3 } }).gif().toFile(f('anim.gif'));
    const gif = await rejects(readImage(f('anim.gif')), 'UNSUPPORTED_FORMAT', 'anim.gif');
    assert.match(gif.message, /GIF/);
    assert.ok(gif.hint);
    await writeFile(f('draw.svg'), '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
    assert.match((await rejects(readImage(f('draw.svg')), 'UNSUPPORTED_FORMAT', 'draw.svg')).message, /SVG/);
    const bmp = Buffer.alloc(70);
    bmp.write('BM', 0, 'latin1');
    bmp.writeUInt32LE(40, 14);
    await writeFile(f('pic.bmp'), bmp);
    assert.match((await rejects(readImage(f('pic.bmp')), 'UNSUPPORTED_FORMAT', 'pic.bmp')).message, /BMP/);
    await writeFile(f('shot.dng'), await readFile(f('a.tif')));
    assert.match((await rejects(probeImage(f('shot.dng')), 'UNSUPPORTED_FORMAT', 'shot.dng')).message, /RAW/);
  });

  it('CORRUPT_IMAGE for truncated JPEG and PNG (failOn: warning) and a damaged header', async () => {
    const photo = await readFile(path.resolve('assets/samples/photo-Storm.jpg'));
    await writeFile(f('half.jpg'), photo.subarray(0, photo.length >> 1));
    await rejects(readImage(f('half.jpg')), 'CORRUPT_IMAGE', 'half.jpg');
    await rejects(readImage(f('half.jpg'), { maxSide: 64 }), 'CORRUPT_IMAGE', 'half.jpg'); // shrink-on-load path
    await writeFile(f('noeoi.jpg'), photo.subarray(0, photo.length - 2));
    await rejects(readImage(f('noeoi.jpg')), 'CORRUPT_IMAGE', 'noeoi.jpg');

    const png = await sharp(raw8(64, 64, (x, y, c) => (x * y + c * 50) % 256), { raw: { width: 64, height: 64, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
    await writeFile(f('half.png'), png.subarray(0, png.length >> 1));
    await rejects(readImage(f('half.png')), 'CORRUPT_IMAGE', 'half.png');
    await writeFile(f('noiend.png'), png.subarray(0, png.length - 12)); // all pixel data, no IEND
    await rejects(probeImage(f('noiend.png')), 'CORRUPT_IMAGE', 'noiend.png');
    const badCrc = Buffer.from(png);
    badCrc[29] ^= 0xff; // IHDR CRC
    await writeFile(f('badcrc.png'), badCrc);
    await rejects(readImage(f('badcrc.png')), 'CORRUPT_IMAGE', 'badcrc.png');
    const tif = await readFile(f('a.tif'));
    await writeFile(f('trunc.tif'), tif.subarray(0, tif.length - 200));
    await rejects(readImage(f('trunc.tif')), 'CORRUPT_IMAGE', 'trunc.tif');
  });

  it('IMAGE_TOO_LARGE from the header, before decoding', async () => {
    await rejects(readImage(f('big.png'), { maxPixels: 50_000 }), 'IMAGE_TOO_LARGE', 'big.png');
    assert.equal((await readImage(f('big.png'), { maxPixels: 60_000 })).width, 300);
    // A header claiming 20000×20000 with almost no data: the limit answers, not the missing pixels.
    const png = Buffer.from(await sharp(raw8(4, 4, smooth), { raw: { width: 4, height: 4, channels: 3 } }).png().toBuffer());
    png.writeUInt32BE(20000, 16);
    png.writeUInt32BE(20000, 20);
    png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
    await writeFile(f('huge.png'), png);
    const e = await rejects(probeImage(f('huge.png')), 'IMAGE_TOO_LARGE', 'huge.png');
    assert.match(e.message, /20000×20000/);
    await rejects(readImage(f('huge.png')), 'IMAGE_TOO_LARGE', 'huge.png');
  });
});
