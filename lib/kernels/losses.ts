// Losses (docs/api.md `losses`; math in docs/kernels.md#losses): cross-entropy whose
// gradient is written in the same pass, goldfish loss and mask, ORPO, and
// shiftLabels. Every loss runs one cross-entropy row kernel with per-token
// gradient coefficients (native/core/kernels/losses/).
//
// Choices where the contract is silent:
// - `crossEntropy` with reduction 'mean' and no supervised token gives loss 0
//   and a zero gradient (PyTorch gives NaN). The same holds for every mean
//   over an empty set: goldfish `loss` with no kept token, `lossDroppedTokens`
//   with none dropped, ORPO's `nllLoss` with no SFT token.
// - 'mean' divides Σ weight·loss by the number of supervised tokens (as
//   docs/api.md says), not by Σ weight. `weights` may be float32, or float64 when
//   the logits are float64; no gradient is computed for them.
// - reduction 'none': `loss` is shaped like labels, 0 at ignored tokens; the
//   gradient is that of Σ_i loss_i (times gradScale).
// - `lse` is computed for every row, ignored ones included.
// - A label equal to ignoreIndex is not supervised even when ignoreIndex lies
//   in [0, V) (as in PyTorch).
// - Goldfish positions run along the last dimension of labels: labels [B,T]
//   are B sequences of T tokens; a 1-D labels [N] is one sequence of N tokens.
//   `goldfishMask` marks ignored labels 0 and does not check labels against V.
//   `k`, `contextWidth`, `startPosition` and `seed` must be integers
//   (RangeError otherwise): k >= 2, contextWidth >= 1, startPosition >= 0,
//   0 <= seed < 2^53. Options of other strategies are accepted and unused.
// - `orpo`: chosen/rejected logits must be 3-D [B,T,V]/[B,T',V] with the same
//   B, V, dtype and device; B >= 1 and T, T' >= 1 (RangeError at once). A
//   pair whose chosenLabels or rejectedLabels are all ignoreIndex is the
//   value-dependent RangeError of the contract, reported at the next sync
//   with the pair's index. chosenLogps/rejectedLogps are the plain means of
//   log p (TRL's average_log_prob); only the log-odds clamp them to at most
//   -1e-30, which keeps every result finite when the model is certain.
//   `lambda` may be any finite number.
// - `shiftLabels` returns the labels tensor itself (not an object).
// - NaN logits give NaN results for their rows (not an error).
// - Results are deterministic: on the CPU bit-identical across runs and
//   thread counts; on CUDA no floating-point atomics.
import { native, type NativeAddon, type NativeGoldfish } from '../native';
import { Tensor } from '../tensor';
import { nativeOptions, wrapResult } from './common';

export type LossReduction = 'mean' | 'sum' | 'none';
export type GoldfishStrategy = 'hash' | 'static' | 'random';

/** Goldfish options (docs/kernels.md#goldfish). */
export interface Goldfish {
  /** Drop about 1 in k supervised tokens; default 4; integer >= 2. */
  k?: number;
  /** Default 'hash'. */
  strategy?: GoldfishStrategy;
  /** h for 'hash'; default 13. */
  contextWidth?: number;
  /** Default 0. */
  seed?: number;
  /** For 'static'; default 0. */
  startPosition?: number;
  /** int32 like labels: what 'hash' reads; default labels. */
  hashTokens?: Tensor;
}

export interface CrossEntropyOptions {
  /** [B,T,V] or [N,V]: float32 | bfloat16 | float16 | float64 (cpu). */
  logits: Tensor;
  /** int32 [B,T] or [N]. */
  labels: Tensor;
  /** Default -100. */
  ignoreIndex?: number;
  /** Default 'mean'. */
  reduction?: LossReduction;
  /** Per-token weights shaped like labels. */
  weights?: Tensor;
  /** Default true. */
  computeGrad?: boolean;
  /** Default 1. */
  gradScale?: number;
}
export interface CrossEntropyResult {
  loss: Tensor;
  lse: Tensor;
  gradLogits?: Tensor;
}

export interface GoldfishMaskOptions extends Goldfish {
  labels: Tensor;
  ignoreIndex?: number;
}

export interface GoldfishLossOptions extends Goldfish {
  logits: Tensor;
  labels: Tensor;
  ignoreIndex?: number;
  computeGrad?: boolean;
  gradScale?: number;
}
export interface GoldfishLossResult {
  /** Mean over kept tokens. */
  loss: Tensor;
  gradLogits?: Tensor;
  /** Mean over all supervised tokens (plain cross-entropy). */
  lossAllTokens: Tensor;
  /** Mean over dropped tokens. */
  lossDroppedTokens: Tensor;
  /** 0-d int32. */
  supervisedTokens: Tensor;
  /** 0-d int32. */
  keptTokens: Tensor;
}

