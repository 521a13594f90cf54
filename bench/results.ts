// bench/results.json: every benchmark section merges its entries into one file (a section's new
// entries replace its old ones of the same name, size and backend).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

export interface BenchEntry {
  name: string;
  backend: string;
  device: string;
  threads: number;
  size: string;
  medianMs: number;
  runs: number;
  gflops?: number;
  peakRssMB: number;
  note?: string;
}

export const DEFAULT_RESULTS = new URL('./results.json', import.meta.url).pathname;

export function recordEntries(entries: BenchEntry[], outPath = DEFAULT_RESULTS): void {
  const previous: BenchEntry[] = existsSync(outPath) ? (JSON.parse(readFileSync(outPath, 'utf8')).entries ?? []) : [];
  const keep = previous.filter((e) => !entries.some((n) => n.name === e.name && n.size === e.size && n.backend === e.backend));
  writeFileSync(outPath, JSON.stringify({
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGB: Math.round(os.totalmem() / 2 ** 30) },
    date: new Date().toISOString(),
    entries: [...keep, ...entries],
  }, null, 2));
  console.log(`wrote ${outPath}`);
}
