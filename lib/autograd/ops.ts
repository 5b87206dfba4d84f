// Differentiable ops (`ops.*`): each runs its forward kernel and, when an
// input requires a gradient, records its backward on the autograd tape.
// Backward formulas are stated next to each op.
import * as dense from '../kernels/dense';
import { Tensor, checkTensor } from '../tensor';
import { checkInteger, checkOptions } from '../validate';
import { needsGrad, record } from './engine';
import {
  losses as lossKernels,
  type CrossEntropyOptions,
  type CrossEntropyResult,
  type GoldfishLossOptions,
  type GoldfishLossResult,
  type LinearCrossEntropyOptions,
  type LinearCrossEntropyResult,
  type LinearOrpoOptions,
  type LinearOrpoResult,
  type OrpoOptions,
  type OrpoResult,
} from '../kernels/losses';
import { wkv4 as wkv4Kernel } from '../kernels/wkv4';
import {
  fam as famKernel,
  type FamAttentionResult,
  type FamBlockAttentionOptions,
  type FamMemoryAttentionOptions,
} from '../kernels/fam';
import { zeros } from '../creation';

type Binary = 'add' | 'sub' | 'mul';

function binaryOp(op: Binary, a: Tensor, b: Tensor): Tensor {
  const fn = `ops.${op}`;
  checkTensor(a, fn, 'a');
  checkTensor(b, fn, 'b');
  const out = dense.binary(op, a, b);
  return record(fn, [a, b], [out], (save) => {
    const aShape = a.shape,
      bShape = b.shape;
    const sa = op === 'mul' && b._requiresGrad ? save(a) : null;
    const sb = op === 'mul' && a._requiresGrad ? save(b) : null;
    return ([g]) => {
      // d(a+b) = g, g; d(a-b) = g, -g; d(a*b) = g*b, g*a; each summed back over broadcast dims.
      const reduce = (t: Tensor, shape: readonly number[]) => {
        if (t.shape.join(',') === shape.join(',')) return t;
        const r = dense.sumToShape(t, shape);
        if (t !== g) t.dispose();
        return r;
      };
      let ga: Tensor | null = null,
        gb: Tensor | null = null;
      if (a._requiresGrad) ga = reduce(op === 'mul' ? dense.binary('mul', g!, sb!) : g!, aShape);
      if (b._requiresGrad) {
        const raw = op === 'mul' ? dense.binary('mul', g!, sa!) : op === 'sub' ? dense.unary('neg', g!) : g!;
        gb = reduce(raw, bShape);
      }
      return [ga, gb];
    };
  })[0]!;
}

