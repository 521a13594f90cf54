/**
 * Which files a batch takes, what each result is called and what job makes it: a streamed walk of
 * the input folder (one directory handle open at a time, never the whole listing in memory), a glob
 * filter, the output name template, the settings' fingerprint and the engine job of one file.
 * Shared by the local batch (run.ts) and the queue (queue/), so that both name and make every
 * result the same way.
 */
import { createHash } from 'node:crypto';
import { mkdir, opendir, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { StudioError } from '../errors.ts';
import { sha256File } from '../io/files.ts';
import type { GatysParams, Job, MatchParams, PhotoParams } from '../protocol.ts';
import { JOURNAL_NAME } from './journal.ts';

/** What makes a batch's results what they are (the folders and the scheduling aside). */
export interface BatchSettings {
  style: string;
  method: 'match' | 'photo' | 'gatys';
  photo?: PhotoParams;
  gatys?: GatysParams;
  match?: MatchParams;
  model?: string;
  decoders?: string;
  /** Output name template; default '{name}-{style}.{ext}'. */
  name?: string;
  format?: 'png' | 'jpeg' | 'tiff';
  bitDepth?: 8 | 16;
  quality?: number;
  maxPixels?: number;
}

export async function exists(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Temporary files an interrupted atomic write left beside `out` (".name.<random>.tmp"). */
export async function removeStaleTemps(out: string): Promise<void> {
  const dir = path.dirname(out);
  const prefix = `.${path.basename(out)}.`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(prefix) && n.endsWith('.tmp')) await unlink(path.join(dir, n)).catch(() => undefined);
}

/**
 * The settings that make results differ, and their hash: a journal written under other settings is
 * not trusted for skipping, and the queue derives its job ids from it. The style counts by its
 * content, not its path: the same picture elsewhere (a new upload, another mount) is the same batch.
 */
export async function batchFingerprint(o: BatchSettings): Promise<{ fingerprint: string; settings: Record<string, unknown> }> {
  const settings = {
    method: o.method, style: path.basename(o.style), styleSha256: await sha256File(o.style), params: o.method === 'photo' ? o.photo : o.method === 'match' ? o.match : o.gatys, model: o.model ?? null, decoders: o.decoders ?? null,
    name: o.name ?? DEFAULT_NAME, format: o.format ?? null, bitDepth: o.bitDepth ?? null, quality: o.quality ?? null,
  };
  return { fingerprint: createHash('sha256').update(JSON.stringify(settings)).digest('hex').slice(0, 16), settings };
}

/**
 * A batch's folders and style, checked and absolute; the output folder created. Errors name what
 * is wrong before any file is touched.
 */
export async function prepareFolders(o: { inDir: string; outDir: string; style: string; name?: string }): Promise<{ inDir: string; outDir: string; style: string }> {
  const inDir = path.resolve(o.inDir), outDir = path.resolve(o.outDir), style = path.resolve(o.style);
  // A name template that would leave the output folder ('../{name}', 'a/{name}') is refused before anything is made.
  if (o.name !== undefined) outputName(o.name, 'photo.jpg', { style: 'style', method: 'method', ext: 'jpg' });
  if (!(await stat(inDir).then((s) => s.isDirectory(), () => false))) throw new StudioError('FILE_NOT_FOUND', `the input folder ${o.inDir} does not exist or is not a folder`);
  if (outDir === inDir) throw new StudioError('BAD_ARGUMENT', 'the output folder must not be the input folder', 'choose another --out; it may lie inside the input folder');
  if (!(await exists(style))) throw new StudioError('FILE_NOT_FOUND', `style image not found: ${o.style}`);
  try {
    await mkdir(outDir, { recursive: true });
  } catch (e) {
    throw new StudioError('UNWRITABLE_OUTPUT', `cannot create the output folder ${o.outDir}: ${(e as Error).message}`, 'choose an output folder you can write to');
  }
  return { inDir, outDir, style };
}

/** The engine job that makes one result (the style's features cached across the files of a worker). */
export function engineJob(o: BatchSettings, input: string, out: string, style: string): Job {
  const output = { out, format: o.format, bitDepth: o.bitDepth, quality: o.quality };
  return o.method === 'match'
    ? { kind: 'stylize-match', content: input, style, output, params: o.match!, maxPixels: o.maxPixels, cacheStyle: true }
    : o.method === 'photo'
    ? { kind: 'stylize-photo', content: input, style, output, params: o.photo!, model: o.model, decoders: o.decoders, maxPixels: o.maxPixels, cacheStyle: true }
    : { kind: 'stylize-gatys', content: input, styles: [style], output, params: { ...o.gatys!, previewEvery: 0 }, model: o.model, maxPixels: o.maxPixels, cacheStyle: true };
}

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

/**
 * Output names as the walk meets the inputs: the template's name, with a suffix (-2, -3…) when an
 * earlier input already has it; names from an earlier run (`kept`, input → output) stay as they were.
 */
export class OutputNames {
  private readonly claimed = new Map<string, string>(); // output → input

  constructor(private readonly o: Pick<BatchSettings, 'name' | 'format' | 'method'>, private readonly styleName: string, private readonly kept: ReadonlyMap<string, string> = new Map()) {
    for (const [input, output] of kept) this.claimed.set(output, input);
  }

  /** `previous`: this input's name in the journal of a run with the same settings. */
  claim(input: string, previous?: string): string {
    let output = previous;
    if (!output) {
      const base = outputName(this.o.name ?? DEFAULT_NAME, input, { style: this.styleName, method: this.o.method, ext: outputExt(input, this.o.format) });
      output = base;
      for (let k = 2; this.claimed.has(output) && this.claimed.get(output) !== input; k++) {
        const e = path.extname(base);
        output = `${base.slice(0, base.length - e.length)}-${k}${e}`;
      }
    }
    this.claimed.set(output, input);
    return output;
  }
}
