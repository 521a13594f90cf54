/**
 * `studio`: the command line. Every compute job runs in the engine worker (worker/client.ts), the
 * same one the app uses; this file only parses arguments, prints progress and maps errors to exit
 * codes (0 success, 2 bad input, 1 internal failure, 130 cancelled).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StudioError, isStudioError, type ErrorCode } from '../errors.ts';
import { FeaturesJob, GatysParams, MatchParams, PhotoParams, SmoothJob, SmoothParams, StylizeMatchJob, StylizePhotoJob, TrainDecoderJob, type Job, type OutputSize } from '../protocol.ts';
import type { MatchResult } from '../worker/match.ts';
import type { FullResReport } from '../worker/fullres.ts';
import type { SmoothingReport } from '../engine/photo/smoothing.ts';
import { EngineClient } from '../worker/client.ts';
import type { StylizeResult } from '../worker/jobs.ts';
import type { TrainResult } from '../worker/train.ts';
import { precisionSupport } from '../engine/train/report.ts';
import { defined, list, num, numList, oneOf } from './args.ts';
import { formatDuration, progressPrinter } from './progress.ts';

const HELP = `studio — style transfer for photographers

Usage:
  studio stylize --method gatys --content PHOTO --style PAINTING --out RESULT [options]
  studio stylize --method match --content PHOTO --style PHOTO --out RESULT [--alpha 1
                 --keep-luminance --smooth fast|exact|none --content-labels L --style-labels L2
                 --size 1024 --report R.json]   colour match: no model needed (options below)
  studio stylize --method photo --content PHOTO --style PHOTO --out RESULT [--alpha 1
                 --smooth exact|fast|none --content-labels L --style-labels L2 --size 512
                 --decoders DIR --report R.json]   (PhotoWCT, then the smoothing step; options below)
  studio batch --in DIR --out DIR --method match|photo|gatys --style S [stylize options] [--recursive
                 --pattern '*.jpg' --name '{name}-{style}.{ext}' --format --size --jobs N
                 --overwrite skip|replace]   a whole folder, resumable: run it again after any stop
  studio batch --queue redis://host:6379/0 --in DIR --out DIR [batch options]
                 the shoot into a queue that \`studio worker\`s on many machines share; follows it
                 (Ctrl-C stops following, not the work); --status [--shoot ID], --cancel [--shoot ID]
  studio worker --queue redis://host:6379/0 [--jobs N --backend NAME --name NAME
                 --path-map FROM=TO]   takes queued photos until Ctrl-C (which hands them back)
  studio smooth --content PHOTO --stylized IMAGE --out RESULT [--mode exact|fast --alpha 0.9999
                 --tol 1e-7 --size PX --report R.json]   the smoothing step alone, guided by PHOTO
  studio info [--json] [--backend NAME]
  studio models list | import FILE [--name NAME] | fetch vgg19|photowct|all | tiny DIR
                 (FILE: Keras .h5, torchvision .pth, or FastPhotoStyle's photo_wct.pth or models.zip → model photowct)
  studio demo [--out DIR] [--size PX] [--iters N] [--offline]
                 first run: fetches VGG19 and the photo model (offline: colour match and a test network)
  studio train decoder --level 1..4 --images DIR [--steps 2000 --batch 4 --crop 256 --lr 1e-4
                       --out DIR --model M --checkpoint-every 200 --resume --seed 0 --report R.json]
                       trains a PhotoWCT decoder for the model's encoder on a folder of photos
                       (options below)
  studio features --image PHOTO --layers relu1_1,relu4_2 --out DIR [--size 512 --model M --padding zero|reflect]
                       VGG19 features as .npy (float32 NHWC), to compare with NumPy or PyTorch

stylize options (Gatys):
  --style S            repeat for several styles; --style-weights 0.7,0.3 blends them
  --size 512           longest side of the result, px
  --iters 500          iterations (per scale)
  --optimizer lbfgs    lbfgs | adam        --learning-rate  (adam: 10, lbfgs: 1)
  --content-weight 5   --style-weight 100  --tv-weight 0.001
  --init content       content | random | style     --seed 0
  --preserve-colors    keep the photo's colours, take only luminance from the style
  --scales 1           coarse-to-fine scales (each half the next)
  --style-scale 1      style image size relative to the result
  --content-layers relu4_2   --style-layers relu1_1,relu2_1,relu3_1,relu4_1,relu5_1
  --pooling max        max | avg
  --model DIR|NAME     weights (default: the installed vgg19; see \`studio models\`)
  --backend NAME       tfjs-node-gpu | webgpu | tfjs-node | wasm | cpu (or STUDIO_BACKEND)
  --format png|jpeg|tiff  --bit-depth 8|16  --quality 92  --max-pixels 100e6
  --report R.json      parameters, backend, per-iteration losses, stage times, peak memory
  --quiet

match options (colour match: CIELAB, transport map, distribution transfer, regrain, re-match):
  --alpha 1            strength: 1 the reference's look, 0 the photo as it is
  --keep-luminance     take the reference's colours only; the photo's lightness stays exactly
  --smooth fast        the regrain: fast (local affine fit, default), exact (closed-form smoothing), none
  --size 1024          working size (longest side, px)
  --radius N --eps 1e-4 --eps-l 1   the fast regrain's window (default: size/15) and ridges (a*b*, L*)
  --seed 0 --max-iter 30   the distribution transfer's seed and iteration limit
  --report R.json      look distance (photo → reference, result → reference), structure kept, iterations, stage times

full resolution (match, photo and smooth; batch too):
  --output-size full   full (the photo's own size, default), working (the --size result as computed), or PX:
                       the look is computed at --size, then carried to the output size by a local affine
                       colour model fitted there (the photo's own detail, the look's colours), in float
                       from 16-bit photos, written 16-bit where the format holds it

photo and smoothing options:
  --alpha 1            stylize: WCT strength (1 full style, 0 none); smooth: the closed form's α (β)
  --smooth exact       exact: closed-form matting-Laplacian smoothing; fast: guided filter; none
  --smooth-alpha 0.9999  stylize: α of the closed form (FastPhotoStyle's β)
  --tol 1e-7           relative residual of the exact solve (1e-7 keeps the 8-bit result exact)
  --affinity matting   matting | gaussian        --max-iter 500
  --solver auto        auto | cpu (multigrid PCG) | tensor (on the backend; auto: on a hardware GPU)
  --radius 35 --eps 1.5e-8   the guided filter's window radius (px) and ε (fast mode)

train decoder options:
  --precision fp32     fp32 | mixed-fp16 | mixed-bf16 (FP32 master weights; fp16/bf16 emulated exactly)
  --loss-scale dynamic dynamic | N (static; fp32 is unscaled unless given N)
  --loss-scale-init 65536  --loss-scale-growth 2
  --loss-scale-interval 2000  --loss-scale-backoff 0.5
  --optimizer adam     adam | sgd   --momentum 0.9 (sgd)   --weight-decay 0 (L2)
  --warmup 0           linear warm-up steps; then --decay none | step | cosine
  --decay-every 1000 --decay-factor 0.1 (step)   --min-lr 0 (cosine)   --clip-norm N (global norm)
  --init DIR           fine-tune the decoders in DIR instead of a fresh He initialisation
  --val-fraction 0.1   photos held out for validation; --val-every 100 --val-batches 2; best kept in OUT/best
  --save-dtype fp32    fp32 | fp16 (safetensors F16, half the size)

Exit codes: 0 success, 2 bad input (message says which), 1 internal failure, 3 a batch finished with
failed files (listed), 130 cancelled.`;

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(argv: string[], options: ParseArgsConfig['options']): { values: Values; positionals: string[] } {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true }) as { values: Values; positionals: string[] };
  } catch (e) {
    throw new StudioError('BAD_ARGUMENT', (e as Error).message, 'see `studio --help`');
  }
}

const str = (v: Values[string]) => (typeof v === 'string' ? v : undefined);

async function withEngine<T>(backend: string | undefined, fn: (c: EngineClient) => Promise<T>): Promise<T> {
  const client = new EngineClient({ backend });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** Runs a job in the worker with progress on stderr; Ctrl-C cancels it cleanly. */