export const add = (a: Tensor, b: Tensor): Tensor => binaryOp('add', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binaryOp('sub', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binaryOp('mul', a, b);

type Unary = 'sigmoid' | 'relu' | 'square' | 'exp' | 'tanh' | 'silu' | 'neg' | 'log' | 'sqrt';

function unaryOp(op: Unary, x: Tensor): Tensor {
  const fn = `ops.${op}`;
  checkTensor(x, fn, 'x');
  const y = dense.unary(op, x);
  return record(fn, [x], [y], (save) => {
    const sx = save(x),
      sy = save(y);
    return ([g]) => [dense.unaryBackward(op, sx, sy, g!)];
  })[0]!;
}

export const sigmoid = (x: Tensor): Tensor => unaryOp('sigmoid', x);
export const relu = (x: Tensor): Tensor => unaryOp('relu', x);
export const square = (x: Tensor): Tensor => unaryOp('square', x);
export const exp = (x: Tensor): Tensor => unaryOp('exp', x);
export const tanh = (x: Tensor): Tensor => unaryOp('tanh', x);
export const silu = (x: Tensor): Tensor => unaryOp('silu', x);
export const neg = (x: Tensor): Tensor => unaryOp('neg', x);
export const log = (x: Tensor): Tensor => unaryOp('log', x);

/** x * s for a number s: gradient g * s. */
export function scale(x: Tensor, s: number): Tensor {
  checkTensor(x, 'ops.scale', 'x');
  const y = dense.scalarOp('mul', x, s);
  return record('ops.scale', [x], [y], () => ([g]) => [dense.scalarOp('mul', g!, s)])[0]!;
}

/** The axes `dim` names (all when omitted), non-negative; valid once the kernel has accepted them. */
function summedAxes(dim: number | number[] | undefined, rank: number): number[] {
  if (dim === undefined) return Array.from({ length: rank }, (_, i) => i);
  return (Array.isArray(dim) ? dim : [dim]).map((d) => (d < 0 ? d + rank : d));
}

/** Sum over `dim` (all when omitted): gradient broadcasts g back to x's shape. */
export function sum(x: Tensor, opts: { dim?: number | number[]; keepDim?: boolean } = {}): Tensor {
  checkTensor(x, 'ops.sum', 'x');
  checkOptions(opts, 'ops.sum', ['dim', 'keepDim']);
  const rank = x.shape.length;
  const dim = opts.dim === undefined ? summedAxes(undefined, rank) : Array.isArray(opts.dim) ? opts.dim : [opts.dim];
  const y = dense.sum(x, dim, opts.keepDim);
  const dims = summedAxes(dim, rank);
  const xShape = x.shape;
  return record('ops.sum', [x], [y], () => ([g]) => {
    // g has the summed axes as size 1 (keepDim) or not at all; either way this view puts them back.
    const kept = g!.reshape(xShape.map((d, i) => (dims.includes(i) ? 1 : d)));
    const out = dense.expandTo(kept, xShape);
    kept.dispose();
    return [out];
  })[0]!;
}

/** Mean over `dim` (all when omitted). */
export function mean(x: Tensor, opts: { dim?: number | number[]; keepDim?: boolean } = {}): Tensor {
  checkTensor(x, 'ops.mean', 'x');
  const s = sum(x, opts);
  const count = summedAxes(opts.dim, x.shape.length).reduce((n, d) => n * x.shape[d]!, 1);
  const m = scale(s, 1 / Math.max(count, 1));
  if (s !== m) s.dispose();
  return m;
}

/**
 * a [..., M, K] @ b [..., K, N] with broadcast batch dims.
 * Gradients: ga = g @ bᵀ, gb = aᵀ @ g, each summed over broadcast batch dims.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkTensor(a, 'ops.matmul', 'a');
  checkTensor(b, 'ops.matmul', 'b');
  const y = dense.matmul(a, b);
  return record('ops.matmul', [a, b], [y], (save) => {
    const sa = b._requiresGrad ? save(a) : null;
    const sb = a._requiresGrad ? save(b) : null;
    const aShape = a.shape,
      bShape = b.shape;
    return ([g]) => {
      let ga: Tensor | null = null,
        gb: Tensor | null = null;
      if (sb) {
        const full = dense.matmul(g!, sb, { transB: true });
        ga = full.shape.join(',') === aShape.join(',') ? full : dense.sumToShape(full, aShape);
        if (ga !== full) full.dispose();
      }
      if (sa) {
        if (aShape.length > 2 && bShape.length === 2) {
          // Shared weight: flatten the batch of a into rows, then aᵀ g.
          const rows = aShape.slice(0, -1).reduce((n, d) => n * d, 1);
          const a2 = sa.reshape([rows, aShape[aShape.length - 1]!]);
          const g2 = g!.reshape([rows, g!.shape[g!.shape.length - 1]!]);
          gb = dense.matmul(a2, g2, { transA: true });
          a2.dispose();
          g2.dispose();
        } else {
          const full = dense.matmul(sa, g!, { transA: true });
          gb = full.shape.join(',') === bShape.join(',') ? full : dense.sumToShape(full, bShape);
          if (gb !== full) full.dispose();
        }
      }
      return [ga, gb];
    };
  })[0]!;
}

/** weight [V, D] gathered at int32 ids: gradient scatter-adds g rows into [V, D] (deterministic). */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  checkTensor(weight, 'ops.embedding', 'weight');
  checkTensor(ids, 'ops.embedding', 'ids');
  const y = dense.embedding(weight, ids);
  const numEmbeddings = weight.shape[0]!;
  return record('ops.embedding', [weight], [y], (save) => {
    const sids = save(ids);
    return ([g]) => [dense.embeddingBackward(g!, sids, numEmbeddings)];
  })[0]!;
}

export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, opts: { eps?: number } = {}): Tensor {
  checkTensor(x, 'ops.layerNorm', 'x');
  if (weight) checkTensor(weight, 'ops.layerNorm', 'weight');
  if (bias) checkTensor(bias, 'ops.layerNorm', 'bias');
  checkOptions(opts, 'ops.layerNorm', ['eps']);
  const { y, mean: mu, rstd } = dense.layerNorm(x, weight, bias, opts.eps);
  const out = record('ops.layerNorm', [x, weight, bias], [y], (save) => {
    const sx = save(x),
      sw = weight ? save(weight) : null,
      sm = save(mu),
      sr = save(rstd);
    return ([g]) => {
      const r = dense.layerNormBackward(sx, sw, sm, sr, g!, bias !== null && bias._requiresGrad);
      if (!bias) r.gBias?.dispose();
      return [r.gx, r.gWeight ?? null, bias ? (r.gBias ?? null) : null];
    };
  })[0]!;
  mu.dispose();
  rstd.dispose();
  return out;
}