export interface OrpoOptions {
  /** [B,T,V]. */
  chosenLogits: Tensor;
  /** [B,T',V]. */
  rejectedLogits: Tensor;
  /** int32 [B,T]. */
  chosenLabels: Tensor;
  /** int32 [B,T']. */
  rejectedLabels: Tensor;
  /** Labels of the SFT term, like chosenLabels; default chosenLabels. */
  nllLabels?: Tensor;
  /** Default 0.1 (TRL's beta). */
  lambda?: number;
  ignoreIndex?: number;
  /** Applied to the SFT term only. */
  goldfish?: Goldfish;
  computeGrad?: boolean;
  gradScale?: number;
}
export interface OrpoMetrics {
  rewardsChosen: Tensor;
  rewardsRejected: Tensor;
  rewardsAccuracy: Tensor;
  rewardsMargin: Tensor;
  logOddsRatio: Tensor;
  logOddsChosen: Tensor;
}
export interface OrpoResult {
  loss: Tensor;
  nllLoss: Tensor;
  orLoss: Tensor;
  /** [B] */
  chosenLogps: Tensor;
  /** [B] */
  rejectedLogps: Tensor;
  /** [B] */
  logOdds: Tensor;
  metrics: OrpoMetrics;
  gradChosenLogits?: Tensor;
  gradRejectedLogits?: Tensor;
}

export interface LinearCrossEntropyOptions {
  /** [B,T,d] or [N,d]: float32 | bfloat16 | float16 | float64 (cpu). */
  hidden: Tensor;
  /** [V,d] (nn.Linear's layout), like hidden. */
  weight: Tensor;
  /** [V], like hidden. */
  bias?: Tensor;
  /** int32 [B,T] or [N]. */
  labels: Tensor;
  /** Default -100. */
  ignoreIndex?: number;
  /** Default 'mean' (the only one with goldfish). */
  reduction?: LossReduction;
  /** Per-token weights shaped like labels (not with goldfish). */
  weights?: Tensor;
  /** The goldfish loss instead of plain cross-entropy. */
  goldfish?: Goldfish;
  /** Default true. */
  computeGrad?: boolean;
  /** Default 1. */
  gradScale?: number;
  /** Tokens per chunk; default chosen by the library (docs/api.md). */
  chunkSize?: number;
}
export interface LinearCrossEntropyResult {
  loss: Tensor;
  lse: Tensor;
  gradHidden?: Tensor;
  gradWeight?: Tensor;
  /** Only with a bias. */
  gradBias?: Tensor;
  /** With goldfish, as goldfishLoss. */
  lossAllTokens?: Tensor;
  lossDroppedTokens?: Tensor;
  supervisedTokens?: Tensor;
  keptTokens?: Tensor;
}

export interface LinearOrpoOptions extends Omit<OrpoOptions, 'chosenLogits' | 'rejectedLogits'> {
  /** [B,T,d]. */
  chosenHidden: Tensor;
  /** [B,T',d]. */
  rejectedHidden: Tensor;
  /** [V,d]. */
  weight: Tensor;
  /** [V]. */
  bias?: Tensor;
  /** Tokens per chunk; default chosen by the library (docs/api.md). */
  chunkSize?: number;
}
export interface LinearOrpoResult extends Omit<OrpoResult, 'gradChosenLogits' | 'gradRejectedLogits'> {
  gradChosenHidden?: Tensor;
  gradRejectedHidden?: Tensor;
  gradWeight?: Tensor;
  gradBias?: Tensor;
}

export interface ShiftLabelsOptions {
  /** int32 [B,T] or [N]. */
  inputIds: Tensor;
  /** Default -100. */
  ignoreIndex?: number;
}

const GOLDFISH_KEYS = ['k', 'strategy', 'contextWidth', 'seed', 'startPosition'] as const;

type Args<K extends keyof NativeAddon> = Parameters<NativeAddon[K]>[0];

/** The goldfish option object's own checks (its option names, hashTokens); absent stays absent. */
function nativeGoldfish(fn: string, goldfish: NativeGoldfish | undefined | null): NativeGoldfish | undefined {
  if (goldfish === undefined || goldfish === null) return undefined;
  return nativeOptions<NativeGoldfish>(`${fn}: goldfish`, goldfish, {
    tensors: [],
    optionalTensors: ['hashTokens'],
    others: GOLDFISH_KEYS,
  });
}

/** An ORPO binding's result as Tensors (metrics nested). */
function orpoResult<R extends { metrics: OrpoMetrics }>(raw: { metrics: object }): R {
  const { metrics, ...rest } = raw;
  return { ...wrapResult<Omit<R, 'metrics'>>(rest), metrics: wrapResult<OrpoMetrics>(metrics) } as R;
}