async function runJob<T>(client: EngineClient, job: Job, quiet: boolean): Promise<T> {
  const printer = progressPrinter(process.stderr, quiet);
  const running = client.run<T>(job, (e) => printer.onEvent(e));
  const onSigint = () => {
    process.stderr.write('\ncancelling…\n');
    running.cancel();
  };
  process.on('SIGINT', onSigint);
  try {
    return await running.result;
  } finally {
    process.off('SIGINT', onSigint);
    printer.done();
  }
}

export function gatysParamsFrom(v: Values) {
  return GatysParams.parse(defined({
    size: num('size', str(v.size), { int: true, min: 16, max: 16384 }),
    iters: num('iters', str(v.iters), { int: true, min: 1 }),
    optimizer: oneOf('optimizer', str(v.optimizer), ['lbfgs', 'adam'] as const),
    learningRate: num('learning-rate', str(v['learning-rate']), { min: 1e-12 }),
    contentWeight: num('content-weight', str(v['content-weight']), { min: 0 }),
    styleWeight: num('style-weight', str(v['style-weight']), { min: 0 }),
    tvWeight: num('tv-weight', str(v['tv-weight']), { min: 0 }),
    init: oneOf('init', str(v.init), ['content', 'random', 'style'] as const),
    seed: num('seed', str(v.seed), { int: true }),
    preserveColors: v['preserve-colors'] === true ? true : undefined,
    scales: num('scales', str(v.scales), { int: true, min: 1, max: 6 }),
    styleScale: num('style-scale', str(v['style-scale']), { min: 0.05, max: 8 }),
    styleWeights: numList('style-weights', str(v['style-weights'])),
    contentLayers: list(str(v['content-layers'])),
    styleLayers: list(str(v['style-layers'])),
    pooling: oneOf('pooling', str(v.pooling), ['max', 'avg'] as const),
  }));
}

const SMOOTHING_OPTIONS: ParseArgsConfig['options'] = {
  tol: { type: 'string' }, affinity: { type: 'string' }, solver: { type: 'string' }, 'max-iter': { type: 'string' },
  radius: { type: 'string' }, eps: { type: 'string' },
};

/** The smoothing settings shared by `stylize --method photo` and `smooth`; `alphaFlag` names the closed form's α. */
function smoothingFrom(v: Values, alphaFlag: 'alpha' | 'smooth-alpha') {
  return defined({
    alpha: num(alphaFlag, str(v[alphaFlag]), { min: 0, max: 0.999999999 }),
    tol: num('tol', str(v.tol), { min: 1e-15, max: 1 }),
    affinity: oneOf('affinity', str(v.affinity), ['matting', 'gaussian'] as const),
    solver: oneOf('solver', str(v.solver), ['auto', 'cpu', 'tensor'] as const),
    maxIter: num('max-iter', str(v['max-iter']), { int: true, min: 1, max: 100000 }),
    radius: num('radius', str(v.radius), { int: true, min: 0, max: 1000 }),
    eps: num('eps', str(v.eps), { min: 0 }),
  });
}

const STYLIZE_OPTIONS: ParseArgsConfig['options'] = {
  method: { type: 'string' }, content: { type: 'string' }, style: { type: 'string', multiple: true },
  out: { type: 'string' }, size: { type: 'string' }, iters: { type: 'string' }, optimizer: { type: 'string' },
  'learning-rate': { type: 'string' }, 'content-weight': { type: 'string' }, 'style-weight': { type: 'string' },
  'tv-weight': { type: 'string' }, init: { type: 'string' }, seed: { type: 'string' },
  'preserve-colors': { type: 'boolean' }, scales: { type: 'string' }, 'style-scale': { type: 'string' },
  'style-weights': { type: 'string' }, 'content-layers': { type: 'string' }, 'style-layers': { type: 'string' },
  pooling: { type: 'string' }, model: { type: 'string' }, backend: { type: 'string' }, format: { type: 'string' },
  'bit-depth': { type: 'string' }, quality: { type: 'string' }, 'max-pixels': { type: 'string' },
  report: { type: 'string' }, quiet: { type: 'boolean' },
  alpha: { type: 'string' }, smooth: { type: 'string' }, decoders: { type: 'string' },
  'content-labels': { type: 'string' }, 'style-labels': { type: 'string' },
  ...SMOOTHING_OPTIONS, 'smooth-alpha': { type: 'string' }, 'keep-luminance': { type: 'boolean' }, 'eps-l': { type: 'string' },
  'output-size': { type: 'string' },
};