export function rmsNorm(x: Tensor, weight: Tensor | null, opts: { eps?: number } = {}): Tensor {
  checkTensor(x, 'ops.rmsNorm', 'x');
  if (weight) checkTensor(weight, 'ops.rmsNorm', 'weight');
  checkOptions(opts, 'ops.rmsNorm', ['eps']);
  const { y, rstd } = dense.rmsNorm(x, weight, opts.eps);
  const out = record('ops.rmsNorm', [x, weight], [y], (save) => {
    const sx = save(x),
      sw = weight ? save(weight) : null,
      sr = save(rstd);
    return ([g]) => {
      const r = dense.rmsNormBackward(sx, sw, sr, g!);
      return [r.gx, r.gWeight ?? null];
    };
  })[0]!;
  rstd.dispose();
  return out;
}

/** Rotary embedding with explicit int32 positions; gradient: rotate g by the negative angle. */
export function rope(x: Tensor, positions: Tensor, opts: { base?: number } = {}): Tensor {
  checkTensor(x, 'ops.rope', 'x');
  checkTensor(positions, 'ops.rope', 'positions');
  checkOptions(opts, 'ops.rope', ['base']);
  const base = opts.base;
  const y = dense.rope(x, positions, base, false);
  return record('ops.rope', [x], [y], (save) => {
    const sp = save(positions);
    return ([g]) => [dense.rope(g!, sp, base, true)];
  })[0]!;
}

/** RWKV's time shift: out[:, t] = x[:, t-1], zeros at t = 0. */
export function tokenShift(x: Tensor): Tensor {
  checkTensor(x, 'ops.tokenShift', 'x');
  const y = dense.tokenShift(x);
  return record('ops.tokenShift', [x], [y], () => ([g]) => [dense.tokenShiftBackward(g!)])[0]!;
}

export function concat(xs: Tensor[], dim: number): Tensor {
  const y = dense.concat(xs, dim);
  const rank = y.shape.length;
  const d = dim < 0 ? dim + rank : dim;
  const sizes = xs.map((t) => t.shape[d]!);
  return record('ops.concat', xs, [y], () => ([g]) => {
    let start = 0;
    return sizes.map((n, i) => {
      const part = xs[i]!._requiresGrad ? dense.slice(g!, d, start, start + n) : null;
      start += n;
      return part;
    });
  })[0]!;
}

export function slice(x: Tensor, dim: number, start: number, end: number): Tensor {
  checkTensor(x, 'ops.slice', 'x');
  const y = dense.slice(x, dim, start, end);
  const shape = x.shape;
  return record('ops.slice', [x], [y], () => ([g]) => [dense.sliceBackward(g!, shape, dim, start, end)])[0]!;
}

/** A transposed copy: gradient transposes back. */
export function transpose(x: Tensor, dimA: number, dimB: number): Tensor {
  checkTensor(x, 'ops.transpose', 'x');
  const rank = x.shape.length;
  checkInteger(dimA, 'ops.transpose', 'dimA', -rank, rank - 1);
  checkInteger(dimB, 'ops.transpose', 'dimB', -rank, rank - 1);
  const a = dimA < 0 ? dimA + rank : dimA,
    b = dimB < 0 ? dimB + rank : dimB;
  const perm = Array.from({ length: rank }, (_, i) => (i === a ? b : i === b ? a : i));
  const y = dense.permute(x, perm);
  return record('ops.transpose', [x], [y], () => ([g]) => [dense.permute(g!, perm)])[0]!;
}

