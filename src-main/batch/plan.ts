/**
 * Which files a batch takes and what each result is called: a streamed walk of the input folder
 * (one directory handle open at a time, never the whole listing in memory), a glob filter, and the
 * output name template.
 */
import { opendir } from 'node:fs/promises';
import path from 'node:path';
import { StudioError } from '../errors.ts';
import { JOURNAL_NAME } from './journal.ts';

/** Extensions of the images readImage accepts. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.avif'];

/**
 * A glob ('*', '?', '{a,b}', case-insensitive) as a test on a relative path: patterns without '/'
 * test the file name, patterns with '/' the whole relative path ('**' crosses folders).
 */
export function globMatcher(pattern: string): (rel: string) => boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '{') {
      const end = pattern.indexOf('}', i);
      if (end < 0) throw new StudioError('BAD_ARGUMENT', `--pattern ${pattern}: '{' without '}'`);
      re += `(?:${pattern.slice(i + 1, end).split(',').map((s) => s.replace(/[.+^$()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')).join('|')})`;
      i = end;
    } else re += ch.replace(/[.+^$()|[\]\\]/g, '\\$&');
  }
  const rx = new RegExp(`^${re}$`, 'i');
  const onPath = pattern.includes('/');
  return (rel) => rx.test(onPath ? rel.split(path.sep).join('/') : path.basename(rel));
}

/**
 * The image files under `inDir` (relative paths), streamed. Skips hidden files and folders (and
 * so the journal and temporary files), and the output folder when it lies inside the input folder,
 * so that a batch never takes its own results as inputs.
 */
export async function* walkImages(inDir: string, opts: { recursive: boolean; match?: (rel: string) => boolean; exclude?: string }): AsyncGenerator<string> {
  const root = path.resolve(inDir);
  const exclude = opts.exclude ? path.resolve(opts.exclude) : undefined;
  const stack: string[] = [''];
  while (stack.length) {
    const rel = stack.pop()!;
    const abs = path.join(root, rel);
    if (exclude && abs === exclude) continue;
    let dir;
    try {
      dir = await opendir(abs);
    } catch (e) {
      if (rel === '') throw new StudioError('FILE_NOT_FOUND', `cannot read the input folder ${inDir}: ${(e as Error).message}`);
      continue; // an unreadable sub-folder: its files cannot be taken, the rest can
    }
    for await (const ent of dir) {
      if (ent.name.startsWith('.') || ent.name === JOURNAL_NAME) continue;
      const r = rel ? path.join(rel, ent.name) : ent.name;
      if (ent.isDirectory()) {
        if (opts.recursive) stack.push(r);
      } else if (ent.isFile() || ent.isSymbolicLink()) {
        if (opts.match ? opts.match(r) : IMAGE_EXTENSIONS.includes(path.extname(ent.name).toLowerCase())) yield r;
      }
    }
  }
}

export const DEFAULT_NAME = '{name}-{style}.{ext}';

/**
 * The output's relative path: the input's sub-folder, then the template with {name} (the input's
 * name without extension), {style}, {method} and {ext} (the output format's). Results mirror the
 * input tree, so equal names in different sub-folders never collide.
 */
export function outputName(template: string, input: string, vars: { style: string; method: string; ext: string }): string {
  const base = path.basename(input, path.extname(input));
  const name = template.replace(/\{(name|style|method|ext)\}/g, (_, k: string) => (k === 'name' ? base : vars[k as 'style' | 'method' | 'ext']));
  if (/[/\\]/.test(name) || name === '' || name.startsWith('.')) {
    throw new StudioError('BAD_ARGUMENT', `--name ${template} gives "${name}" for ${input}: a result's name must be a plain file name`);
  }
  return path.join(path.dirname(input), name);
}

/** The output format for an input: --format if given, else the input's own where writable, else PNG. */
export function outputExt(input: string, format?: 'png' | 'jpeg' | 'tiff'): string {
  if (format) return format === 'jpeg' ? 'jpg' : format === 'tiff' ? 'tif' : 'png';
  const ext = path.extname(input).slice(1).toLowerCase();
  return ['jpg', 'jpeg', 'png', 'tif', 'tiff'].includes(ext) ? ext : 'png';
}
