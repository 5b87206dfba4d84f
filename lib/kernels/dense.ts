// Dense tensor kernels for training: forward AND backward functions on CPU and
// CUDA, plain functions on Tensors (no autograd: lib/autograd builds on them).
// This file only turns Tensors into native handles (TypeError naming the
// function and the argument for a non-Tensor or a disposed one); the native
// layer checks every other value's JS type, and the core (native/core/ops/*)
// shapes, dtypes, devices, values and defaults, naming the function as the
// public API does:
// `ops.matmul: a has shape [2,3] but b has shape [4,5]: inner sizes 3 and 4 differ`.
//
// Conventions and choices (docs/api.md is silent on these):
// - Dtypes: float32, bfloat16, float16 (computed in float32, rounded once on
//   store) and float64 (CPU only, computed in float64). Ids and positions are
//   int32. All tensors of a call share one device and one dtype (TypeError
//   otherwise); exceptions: copyInto_ converts between dtypes, the AdamW
//   moments may be float32 for a bfloat16/float16 param, norm statistics are
//   float32 (float64 for float64), the shape ops (permute, concat, slice,
//   tokenShift, expandTo, fill_) take any dtype including int32.
// - Outputs are new contiguous tensors, except the in-place functions (name
//   ending in `_`), which write their first argument and return it.
// - Error names: binary/scalar/unary ops are named after the public op
//   (`ops.add`, `ops.exp`), their gradients `ops.<op>Backward`, the others
//   `ops.<function>` (`ops.sumToShape`, `ops.layerNormBackward`), AdamW
//   `optim.AdamW.step`, gradient clipping `clipGradNorm`.
// - Reductions (sum, norm parameter gradients, embeddingBackward, the
//   gradient norm) use an order fixed by the shapes alone and no float
//   atomics: bit-identical results from run to run and for any thread count.
// - unaryBackward gradients at the edges follow PyTorch: relu'(0) = 0,
//   abs'(0) = 0, sqrt'(0) = inf; maximum's gradient is split in half between
//   equal inputs.
// - rope pairs interleaved features (x[2i], x[2i+1]) as RoFormer and GPT-J
//   do (not the "rotate_half" split halves of GPT-NeoX/LLaMA), with angle
//   pos·base^(−2i/D) computed in float64; inverse=true rotates by −angle,
//   which is the backward.
// - layerNormBackward returns gBias when its optional 6th argument `bias` is
//   given (a Tensor or true) — the gradient does not depend on the bias value;
//   without that argument, gBias is returned iff weight is given.
// - gradNormClip_ returns a float64 norm for float64 gradients (float32
//   otherwise) and a 0-d float32 zero on the CPU for an empty list; maxNorm
//   may be Infinity (norm only).
// - GEMM backend: OpenBLAS / cuBLAS when they load at run time, else our own
//   kernels; env LMK_GEMM=builtin (read once) or setGemmBackend('builtin')
//   forces ours. A batch of many small matrices (≤ 64³ multiply-adds each)
//   always runs on our CPU kernel, one matrix per thread.
import { native } from '../native';
import type { NativeAdamwHyper, NativeTensor } from '../native';
import { Tensor } from '../tensor';
import { handle, handles, optionalHandle } from './common';
import { checkOptions } from '../validate';

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'maximum';
export type ScalarOp = 'add' | 'mul' | 'pow' | 'rsub' | 'div_by';
export type UnaryOp = 'neg' | 'exp' | 'log' | 'sigmoid' | 'relu' | 'square' | 'tanh' | 'silu' | 'sqrt' | 'abs';
export type GemmBackend = 'auto' | 'builtin';

export interface GemmInfo {
  cpu: 'openblas' | 'builtin';
  cuda: 'cublas' | 'builtin' | 'unavailable';
}

const addon = native;

// The public name of a scalar op in errors (ops.divBy for 'div_by').
const SCALAR_NAMES: Record<string, string> = { div_by: 'divBy' };

function wrap(t: NativeTensor): Tensor {
  return new Tensor(t);
}

// ---- element-wise -----------------------------------------------------------------

/** a (op) b with NumPy broadcasting; RangeError naming both shapes when they do not broadcast. */
export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const fn = `ops.${op}`;
  return wrap(addon().denseBinary({ op, a: handle(a, fn, 'a'), b: handle(b, fn, 'b') }));
}