/** A reshaped view that takes part in autograd. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor(x, 'ops.reshape', 'x');
  const y = x.reshape(shape);
  const xShape = x.shape;
  return record('ops.reshape', [x], [y], () => ([g]) => [g!.reshape(xShape)])[0]!;
}

/**
 * y = x Wᵀ + b (PyTorch's Linear layout: weight [out, in]).
 * Gradients: gx = g W, gW = gᵀ x over all rows, gb = Σ_rows g.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  checkTensor(x, 'ops.linear', 'x');
  checkTensor(weight, 'ops.linear', 'weight');
  if (bias) checkTensor(bias, 'ops.linear', 'bias');
  const xw = dense.matmul(x, weight, { transB: true });
  let y = xw;
  if (bias) {
    y = dense.binary('add', xw, bias);
    xw.dispose();
  }
  return record('ops.linear', [x, weight, bias], [y], (save) => {
    const needW = weight._requiresGrad,
      needX = x._requiresGrad;
    const sx = needW ? save(x) : null;
    const sw = needX ? save(weight) : null;
    const inFeatures = weight.shape[1]!,
      outFeatures = weight.shape[0]!;
    const rows = x.shape.slice(0, -1).reduce((n, d) => n * d, 1);
    return ([g]) => {
      const gx = sw ? dense.matmul(g!, sw) : null;
      let gw: Tensor | null = null;
      if (sx) {
        const g2 = g!.reshape([rows, outFeatures]);
        const x2 = sx.reshape([rows, inFeatures]);
        gw = dense.matmul(g2, x2, { transA: true });
        g2.dispose();
        x2.dispose();
      }
      const gb = bias && bias._requiresGrad ? dense.sumToShape(g!, bias.shape) : null;
      return [gx, gw, gb];
    };
  })[0]!;
}

/**
 * wkv4 with autograd: { y, state } from wkv4.forward; gradients flow to
 * timeDecay, timeFirst, k, v and the input state from both outputs.
 */
export function wkv4(opts: { timeDecay: Tensor; timeFirst: Tensor; k: Tensor; v: Tensor; state?: Tensor }): {
  y: Tensor;
  state: Tensor;
} {
  const { y, state } = wkv4Kernel.forward(opts);
  const inputs = [opts.timeDecay, opts.timeFirst, opts.k, opts.v, opts.state ?? null];
  record('ops.wkv4', inputs, [y, state], (save) => {
    const s = {
      timeDecay: save(opts.timeDecay),
      timeFirst: save(opts.timeFirst),
      k: save(opts.k),
      v: save(opts.v),
      state: opts.state ? save(opts.state) : undefined,
      y: save(y),
    };
    return ([gy, gState]) => {
      const gyOrZeros = gy ?? zerosLike(y);
      const r = wkv4Kernel.backward({
        ...s,
        ...(s.state ? {} : { state: undefined }),
        gy: gyOrZeros,
        ...(gState ? { gState } : {}),
      });
      if (!gy) gyOrZeros.dispose();
      return [r.gTimeDecay, r.gTimeFirst, r.gk, r.gv, r.gState ?? null];
    };
  });
  return { y, state };
}

function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, { dtype: t.dtype, device: t.device });
}

/**
 * fam.blockAttention with autograd: { out, lse } as the kernel; gradients flow
 * from out to q, k, v, famK and famV (FlashAttention-2 style backward from out
 * and lse). lse carries no gradient.
 */
export function famBlockAttention(opts: FamBlockAttentionOptions): FamAttentionResult {
  const { out, lse } = famKernel.blockAttention(opts);
  const inputs = [opts.q, opts.k, opts.v, opts.famK ?? null, opts.famV ?? null];
  const result = record('ops.famBlockAttention', inputs, [out], (save) => {
    const saved = {
      q: save(opts.q),
      k: save(opts.k),
      v: save(opts.v),
      ...(opts.famK ? { famK: save(opts.famK), famV: save(opts.famV!) } : {}),
      out: save(out),
      lse: save(lse),
      blockSize: opts.blockSize,
      memoryBlocks: opts.memoryBlocks,
      ...(opts.scale !== undefined ? { scale: opts.scale } : {}),
    };
    return ([g]) => {
      const r = famKernel.blockAttentionBackward({ ...saved, gOut: g! });
      return [r.gq, r.gk, r.gv, r.gFamK ?? null, r.gFamV ?? null];
    };
  })[0]!;
  return { out: result, lse };
}

