// optim.ZeroAdamW: AdamW with its moments sharded over the ranks (ZeRO stage 1, as DeepSpeed's
// and PyTorch's ZeroRedundancyOptimizer). The parameters of one dtype and device are viewed as
// one flat vector of N elements, padded with zeros to W·S (S = ceil(N / W) for W ranks); rank r
// owns elements [r·S, (r+1)·S) and keeps the two moments of those S elements only. A step:
//
//   g_r   = reduceScatter(mean over ranks of the flat local gradients)[r·S, (r+1)·S)
//   p_r   = flat parameters[r·S, (r+1)·S)
//   p_r  <- AdamW(p_r, g_r, m_r, v_r, step)           (the fused kernel AdamW uses, elementwise)
//   flat parameters = allGather(p_r over r)            (copied back into every parameter)
//
// AdamW is elementwise, so applying its kernel to a shard is the same arithmetic as applying it
// to the whole parameters: the result equals optim.AdamW after dist.syncGradients. Zero padding
// stays zero (weight decay of 0, a zero gradient, zero moments: a zero update).
//
// Choices (docs/api.md): every parameter must have a gradient at a step (or none: the step does
// nothing), since the flat shards step together; one step count for all. stateDict() is
// optim.AdamW's format (per-parameter 'state.<i>.exp_avg', 'exp_avg_sq', steps in metadata), the
// whole moments gathered from the shards on every rank (rank 0 writes them), so a ZeRO
// checkpoint loads into ZeroAdamW on any number of ranks and into AdamW alike.
import { empty, zeros } from '../creation';
import type { DType } from '../dtype';
import { keep } from '../scope';
import { Tensor } from '../tensor';
import * as dense from '../kernels/dense';
import { noGrad } from '../autograd/engine';
import { AdamWBase, stateDictSteps, type AdamWOptions } from './adamw';
import { groupTensors, packFlat, unpackFlat, type FlatGroup } from '../distributed/flat';
import { allGather, rank, reduceScatter, worldSize } from '../distributed/index';

interface Shard {
  group: FlatGroup;
  params: Tensor[];
  /** Elements per rank. */
  size: number;
  /** size · worldSize − group.numel. */
  padding: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

type StateDict = { tensors: Record<string, Tensor>; metadata: Record<string, string> };

export class ZeroAdamW extends AdamWBase {
  /** Steps taken (the same for every parameter). */
  private steps = 0;
  private shards: Shard[] | null = null;
  /** This rank and the world size, read when the shards are made (after dist.init). */
  private world = { rank: 0, size: 1 };

  constructor(params: Tensor[], opts: AdamWOptions) {
    super(params, opts, 'optim.ZeroAdamW');
  }

  /** The flat groups and this rank's moment shards, made on first use. */
  private shardsNow(): Shard[] {
    if (this.shards) return this.shards;
    this.world = { rank: rank(), size: worldSize() };
    const W = this.world.size;
    this.shards = groupTensors(this.params).map((group) => {
      const size = Math.ceil(group.numel / W);
      const dtype: DType = group.dtype === 'float64' ? 'float64' : 'float32';
      return {
        group,
        params: group.members.map((i) => this.params[i]!),
        size,
        padding: size * W - group.numel,
        expAvg: keep(zeros([size], { dtype, device: group.device })),
        expAvgSq: keep(zeros([size], { dtype, device: group.device })),
      };
    });
    return this.shards;
  }

  /** Rank r's range [r·S, (r+1)·S) of a flat tensor of W·S elements (a copy). */
  private mine(flat: Tensor, shard: Shard): Tensor {
    const start = this.world.rank * shard.size;
    return dense.slice(flat, 0, start, start + shard.size);
  }

  /** The mean over ranks of the flat local tensors, this rank's range only. */
  private reduceMine(local: Tensor[], shard: Shard): Tensor {
    const flat = packFlat(local, shard.padding);
    if (this.world.size === 1) return flat;
    try {
      const out = empty([shard.size], { dtype: flat.dtype, device: flat.device });
      reduceScatter({ input: flat, output: out, op: 'mean' });
      return out;
    } finally {
      flat.dispose();
    }
  }

  /** The W·S-element flat tensor of every rank's range. */
  private gatherAll(mine: Tensor, shard: Shard): Tensor {
    if (this.world.size === 1) return mine.clone();
    const out = empty([shard.size * this.world.size], { dtype: mine.dtype, device: mine.device });
    allGather({ input: mine, output: out });
    return out;
  }

