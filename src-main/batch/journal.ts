/**
 * The batch journal: one JSON record per line in `<out>/.studio-batch.jsonl`, appended (and synced)
 * as files move through the batch, so that a crash, a kill or a reboot loses at most the file being
 * written, and the same command resumes from it.
 *
 *   {"type":"batch","fingerprint":"…","settings":{…},"at":"…"}     a run's settings (every start)
 *   {"type":"file","input":"sub/a.jpg","output":"sub/a-monet.jpg","state":"queued"}
 *   {"type":"file","input":"sub/a.jpg","output":"sub/a-monet.jpg","state":"done","sha256":"…","ms":1234,"inputSize":…,"inputMtimeMs":…}
 *   {"type":"file","input":"b.png","state":"failed","code":"CORRUPT_IMAGE","reason":"…"}
 *
 * Paths are relative to the input and output folders. Reading tolerates a torn last line and any
 * line that is not a record (a truncated or hand-edited journal): what cannot be read is simply not
 * known, and the batch redoes or re-verifies those files.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { StudioError } from '../errors.ts';

export const JOURNAL_NAME = '.studio-batch.jsonl';

export type FileState = 'queued' | 'done' | 'failed';

export interface FileRecord {
  type: 'file';
  input: string;
  output?: string;
  state: FileState;
  sha256?: string;
  /** The photo the result was made from (size, modification time): a replaced photo is redone. */
  inputSize?: number;
  inputMtimeMs?: number;
  code?: string;
  reason?: string;
  ms?: number;
}

export interface BatchRecord {
  type: 'batch';
  fingerprint: string;
  settings: unknown;
  at: string;
}

export interface JournalState {
  /** The latest record of every input, from runs with the current fingerprint only. */
  files: Map<string, FileRecord>;
  /** Output names claimed by earlier runs (any fingerprint), input → output: kept on resume. */
  outputs: Map<string, string>;
  /** Lines that could not be read (torn or foreign). */
  skippedLines: number;
}

/** Reads a journal line by line (never the whole file at once). Missing file: an empty state. */
export async function readJournal(file: string, fingerprint: string): Promise<JournalState> {
  const state: JournalState = { files: new Map(), outputs: new Map(), skippedLines: 0 };
  let stream;
  try {
    stream = createReadStream(file, { encoding: 'utf8' });
    await new Promise<void>((resolve, reject) => {
      stream!.once('open', () => resolve());
      stream!.once('error', reject);
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return state;
    throw new StudioError('UNWRITABLE_OUTPUT', `cannot read the batch journal ${file}: ${(e as Error).message}`);
  }
  let current = false;
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      state.skippedLines++;
      continue;
    }
    const rec = r as { type?: string; fingerprint?: unknown; input?: unknown; output?: unknown; state?: unknown } | null;
    if (rec?.type === 'batch' && typeof rec.fingerprint === 'string') {
      current = rec.fingerprint === fingerprint;
    } else if (rec?.type === 'file' && typeof rec.input === 'string' && ['queued', 'done', 'failed'].includes(rec.state as string)) {
      if (typeof rec.output === 'string') state.outputs.set(rec.input, rec.output);
      if (current) state.files.set(rec.input, rec as unknown as FileRecord);
    } else {
      state.skippedLines++;
    }
  }
  return state;
}

/** Appends records, one synced line each, so that a record on disk is a record complete. */
export class JournalWriter {
  private constructor(private fh: FileHandle, readonly file: string) {}

  static async open(dir: string): Promise<JournalWriter> {
    const file = path.join(dir, JOURNAL_NAME);
    try {
      const fh = await open(file, 'a');
      // A torn last line from a killed run must not glue onto the next record.
      const { size } = await fh.stat();
      if (size > 0) {
        const last = Buffer.alloc(1);
        const rd = await open(file, 'r');
        await rd.read(last, 0, 1, size - 1);
        await rd.close();
        if (last[0] !== 0x0a) await fh.write('\n');
      }
      return new JournalWriter(fh, file);
    } catch (e) {
      throw new StudioError('UNWRITABLE_OUTPUT', `cannot write the batch journal in ${dir}: ${(e as Error).message}`,
        'choose an output folder you can write to');
    }
  }

  async append(rec: FileRecord | BatchRecord): Promise<void> {
    try {
      await this.fh.write(`${JSON.stringify(rec)}\n`);
      await this.fh.datasync();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new StudioError('UNWRITABLE_OUTPUT', code === 'ENOSPC'
        ? `the disk holding ${this.file} is full`
        : `cannot write the batch journal ${this.file}: ${(e as Error).message}`,
      'free some space (or choose another output folder) and run the same command again: the batch resumes');
    }
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