/** --output-size full | working | PX (photorealistic methods and `smooth`). */
function outputSizeFrom(v: Values): OutputSize | undefined {
  const raw = str(v['output-size']);
  if (raw === undefined) return undefined;
  if (raw === 'full' || raw === 'working') return raw;
  const px = num('output-size', raw, { int: true, min: 16, max: 65535 });
  return px;
}

/** `--method match` settings (stylize and batch). */
function matchParamsFrom(v: Values) {
  const sm = smoothingFrom(v, 'smooth-alpha');
  return MatchParams.parse(defined({
    size: num('size', str(v.size), { int: true, min: 16, max: 16384 }), alpha: num('alpha', str(v.alpha), { min: 0, max: 1 }),
    keepLuminance: v['keep-luminance'] === true ? true : undefined,
    outputSize: outputSizeFrom(v),
    smooth: oneOf('smooth', str(v.smooth), ['exact', 'fast', 'none'] as const),
    seed: num('seed', str(v.seed), { int: true }),
    // --max-iter is the distribution transfer's limit here (the exact regrain keeps its own).
    maxIterations: num('max-iter', str(v['max-iter']), { int: true, min: 1, max: 1000 }),
    smoothing: defined({ ...sm, maxIter: undefined, radius: num('radius', str(v.radius), { int: true, min: 1, max: 1000 }), epsL: num('eps-l', str(v['eps-l']), { min: 0 }) }),
  }));
}

function outputFrom(v: Values, out: string) {
  const bitDepth = num('bit-depth', str(v['bit-depth']), { int: true, min: 8, max: 16 });
  if (bitDepth !== undefined && bitDepth !== 8 && bitDepth !== 16) throw new StudioError('BAD_ARGUMENT', '--bit-depth must be 8 or 16');
  return {
    out,
    format: oneOf('format', str(v.format), ['png', 'jpeg', 'tiff'] as const),
    bitDepth: bitDepth as 8 | 16 | undefined,
    quality: num('quality', str(v.quality), { int: true, min: 1, max: 100 }),
  };
}

async function stylize(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, STYLIZE_OPTIONS);
  const content = str(v.content);
  const styles = (v.style as string[] | undefined) ?? [];
  const out = str(v.out);
  if (!content) throw new StudioError('BAD_ARGUMENT', '--content is required (the photo to stylise)');
  if (styles.length === 0) throw new StudioError('BAD_ARGUMENT', '--style is required (the painting or photo whose look to take)');
  if (!out) throw new StudioError('BAD_ARGUMENT', '--out is required (where to write the result)');
  const method = oneOf('method', str(v.method) ?? 'gatys', ['gatys', 'photo', 'match'] as const)!;
  const maxPixels = num('max-pixels', str(v['max-pixels']), { min: 1 });
  let job: Job;
  if (method === 'match') {
    if (styles.length > 1) throw new StudioError('BAD_ARGUMENT', 'colour match takes one --style photo');
    job = StylizeMatchJob.parse(defined({
      kind: 'stylize-match', content, style: styles[0], output: outputFrom(v, out), contentLabels: str(v['content-labels']), styleLabels: str(v['style-labels']),
      report: str(v.report), maxPixels, measure: true, params: matchParamsFrom(v),
    }));
  } else if (method === 'photo') {
    if (styles.length > 1) throw new StudioError('BAD_ARGUMENT', 'the photo method takes one --style photo');
    job = StylizePhotoJob.parse(defined({
      kind: 'stylize-photo', content, style: styles[0], output: outputFrom(v, out), model: str(v.model), decoders: str(v.decoders),
      contentLabels: str(v['content-labels']), styleLabels: str(v['style-labels']), report: str(v.report), maxPixels,
      params: PhotoParams.parse(defined({
        size: num('size', str(v.size), { int: true, min: 16, max: 16384 }), alpha: num('alpha', str(v.alpha), { min: 0, max: 1 }),
        smooth: oneOf('smooth', str(v.smooth), ['exact', 'fast', 'none'] as const),
        smoothing: smoothingFrom(v, 'smooth-alpha'), outputSize: outputSizeFrom(v),
      })),
    }));
  } else {
    if (v['output-size'] !== undefined) {
      throw new StudioError('BAD_ARGUMENT', '--output-size is for the photorealistic methods: an artistic result keeps its --size', 'raise --size for a larger painting-like result (its textures are synthesised, not carried)');
    }
    job = {
      kind: 'stylize-gatys', content, styles, params: gatysParamsFrom(v), model: str(v.model), report: str(v.report),
      maxPixels, output: outputFrom(v, out),
    };
  }
  const quiet = v.quiet === true;
  const r = await withEngine(str(v.backend), (c) => runJob<StylizeResult & { smoothing?: SmoothingReport; fullResolution?: FullResReport } & Partial<MatchResult>>(c, job, quiet));
  if (!quiet) {
    const detail = r.iterations !== undefined ? `, ${r.iterations} iterations, final loss ${r.finalLoss?.toExponential(4)}` : '';
    process.stdout.write(`wrote ${r.out} (${r.width}×${r.height}${detail}, ${formatDuration(r.totalMs)}${r.match ? '' : ` on ${r.backend}`})\n`);
    if (r.smoothing && r.smoothing.mode !== 'none') process.stdout.write(`${smoothingLine(r.smoothing)}\n`);
    if (r.match) process.stdout.write(`${matchLines(r.match, r.measures)}\n`);
    if (r.fullResolution) process.stdout.write(`${fullResLine(r.fullResolution)}\n`);
    if (r.report) process.stdout.write(`report: ${r.report}\n`);
  }
  return 0;
}