  /** One update of every parameter: reduce-scatter of the gradients, AdamW on the shard, all-gather. */
  step(): void {
    const missing = this.params.map((p, i) => (p.grad ? -1 : i)).filter((i) => i >= 0);
    if (missing.length === this.params.length) return;
    if (missing.length > 0) {
      throw new RangeError(
        `optim.ZeroAdamW.step: params[${missing[0]}] has no gradient; ZeroAdamW steps every parameter ` +
          `(leave a frozen parameter out of params)`,
      );
    }
    this.steps += 1;
    noGrad(() => {
      for (const shard of this.shardsNow()) {
        const grad = this.reduceMine(
          shard.params.map((p) => p.grad!),
          shard,
        );
        const flatParams = packFlat(shard.params, shard.padding);
        const param = this.mine(flatParams, shard);
        flatParams.dispose();
        dense.adamwStep_({
          param,
          grad,
          expAvg: shard.expAvg,
          expAvgSq: shard.expAvgSq,
          lr: this.lr,
          beta1: this.betas[0],
          beta2: this.betas[1],
          eps: this.eps,
          weightDecay: this.weightDecay,
          step: this.steps,
        });
        grad.dispose();
        const updated = this.gatherAll(param, shard);
        param.dispose();
        unpackFlat(updated, shard.params);
        updated.dispose();
      }
    });
  }

  /**
   * The whole state in optim.AdamW's format, gathered from every rank's shards (a collective:
   * every rank calls it; every rank receives it, rank 0 is the one to write it).
   */
  stateDict(): StateDict {
    const tensors: Record<string, Tensor> = {};
    if (this.steps > 0) {
      noGrad(() => {
        for (const shard of this.shardsNow()) {
          for (const [moment, name] of [
            [shard.expAvg, 'exp_avg'],
            [shard.expAvgSq, 'exp_avg_sq'],
          ] as const) {
            const whole = this.gatherAll(moment, shard);
            const perParam = shard.params.map((p) => empty(p.shape, { dtype: moment.dtype, device: moment.device }));
            unpackFlat(whole, perParam);
            whole.dispose();
            perParam.forEach((t, k) => (tensors[`state.${shard.group.members[k]}.${name}`] = keep(t)));
          }
        }
      });
    }
    return {
      tensors,
      metadata: {
        'optim.AdamW.steps': JSON.stringify(this.params.map(() => this.steps)),
        'optim.AdamW.lr': String(this.lr),
        'optim.ZeroAdamW.worldSize': String(this.world.size),
      },
    };
  }

  /**
   * Loads a state dict of optim.AdamW's format (from ZeroAdamW on any number of ranks, or from
   * AdamW): every rank passes the whole state and keeps its own shard of it.
   */
  loadStateDict(sd: StateDict): void {
    const fn = 'optim.ZeroAdamW.loadStateDict';
    const steps = stateDictSteps(sd, this.params.length, fn);
    if (steps.some((s) => s !== steps[0])) {
      throw new RangeError(
        `${fn}: the parameters have different step counts (${steps.join(', ')}); ZeroAdamW needs one`,
      );
    }
    const step = steps[0]!;
    const mismatch: string[] = [];
    const moment = (i: number, name: string): Tensor | undefined => {
      const t = sd.tensors[`state.${i}.${name}`];
      const p = this.params[i]!;
      if (!t) mismatch.push(`state.${i}.${name}`);
      else if (t.shape.join(',') !== p.shape.join(',')) {
        mismatch.push(
          `state.${i}.${name} (shape [${t.shape.join(',')}] for a parameter of shape [${p.shape.join(',')}])`,
        );
      } else return t;
      return undefined;
    };
    const loaded: { shard: Shard; m: Tensor[]; v: Tensor[] }[] = [];
    if (step > 0) {
      for (const shard of this.shardsNow()) {
        const m = shard.group.members.map((i) => moment(i, 'exp_avg'));
        const v = shard.group.members.map((i) => moment(i, 'exp_avg_sq'));
        if (m.every((t) => t) && v.every((t) => t)) loaded.push({ shard, m: m as Tensor[], v: v as Tensor[] });
      }
      if (mismatch.length) throw new RangeError(`${fn}: missing or mismatched ${mismatch.join(', ')}`);
    }
    noGrad(() => {
      for (const { shard, m, v } of loaded) {
        for (const [target, source] of [
          [shard.expAvg, m],
          [shard.expAvgSq, v],
        ] as const) {
          const converted = source.map((t) => (t.dtype === target.dtype ? t : t.to(target.dtype)));
          const flat = packFlat(converted, shard.padding);
          converted.forEach((t, k) => t !== source[k] && t.dispose());
          const part = this.mine(flat, shard);
          flat.dispose();
          dense.copyInto_(target, part);
          part.dispose();
        }
      }
    });
    this.steps = step;
    if (sd.metadata['optim.AdamW.lr']) this.lr = Number(sd.metadata['optim.AdamW.lr']);
  }

  dispose(): void {
    for (const s of this.shards ?? []) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.shards = null;
  }
}
