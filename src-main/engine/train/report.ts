/**
 * The training report's plots, as hand-written SVG (no plotting dependency): training and validation
 * loss, the loss scale, and the weight-gradient underflow (zero fraction) over the steps. Pure: data
 * in, SVG text out; the worker writes the files.
 */
import type { StepValues } from './step.ts';

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
  /** Draw dots instead of a line (sparse series such as validation). */
  dots?: boolean;
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  logY?: boolean;
  width?: number;
  height?: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** 1, 2, 5 × 10^k ticks covering [lo, hi]. */
function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Ticks of a log axis, as log10 values: decades, with 2× and 5× between them when the range is narrow. */
function logTicks(lo: number, hi: number): number[] {
  const decades: number[] = [];
  for (let k = Math.ceil(lo); k <= Math.floor(hi); k++) decades.push(k);
  const step = Math.max(1, Math.ceil(decades.length / 6));
  if (decades.length >= 3) return decades.filter((k) => k % step === 0);
  const out: number[] = [];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) {
    for (const m of [1, 2, 5]) {
      const t = k + Math.log10(m);
      if (t >= lo && t <= hi) out.push(t);
    }
  }
  return out;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(1).replace('e+', 'e') : String(Number(v.toPrecision(3)));
}

/** A line plot of one or more series; a log y axis drops values ≤ 0 (and says so in the legend). */
export function linePlotSvg(series: Series[], o: PlotOptions): string {
  const W = o.width ?? 640;
  const H = o.height ?? 360;
  const m = { l: 70, r: 20, t: 34, b: 46 };
  const tf = (y: number) => (o.logY ? Math.log10(y) : y);
  const usable = series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0)) }));
  const all = usable.flatMap((s) => s.points);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(o.title)}</text>`,
  ];
  if (all.length === 0) {
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#666">no data</text>`, '</svg>');
    return parts.join('\n');
  }
  let x0 = Math.min(...all.map((p) => p[0]));
  let x1 = Math.max(...all.map((p) => p[0]));
  let y0 = Math.min(...all.map((p) => tf(p[1])));
  let y1 = Math.max(...all.map((p) => tf(p[1])));
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= o.logY ? 0.5 : Math.abs(y0) * 0.1 || 1; y1 += o.logY ? 0.5 : Math.abs(y1) * 0.1 || 1; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - ((tf(y) - y0) / (y1 - y0)) * (H - m.t - m.b);
  const pyRaw = (v: number) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#999"/>`);
  for (const t of niceTicks(x0, x1)) {
    parts.push(`<line x1="${px(t).toFixed(1)}" y1="${H - m.b}" x2="${px(t).toFixed(1)}" y2="${H - m.b + 4}" stroke="#999"/>`,
      `<text x="${px(t).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  const yTicks = o.logY ? logTicks(y0, y1) : niceTicks(y0, y1);
  for (const t of yTicks) {
    const y = pyRaw(t).toFixed(1);
    parts.push(`<line x1="${m.l}" y1="${y}" x2="${W - m.r}" y2="${y}" stroke="#eee"/>`,
      `<text x="${m.l - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${o.logY ? fmt(Number((10 ** t).toPrecision(3))) : fmt(t)}</text>`);
  }
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}${o.logY ? ' (log scale)' : ''}</text>`);
  usable.forEach((s, i) => {
    if (s.dots) {
      for (const [x, y] of s.points) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    } else if (s.points.length) {
      const d = s.points.map(([x, y], k) => `${k ? 'L' : 'M'}${px(x).toFixed(1)} ${py(y).toFixed(1)}`).join('');
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`);
    }
    // Legend at the top left of the plot, on a translucent background so lines behind stay visible.
    const ly = m.t + 14 + 16 * i;
    const dropped = series[i].points.length - s.points.length;
    const label = `${s.name}${dropped ? ` (${dropped} not shown)` : ''}`;
    parts.push(`<rect x="${m.l + 4}" y="${ly - 12}" width="${24 + 7 * label.length}" height="16" fill="white" fill-opacity="0.8"/>`,
      `<rect x="${m.l + 8}" y="${ly - 6}" width="12" height="3" fill="${s.color}"/>`,
      `<text x="${m.l + 26}" y="${ly}">${esc(label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** One training step as the report keeps it: the step's values, its number and its time. */
export interface ReportStep extends StepValues {
  step: number;
  ms: number;
}

export interface ReportValidation {
  step: number;
  total: number;
  pixel: number;
  feature: number;
}

/** The three plots of a training run, by file suffix. */
export function trainingPlots(history: ReportStep[], validation: ReportValidation[], precision: string): Record<'loss' | 'scale' | 'underflow', string> {
  const steps = (f: (h: ReportStep) => number) => history.map((h) => [h.step, f(h)] as [number, number]);
  const skipped = history.filter((h) => h.skipped).map((h) => [h.step, h.lossScale] as [number, number]);
  return {
    loss: linePlotSvg([
      { name: 'training loss', color: '#1f77b4', points: steps((h) => h.total) },
      { name: 'validation loss', color: '#d62728', points: validation.map((v) => [v.step, v.total]), dots: true },
    ], { title: `Reconstruction loss (${precision})`, xLabel: 'step', yLabel: 'loss', logY: true }),
    scale: linePlotSvg([
      { name: 'loss scale', color: '#2ca02c', points: steps((h) => h.lossScale) },
      { name: 'skipped step (overflow)', color: '#d62728', points: skipped, dots: true },
    ], { title: `Loss scale (${precision})`, xLabel: 'step', yLabel: 'loss scale', logY: true }),
    underflow: linePlotSvg([
      { name: 'zero after the cast', color: '#9467bd', points: steps((h) => 100 * h.zeroFraction) },
      { name: 'underflowed (nonzero before)', color: '#ff7f0e', points: steps((h) => 100 * h.underflowFraction) },
    ], { title: `Weight-gradient values that are zero in ${precision === 'mixed-bf16' ? 'bf16' : 'fp16'} (${precision})`, xLabel: 'step', yLabel: '% of gradient values' }),
  };
}

/**
 * What runs natively and what is emulated in mixed-precision training on a backend, for `studio info`
 * and the report. TensorFlow.js has no float16/bfloat16 tensor type on any backend (WebGPU's shader-f16
 * and libtensorflow's half kernels are not reachable through it), so every low-precision value is an
 * exactly rounded float32.
 */
export function precisionSupport(backend: string, shaderF16 = false): { native: string[]; emulated: string[] } {
  return {
    native: [
      `fp32 training and inference on ${backend}`,
      'float32 reductions (losses, sums, gradient norms) and the FP32 master weights and their update',
      'fp16 decoder files (safetensors F16): written and read by the studio itself',
    ],
    emulated: [
      `fp16 and bf16 on ${backend}: weights, activations and gradients are float32 tensors rounded exactly to the format at every layer (no half-precision arithmetic, so no speed-up or memory saving)`
      + (shaderF16 ? '; this adapter has shader-f16, but TensorFlow.js does not use it' : ''),
    ],
  };
}
