/** The controls' state: the engine's own defaults (from the job schemas), presets, and persistence. */
import { GatysParams, MatchParams, PhotoParams } from '../../src-main/protocol.ts';

export type Method = 'gatys' | 'photo';
/** Photorealistic: colour match (no model) or the neural PhotoWCT (weights and decoders). */
export type PhotoEngine = 'match' | 'neural';

export interface GatysSettings {
  size: number;
  iters: number;
  optimizer: 'lbfgs' | 'adam';
  contentWeight: number;
  styleWeight: number;
  tvWeight: number;
  preserveColors: boolean;
  scales: number;
  styleScale: number;
  init: 'content' | 'random' | 'style';
  seed: number;
}

export interface PhotoSettings {
  size: number;
  alpha: number;
  smooth: string;
}

export interface MatchSettings {
  size: number;
  alpha: number;
  keepLuminance: boolean;
  smooth: 'fast' | 'exact' | 'none';
}

export interface Settings {
  method: Method;
  photoEngine: PhotoEngine;
  gatys: GatysSettings;
  photo: PhotoSettings;
  match: MatchSettings;
  model?: string;
  /** The first-start welcome panel was closed ("Not now"); the Models panel still fetches. */
  welcomeDismissed?: boolean;
}

const g = GatysParams.parse({});
const p = PhotoParams.parse({});
const m = MatchParams.parse({});

export const DEFAULTS: Settings = {
  method: 'gatys',
  photoEngine: 'match',
  match: { size: m.size, alpha: m.alpha, keepLuminance: m.keepLuminance, smooth: m.smooth },
  gatys: {
    size: g.size, iters: g.iters, optimizer: g.optimizer, contentWeight: g.contentWeight, styleWeight: g.styleWeight, tvWeight: g.tvWeight,
    preserveColors: g.preserveColors, scales: g.scales, styleScale: g.styleScale, init: g.init, seed: g.seed,
  },
  photo: { size: p.size, alpha: p.alpha, smooth: p.smooth as string },
};

export interface Preset<T> {
  name: string;
  tip: string;
  values: Partial<T>;
}

export const GATYS_PRESETS: Preset<GatysSettings>[] = [
  { name: 'Subtle', tip: 'A light touch of the painting; the photo stays recognisable and keeps its colours', values: { styleWeight: 20, contentWeight: 5, preserveColors: true, iters: 300 } },
  { name: 'Balanced', tip: "neural-style's defaults: the painting's textures over the photo's structure", values: { styleWeight: g.styleWeight, contentWeight: g.contentWeight, preserveColors: false, iters: g.iters } },
  { name: 'Strong', tip: "The painting's textures and colours dominate", values: { styleWeight: 1000, contentWeight: 5, preserveColors: false, iters: 800 } },
];

export const MATCH_PRESETS: Preset<MatchSettings>[] = [
  { name: 'Subtle', tip: "Half the reference photo's colours blended with the original's", values: { alpha: 0.5, keepLuminance: false } },
  { name: 'Balanced', tip: "Most of the reference's colours and tones", values: { alpha: 0.8, keepLuminance: false } },
  { name: 'Strong', tip: "The reference photo's full colours and tones", values: { alpha: 1, keepLuminance: false } },
];

export const PHOTO_PRESETS: Preset<PhotoSettings>[] = [
  { name: 'Subtle', tip: 'Half the reference photo\'s look blended with the original', values: { alpha: 0.5 } },
  { name: 'Balanced', tip: 'Most of the reference look, some of the original', values: { alpha: 0.8 } },
  { name: 'Strong', tip: 'The full look of the reference photo', values: { alpha: 1 } },
];

const KEY = 'style-studio.settings.v1';

export function loadSettings(): Settings {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return DEFAULTS;
    const s = JSON.parse(raw) as Partial<Settings>;
    return {
      method: s.method === 'photo' ? 'photo' : 'gatys',
      photoEngine: s.photoEngine === 'neural' ? 'neural' : 'match',
      match: { ...DEFAULTS.match, ...s.match },
      gatys: { ...DEFAULTS.gatys, ...s.gatys },
      photo: { ...DEFAULTS.photo, ...s.photo },
      model: s.model,
      welcomeDismissed: s.welcomeDismissed === true,
    };
  } catch {
    return DEFAULTS;
  }
}

export function saveSettings(s: Settings): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(s));
  } catch {
    // storage full or disabled: settings then last for the session only
  }
}