export const losses = {
  /**
   * Cross-entropy of logits[..., t, :] against labels[..., t], with lse and —
   * in the same pass — d loss / d logits (times gradScale).
   */
  crossEntropy(opts: CrossEntropyOptions): CrossEntropyResult {
    const o = nativeOptions<Args<'lossesCrossEntropy'>>('losses.crossEntropy', opts, {
      tensors: ['logits', 'labels'],
      optionalTensors: ['weights'],
      others: ['ignoreIndex', 'reduction', 'computeGrad', 'gradScale'],
    });
    return wrapResult(native().lossesCrossEntropy(o));
  },

  /** int32 like labels: 1 where the token is supervised and kept, 0 where dropped or ignored. */
  goldfishMask(opts: GoldfishMaskOptions): Tensor {
    const o = nativeOptions<Args<'lossesGoldfishMask'>>('losses.goldfishMask', opts, {
      tensors: ['labels'],
      optionalTensors: ['hashTokens'],
      others: ['ignoreIndex', ...GOLDFISH_KEYS],
    });
    return new Tensor(native().lossesGoldfishMask(o));
  },

  /** Cross-entropy over the tokens the goldfish rule keeps; the mask is computed inside the kernel. */
  goldfishLoss(opts: GoldfishLossOptions): GoldfishLossResult {
    const o = nativeOptions<Args<'lossesGoldfishLoss'>>('losses.goldfishLoss', opts, {
      tensors: ['logits', 'labels'],
      optionalTensors: ['hashTokens'],
      others: ['ignoreIndex', 'computeGrad', 'gradScale', ...GOLDFISH_KEYS],
    });
    return wrapResult(native().lossesGoldfishLoss(o));
  },

  /** ORPO (Hong et al. 2024) as TRL's ORPOTrainer computes it, finite everywhere, with both gradients. */
  orpo(opts: OrpoOptions): OrpoResult {
    const fn = 'losses.orpo';
    const o = nativeOptions<Args<'lossesOrpo'>>(fn, opts, {
      tensors: ['chosenLogits', 'rejectedLogits', 'chosenLabels', 'rejectedLabels'],
      optionalTensors: ['nllLabels'],
      others: ['lambda', 'ignoreIndex', 'goldfish', 'computeGrad', 'gradScale'],
    });
    o.goldfish = nativeGoldfish(fn, o.goldfish);
    return orpoResult<OrpoResult>(native().lossesOrpo(o));
  },

  /**
   * Cross-entropy (or the goldfish loss) of logits = hidden · weightᵀ + bias
   * without a logits tensor: chunk by chunk, with the gradients of hidden,
   * weight and bias.
   */
  linearCrossEntropy(opts: LinearCrossEntropyOptions): LinearCrossEntropyResult {
    const fn = 'losses.linearCrossEntropy';
    const o = nativeOptions<Args<'lossesLinearCrossEntropy'>>(fn, opts, {
      tensors: ['hidden', 'weight', 'labels'],
      optionalTensors: ['bias', 'weights'],
      others: ['ignoreIndex', 'reduction', 'goldfish', 'computeGrad', 'gradScale', 'chunkSize'],
    });
    o.goldfish = nativeGoldfish(fn, o.goldfish);
    return wrapResult(native().lossesLinearCrossEntropy(o));
  },

  /** ORPO of the head logits = hidden · weightᵀ + bias without a logits tensor (see orpo). */
  linearOrpo(opts: LinearOrpoOptions): LinearOrpoResult {
    const fn = 'losses.linearOrpo';
    const o = nativeOptions<Args<'lossesLinearOrpo'>>(fn, opts, {
      tensors: ['chosenHidden', 'rejectedHidden', 'weight', 'chosenLabels', 'rejectedLabels'],
      optionalTensors: ['bias', 'nllLabels'],
      others: ['lambda', 'ignoreIndex', 'goldfish', 'computeGrad', 'gradScale', 'chunkSize'],
    });
    o.goldfish = nativeGoldfish(fn, o.goldfish);
    return orpoResult<LinearOrpoResult>(native().lossesLinearOrpo(o));
  },

  /** labels[b,t] = inputIds[b,t+1], ignoreIndex at the last position. */
  shiftLabels(opts: ShiftLabelsOptions): Tensor {
    const o = nativeOptions<Args<'lossesShiftLabels'>>('losses.shiftLabels', opts, {
      tensors: ['inputIds'],
      others: ['ignoreIndex'],
    });
    return new Tensor(native().lossesShiftLabels(o));
  },
};