/**
 * Gradients of binary(op, a, b) given gy (the output's shape): ∂/∂a·gy summed
 * down to a's shape, ∂/∂b·gy summed down to b's shape.
 */
export function binaryBackward(op: BinaryOp, a: Tensor, b: Tensor, gy: Tensor): { ga: Tensor; gb: Tensor } {
  const fn = `ops.${op}Backward`;
  const r = addon().denseBinaryBackward({
    op,
    a: handle(a, fn, 'a'),
    b: handle(b, fn, 'b'),
    gy: handle(gy, fn, 'gy'),
  });
  return { ga: wrap(r.ga), gb: wrap(r.gb) };
}

/** x+s, x*s, x**s, s−x, s/x. */
export function scalarOp(op: ScalarOp, x: Tensor, s: number): Tensor {
  const fn = `ops.${SCALAR_NAMES[op] ?? op}`;
  return wrap(addon().denseScalarOp({ op, x: handle(x, fn, 'x'), s }));
}

export function unary(op: UnaryOp, x: Tensor): Tensor {
  return wrap(addon().denseUnary({ op, x: handle(x, `ops.${op}`, 'x') }));
}

/**
 * gy · d op(x)/dx from the forward's input x and output y: exp, sigmoid, tanh
 * and sqrt read y; log, relu, square, silu and abs read x; neg neither. The one
 * not read may be null.
 */
export function unaryBackward(op: UnaryOp, x: Tensor | null, y: Tensor | null, gy: Tensor): Tensor {
  const fn = `ops.${op}Backward`;
  return wrap(
    addon().denseUnaryBackward({
      op,
      x: optionalHandle(x, fn, 'x'),
      y: optionalHandle(y, fn, 'y'),
      gy: handle(gy, fn, 'gy'),
    }),
  );
}

// ---- reductions -------------------------------------------------------------------

/** Σ over dims (negatives allowed; empty = all axes → 0-d unless keepDim). Deterministic. */
export function sum(x: Tensor, dims: readonly number[], keepDim?: boolean): Tensor {
  return wrap(addon().denseSum({ x: handle(x, 'ops.sum', 'x'), dims, keepDim }));
}

/** x summed down to `shape` (the reverse of broadcasting `shape` to x.shape). */
export function sumToShape(x: Tensor, shape: readonly number[]): Tensor {
  return wrap(addon().denseSumToShape({ x: handle(x, 'ops.sumToShape', 'x'), shape }));
}

/** x broadcast to `shape`, materialised (the gradient of a sum). */
export function expandTo(x: Tensor, shape: readonly number[]): Tensor {
  return wrap(addon().denseExpandTo({ x: handle(x, 'ops.expandTo', 'x'), shape }));
}

// ---- matmul ---------------------------------------------------------------------------

/**
 * a [..., M, K] · b [..., K, N] → [..., M, N] after optional transposition of
 * the last two dims of a (transA) or b (transB); batch dims broadcast, and a
 * 2-D b is shared by every batch.
 */
export function matmul(a: Tensor, b: Tensor, opts?: { transA?: boolean; transB?: boolean }): Tensor {
  const fn = 'ops.matmul';
  const o = checkOptions(opts, fn, ['transA', 'transB']);
  const transA = o.transA as boolean | undefined,
    transB = o.transB as boolean | undefined;
  return wrap(addon().denseMatmul({ a: handle(a, fn, 'a'), b: handle(b, fn, 'b'), transA, transB }));
}

/** Which GEMM runs on each device kind. */
export function gemmInfo(): GemmInfo {
  const info = addon().gemmInfo();
  return { cpu: info.cpu, cuda: info.cuda };
}

/** 'builtin' forces our GEMM kernels (as LMK_GEMM=builtin does); 'auto' uses OpenBLAS/cuBLAS when loaded. */
export function setGemmBackend(backend: GemmBackend): void {
  addon().setGemmBackend({ backend });
}

// ---- embedding ------------------------------------------------------------------------

