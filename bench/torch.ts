// PyTorch side by side (issue 16): finds a Python with torch, runs one of bench/torch/*.py with the
// same sizes, runs and threads as our section, and returns its parsed JSON, or why it could not.
//   Python: $STUDIO_TORCH_PYTHON if set ('none' or '' turns the comparison off), else /usr/bin/python3
//   (Debian's python3-torch; the `python3` on PATH may be another Python without torch).
// The script runs after our measures, never beside them: one process at a time on the same cores.
// OMP/OpenBLAS thread counts are pinned to the same number as torch.set_num_threads, so that
// PyTorch's convolutions (oneDNN, OpenMP) and eigen-solver (LAPACK on OpenBLAS) use no more cores than ours.
// Allocator: PyTorch's CPU tensors come from malloc, and glibc hands every large one (> 32 MB at most)
// back to the kernel when freed, so each new one is fresh pages. On this project's VM (Firecracker)
// a page fault costs ~10 µs: a 64 MB elementwise op took 190 ms with glibc's malloc and 2.3 ms with
// jemalloc told to keep its pages, and PyTorch's 512×512 PhotoWCT cascade ~27.6 s against 3.3 s.
// Ours never returns wasm memory, so it pays no such toll. To compare compute with compute, the
// script runs with libjemalloc preloaded (MALLOC_CONF dirty/muzzy decay -1, as PyTorch's own
// launcher torch.backends.xeon.run_cpu preloads jemalloc or tcmalloc) when the library is found;
// STUDIO_TORCH_MALLOC=system keeps glibc's malloc, a path names another libjemalloc. Kept pages
// can raise PyTorch's peak RSS a little (981 MB against 884 MB on the 512×512 cascade).
// OMP_WAIT_POLICY defaults to PASSIVE here (set it to override): with libgomp's default spinning, one
// other busy process on a 2-core machine made PyTorch's 2-thread VGG19 forward at 96² ~9× slower
// (524 ms against 56 ms passive, 60 ms on 1 thread), which would flatter every ratio; our wasm
// threads did not suffer so. On an idle machine passive waiting costs PyTorch little (a futex wake per
// parallel region).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BenchEntry } from './results.ts';

export interface TorchEntry {
  name: string;
  size: string;
  medianMs: number;
  runs: number;
  peakRssMB: number;
  note?: string;
}

export interface TorchReport {
  torch: string;
  python: string;
  threads: number;
  runs: number;
  device: string;
  entries: TorchEntry[];
  /** The script's peak RSS (getrusage ru_maxrss) at its end. */
  peakRssMB: number;
  /** What the photowct script fed the networks: 'photo' (our resized photos) and/or 'noise'. */
  inputs?: string[];
}

export interface TorchRun {
  ok: true;
  python: string;
  report: TorchReport;
  wallMs: number;
  /** OMP_WAIT_POLICY the script ran with. */
  waitPolicy: string;
  /** The allocator it ran with (torchAllocator). */
  allocator: string;
  /** 1-minute load average just before the script started (other work on the machine). */
  loadBefore: number;
}

export type TorchOutcome = TorchRun | { ok: false; reason: string };

const DEFAULT_PYTHON = '/usr/bin/python3';
const JEMALLOC = ['x86_64-linux-gnu', 'aarch64-linux-gnu', ''].flatMap((d) => [`/usr/lib/${d}/libjemalloc.so.2`, `/lib/${d}/libjemalloc.so.2`]).map((p) => p.replace('//', '/'));

/** The allocator the script runs with: environment additions and a description (see the header). */
export function torchAllocator(): { env: Record<string, string>; what: string } {
  const choice = process.env.STUDIO_TORCH_MALLOC;
  if (choice === 'system') return { env: {}, what: 'glibc malloc (STUDIO_TORCH_MALLOC=system)' };
  const lib = choice ? (existsSync(choice) ? choice : undefined) : JEMALLOC.find((p) => existsSync(p));
  if (!lib) return { env: {}, what: choice ? `glibc malloc (no ${choice})` : 'glibc malloc (no libjemalloc found)' };
  const preload = [lib, process.env.LD_PRELOAD].filter(Boolean).join(':');
  return { env: { LD_PRELOAD: preload, MALLOC_CONF: process.env.MALLOC_CONF ?? 'dirty_decay_ms:-1,muzzy_decay_ms:-1' }, what: `jemalloc keeping its pages (${lib})` };
}

/** The Python interpreter with a working `import torch`, and torch's version; or why there is none. */
export function findTorch(): { python: string; version: string } | { reason: string } {
  const env = process.env.STUDIO_TORCH_PYTHON;
  if (env !== undefined && (env === '' || env.toLowerCase() === 'none')) return { reason: 'PyTorch comparison turned off (STUDIO_TORCH_PYTHON is empty or "none")' };
  const python = env ?? DEFAULT_PYTHON;
  const where = env !== undefined ? `${python} (STUDIO_TORCH_PYTHON)` : python;
  if (python.includes('/') && !existsSync(python)) return { reason: `no ${where}; install Debian's python3-torch or set STUDIO_TORCH_PYTHON to a Python with torch` };
  const r = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 120_000 });
  if (r.error) return { reason: `${where} could not run: ${r.error.message}` };
  if (r.status !== 0) {
    const last = (r.stderr ?? '').trim().split('\n').at(-1) ?? '';
    return { reason: `${where} cannot import torch${last ? ` (${last.slice(0, 160)})` : ''}; install Debian's python3-torch or set STUDIO_TORCH_PYTHON` };
  }
  return { python, version: r.stdout.trim() };
}