/** fam.memoryAttention with autograd: { out, lse } as the kernel; gradients flow from out. */
export function famMemoryAttention(opts: FamMemoryAttentionOptions): FamAttentionResult {
  const { out, lse } = famKernel.memoryAttention(opts);
  const inputs = [opts.famQ, opts.famK, opts.famV, opts.blockK, opts.blockV];
  const result = record('ops.famMemoryAttention', inputs, [out], (save) => {
    const saved = {
      famQ: save(opts.famQ),
      famK: save(opts.famK),
      famV: save(opts.famV),
      blockK: save(opts.blockK),
      blockV: save(opts.blockV),
      out: save(out),
      lse: save(lse),
      ...(opts.scale !== undefined ? { scale: opts.scale } : {}),
    };
    return ([g]) => {
      const r = famKernel.memoryAttentionBackward({ ...saved, gOut: g! });
      return [r.gFamQ, r.gFamK, r.gFamV, r.gBlockK, r.gBlockV];
    };
  })[0]!;
  return { out: result, lse };
}

// ---- losses ------------------------------------------------------------------------
// The fused loss kernels write d loss / d logits in the forward pass; their
// backward only scales that saved gradient by the upstream gradient g (a
// scalar, or one value per token for reduction 'none').

function scaleSavedGrad(saved: Tensor, g: Tensor): Tensor {
  const gg = g.dtype === saved.dtype ? g : g.to(saved.dtype);
  const shaped = gg.shape.length === 0 ? gg : gg.reshape([...gg.shape, 1]);
  const out = dense.binary('mul', saved, shaped);
  if (shaped !== gg) shaped.dispose();
  if (gg !== g) gg.dispose();
  return out;
}

/** losses.crossEntropy with autograd: `loss` takes part in backward(). */
export function crossEntropy(opts: CrossEntropyOptions): CrossEntropyResult {
  const wantGrad = needsGrad([opts?.logits]);
  const r = lossKernels.crossEntropy({ ...opts, computeGrad: wantGrad || (opts.computeGrad ?? false) });
  if (!wantGrad) return r;
  const gradLogits = r.gradLogits!;
  record('ops.crossEntropy', [opts.logits], [r.loss], (save) => {
    const sg = save(gradLogits);
    return ([g]) => [scaleSavedGrad(sg, g!)];
  });
  if (opts.computeGrad === false) {
    gradLogits.dispose();
    return { loss: r.loss, lse: r.lse };
  }
  return r;
}

/** losses.goldfishLoss with autograd on `loss` (the mean over kept tokens). */
export function goldfishLoss(opts: GoldfishLossOptions): GoldfishLossResult {
  const wantGrad = needsGrad([opts?.logits]);
  const r = lossKernels.goldfishLoss({ ...opts, computeGrad: wantGrad || (opts.computeGrad ?? false) });
  if (!wantGrad) return r;
  const gradLogits = r.gradLogits!;
  record('ops.goldfishLoss', [opts.logits], [r.loss], (save) => {
    const sg = save(gradLogits);
    return ([g]) => [scaleSavedGrad(sg, g!)];
  });
  if (opts.computeGrad === false) {
    gradLogits.dispose();
    const { gradLogits: _dropped, ...rest } = r;
    void _dropped;
    return rest;
  }
  return r;
}

/** losses.orpo with autograd on `loss` (SFT + λ·odds-ratio term). */
export function orpo(opts: OrpoOptions): OrpoResult {
  const wantGrad = needsGrad([opts?.chosenLogits, opts?.rejectedLogits]);
  const r = lossKernels.orpo({ ...opts, computeGrad: wantGrad || (opts.computeGrad ?? false) });
  if (!wantGrad) return r;
  const gc = r.gradChosenLogits!,
    gr = r.gradRejectedLogits!;
  record('ops.orpo', [opts.chosenLogits, opts.rejectedLogits], [r.loss], (save) => {
    const sc = save(gc),
      sr = save(gr);
    return ([g]) => [scaleSavedGrad(sc, g!), scaleSavedGrad(sr, g!)];
  });
  if (opts.computeGrad === false) {
    gc.dispose();
    gr.dispose();
    const { gradChosenLogits: _c, gradRejectedLogits: _r, ...rest } = r;
    void _c;
    void _r;
    return rest;
  }
  return r;
}