/** weight [V, D], ids int32 [...] → [..., D]. An id outside [0, V) rejects at the next sync. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  const fn = 'ops.embedding';
  return wrap(addon().denseEmbedding({ weight: handle(weight, fn, 'weight'), ids: handle(ids, fn, 'ids') }));
}

/** gOut [..., D] → [numEmbeddings, D]: row v sums, in index order, the gOut rows whose id is v. */
export function embeddingBackward(gOut: Tensor, ids: Tensor, numEmbeddings: number): Tensor {
  const fn = 'ops.embeddingBackward';
  return wrap(
    addon().denseEmbeddingBackward({
      gOut: handle(gOut, fn, 'gOut'),
      ids: handle(ids, fn, 'ids'),
      numEmbeddings,
    }),
  );
}

// ---- norms ----------------------------------------------------------------------------

/** Layer norm over the last axis: { y, mean, rstd } (mean/rstd float32 [...], float64 for float64); eps default 1e-5. */
export function layerNorm(
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps?: number,
): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const fn = 'ops.layerNorm';
  const r = addon().denseLayerNorm({
    x: handle(x, fn, 'x'),
    weight: optionalHandle(weight, fn, 'weight'),
    bias: optionalHandle(bias, fn, 'bias'),
    eps,
  });
  return { y: wrap(r.y), mean: wrap(r.mean), rstd: wrap(r.rstd) };
}

/**
 * Gradients of layerNorm: gx, gWeight (iff weight is given) and gBias (iff
 * `bias` — the forward's bias, or true — is given; without it, iff weight is).
 */
export function layerNormBackward(
  x: Tensor,
  weight: Tensor | null,
  mean: Tensor,
  rstd: Tensor,
  gy: Tensor,
  bias?: Tensor | boolean | null,
): { gx: Tensor; gWeight?: Tensor; gBias?: Tensor } {
  const fn = 'ops.layerNormBackward';
  let hasBias: boolean;
  if (bias === undefined) hasBias = weight !== null && weight !== undefined;
  else if (typeof bias === 'boolean') hasBias = bias;
  else if (bias === null) hasBias = false;
  else {
    handle(bias, fn, 'bias');
    hasBias = true;
  }
  const r = addon().denseLayerNormBackward({
    x: handle(x, fn, 'x'),
    weight: optionalHandle(weight, fn, 'weight'),
    mean: handle(mean, fn, 'mean'),
    rstd: handle(rstd, fn, 'rstd'),
    gy: handle(gy, fn, 'gy'),
    hasBias,
  });
  const out: { gx: Tensor; gWeight?: Tensor; gBias?: Tensor } = { gx: wrap(r.gx) };
  if (r.gWeight) out.gWeight = wrap(r.gWeight);
  if (r.gBias) out.gBias = wrap(r.gBias);
  return out;
}

/** RMS norm over the last axis: { y, rstd }; eps default 1e-6. */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps?: number): { y: Tensor; rstd: Tensor } {
  const fn = 'ops.rmsNorm';
  const r = addon().denseRmsNorm({
    x: handle(x, fn, 'x'),
    weight: optionalHandle(weight, fn, 'weight'),
    eps,
  });
  return { y: wrap(r.y), rstd: wrap(r.rstd) };
}

/** Gradients of rmsNorm: gx and gWeight (iff weight is given). */
export function rmsNormBackward(
  x: Tensor,
  weight: Tensor | null,
  rstd: Tensor,
  gy: Tensor,
): { gx: Tensor; gWeight?: Tensor } {
  const fn = 'ops.rmsNormBackward';
  const r = addon().denseRmsNormBackward({
    x: handle(x, fn, 'x'),
    weight: optionalHandle(weight, fn, 'weight'),
    rstd: handle(rstd, fn, 'rstd'),
    gy: handle(gy, fn, 'gy'),
  });
  const out: { gx: Tensor; gWeight?: Tensor } = { gx: wrap(r.gx) };
  if (r.gWeight) out.gWeight = wrap(r.gWeight);
  return out;
}

// ---- rope -----------------------------------------------------------------------------

/**
 * Rotary embedding of x [..., T, D] (D even) with positions int32 [T] or
 * [B, T] (B = x.shape[0]): pairs (x[2i], x[2i+1]) rotated by pos·base^(−2i/D);
 * inverse=true rotates back (the backward).
 */
export function rope(x: Tensor, positions: Tensor, base?: number, inverse?: boolean): Tensor {
  const fn = 'ops.rope';
  return wrap(
    addon().denseRope({
      x: handle(x, fn, 'x'),
      positions: handle(positions, fn, 'positions'),
      base,
      inverse,
    }),
  );
}

