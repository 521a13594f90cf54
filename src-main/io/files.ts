/**
 * Reading a file the user named, with the studio's errors: FILE_NOT_FOUND when it is not there,
 * BAD_FILE when it cannot be read.
 */
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