function fullResLine(f: FullResReport): string {
  const s = f.stages;
  return `full resolution: the look at ${f.working.width}×${f.working.height} carried to ${f.output.width}×${f.output.height} (${f.output.bitDepth}-bit) in ${(f.ms / 1000).toFixed(1)} s `
    + `(fit ${(s.fitMs / 1000).toFixed(2)}, decode ${(s.decodeMs / 1000).toFixed(2)}, apply ${(s.applyMs / 1000).toFixed(2)}, encode and write ${(s.writeMs / 1000).toFixed(2)} s), peak memory ${Math.round(f.peakRssBytes / 2 ** 20)} MB`;
}

function matchLines(m: MatchResult['match'], q?: MatchResult['measures']): string {
  const lines = [
    `colour match in ${m.colourSpace} (${m.channels}): transfer ${m.idt.iterations} iterations${m.idt.converged ? '' : ' (limit reached)'}, `
      + `regrain ${m.regrain.mode}${m.rematch ? `, re-match ${m.rematch.idt.iterations} iterations` : ''}, ${formatDuration(m.ms)}`,
  ];
  if (q) lines.push(`look distance to the reference ${q.before.toFixed(2)} → ${q.after.toFixed(2)} (${(100 * q.remaining).toFixed(1)}% left), structure kept ${Number.isNaN(q.structure) ? 'n/a (narrower than its 7×7 window)' : q.structure.toFixed(3)}`);
  return lines.join('\n');
}

function smoothingLine(s: SmoothingReport): string {
  if (s.mode === 'fast') return `smoothing: guided filter r = ${s.radius}, ε = ${s.eps?.toExponential(2)}, ${formatDuration(s.ms)}`;
  const conv = s.converged ? '' : ' — NOT converged: raise --max-iter or --tol';
  const solver = s.kernels ? `${s.solver} solver, ${s.kernels === 'webassembly' ? 'WebAssembly' : 'JavaScript'} kernels` : `${s.solver} solver`;
  return `smoothing: exact (${s.affinity}, α = ${s.alpha}, ${solver}), ${s.iterations} iterations, residual ${s.residual?.toExponential(2)}, ${formatDuration(s.ms)}${conv}`;
}

/** `studio batch`: a folder restyled, with a journal that makes any interruption resumable. */
async function batch(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    ...STYLIZE_OPTIONS, in: { type: 'string' }, recursive: { type: 'boolean' }, pattern: { type: 'string' }, name: { type: 'string' },
    jobs: { type: 'string' }, overwrite: { type: 'string' }, queue: { type: 'string' }, status: { type: 'boolean' }, cancel: { type: 'boolean' },
    shoot: { type: 'string' }, json: { type: 'boolean' },
  });
  const queue = str(v.queue);
  if (!queue && (v.status || v.cancel || v.shoot)) throw new StudioError('BAD_ARGUMENT', '--status, --cancel and --shoot are for a queued shoot: give --queue redis://host:6379/0');
  if (queue && (v.status || v.cancel)) {
    const { queueControl } = await import('./queue.ts');
    return queueControl(queue, { status: v.status === true, cancel: v.cancel === true, shoot: str(v.shoot), inDir: str(v.in), outDir: str(v.out), json: v.json === true });
  }
  const inDir = str(v.in), outDir = str(v.out), styles = (v.style as string[] | undefined) ?? [];
  if (!inDir) throw new StudioError('BAD_ARGUMENT', '--in is required (the folder of photos)');
  if (!outDir) throw new StudioError('BAD_ARGUMENT', '--out is required (the folder for the results; created if missing)');
  if (styles.length !== 1) throw new StudioError('BAD_ARGUMENT', 'give one --style (the painting or photo whose look to take)');
  const method = oneOf('method', str(v.method) ?? 'photo', ['gatys', 'photo', 'match'] as const)!;
  if (method === 'gatys' && v['output-size'] !== undefined) throw new StudioError('BAD_ARGUMENT', '--output-size is for the photorealistic methods: an artistic result keeps its --size');
  const out = outputFrom(v, 'unused');
  const options = {
    inDir, outDir, style: styles[0], method, model: str(v.model), decoders: str(v.decoders),
    photo: method === 'photo' ? PhotoParams.parse(defined({
      size: num('size', str(v.size), { int: true, min: 16, max: 16384 }), alpha: num('alpha', str(v.alpha), { min: 0, max: 1 }),
      smooth: oneOf('smooth', str(v.smooth), ['exact', 'fast', 'none'] as const), smoothing: smoothingFrom(v, 'smooth-alpha'), outputSize: outputSizeFrom(v),
    })) : undefined,
    gatys: method === 'gatys' ? gatysParamsFrom(v) : undefined,
    match: method === 'match' ? matchParamsFrom(v) : undefined,
    recursive: v.recursive === true, pattern: str(v.pattern), name: str(v.name), format: out.format, bitDepth: out.bitDepth, quality: out.quality,
    jobs: num('jobs', str(v.jobs), { int: true, min: 1, max: 16 }), overwrite: oneOf('overwrite', str(v.overwrite), ['skip', 'replace'] as const),
    maxPixels: num('max-pixels', str(v['max-pixels']), { min: 1 }), backend: str(v.backend),
  };
  if (queue) {
    const { queueBatch } = await import('./queue.ts');
    return queueBatch(queue, options, { quiet: v.quiet === true });
  }
  const { BatchRun } = await import('../batch/run.ts');
  const run = new BatchRun(options, {
    onFile: (e) => {
      if (v.quiet === true) return;
      const what = e.outcome === 'done' ? `done     ${e.input} → ${e.output} (${formatDuration(e.ms ?? 0)})`
        : e.outcome === 'skipped' ? `skipped  ${e.input} (${e.reason})` : `FAILED   ${e.input}: ${e.reason}`;
      process.stderr.write(`${what}\n`);
    },
  });
  const onSigint = () => {
    process.stderr.write('\ncancelling… (run the same command again to resume)\n');
    run.cancel();
  };
  process.on('SIGINT', onSigint);
  let r;
  try {
    r = await run.run();
  } finally {
    process.off('SIGINT', onSigint);
  }
  const share = r.fileMs > 0 ? ` (${((100 * r.overheadMs) / r.fileMs).toFixed(1)}% of it outside the engine)` : '';
  process.stdout.write(`${r.done} done, ${r.skipped} skipped, ${r.failed.length} failed of ${r.total} in ${formatDuration(r.ms)}${share}\njournal: ${r.journal}\n`);
  for (const f of r.failed) process.stdout.write(`failed: ${f.input}: ${f.reason}\n`);
  if (r.stopped) {
    if (r.stopped.code === 'CANCELLED') {
      process.stderr.write(`${r.stopped.message}\n`);
      return 130;
    }
    throw new StudioError(r.stopped.code as ErrorCode, `batch stopped: ${r.stopped.message}`, r.stopped.hint ?? 'fix it and run the same command again: the batch resumes');
  }
  // 0: every file done (or already done); 3: some files failed (listed above, and in the journal).
  return r.failed.length ? 3 : 0;
}

