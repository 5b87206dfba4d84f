// TransformerFAM attention (docs/api.md `fam`; mask and math in docs/kernels.md#fam):
// block sliding-window attention with feedback memory, and the FAM update.
//
// Choices where the contract is silent:
// - Grouped heads: query head h reads key/value head floor(h / (H / Hkv))
//   (consecutive query heads share one, as repeat_interleave / repeat_kv do).
//   A key/value head's gradients are the sum over its query heads, taken in
//   float32 (float64 for float64 inputs) before the single rounding on store.
// - Head dim D must be in [1, 256] on every device (RangeError otherwise).
// - Any B, H, T may be 0 (empty results). F may be 0 (then the FAM column is
//   empty: the result equals plain BSWA). memoryAttention's L' may be 0 (only
//   the FAM keys); famQ and famK must have the same F; L' ≤ L is not checked
//   (there is no L argument).
// - blockSize and memoryBlocks must be integers (RangeError for a fraction);
//   memoryBlocks larger than the number of previous blocks means all of them.
//   scale may be any finite number; it defaults to 1/sqrt(D).
// - Gradients have the dtype of the input they belong to (bfloat16 in,
//   bfloat16 gradients), computed in float32 and rounded once.
// - The backward functions use `out`, `lse` and `gOut` as given (the
//   FlashAttention-2 recipe: scores are recomputed from q, k and lse, and
//   Δ = rowsum(gOut∘out)); `lse` must have the forward's dtype (float32, or
//   float64 for float64 inputs). There is no gradient input for lse.
// - famK without famV (or the reverse) is a TypeError; famK with the wrong
//   NB = ceil(T/blockSize) is a RangeError.
// - Results are deterministic: no floating-point atomics; on the CPU sums run
//   in a fixed order whatever the thread count, on CUDA in a fixed order per
//   device. CUDA uses tiled kernels (specialised for D = 64 and 128, a generic
//   one for other D); where a tiled kernel's shared memory does not fit the GPU
//   (D near 256 on GPUs with less than ~140 KB per block), a simple
//   one-thread-per-row kernel runs instead: slower, same results.
import { native } from '../native';
import type { Tensor } from '../tensor';
import { nativeOptions, wrapResult } from './common';

export interface FamBlockAttentionOptions {
  /** [B,H,T,D] float32 | bfloat16 | float16 | float64 (cpu). */
  q: Tensor;
  /** [B,Hkv,T,D], dtype and device of q; H % Hkv == 0. */
  k: Tensor;
  v: Tensor;
  /** [B,Hkv,NB,F,D]: entry τ is the FAM block τ reads. Omit both for plain BSWA. */
  famK?: Tensor;
  famV?: Tensor;
  /** L, tokens per block (integer >= 1). */
  blockSize: number;
  /** m, previous blocks in the memory segment (integer >= 0). */
  memoryBlocks: number;
  /** Score scale; default 1/sqrt(D). */
  scale?: number;
}

export interface FamBlockAttentionBackwardOptions extends FamBlockAttentionOptions {
  /** The forward's out [B,H,T,D]. */
  out: Tensor;
  /** The forward's lse [B,H,T]. */
  lse: Tensor;
  /** Gradient of the loss w.r.t. out, [B,H,T,D]. */
  gOut: Tensor;
}

export interface FamMemoryAttentionOptions {
  /** [B,H,F,D] */
  famQ: Tensor;
  /** [B,Hkv,F,D] */
  famK: Tensor;
  famV: Tensor;
  /** [B,Hkv,L',D] */
  blockK: Tensor;
  blockV: Tensor;
  scale?: number;
}

export interface FamMemoryAttentionBackwardOptions extends FamMemoryAttentionOptions {
  out: Tensor;
  lse: Tensor;
  gOut: Tensor;
}

export type FamAttentionResult = {
  /** Like q (or famQ). */
  out: Tensor;
  /** Natural-log sum-exp of the scaled scores: float32, float64 for float64 inputs. */
  lse: Tensor;
};

export type FamBlockAttentionGrads = {
  gq: Tensor;
  gk: Tensor;
  gv: Tensor;
  /** Present iff famK was given. */
  gFamK?: Tensor;
  gFamV?: Tensor;
};

export type FamMemoryAttentionGrads = {
  gFamQ: Tensor;
  gFamK: Tensor;
  gFamV: Tensor;
  gBlockK: Tensor;
  gBlockV: Tensor;
};

const blockTensors = ['q', 'k', 'v'] as const;
const famTensors = ['famK', 'famV'] as const;
const memoryTensors = ['famQ', 'famK', 'famV', 'blockK', 'blockV'] as const;
const backwardTensors = ['out', 'lse', 'gOut'] as const;

function blockOptions<T>(fn: string, opts: unknown, backward: boolean): T {
  return nativeOptions<T>(fn, opts, {
    tensors: backward ? [...blockTensors, ...backwardTensors] : blockTensors,
    optionalTensors: famTensors,
    others: ['blockSize', 'memoryBlocks', 'scale'],
  });
}

function memoryOptions<T>(fn: string, opts: unknown, backward: boolean): T {
  return nativeOptions<T>(fn, opts, {
    tensors: backward ? [...memoryTensors, ...backwardTensors] : memoryTensors,
    others: ['scale'],
  });
}

export const fam = {
  /**
   * Block rows: query t of block τ attends to the memory segment (previous
   * memoryBlocks blocks), the block's FAM keys famK[τ] and its own block
   * causally. out [B,H,T,D] (dtype of q), lse [B,H,T].
   */
  blockAttention(opts: FamBlockAttentionOptions): FamAttentionResult {
    return wrapResult(native().famBlockAttention(blockOptions('fam.blockAttention', opts, false)));
  },
  /** Gradients of blockAttention; gFamK/gFamV iff famK was given. */
  blockAttentionBackward(opts: FamBlockAttentionBackwardOptions): FamBlockAttentionGrads {
    return wrapResult(native().famBlockAttentionBackward(blockOptions('fam.blockAttentionBackward', opts, true)));
  },
  /** The FAM update of one block: famQ attends to [famK; blockK] with no mask. */
  memoryAttention(opts: FamMemoryAttentionOptions): FamAttentionResult {
    return wrapResult(native().famMemoryAttention(memoryOptions('fam.memoryAttention', opts, false)));
  },
  /** Gradients of memoryAttention. */
  memoryAttentionBackward(opts: FamMemoryAttentionBackwardOptions): FamMemoryAttentionGrads {
    return wrapResult(native().famMemoryAttentionBackward(memoryOptions('fam.memoryAttentionBackward', opts, true)));
  },
};