// ---- shape ----------------------------------------------------------------------------

/** x [B,T,C] → out[:, t] = x[:, t−1], out[:, 0] = 0 (RWKV's time shift). */
export function tokenShift(x: Tensor): Tensor {
  return wrap(addon().denseTokenShift({ x: handle(x, 'ops.tokenShift', 'x') }));
}

/** g [B,T,C] → gx[:, t] = g[:, t+1], gx[:, T−1] = 0. */
export function tokenShiftBackward(g: Tensor): Tensor {
  return wrap(addon().denseTokenShiftBackward({ g: handle(g, 'ops.tokenShiftBackward', 'g') }));
}

export function concat(xs: Tensor[], dim: number): Tensor {
  return wrap(addon().denseConcat({ xs: handles(xs, 'ops.concat', 'xs'), dim }));
}

/** A copy of [start, end) along dim; negative indices count from the end; RangeError when out of range. */
export function slice(x: Tensor, dim: number, start: number, end: number): Tensor {
  const fn = 'ops.slice';
  return wrap(addon().denseSlice({ x: handle(x, fn, 'x'), dim, start, end }));
}

/** Zeros of inputShape with g placed at [start, end) along dim. */
export function sliceBackward(
  g: Tensor,
  inputShape: readonly number[],
  dim: number,
  start: number,
  end: number,
): Tensor {
  const fn = 'ops.sliceBackward';
  return wrap(addon().denseSliceBackward({ g: handle(g, fn, 'g'), inputShape, dim, start, end }));
}

/** A copy with out.shape[i] = x.shape[dims[i]]; a transpose is a permute. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  return wrap(addon().densePermute({ x: handle(x, 'ops.permute', 'x'), dims }));
}

// ---- in place ---------------------------------------------------------------------------

/** Every element of x = value (in place); returns x. */
export function fill_(x: Tensor, value: number): Tensor {
  const fn = 'ops.fill_';
  addon().denseFill({ x: handle(x, fn, 'x'), value });
  return x;
}

/** target += alpha · src (same shape, dtype, device; in place); returns target. */
export function addInPlace_(target: Tensor, src: Tensor, alpha?: number): Tensor {
  const fn = 'ops.addInPlace_';
  addon().denseAddInPlace({ target: handle(target, fn, 'target'), src: handle(src, fn, 'src'), alpha });
  return target;
}

/** target = src (same shape and device; converts dtype); returns target. */
export function copyInto_(target: Tensor, src: Tensor): Tensor {
  const fn = 'ops.copyInto_';
  addon().denseCopyInto({ target: handle(target, fn, 'target'), src: handle(src, fn, 'src') });
  return target;
}

// ---- optimizer ----------------------------------------------------------------------------

export interface AdamwStepArgs extends NativeAdamwHyper {
  param: Tensor;
  grad: Tensor;
  expAvg: Tensor;
  expAvgSq: Tensor;
  /** 1-based count of steps, this one included (PyTorch's state['step'] after its increment). */
  step: number;
}

/** One AdamW step in place, exactly torch.optim.AdamW's (decoupled weight decay, bias corrections). */
export function adamwStep_(args: AdamwStepArgs): void {
  const fn = 'optim.AdamW.step';
  if (typeof args !== 'object' || args === null) throw new TypeError(`${fn}: args must be an object`);
  addon().denseAdamwStep({
    param: handle(args.param, fn, 'param'),
    grad: handle(args.grad, fn, 'grad'),
    expAvg: handle(args.expAvg, fn, 'expAvg'),
    expAvgSq: handle(args.expAvgSq, fn, 'expAvgSq'),
    lr: args.lr,
    beta1: args.beta1,
    beta2: args.beta2,
    eps: args.eps,
    weightDecay: args.weightDecay,
    step: args.step,
  });
}

/**
 * Total L2 norm of grads (0-d float32; float64 for float64 grads) computed on
 * the device; every grad is scaled in place by min(1, maxNorm/(norm+1e-6))
 * without a host sync.
 */
export function gradNormClip_(grads: Tensor[], maxNorm: number): Tensor {
  const fn = 'clipGradNorm';
  return wrap(addon().denseGradNormClip({ grads: handles(grads, fn, 'grads'), maxNorm }).norm);
}
