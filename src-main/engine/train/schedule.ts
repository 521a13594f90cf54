/**
 * Learning-rate schedules (REFERENCE §5): a linear warm-up (Goyal et al.: start small, reach the full
 * rate after `warmup` steps), then constant, step decay (×factor every `every` steps, the course
 * notes' usual choice) or cosine decay to `minLr` at the last step. Pure: the rate of step s (1-based)
 * depends only on s, so a resumed run uses exactly the rates of an uninterrupted one.
 */

export type Decay = 'none' | 'step' | 'cosine';
export const DECAYS: readonly Decay[] = ['none', 'step', 'cosine'];

export interface LrSchedule {
  lr: number;
  /** Total steps of the run (cosine reaches minLr there). */
  steps: number;
  warmup: number;
  decay: Decay;
  /** Step decay: multiply by `factor` every `every` steps after the warm-up. */
  every: number;
  factor: number;
  /** Cosine decay's floor. */
  minLr: number;
}

export function learningRate(s: LrSchedule, step: number): number {
  if (s.warmup > 0 && step <= s.warmup) return (s.lr * step) / s.warmup;
  const k = step - s.warmup; // steps since the warm-up ended (1-based)
  switch (s.decay) {
    case 'none':
      return s.lr;
    case 'step':
      return s.lr * s.factor ** Math.floor((k - 1) / Math.max(1, s.every));
    case 'cosine': {
      const span = Math.max(1, s.steps - s.warmup);
      const t = Math.min(1, k / span);
      return s.minLr + 0.5 * (s.lr - s.minLr) * (1 + Math.cos(Math.PI * t));
    }
  }
}