/** `studio smooth`: PhotoWCT's smoothing step on any stylised image, guided by its content photo. */
async function smoothCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    content: { type: 'string' }, stylized: { type: 'string' }, out: { type: 'string' }, mode: { type: 'string' },
    alpha: { type: 'string' }, size: { type: 'string' }, report: { type: 'string' }, backend: { type: 'string' },
    format: { type: 'string' }, 'bit-depth': { type: 'string' }, quality: { type: 'string' }, 'max-pixels': { type: 'string' },
    quiet: { type: 'boolean' }, 'output-size': { type: 'string' }, ...SMOOTHING_OPTIONS,
  });
  const content = str(v.content), stylized = str(v.stylized), out = str(v.out);
  if (!content) throw new StudioError('BAD_ARGUMENT', '--content is required (the photo that was stylised: it guides the smoothing)');
  if (!stylized) throw new StudioError('BAD_ARGUMENT', '--stylized is required (the stylised image to smooth)');
  if (!out) throw new StudioError('BAD_ARGUMENT', '--out is required (where to write the result)');
  const job = SmoothJob.parse(defined({
    kind: 'smooth', content, stylized, output: outputFrom(v, out), report: str(v.report),
    size: num('size', str(v.size), { int: true, min: 16, max: 16384 }), maxPixels: num('max-pixels', str(v['max-pixels']), { min: 1 }),
    outputSize: outputSizeFrom(v),
    params: SmoothParams.parse(defined({ mode: oneOf('mode', str(v.mode), ['exact', 'fast'] as const), ...smoothingFrom(v, 'alpha') })),
  }));
  const quiet = v.quiet === true;
  const r = await withEngine(str(v.backend), (c) => runJob<{ out: string; width: number; height: number; smoothing: SmoothingReport; totalMs: number; report?: string; fullResolution?: FullResReport }>(c, job, quiet));
  if (!quiet) {
    process.stdout.write(`wrote ${r.out} (${r.width}×${r.height}, ${formatDuration(r.totalMs)})\n${smoothingLine(r.smoothing)}\n`);
    if (r.fullResolution) process.stdout.write(`${fullResLine(r.fullResolution)}\n`);
    if (r.report) process.stdout.write(`report: ${r.report}\n`);
  }
  return 0;
}

