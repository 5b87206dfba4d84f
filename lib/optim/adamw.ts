// AdamW (Loshchilov & Hutter), exactly as torch.optim.AdamW: decoupled weight
// decay p -= lr·wd·p, then the Adam step with bias corrections. One fused
// kernel per parameter; moments are float32 (float64 for float64 params).
import { zeros } from '../creation';
import { native } from '../native';
import type { NativeAdamwHyper } from '../native';
import { Tensor, checkTensor } from '../tensor';
import { keep } from '../scope';
import { checkOptions, describe } from '../validate';
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

/**
 * The checked hyperparameters of an AdamW-style optimizer named fn (torch.optim.AdamW's defaults),
 * after checking that params is a non-empty array of Tensors.
 */
export function adamwHyperparameters(params: Tensor[], opts: AdamWOptions, fn: string): NativeAdamwHyper {
  if (!Array.isArray(params) || params.length === 0)
    throw new TypeError(`${fn}: params must be a non-empty array of Tensors`);
  params.forEach((p, i) => checkTensor(p, fn, `params[${i}]`));
  checkOptions(opts, fn, ['lr', 'betas', 'eps', 'weightDecay']);
  if (opts === undefined) throw new TypeError(`${fn}: options { lr } are required`);
  const { betas } = opts;
  if (betas !== undefined && (!Array.isArray(betas) || betas.length !== 2)) {
    throw new TypeError(`${fn}: betas must be an array of two numbers, got ${describe(betas)}`);
  }
  // The core checks the values and supplies the defaults (torch.optim.AdamW's).
  return native().adamwOptions({
    lr: opts.lr,
    beta1: betas?.[0],
    beta2: betas?.[1],
    eps: opts.eps,
    weightDecay: opts.weightDecay,
  });
}

/** The step counts of an AdamW state dict's metadata, one per parameter (RangeError naming fn). */
export function stateDictSteps(
  sd: { tensors: Record<string, Tensor>; metadata: Record<string, string> },
  parameters: number,
  fn: string,
): number[] {
  const stepsText = sd?.metadata?.['optim.AdamW.steps'];
  if (!stepsText) throw new RangeError(`${fn}: metadata 'optim.AdamW.steps' is missing`);
  const steps = JSON.parse(stepsText) as number[];
  if (steps.length !== parameters) {
    throw new RangeError(`${fn}: state has ${steps.length} parameters, the optimizer has ${parameters}`);
  }
  return steps;
}

/** What AdamW and ZeroAdamW share: the checked hyperparameters and zeroGrad. */
export abstract class AdamWBase {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;

  constructor(
    readonly params: Tensor[],
    opts: AdamWOptions,
    fn: string,
  ) {
    const h = adamwHyperparameters(params, opts, fn);
    this.lr = h.lr;
    this.betas = [h.beta1, h.beta2];
    this.eps = h.eps;
    this.weightDecay = h.weightDecay;
  }

  /** Drops the gradients (PyTorch's set_to_none=True). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }
}

export class AdamW extends AdamWBase {
  private readonly state = new Map<Tensor, ParamState>();

  constructor(params: Tensor[], opts: AdamWOptions) {
    super(params, opts, 'optim.AdamW');
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
    const steps = stateDictSteps(sd, this.params.length, fn);
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
