/**
 * Damaged model files: whatever a truncated download, a bad disk or a hostile file holds, loading
 * it is a StudioError naming the file (BAD_MODEL, CHECKSUM_MISMATCH or MODEL_MISSING), never an
 * exception from inside a parser ("offset is out of bounds", a RangeError, a JSON SyntaxError).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { decodeSafetensors, encodeSafetensors } from '../../../src-main/engine/tensors/safetensors.ts';
import { decoderPath, encoderHash, loadDecoder, saveDecoder } from '../../../src-main/engine/models/decoders.ts';
import { listModels, loadVgg19, saveVgg19 } from '../../../src-main/engine/models/store.ts';
import { tinyVgg19 } from '../../../src-main/engine/models/tiny.ts';
import { initDecoder } from '../../../src-main/engine/photo/autoencoder.ts';
import { mulberry32 } from '../../../src-main/engine/random.ts';
import { StudioError } from '../../../src-main/errors.ts';

const named = (file: string) => (e: unknown) => e instanceof StudioError && ['BAD_FILE', 'BAD_MODEL', 'CHECKSUM_MISMATCH', 'MODEL_MISSING'].includes(e.code) && e.message.includes(file);

test('safetensors: 600 truncations and corruptions each decode or are refused naming the file (BAD_FILE)', () => {
  const w = tinyVgg19(1);
  const good = encodeSafetensors(w.tensors, { architecture: 'vgg19' });
  const rng = mulberry32(11);
  const file = '/models/x/model.safetensors';
  let refused = 0;
  for (let k = 0; k < 600; k++) {
    const bad = Buffer.from(good);
    const kind = k % 4;
    let bytes: Buffer;
    if (kind === 0) bytes = bad.subarray(0, Math.floor(rng() * bad.length)); // truncated anywhere
    else if (kind === 1) { // a byte of the header length or the header's JSON changed
      const i = Math.floor(rng() * Math.min(bad.length, 8 + bad.readUInt32LE(0)));
      bad[i] = Math.floor(rng() * 256);
      bytes = bad;
    } else if (kind === 2) { // a digit of a data offset changed (offsets past the end, overlapping, reversed)
      const header = bad.subarray(8, 8 + bad.readUInt32LE(0)).toString('latin1');
      const digits = [...header.matchAll(/\d/g)].map((m) => m.index!);
      const i = 8 + digits[Math.floor(rng() * digits.length)];
      bad[i] = 0x30 + Math.floor(rng() * 10);
      bytes = bad;
    } else { // the header length itself huge or zero
      bad.writeUInt32LE([0, 1, 0xffffffff, bad.length, bad.length - 7][k % 5], 0);
      bytes = bad;
    }
    try {
      decodeSafetensors(bytes, file);
    } catch (e) {
      assert.ok(named(file)(e), `case ${k} (kind ${kind}): ${(e as Error).stack}`);
      refused++;
    }
  }
  assert.ok(refused > 300, `${refused} of 600 refused`);
});

test('a decoder file truncated, damaged or missing is an error naming it; the model file too', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'damaged-'));
  try {
    const w = tinyVgg19(1);
    await saveVgg19(path.join(dir, 'm'), w);
    const hash = await encoderHash(path.join(dir, 'm'));
    const decoders = path.join(dir, 'm', 'decoders');
    await saveDecoder(decoders, initDecoder(2, w.widths, mulberry32(2)), { level: 2, encoderSha256: hash, widths: w.widths });
    const f = decoderPath(decoders, 2);
    const whole = await readFile(f);
    await loadDecoder(decoders, 2, hash); // whole: loads
    await truncate(f, Math.floor(whole.length * 0.6));
    await assert.rejects(loadDecoder(decoders, 2, hash), named(f));
    await writeFile(f, Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]), whole.subarray(8)]));
    await assert.rejects(loadDecoder(decoders, 2, hash), named(f));
    await rm(f);
    await assert.rejects(loadDecoder(decoders, 2, hash), (e: unknown) => named(f)(e) && (e as StudioError).code === 'MODEL_MISSING');
    // The VGG19 file cut short: its manifest's size and hash say so, by name.
    const model = path.join(dir, 'm', 'model.safetensors');
    await truncate(model, 1000);
    await assert.rejects(loadVgg19(path.join(dir, 'm')), (e: unknown) => named(model)(e) && (e as StudioError).code === 'CHECKSUM_MISMATCH');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an install killed between its renames: the old model is put back (not a live installer\'s); an install folder abandoned a day ago is removed', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'interrupted-'));
  try {
    // What a kill leaves after `rename(vgg19 → .vgg19.old-…)` and before `rename(tmp → vgg19)`.
    await saveVgg19(path.join(root, 'vgg19'), tinyVgg19(3));
    const dead = spawnSync(process.execPath, ['-e', '']).pid; // an installer process that is gone
    await rename(path.join(root, 'vgg19'), path.join(root, `.vgg19.old-${dead}-1700000000000`));
    await saveVgg19(path.join(root, 'live'), tinyVgg19(6));
    await rename(path.join(root, 'live'), path.join(root, `.live.old-${process.pid}-1700000000000`)); // mid-install in a live process: left alone
    await saveVgg19(path.join(root, '.vgg19.installing-abc123'), tinyVgg19(4));
    const hoursAgo = new Date(Date.now() - 25 * 3600_000);
    await utimes(path.join(root, '.vgg19.installing-abc123'), hoursAgo, hoursAgo);
    await saveVgg19(path.join(root, '.other.installing-fresh'), tinyVgg19(5)); // a live install: left alone
    assert.deepEqual((await listModels(root)).map((m) => m.name), ['vgg19'], 'the old model is back');
    assert.deepEqual((await readdir(root)).sort(), [`.live.old-${process.pid}-1700000000000`, '.other.installing-fresh', 'vgg19']);
    await loadVgg19(path.join(root, 'vgg19')); // whole, and loads
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