async function info(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, { json: { type: 'boolean' }, backend: { type: 'string' } });
  const r = await withEngine(str(v.backend), (c) => c.run<{ backend: Record<string, unknown>; imageIo: Record<string, string>; modelsDir: string; models: { name: string; widths: number[]; dtype: string; source: string; licence?: { name: string } }[] }>({ kind: 'info' }).result);
  const be = r.backend as { name: string; adapter?: { features: string[] } };
  const precision = precisionSupport(be.name, be.adapter?.features.includes('shader-f16') ?? false);
  if (v.json) {
    process.stdout.write(`${JSON.stringify({ ...r, precision }, null, 2)}\n`);
    return 0;
  }
  const b = r.backend as { name: string; device: string; threads: number; versions: Record<string, string>; skipped: { name: string; reason: string }[];
    adapter?: { vendor: string; architecture: string; description: string; features: string[]; limits: { maxBufferSize: number; maxStorageBufferBindingSize: number } } };
  const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
  const lines = [
    `backend: ${b.name} — ${b.device}`,
    `threads: ${b.threads}`,
    ...(b.adapter ? [
      `adapter: ${b.adapter.vendor} ${b.adapter.architecture} (${b.adapter.description}); shader-f16 ${b.adapter.features.includes('shader-f16') ? 'yes' : 'no'}; largest buffer ${mib(b.adapter.limits.maxBufferSize)}, storage binding ${mib(b.adapter.limits.maxStorageBufferBindingSize)}`,
    ] : []),
    ...b.skipped.map((s) => `  not used: ${s.name} (${s.reason})`),
    'mixed precision (`studio train decoder --precision`):',
    ...precision.native.map((x) => `  native: ${x}`),
    ...precision.emulated.map((x) => `  emulated: ${x}`),
    `versions: ${Object.entries(b.versions).map(([k, ver]) => `${k} ${ver}`).join(', ')}`,
    `image I/O: sharp ${r.imageIo.sharp} (libvips ${r.imageIo.libvips}); reads ${r.imageIo.formats}`,
    `models directory: ${r.modelsDir}`,
    ...(r.models.length ? r.models.map((m) => `  ${m.name}: vgg19 widths ${m.widths.join('/')} ${m.dtype} (${m.source}; licence ${m.licence?.name ?? 'unknown'})`) : ['  no models installed: `studio models fetch vgg19`, `studio models import FILE` or `studio models tiny DIR`']),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

/**
 * Fetch one catalogue model with a progress bar on stderr, saying first what it is, its size, source
 * and licence. Resolves to the model folder.
 */
async function fetchWithProgress(id: import('../engine/models/catalog.ts').CatalogId, opts: { signal?: AbortSignal } = {}): Promise<string> {
  const { CATALOG, licenceNotice } = await import('../engine/models/catalog.ts');
  const { fetchModel } = await import('../engine/models/fetch.ts');
  const entry = CATALOG[id];
  process.stderr.write(`${id}: ${licenceNotice(entry)}\n`);
  const tty = process.stderr.isTTY;
  let last = -1;
  let lastAt = 0;
  const dir = await fetchModel(id, {
    signal: opts.signal,
    onProgress: (received: number, total?: number) => {
      const pct = total ? Math.floor((received / total) * 100) : -1;
      const now = Date.now();
      // A terminal gets a live bar; a log gets a line every 10% (or every 10 MB without a size).
      const step = tty ? pct : total ? Math.floor(pct / 10) : Math.floor(received / 1e7);
      if (step === last && (tty ? now - lastAt < 500 : true)) return;
      last = step;
      lastAt = now;
      const bar = total ? `[${'#'.repeat(Math.floor(pct / 5)).padEnd(20)}] ${String(pct).padStart(3)}% ` : '';
      const line = `downloading ${id} ${bar}${(received / 1e6).toFixed(1)}${total ? ` / ${(total / 1e6).toFixed(1)}` : ''} MB`;
      process.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
    },
  });
  if (tty) process.stderr.write('\n');
  return dir;
}

async function models(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const store = await import('../engine/models/store.ts');
  switch (sub) {
    case 'list': {
      const ms = await store.listModels();
      if (ms.length === 0) process.stdout.write(`no models in ${store.modelsDir()}\n`);
      for (const m of ms) {
        const depth = m.depth ? ` to ${m.depth}` : '';
        const licence = m.licence ? `licence ${m.licence.name}${m.licence.commercialUse ? '' : ' (non-commercial)'}` : 'licence unknown (see its source)';
        process.stdout.write(`${m.name}\tvgg19 ${m.widths.join('/')}${depth}\t${m.dtype}\t${licence}\tsource ${m.download?.url ?? m.source}\n`);
      }
      return 0;
    }
    case 'import': {
      const { values: v, positionals } = parse(rest, { name: { type: 'string' }, dtype: { type: 'string' } });
      const file = positionals[0];
      if (!file) throw new StudioError('BAD_ARGUMENT', 'studio models import FILE: FILE is required (.h5 or .pth)');
      const { importWeightsFile } = await import('../engine/models/import.ts');
      const r = await importWeightsFile(file, { name: str(v.name), dtype: oneOf('dtype', str(v.dtype)?.toUpperCase(), ['F32', 'F16'] as const) });
      process.stdout.write(r.kind === 'photowct'
        ? `imported ${file} (FastPhotoStyle PhotoWCT: VGG19 to relu4_1 and decoders 1–4; licence CC BY-NC-SA 4.0, non-commercial) → ${r.dir}\n`
        : `imported ${file} → ${r.dir}\n`);
      return 0;
    }
    case 'fetch': {
      const { CATALOG_IDS, isCatalogId } = await import('../engine/models/catalog.ts');
      const what = rest[0] ?? 'vgg19';
      const ids = what === 'all' ? CATALOG_IDS : [what];
      for (const id of ids) {
        if (!isCatalogId(id)) throw new StudioError('BAD_ARGUMENT', `unknown model "${id}"`, `studio models fetch ${[...CATALOG_IDS, 'all'].join(' | ')}`);
        const dir = await fetchWithProgress(id);
        process.stdout.write(`installed ${id} in ${dir}\n`);
      }
      return 0;
    }
    case 'tiny': {
      const dir = rest[0];
      if (!dir) throw new StudioError('BAD_ARGUMENT', 'studio models tiny DIR: DIR is required');
      const { writeTinyFixtures } = await import('../engine/models/tiny.ts');
      const r = await writeTinyFixtures(dir);
      process.stdout.write(`tiny VGG19 (widths 8/16/32/64/64):\n  model: ${r.modelDir}\n  keras: ${r.h5Path}\n  torch: ${r.pthPath}\n`);
      return 0;
    }
    default:
      throw new StudioError('BAD_ARGUMENT', `unknown models command "${sub ?? ''}"`, 'studio models list | import FILE | fetch vgg19|photowct|all | tiny DIR');
  }
}

async function features(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    image: { type: 'string' }, layers: { type: 'string' }, out: { type: 'string' }, size: { type: 'string' },
    model: { type: 'string' }, padding: { type: 'string' }, pooling: { type: 'string' }, backend: { type: 'string' },
  });
  const image = str(v.image);
  const outDir = str(v.out);
  if (!image || !outDir) throw new StudioError('BAD_ARGUMENT', 'studio features needs --image PHOTO and --out DIR');
  const job: Job = FeaturesJob.parse(defined({
    kind: 'features', image, outDir, layers: list(str(v.layers)) ?? ['relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu4_2', 'relu5_1'],
    size: num('size', str(v.size), { int: true, min: 16 }), model: str(v.model),
    padding: oneOf('padding', str(v.padding), ['zero', 'reflect'] as const), pooling: oneOf('pooling', str(v.pooling), ['max', 'avg'] as const),
  }));
  const r = await withEngine(str(v.backend), (c) => runJob<{ files: { layer: string; path: string; shape: number[] }[] }>(c, job, true));
  for (const f of r.files) process.stdout.write(`${f.layer}\t[${f.shape.join(', ')}]\t${f.path}\n`);
  return 0;
}