/**
 * Runs bench/torch/<script> with `args` (which must include --threads N) under the Python findTorch
 * finds. Its progress lines go to our stderr; its stdout's last line is the JSON report.
 */
export function runTorchBench(script: 'vgg_bench.py' | 'photowct_bench.py', args: string[], threads: number): TorchOutcome {
  const found = findTorch();
  if ('reason' in found) return { ok: false, reason: found.reason };
  const file = fileURLToPath(new URL(`./torch/${script}`, import.meta.url));
  const n = String(threads);
  const waitPolicy = process.env.OMP_WAIT_POLICY || 'PASSIVE';
  const loadBefore = os.loadavg()[0];
  const alloc = torchAllocator();
  const t0 = performance.now();
  const r = spawnSync(found.python, [file, '--threads', n, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 2 ** 20,
    timeout: 3 * 3600_000,
    env: { ...process.env, OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n, OMP_WAIT_POLICY: waitPolicy, ...alloc.env },
  });
  const wallMs = performance.now() - t0;
  if (r.error) return { ok: false, reason: `${script} could not run: ${r.error.message}` };
  if (r.status !== 0) return { ok: false, reason: `${script} failed (exit ${r.status ?? r.signal}); see its output above` };
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    const report = JSON.parse(line) as TorchReport;
    if (!Array.isArray(report.entries)) throw new Error('no entries');
    if (report.threads !== threads) return { ok: false, reason: `${script} ran with ${report.threads} threads, not ${threads}` };
    return { ok: true, python: found.python, report, wallMs, waitPolicy, allocator: alloc.what, loadBefore };
  } catch (e) {
    return { ok: false, reason: `${script} printed no JSON report (${e instanceof Error ? e.message : String(e)}): ${line.slice(0, 200)}` };
  }
}

/** The header's second half: how PyTorch ran (after ours, alone), its wait policy and the machine's load. */
export function torchRunLine(t: TorchRun): string {
  return `PyTorch ran after ours, alone (${(t.wallMs / 1e3).toFixed(0)} s; ${t.allocator}; OMP_WAIT_POLICY=${t.waitPolicy}); load average ${t.loadBefore.toFixed(1)} on ${os.cpus().length} cores before it${t.loadBefore > os.cpus().length * 0.5 + 0.5 ? ' (a busy machine: every figure is noisy)' : ''}`;
}

export function torchMs(report: TorchReport, name: string, size: string): number | undefined {
  return report.entries.find((e) => e.name === name && e.size === size)?.medianMs;
}

/** The report's entries as bench/results.json entries (backend 'pytorch-cpu'); `flops` gives GFLOP/s where known. */
export function torchBenchEntries(t: TorchRun, flops: (name: string, size: string) => number | undefined = () => undefined): BenchEntry[] {
  const report = t.report;
  return report.entries.map((e) => {
    const f = flops(e.name, e.size);
    return {
      name: e.name, backend: 'pytorch-cpu', device: report.device, threads: report.threads, size: e.size, medianMs: e.medianMs, runs: e.runs,
      gflops: f ? Math.round((f / 1e9 / (e.medianMs / 1e3)) * 10) / 10 : undefined, peakRssMB: e.peakRssMB,
      note: [`torch ${report.torch}, python ${report.python}, OMP_WAIT_POLICY=${t.waitPolicy}, ${t.allocator}`, e.note].filter(Boolean).join('; '),
    };
  });
}

/** One row of the side-by-side table. `ours`/`torch` in `unit`; `target` says what the issue asks and `met` whether we meet it. */
export interface ComparisonRow {
  name: string;
  size: string;
  ours: number;
  torch?: number;
  unit: 'ms' | 'MB';
  target?: string;
  met?: boolean;
}

const fmt = (v: number | undefined, unit: string) => (v === undefined ? '—' : `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${unit}`);

/** Prints the rows as a table: measure, size, ours, PyTorch, ours/PyTorch, target (✓ met, ✗ missed). */
export function printComparison(rows: ComparisonRow[]): void {
  const w = Math.max(34, ...rows.map((r) => r.name.length));
  console.log(`${'measure'.padEnd(w)} ${'size'.padEnd(10)} ${'ours'.padStart(11)} ${'PyTorch'.padStart(11)} ${'ours/PyTorch'.padStart(12)}  target`);
  for (const r of rows) {
    const ratio = r.torch ? `${(r.ours / r.torch).toFixed(2)}×` : '—';
    const target = r.target ? `${r.target}${r.met === undefined ? '' : r.met ? ' ✓' : ' ✗'}` : '';
    console.log(`${r.name.padEnd(w)} ${r.size.padEnd(10)} ${fmt(r.ours, r.unit).padStart(11)} ${fmt(r.torch, r.unit).padStart(11)} ${ratio.padStart(12)}  ${target}`);
  }
}
