// A benchmark's shoot: `files` photos made from the bundled samples, each resized to `size` (longest
// side) and recoloured so that no two are alike.
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

export const SAMPLES = fileURLToPath(new URL('../assets/samples/', import.meta.url));

export async function makeShoot(inDir: string, files: number, size: number): Promise<void> {
  await mkdir(inDir, { recursive: true });
  const sources = (await readdir(SAMPLES)).filter((f) => /^(content|photo|large)-.*\.jpg$/.test(f));
  for (let k = 0; k < files; k++) {
    await sharp(path.join(SAMPLES, sources[k % sources.length])).resize(size, size, { fit: 'inside' }).modulate({ hue: (37 * k) % 360 })
      .jpeg({ quality: 90 }).toFile(path.join(inDir, `photo ${String(k).padStart(3, '0')}.jpg`));
  }
}
