// AdamW (Loshchilov & Hutter), exactly as torch.optim.AdamW: decoupled weight
// decay p -= lr·wd·p, then the Adam step with bias corrections. One fused
// kernel per parameter; moments are float32 (float64 for float64 params).
import { zeros } from '../creation';
import { Tensor, checkTensor } from '../tensor';
import { keep } from '../scope';
import { checkNumber, checkOptions } from '../validate';
import * as dense from '../kernels/dense';
import { noGrad } from '../autograd/engine';

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

interface ParamState {
  expAvg: Tensor;
  expAvgSq: Tensor;
  step: number;
}

export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  private readonly state = new Map<Tensor, ParamState>();

  constructor(
    readonly params: Tensor[],
    opts: AdamWOptions,
  ) {
    const fn = 'optim.AdamW';
    if (!Array.isArray(params) || params.length === 0)
      throw new TypeError(`${fn}: params must be a non-empty array of Tensors`);
    params.forEach((p, i) => checkTensor(p, fn, `params[${i}]`));
    checkOptions(opts, fn, ['lr', 'betas', 'eps', 'weightDecay']);
    if (opts === undefined) throw new TypeError(`${fn}: options { lr } are required`);
    this.lr = checkNumber(opts.lr, fn, 'lr');
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    if (!(this.lr >= 0)) throw new RangeError(`${fn}: lr must be >= 0, got ${this.lr}`);
    const [b1, b2] = this.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1))
      throw new RangeError(`${fn}: betas must be in [0, 1), got [${b1}, ${b2}]`);
    if (!(this.eps >= 0)) throw new RangeError(`${fn}: eps must be >= 0`);
    if (!(this.weightDecay >= 0)) throw new RangeError(`${fn}: weightDecay must be >= 0`);
  }

  private stateFor(p: Tensor): ParamState {
    let s = this.state.get(p);
    if (!s) {
      const dtype = p.dtype === 'float64' ? 'float64' : 'float32';
      s = {
        expAvg: keep(zeros(p.shape, { dtype, device: p.device })),
        expAvgSq: keep(zeros(p.shape, { dtype, device: p.device })),
        step: 0,
      };
      this.state.set(p, s);
    }
    return s;
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    noGrad(() => {
      for (const p of this.params) {
        if (!p.grad) continue;
        const s = this.stateFor(p);
        s.step += 1;
        dense.adamwStep_({
          param: p,
          grad: p.grad,
          expAvg: s.expAvg,
          expAvgSq: s.expAvgSq,
          lr: this.lr,
          beta1: this.betas[0],
          beta2: this.betas[1],
          eps: this.eps,
          weightDecay: this.weightDecay,
          step: s.step,
        });
      }
    });
  }

  /** Drops the gradients (PyTorch's set_to_none=True). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Moments and step counts for a checkpoint: tensors named 'state.<i>.exp_avg' / 'exp_avg_sq', steps in metadata. */
  stateDict(): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
    const tensors: Record<string, Tensor> = {};
    const steps: number[] = [];
    this.params.forEach((p, i) => {
      const s = this.state.get(p);
      steps.push(s?.step ?? 0);
      if (s) {
        tensors[`state.${i}.exp_avg`] = s.expAvg;
        tensors[`state.${i}.exp_avg_sq`] = s.expAvgSq;
      }
    });
    return { tensors, metadata: { 'optim.AdamW.steps': JSON.stringify(steps), 'optim.AdamW.lr': String(this.lr) } };
  }

  loadStateDict(sd: { tensors: Record<string, Tensor>; metadata: Record<string, string> }): void {
    const fn = 'optim.AdamW.loadStateDict';
    const stepsText = sd?.metadata?.['optim.AdamW.steps'];
    if (!stepsText) throw new RangeError(`${fn}: metadata 'optim.AdamW.steps' is missing`);
    const steps = JSON.parse(stepsText) as number[];
    if (steps.length !== this.params.length) {
      throw new RangeError(`${fn}: state has ${steps.length} parameters, the optimizer has ${this.params.length}`);
    }
    const missing: string[] = [];
    this.params.forEach((p, i) => {
      if (steps[i] === 0) return;
      const m = sd.tensors[`state.${i}.exp_avg`],
        v = sd.tensors[`state.${i}.exp_avg_sq`];
      if (!m || !v) {
        missing.push(`state.${i}.exp_avg${m ? '_sq' : ''}`);
        return;
      }
      if (m.shape.join(',') !== p.shape.join(',') || v.shape.join(',') !== p.shape.join(',')) {
        missing.push(`state.${i} (shape [${m.shape.join(',')}] for a parameter of shape [${p.shape.join(',')}])`);
        return;
      }
      const s = this.stateFor(p);
      noGrad(() => {
        dense.copyInto_(s.expAvg, m.dtype === s.expAvg.dtype ? m : m.to(s.expAvg.dtype));
        dense.copyInto_(s.expAvgSq, v.dtype === s.expAvgSq.dtype ? v : v.to(s.expAvgSq.dtype));
      });
      s.step = steps[i]!;
    });
    if (missing.length) throw new RangeError(`${fn}: missing or mismatched ${missing.join(', ')}`);
    if (sd.metadata['optim.AdamW.lr']) this.lr = Number(sd.metadata['optim.AdamW.lr']);
  }

  dispose(): void {
    for (const s of this.state.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.state.clear();
  }
}

/** Scales all gradients in place so their total L2 norm is at most maxNorm; returns the norm before clipping (0-d). */
export function clipGradNorm(params: Tensor[], maxNorm: number): Tensor {
  const fn = 'clipGradNorm';
  if (!Array.isArray(params)) throw new TypeError(`${fn}: params must be an array of Tensors`);
  checkNumber(maxNorm, fn, 'maxNorm');
  if (!(maxNorm > 0)) throw new RangeError(`${fn}: maxNorm must be > 0, got ${maxNorm}`);
  const grads = params.map((p, i) => checkTensor(p, fn, `params[${i}]`).grad).filter((g): g is Tensor => g !== null);
  if (grads.length === 0) return zeros([]);
  return noGrad(() => dense.gradNormClip_(grads, maxNorm));
}

/** Learning rate at `step` (0-based): linear warm-up to maxLr, then cosine decay to minLr at totalSteps. */
export function cosineSchedule(opts: {
  maxLr: number;
  minLr?: number;
  warmupSteps?: number;
  totalSteps: number;
}): (step: number) => number {
  checkOptions(opts, 'cosineSchedule', ['maxLr', 'minLr', 'warmupSteps', 'totalSteps']);
  const { maxLr, totalSteps } = opts;
  const minLr = opts.minLr ?? 0,
    warmup = opts.warmupSteps ?? 0;
  checkNumber(maxLr, 'cosineSchedule', 'maxLr');
  checkNumber(totalSteps, 'cosineSchedule', 'totalSteps');
  return (step: number) => {
    if (step < warmup) return (maxLr * (step + 1)) / warmup;
    const progress = Math.min(1, (step - warmup) / Math.max(1, totalSteps - warmup));
    return minLr + 0.5 * (maxLr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
}