async function train(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what !== 'decoder') throw new StudioError('BAD_ARGUMENT', `unknown training target "${what ?? ''}"`, 'studio train decoder --level 1..4 --images DIR');
  const { values: v } = parse(rest, {
    level: { type: 'string' }, images: { type: 'string' }, model: { type: 'string' }, out: { type: 'string' },
    steps: { type: 'string' }, batch: { type: 'string' }, crop: { type: 'string' }, lr: { type: 'string' }, lambda: { type: 'string' },
    'checkpoint-every': { type: 'string' }, resume: { type: 'boolean' }, seed: { type: 'string' }, report: { type: 'string' },
    backend: { type: 'string' }, quiet: { type: 'boolean' },
    precision: { type: 'string' }, 'loss-scale': { type: 'string' }, 'loss-scale-init': { type: 'string' }, 'loss-scale-growth': { type: 'string' },
    'loss-scale-interval': { type: 'string' }, 'loss-scale-backoff': { type: 'string' }, optimizer: { type: 'string' }, momentum: { type: 'string' },
    'weight-decay': { type: 'string' }, warmup: { type: 'string' }, decay: { type: 'string' }, 'decay-every': { type: 'string' },
    'decay-factor': { type: 'string' }, 'min-lr': { type: 'string' }, 'clip-norm': { type: 'string' }, init: { type: 'string' },
    'val-fraction': { type: 'string' }, 'val-every': { type: 'string' }, 'val-batches': { type: 'string' }, 'save-dtype': { type: 'string' },
  });
  const images = str(v.images);
  if (!images) throw new StudioError('BAD_ARGUMENT', '--images DIR is required (a folder of photos to learn from)');
  const level = num('level', str(v.level), { int: true, min: 1, max: 4 });
  if (level === undefined) throw new StudioError('BAD_ARGUMENT', '--level 1..4 is required');
  const job: Job = TrainDecoderJob.parse(defined({
    kind: 'train-decoder', level, images, model: str(v.model), out: str(v.out), report: str(v.report),
    steps: num('steps', str(v.steps), { int: true, min: 1 }), batch: num('batch', str(v.batch), { int: true, min: 1, max: 64 }),
    crop: num('crop', str(v.crop), { int: true, min: 16, max: 2048 }), lr: num('lr', str(v.lr), { min: 1e-12 }),
    lambda: num('lambda', str(v.lambda), { min: 0 }), checkpointEvery: num('checkpoint-every', str(v['checkpoint-every']), { int: true, min: 1 }),
    resume: v.resume === true ? true : undefined, seed: num('seed', str(v.seed), { int: true }),
    precision: oneOf('precision', str(v.precision), ['fp32', 'mixed-fp16', 'mixed-bf16'] as const),
    lossScale: str(v['loss-scale']) === 'dynamic' ? 'dynamic' : num('loss-scale', str(v['loss-scale']), { min: 1e-30 }),
    lossScaleInit: num('loss-scale-init', str(v['loss-scale-init']), { min: 1e-30 }),
    lossScaleGrowth: num('loss-scale-growth', str(v['loss-scale-growth']), { min: 1 }),
    lossScaleInterval: num('loss-scale-interval', str(v['loss-scale-interval']), { int: true, min: 1 }),
    lossScaleBackoff: num('loss-scale-backoff', str(v['loss-scale-backoff']), { min: 1e-6, max: 1 }),
    optimizer: oneOf('optimizer', str(v.optimizer), ['adam', 'sgd'] as const), momentum: num('momentum', str(v.momentum), { min: 0, max: 1 }),
    weightDecay: num('weight-decay', str(v['weight-decay']), { min: 0 }), warmup: num('warmup', str(v.warmup), { int: true, min: 0 }),
    decay: oneOf('decay', str(v.decay), ['none', 'step', 'cosine'] as const), decayEvery: num('decay-every', str(v['decay-every']), { int: true, min: 1 }),
    decayFactor: num('decay-factor', str(v['decay-factor']), { min: 1e-12, max: 1 }), minLr: num('min-lr', str(v['min-lr']), { min: 0 }),
    clipNorm: num('clip-norm', str(v['clip-norm']), { min: 1e-30 }), init: str(v.init),
    valFraction: num('val-fraction', str(v['val-fraction']), { min: 0, max: 0.9 }), valEvery: num('val-every', str(v['val-every']), { int: true, min: 1 }),
    valBatches: num('val-batches', str(v['val-batches']), { int: true, min: 1 }), saveDtype: oneOf('save-dtype', str(v['save-dtype']), ['fp32', 'fp16'] as const),
  }));
  const quiet = v.quiet === true;
  const r = await withEngine(str(v.backend), (c) => runJob<TrainResult>(c, job, quiet));
  process.stdout.write(`decoder level ${level}: ${r.decoder} (${r.steps} steps${r.resumedFrom ? `, resumed at ${r.resumedFrom}` : ''}; loss ${r.firstLoss.toExponential(3)} → ${r.finalLoss.toExponential(3)}; ${formatDuration(r.totalMs)})\n`);
  if (Number.isFinite(r.finalValLoss)) process.stdout.write(`validation loss ${r.finalValLoss.toExponential(3)}; best ${r.bestValLoss.toExponential(3)} at step ${r.bestStep}: ${r.best}\n`);
  if (r.skippedSteps || r.finalLossScale !== 1) process.stdout.write(`loss scale ${r.finalLossScale}; ${r.skippedSteps} step(s) skipped on overflow\n`);
  process.stdout.write(`report: ${r.report}\n`);
  for (const p of r.plots) process.stdout.write(`plot: ${p}\n`);
  return 0;
}

/** Stylises bundled sample photos with bundled paintings: the quickest way to see the studio work. */
/**
 * The demo's first run: fetch the catalogue models that are missing, with progress bars. Offline (no
 * route to the first download's host within a few seconds) it says so in one line and returns; a
 * failed download is one line too: the demo goes on with what it has.
 */
async function demoDownloads(store: typeof import('../engine/models/store.ts')): Promise<void> {
  const { CATALOG_IDS, CATALOG } = await import('../engine/models/catalog.ts');
  const { canReach, downloadUrl } = await import('../engine/models/downloads.ts');
  const have = new Set((await store.listModels()).map((m) => m.name));
  const missing = CATALOG_IDS.filter((id) => !have.has(CATALOG[id].dir));
  if (missing.length === 0) return;
  const probe = downloadUrl(missing[0]);
  const seconds = Number(process.env.STUDIO_ONLINE_TIMEOUT_S) || 4;
  if (!(await canReach(probe, seconds * 1000))) {
    process.stdout.write(`offline (no route to ${new URL(probe).host} within ${seconds} s): the demo goes on with colour match and the test network; \`studio models fetch all\` gets the real models later\n`);
    return;
  }
  for (const id of missing) {
    try {
      await fetchWithProgress(id);
    } catch (e) {
      if (isStudioError(e) && e.code === 'CANCELLED') throw e;
      process.stdout.write(`could not fetch ${id}: ${(e as Error).message.split('\n')[0]} — going on without it\n`);
    }
  }
}

