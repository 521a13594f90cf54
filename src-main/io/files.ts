/**
 * Reading a file the user named, with the studio's errors: FILE_NOT_FOUND when it is not there,
 * BAD_FILE when it cannot be read; and a file's digest.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { StudioError } from '../errors.ts';

export async function readFileChecked(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new StudioError('FILE_NOT_FOUND', `no such file: ${path}`, undefined, { cause: e });
    throw new StudioError('BAD_FILE', `cannot read ${path}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

/** A file's digest (hex), streamed: a download, a model or a whole shoot's photos never sit in memory. */
export async function hashFile(path: string, algorithm: 'md5' | 'sha256'): Promise<string> {
  const h = createHash(algorithm);
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export const md5File = (path: string): Promise<string> => hashFile(path, 'md5');
export const sha256File = (path: string): Promise<string> => hashFile(path, 'sha256');
