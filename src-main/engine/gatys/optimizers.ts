/**
 * L-BFGS and Adam over one image tensor, with all state on the compute device: the L-BFGS history
 * (s, y, ρ) and the Adam moments are tensors, and nothing is read back here. The caller reads the
 * scalars it needs (losses, and L-BFGS's directional derivative) once per iteration.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface Step {
  /** The next iterate (a new tensor owned by the caller). */
  next: tf.Tensor;
  /** g·d for L-BFGS: ≥ 0 means d is no descent direction and the optimisation has converged. */
  gtd?: tf.Scalar;
}

export interface Optimizer {
  readonly name: 'lbfgs' | 'adam';
  /** Proposes the next x from x and the gradient of the loss at x. Takes ownership of nothing. */
  step(x: tf.Tensor, g: tf.Tensor): Step;
  dispose(): void;
}

const dot = (a: tf.Tensor, b: tf.Tensor): tf.Scalar => tf.sum(tf.mul(a, b));

/**
 * L-BFGS as torch's optim.lbfgs, which neural-style uses: one function evaluation per iteration and
 * no line search; the first step is scaled by min(1, 1/‖g‖₁), later ones take the full step.
 */
export class Lbfgs implements Optimizer {
  readonly name = 'lbfgs';
  private readonly s: tf.Tensor[] = [];
  private readonly y: tf.Tensor[] = [];
  private readonly rho: tf.Scalar[] = [];
  private hDiag: tf.Scalar | undefined;
  private gOld: tf.Tensor | undefined;
  private stepOld: tf.Tensor | undefined; // t·d of the previous iteration
  private iteration = 0;

  constructor(private readonly opts: { history?: number; learningRate?: number } = {}) {}

  step(x: tf.Tensor, g: tf.Tensor): Step {
    const m = this.opts.history ?? 100;
    const lr = this.opts.learningRate ?? 1;
    this.iteration++;
    const out = tf.tidy(() => {
      if (this.gOld && this.stepOld) {
        const y = tf.sub(g, this.gOld);
        const s = this.stepOld;
        const ys = dot(y, s);
        // Curvature condition ys > 1e-10 decided on the device: a rejected pair gets weight ρ = 0.
        const ok = tf.greater(ys, 1e-10);
        const rho = tf.where(ok, tf.div(1, tf.maximum(ys, 1e-30)), tf.scalar(0)) as tf.Scalar;
        const h = tf.where(ok, tf.div(ys, tf.maximum(dot(y, y), 1e-30)), this.hDiag ?? tf.scalar(1)) as tf.Scalar;
        this.s.push(tf.keep(s.clone()));
        this.y.push(tf.keep(y));
        this.rho.push(tf.keep(rho));
        this.hDiag?.dispose();
        this.hDiag = tf.keep(h);
        if (this.s.length > m) {
          this.s.shift()!.dispose();
          this.y.shift()!.dispose();
          this.rho.shift()!.dispose();
        }
      }
      // Two-loop recursion: d = −H·g.
      const k = this.s.length;
      const al: tf.Scalar[] = new Array(k);
      let q: tf.Tensor = tf.neg(g);
      for (let i = k - 1; i >= 0; i--) {
        al[i] = tf.mul(dot(this.s[i], q), this.rho[i]);
        q = tf.sub(q, tf.mul(al[i], this.y[i]));
      }
      let d: tf.Tensor = this.hDiag ? tf.mul(q, this.hDiag) : q;
      for (let i = 0; i < k; i++) {
        const be = tf.mul(dot(this.y[i], d), this.rho[i]);
        d = tf.add(d, tf.mul(this.s[i], tf.sub(al[i], be)));
      }
      const t = this.iteration === 1 ? tf.mul(lr, tf.minimum(1, tf.div(1, tf.sum(tf.abs(g))))) : tf.scalar(lr);
      const stepVec = tf.mul(d, t);
      return { next: tf.add(x, stepVec), gtd: dot(g, d), stepVec };
    });
    this.gOld?.dispose();
    this.gOld = g.clone();
    this.stepOld?.dispose();
    this.stepOld = out.stepVec;
    return { next: out.next, gtd: out.gtd };
  }

  dispose(): void {
    for (const t of [...this.s, ...this.y, ...this.rho]) t.dispose();
    this.s.length = this.y.length = this.rho.length = 0;
    this.hDiag?.dispose();
    this.gOld?.dispose();
    this.stepOld?.dispose();
    this.hDiag = this.gOld = this.stepOld = undefined;
  }
}

/** Adam (Kingma & Ba) with bias correction; neural-style's alternative uses learning rate 10 on the 0–255 scale. */
export class Adam implements Optimizer {
  readonly name = 'adam';
  private m: tf.Tensor | undefined;
  private v: tf.Tensor | undefined;
  private t = 0;

  constructor(private readonly opts: { learningRate?: number; beta1?: number; beta2?: number; epsilon?: number } = {}) {}

  step(x: tf.Tensor, g: tf.Tensor): Step {
    const { learningRate = 10, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8 } = this.opts;
    this.t++;
    const [m, v, next] = tf.tidy(() => {
      const m = this.m ? tf.add(tf.mul(this.m, beta1), tf.mul(g, 1 - beta1)) : tf.mul(g, 1 - beta1);
      const v = this.v ? tf.add(tf.mul(this.v, beta2), tf.mul(tf.square(g), 1 - beta2)) : tf.mul(tf.square(g), 1 - beta2);
      const stepSize = (learningRate * Math.sqrt(1 - beta2 ** this.t)) / (1 - beta1 ** this.t);
      const next = tf.sub(x, tf.mul(stepSize, tf.div(m, tf.add(tf.sqrt(v), epsilon))));
      return [m, v, next];
    });
    this.m?.dispose();
    this.v?.dispose();
    this.m = m;
    this.v = v;
    return { next };
  }

  /** The full state (step count and moments, copies), to checkpoint and resume bit-exactly. */
  state(): { t: number; m?: tf.Tensor; v?: tf.Tensor } {
    return { t: this.t, m: this.m?.clone(), v: this.v?.clone() };
  }

  /** Restores a state from `state()`; takes ownership of the tensors. */
  restore(s: { t: number; m?: tf.Tensor; v?: tf.Tensor }): void {
    this.dispose();
    this.t = s.t;
    this.m = s.m;
    this.v = s.v;
  }

  dispose(): void {
    this.m?.dispose();
    this.v?.dispose();
    this.m = this.v = undefined;
  }
}