async function demo(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    out: { type: 'string' }, size: { type: 'string' }, iters: { type: 'string' }, backend: { type: 'string' }, offline: { type: 'boolean' },
  });
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const samples = path.join(root, 'assets', 'samples');
  const outDir = path.resolve(str(v.out) ?? 'demo-output');
  await mkdir(outDir, { recursive: true });
  const store = await import('../engine/models/store.ts');
  // First run, connected: fetch what the neural methods need (VGG19, FastPhotoStyle's photo model).
  if (!v.offline) await demoDownloads(store);
  const models = await store.listModels();
  let model: string | undefined;
  const installed = models.find((m) => m.name === 'vgg19');
  const photoModel = models.find((m) => m.name === 'photowct');
  if (installed) {
    process.stdout.write(`using the installed VGG19 (${installed.source})\n`);
  } else {
    const { writeTinyFixtures } = await import('../engine/models/tiny.ts');
    model = (await writeTinyFixtures(path.join(outDir, 'tiny-vgg19'))).modelDir;
    process.stdout.write('no VGG19 weights installed (`studio models fetch vgg19`), so the demo runs the tiny\n'
      + 'random-weight network: the real pipeline end to end, with texture-like rather than painterly results.\n');
  }
  const size = num('size', str(v.size), { int: true, min: 16 }) ?? 256;
  const iters = num('iters', str(v.iters), { int: true, min: 1 }) ?? (installed ? 100 : 150);
  const pairs = [
    ['content-chelsea.jpg', 'art-starry_night.jpg'],
    ['content-astronaut.jpg', 'art-the_scream.jpg'],
    ['content-coffee.jpg', 'art-shipwreck.jpg'],
  ];
  // Colour match first: real photographic results with no model at all.
  const photoPairs = [
    ['content-chelsea.jpg', 'photo-Storm.jpg'],
    ['content-coffee.jpg', 'photo-GreenMeadow.jpg'],
    ['content-rocket.jpg', 'photo-Dune.jpg'],
  ];
  await withEngine(str(v.backend), async (client) => {
    process.stdout.write('colour match (no model needed):\n');
    for (const [c, s] of photoPairs) {
      const name = `${path.parse(c).name.replace('content-', '')}-${path.parse(s).name.replace('photo-', '').toLowerCase()}-match`;
      const out = path.join(outDir, `${name}.jpg`);
      process.stdout.write(`${c} × ${s} → ${out}\n`);
      const r = await runJob<MatchResult>(client, {
        kind: 'stylize-match', content: path.join(samples, c), style: path.join(samples, s), report: path.join(outDir, `${name}.json`),
        params: MatchParams.parse({}), output: { out, quality: 92 },
      }, false);
      const q = r.measures!;
      process.stdout.write(`  ${r.width}×${r.height}, look distance ${(100 * q.remaining).toFixed(1)}% left, structure kept ${q.structure.toFixed(3)}, ${formatDuration(r.totalMs)}\n`);
    }
    if (photoModel) {
      process.stdout.write(`neural photorealistic (PhotoWCT, ${photoModel.source}; licence ${photoModel.licence?.name ?? 'unknown'}):\n`);
      for (const [c, s] of photoPairs.slice(0, 2)) {
        const name = `${path.parse(c).name.replace('content-', '')}-${path.parse(s).name.replace('photo-', '').toLowerCase()}-photowct`;
        const out = path.join(outDir, `${name}.jpg`);
        process.stdout.write(`${c} × ${s} → ${out}\n`);
        const r = await runJob<StylizeResult>(client, {
          kind: 'stylize-photo', content: path.join(samples, c), style: path.join(samples, s), model: photoModel.dir,
          report: path.join(outDir, `${name}.json`), params: PhotoParams.parse(v.size ? { size } : {}), output: { out, quality: 92 },
        }, false);
        process.stdout.write(`  ${r.width}×${r.height}, ${formatDuration(r.totalMs)} on ${r.backend}\n`);
      }
    } else {
      process.stdout.write('neural photorealistic (PhotoWCT): skipped, no photo model (`studio models fetch photowct`)\n');
    }
    process.stdout.write(installed ? 'artistic (Gatys, VGG19):\n' : 'artistic (Gatys) on the tiny TEST network — texture, not painting; fetch VGG19 for real results:\n');
    for (const [c, s] of pairs) {
      const name = `${path.parse(c).name.replace('content-', '')}-${path.parse(s).name.replace('art-', '')}`;
      const out = path.join(outDir, `${name}${installed ? '' : '-test-network'}.jpg`);
      process.stdout.write(`${c} × ${s} → ${out}\n`);
      const r = await runJob<StylizeResult>(client, {
        kind: 'stylize-gatys', content: path.join(samples, c), styles: [path.join(samples, s)], model,
        report: path.join(outDir, `${name}.json`),
        params: GatysParams.parse({ size, iters, optimizer: 'lbfgs', previewEvery: 0 }),
        output: { out, quality: 92 },
      }, false);
      process.stdout.write(`  ${r.width}×${r.height}, loss ${r.finalLoss?.toExponential(3)}, ${formatDuration(r.totalMs)} on ${r.backend}\n`);
    }
  });
  process.stdout.write(`done: results and JSON reports in ${outDir}\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'stylize': return await stylize(rest);
      case 'smooth': return await smoothCommand(rest);
      case 'batch': return await batch(rest);
      case 'worker': return await (await import('./queue.ts')).workerCommand(rest);
      case 'info': return await info(rest);
      case 'models': return await models(rest);
      case 'demo': return await demo(rest);
      case 'features': return await features(rest);
      case 'train': return await train(rest);
      case undefined: case 'help': case '--help': case '-h':
        process.stdout.write(`${HELP}\n`);
        return cmd === undefined ? 2 : 0;
      default:
        throw new StudioError('BAD_ARGUMENT', `unknown command "${cmd}"`, 'see `studio --help`');
    }
  } catch (e) {
    if (isStudioError(e)) {
      if (e.code === 'CANCELLED') {
        process.stderr.write('cancelled\n');
      } else {
        process.stderr.write(`error: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}`);
      }
      return e.exitCode;
    }
    process.stderr.write(`internal error: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}
