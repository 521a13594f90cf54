/**
 * VGG19's convolutional part (REFERENCE.md §1) as one layer table. Every consumer (the Gatys feature
 * extractor, the PhotoWCT encoders at any depth, the importers, the tiny network) walks this table,
 * so there is no per-level copy of the architecture anywhere.
 */

/** Convolutions per block and the full-width channel count of each block. */
export const VGG19_BLOCKS: ReadonlyArray<{ convs: number; channels: number }> = [
  { convs: 2, channels: 64 },
  { convs: 2, channels: 128 },
  { convs: 4, channels: 256 },
  { convs: 4, channels: 512 },
  { convs: 4, channels: 512 },
];

/** Channel widths of the tiny network used by tests, CI and demos without the real weights. */
export const TINY_WIDTHS = [8, 16, 32, 64, 64] as const;
export const FULL_WIDTHS = VGG19_BLOCKS.map((b) => b.channels);

export interface ConvSpec {
  /** conv1_1 … conv5_4 */
  name: string;
  block: number; // 1-based
  index: number; // 1-based within the block
  inChannels: number;
  outChannels: number;
}

/** Layers in forward order: conv (followed by its relu), and a 2×2 max-pool after each block. */
export type LayerSpec = { kind: 'conv'; conv: ConvSpec } | { kind: 'pool'; name: string; block: number };

export function vgg19Layers(widths: readonly number[] = FULL_WIDTHS): LayerSpec[] {
  if (widths.length !== 5) throw new Error(`VGG19 needs 5 block widths, got ${widths.length}`);
  const layers: LayerSpec[] = [];
  let inChannels = 3;
  VGG19_BLOCKS.forEach((b, bi) => {
    for (let i = 1; i <= b.convs; i++) {
      const conv: ConvSpec = { name: `conv${bi + 1}_${i}`, block: bi + 1, index: i, inChannels, outChannels: widths[bi] };
      layers.push({ kind: 'conv', conv });
      inChannels = widths[bi];
    }
    layers.push({ kind: 'pool', name: `pool${bi + 1}`, block: bi + 1 });
  });
  return layers;
}

export function vgg19Convs(widths: readonly number[] = FULL_WIDTHS): ConvSpec[] {
  return vgg19Layers(widths).flatMap((l) => (l.kind === 'conv' ? [l.conv] : []));
}

/** Index in vgg19Layers() of a feature (reluB_I or convB_I: its conv; poolB: the pool), or -1. */
function layerIndex(feature: string): number {
  return vgg19Layers().findIndex((l) => (l.kind === 'pool' ? l.name === feature : l.conv.name === feature.replace(/^relu/, 'conv')));
}

/**
 * Whether a feature (reluB_I, convB_I, poolB) lies within a partial VGG19 whose deepest layer is
 * `depth` (a reluB_I); every feature does when there is no depth (the whole network).
 */
export function withinDepth(feature: string, depth: string | undefined): boolean {
  return depth === undefined || layerIndex(feature) <= layerIndex(depth);
}

/** The convs a partial VGG19 ending at `depth` (reluB_I) has; all 16 without a depth. */
export function vgg19ConvsTo(depth: string | undefined, widths?: readonly number[]): ConvSpec[] {
  return vgg19Convs(widths).filter((c) => withinDepth(c.name, depth));
}

/** The 16 conv names in order. */
export const CONV_NAMES: readonly string[] = vgg19Convs().map((c) => c.name);

/** Names a feature can be taken at: reluB_I (after conv B_I and its ReLU) or poolB. */
export function isFeatureName(name: string): boolean {
  return /^relu[1-5]_[1-4]$/.test(name) && CONV_NAMES.includes(name.replace('relu', 'conv')) || /^pool[1-5]$/.test(name);
}

/**
 * torchvision's `features.N` index of each conv: convs, ReLUs and pools each take one index, so the
 * k-th conv of the sequence sits at the position counted over all three kinds.
 */
export function torchvisionIndex(convName: string): number {
  let idx = 0;
  for (const l of vgg19Layers()) {
    if (l.kind === 'conv') {
      if (l.conv.name === convName) return idx;
      idx += 2; // conv, relu
    } else {
      idx += 1; // pool
    }
  }
  throw new Error(`not a VGG19 conv: ${convName}`);
}

/** Keras Applications' group name of a conv: block1_conv1 … block5_conv4. */
export function kerasName(convName: string): string {
  const m = /^conv(\d)_(\d)$/.exec(convName);
  if (!m) throw new Error(`not a VGG19 conv: ${convName}`);
  return `block${m[1]}_conv${m[2]}`;
}