// ---- losses from hidden states -------------------------------------------------------
// The kernels return d loss / d hidden, d weight, d bias from the forward
// pass; for a scalar loss the backward scales them by the upstream g. With
// reduction 'none' (g one value per token) the weight's gradient
// Σ_i g_i·∂loss_i/∂weight cannot be had from the summed one: the backward
// runs the kernel again with weights g (reduction 'sum'), whose gradients
// are exactly those.

/** The saved gradients of the recorded inputs, each scaled by the scalar g. */
function scaledGrads(saved: (Tensor | null)[], g: Tensor): (Tensor | null)[] {
  return saved.map((t) => (t ? scaleSavedGrad(t, g) : null));
}

/** losses.linearCrossEntropy with autograd: gradients of `loss` flow to hidden, weight and bias. */
export function linearCrossEntropy(opts: LinearCrossEntropyOptions): LinearCrossEntropyResult {
  const inputs = [opts?.hidden, opts?.weight, opts?.bias];
  const wantGrad = needsGrad(inputs);
  const perToken = opts?.reduction === 'none';
  const r = lossKernels.linearCrossEntropy({
    ...opts,
    computeGrad: (wantGrad && !perToken) || (opts.computeGrad ?? false),
  });
  if (!wantGrad) return r;
  const grads = [r.gradHidden, r.gradWeight, r.gradBias];
  record('ops.linearCrossEntropy', inputs, [r.loss], (save) => {
    if (perToken) {
      const saved = {
        hidden: save(opts.hidden),
        weight: save(opts.weight),
        bias: opts.bias ? save(opts.bias) : undefined,
        labels: save(opts.labels),
        weights: opts.weights ? save(opts.weights) : undefined,
      };
      return ([g]) => {
        const tokenWeights = saved.weights ? dense.binary('mul', g!, saved.weights) : g!;
        const again = lossKernels.linearCrossEntropy({
          ...opts,
          ...saved,
          weights: tokenWeights,
          reduction: 'sum',
          computeGrad: true,
        });
        if (tokenWeights !== g) tokenWeights.dispose();
        again.loss.dispose();
        again.lse.dispose();
        return [again.gradHidden!, again.gradWeight!, again.gradBias ?? null];
      };
    }
    const saved = grads.map((t, i) => (t && inputs[i]?._requiresGrad ? save(t) : null));
    return ([g]) => scaledGrads(saved, g!);
  });
  if (opts.computeGrad === false) {
    for (const t of grads) t?.dispose();
    const { gradHidden: _h, gradWeight: _w, gradBias: _b, ...rest } = r;
    void _h;
    void _w;
    void _b;
    return rest;
  }
  return r;
}

/** losses.linearOrpo with autograd: gradients of `loss` flow to both hidden states, weight and bias. */
export function linearOrpo(opts: LinearOrpoOptions): LinearOrpoResult {
  const inputs = [opts?.chosenHidden, opts?.rejectedHidden, opts?.weight, opts?.bias];
  const wantGrad = needsGrad(inputs);
  const r = lossKernels.linearOrpo({ ...opts, computeGrad: wantGrad || (opts.computeGrad ?? false) });
  if (!wantGrad) return r;
  const grads = [r.gradChosenHidden, r.gradRejectedHidden, r.gradWeight, r.gradBias];
  record('ops.linearOrpo', inputs, [r.loss], (save) => {
    const saved = grads.map((t, i) => (t && inputs[i]?._requiresGrad ? save(t) : null));
    return ([g]) => scaledGrads(saved, g!);
  });
  if (opts.computeGrad === false) {
    for (const t of grads) t?.dispose();
    const { gradChosenHidden: _c, gradRejectedHidden: _r, gradWeight: _w, gradBias: _b, ...rest } = r;
    void _c;
    void _r;
    void _w;
    void _b;
    return rest;
  }
  return r;
}
