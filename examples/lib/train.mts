// Training pieces shared by the demo and the reproductions: model
// construction by name, the loss of a batch (cross-entropy or goldfish,
// straight from the hidden states by default),
// held-out evaluation, and a training loop that reads each step's loss one
// step late so the CPU stream keeps working while JavaScript queues the next
// step.
import * as lmk from 'lmkernels';
import type { Batch } from './data.mts';

/** The model families the examples train. */
export type ModelKind = 'rwkv4' | 'fam';
export type LossKind = 'ce' | 'goldfish';
export type LanguageModel = lmk.nn.RWKV4Model | lmk.nn.LlamaModel;

/** TransformerFAM's attention: heads, block size, memory blocks, FAM length. */
export interface FamShape extends lmk.nn.LlamaFamOptions {
  nHeads: number;
}

export interface ModelConfig {
  vocabSize: number;
  dModel: number;
  nLayers: number;
  device?: lmk.DeviceSpec;
  dtype?: lmk.DType;
  seed?: number;
  /** TransformerFAM's attention shape (used by 'fam' only). */
  fam?: FamShape;
}

/** Parameter count of a module. */
export const parameterCount = (model: { parameters(): lmk.Tensor[] }): number =>
  model.parameters().reduce((n, p) => n + p.numel, 0);

/**
 * A freshly initialised model of the family `model` (config.fam is required for 'fam'):
 * 'rwkv4' an RWKV-4, 'fam' a Llama-architecture model run as a TransformerFAM
 * (nn.LlamaModel with fam; SwiGLU width 8·d/3 rounded to a multiple of 8, as
 * Llama sizes it). Both are architectures hub.saveModel writes and
 * lmk.generate decodes.
 */
export function createModel(model: ModelKind, config: ModelConfig): LanguageModel {
  const created = newModel(model, config);
  // The examples' vocabulary is the 256 bytes (examples/lib/byte-tokenizer.mts), without BOS or
  // EOS; the Hugging Face configs would otherwise name id 0 (the NUL byte) for both, and
  // lmk.generate would stop at it.
  created.config = { ...created.config, bos_token_id: null, eos_token_id: null };
  return created;
}

function newModel(model: ModelKind, config: ModelConfig): LanguageModel {
  const { vocabSize, dModel, nLayers, device, dtype, seed } = config;
  if (model === 'rwkv4') return new lmk.nn.RWKV4Model({ vocabSize, dModel, nLayers, device, dtype, seed });
  if (model === 'fam') {
    if (!config.fam) throw new TypeError('createModel: config.fam is required for the fam model');
    const { nHeads, blockSize, memoryBlocks, famLength } = config.fam;
    return new lmk.nn.LlamaModel({
      vocabSize,
      dModel,
      nLayers,
      nHeads,
      intermediateSize: 8 * Math.max(1, Math.round(dModel / 3)),
      fam: { blockSize, memoryBlocks, famLength },
      device,
      dtype,
      seed,
    });
  }
  throw new RangeError(`createModel: unknown model '${model}' (expected rwkv4 or fam)`);
}

/** Batch arrays (examples/lib/data.mts) as int32 tensors on `device`. */
export function batchTensors(batch: Batch, device?: lmk.DeviceSpec): { inputs: lmk.Tensor; labels: lmk.Tensor } {
  return {
    inputs: lmk.tensor(batch.inputs, { shape: batch.shape, device }),
    labels: lmk.tensor(batch.labels, { shape: batch.shape, device }),
  };
}

/**
 * Where a loss is computed from: 'hidden' (the default) straight from the
 * model's hidden states and its head (lmk.ops.linearCrossEntropy: no logits
 * tensor), or 'logits' (model.forward, then lmk.ops.crossEntropy /
 * goldfishLoss). 'hidden' falls back to 'logits' where lmk.nn.lossHead finds
 * no plain head (a head with LoRA adapters).
 */
export type LossPath = 'hidden' | 'logits';

/** A model the examples train: logits from forward, hidden states and head for the hidden-state losses. */
export type TrainableModel = lmk.nn.Module & { forward(tokens: lmk.Tensor): lmk.Tensor };

/**
 * The training objective of the model on inputs [B,T] for labels [B,T]:
 * loss 'ce' (mean cross-entropy) or 'goldfish' (mean over the tokens goldfish
 * keeps; options in `goldfish`, default k 4, h 13), with reduction `reduction`
 * for 'ce'. Returns { loss, all }: `loss` is what backward() runs on, `all`
 * the mean cross-entropy over every token (the same tensor for 'ce').
 */
export function objective(
  kind: LossKind,
  model: TrainableModel,
  inputs: lmk.Tensor,
  labels: lmk.Tensor,
  opts: { goldfish?: lmk.Goldfish; path?: LossPath; reduction?: 'mean' | 'sum' } = {},
): { loss: lmk.Tensor; all: lmk.Tensor } {
  if (kind !== 'ce' && kind !== 'goldfish') {
    throw new RangeError(`objective: unknown loss '${kind}' (expected ce or goldfish)`);
  }
  const goldfish = kind === 'goldfish' ? { k: 4, contextWidth: 13, ...opts.goldfish } : undefined;
  const head = (opts.path ?? 'hidden') === 'hidden' ? lmk.nn.lossHead(model) : null;
  if (head) {
    const hidden = (model as unknown as lmk.nn.HiddenStateModel).hiddenStates(inputs);
    const r = lmk.ops.linearCrossEntropy({ hidden, ...head, labels, goldfish, reduction: opts.reduction });
    return { loss: r.loss, all: r.lossAllTokens ?? r.loss };
  }
  const logits = model.forward(inputs);
  if (goldfish) {
    const r = lmk.ops.goldfishLoss({ logits, labels, ...goldfish });
    return { loss: r.loss, all: r.lossAllTokens };
  }
  const { loss } = lmk.ops.crossEntropy({ logits, labels, reduction: opts.reduction });
  return { loss, all: loss };
}

/** Mean cross-entropy (nats per token) of the model over the batches, without gradients. */
export async function evaluate(
  model: TrainableModel,
  batches: Batch[],
  device?: lmk.DeviceSpec,
  path?: LossPath,
): Promise<number> {
  let sum = 0,
    count = 0;
  for (const batch of batches) {
    const loss = lmk.noGrad(() =>
      lmk.tidy(() => {
        const { inputs, labels } = batchTensors(batch, device);
        return objective('ce', model, inputs, labels, { path, reduction: 'sum' }).loss;
      }),
    );
    sum += await loss.item();
    loss.dispose();
    count += batch.inputs.length;
  }
  return sum / count;
}

/** What onStep receives after each step's loss is known. */
export interface StepInfo {
  /** 1-based. */
  step: number;
  /** The objective (cross-entropy or goldfish) of this step's batch. */
  loss: number;
  /** Cross-entropy over every token of the batch (= loss for 'ce'). */
  all: number;
  /** Tokens trained on so far. */
  tokens: number;
  /** Training time so far, evaluations excluded. */
  seconds: number;
  /** The latest [step, validation loss], if any. */
  val: [number, number] | undefined;
}

export interface TrainOptions {
  model: TrainableModel;
  optimizer: lmk.optim.AdamW;
  /** Learning rate of a 0-based step. */
  lr: (step: number) => number;
  /** Batch arrays of a 0-based step. */
  nextBatch: (step: number) => Batch;
  loss?: LossKind;
  goldfish?: lmk.Goldfish;
  /** Default 'hidden' (see LossPath). */
  lossPath?: LossPath;
  /** Maximum gradient norm; 0 = no clipping. */
  clip?: number;
  device?: lmk.DeviceSpec;
  steps: number;
  /** Validation every evalEvery steps (and after the last); 0 = only before the first and after the last. */
  evalEvery?: number;
  /** The validation loss; also run before the first step and after the last. */
  evalFn?: () => Promise<number>;
  onStep?: (info: StepInfo) => void;
  /**
   * Data parallel (launched on several ranks, after lmk.dist.init): gradients averaged over the
   * ranks by lmk.dist.syncGradients before clipping, and each step's loss the mean over the ranks
   * (the loss of the whole batch). Every rank calls train with the same options.
   */
  distributed?: boolean;
}

export interface TrainResult {
  /** The objective of every step. */
  losses: number[];
  /** Cross-entropy over every token, every step. */
  all: number[];
  /** [step, validation loss], step 0 = before training. */
  val: [number, number][];
  /** Training time, evaluations excluded. */
  seconds: number;
  tokens: number;
  evalSeconds: number;
}

/**
 * Trains for `steps` steps and returns the losses. Each step's loss is read
 * one step late, so the CPU stream keeps working while JavaScript queues the
 * next step; onStep runs after each step's loss is known.
 */
export async function train({
  model,
  optimizer,
  lr,
  nextBatch,
  loss = 'ce',
  goldfish,
  lossPath,
  clip = 1,
  device,
  steps,
  evalEvery = 0,
  evalFn,
  onStep,
  distributed = false,
}: TrainOptions): Promise<TrainResult> {
  const params = model.parameters();
  const losses: number[] = [],
    all: number[] = [],
    val: [number, number][] = [];
  let tokens = 0,
    evalSeconds = 0;
  const timeEval = async (step: number) => {
    if (!evalFn) return;
    const t0 = performance.now();
    val.push([step, await evalFn()]);
    evalSeconds += (performance.now() - t0) / 1000;
  };
  if (evalFn) await timeEval(0);
  evalSeconds = 0; // training time excludes only the evaluations made after it starts
  const start = performance.now();
  let pending: { step: number; result: { loss: lmk.Tensor; all: lmk.Tensor }; n: number } | null = null;
  const isEvalStep = (step: number) => (evalEvery > 0 && step % evalEvery === 0) || step === steps;
  const settle = async () => {
    if (!pending) return;
    const { step, result, n } = pending;
    pending = null;
    const value = await result.loss.item();
    const allValue = result.all === result.loss ? value : await result.all.item();
    result.loss.dispose();
    if (result.all !== result.loss) result.all.dispose();
    losses.push(value);
    all.push(allValue);
    tokens += n;
    if (evalFn && isEvalStep(step)) await timeEval(step);
    onStep?.({
      step,
      loss: value,
      all: allValue,
      tokens,
      seconds: (performance.now() - start) / 1000 - evalSeconds,
      val: val.at(-1),
    });
  };
  for (let step = 1; step <= steps; step++) {
    optimizer.lr = lr(step - 1);
    const batch = nextBatch(step - 1);
    const result = lmk.tidy(() => {
      const { inputs, labels } = batchTensors(batch, device);
      const r = objective(loss, model, inputs, labels, { goldfish, path: lossPath });
      r.loss.backward();
      if (distributed) {
        lmk.dist.syncGradients(params);
        // The losses (backward is done), averaged in place: every rank reports the whole batch's.
        for (const t of r.all === r.loss ? [r.loss] : [r.loss, r.all]) lmk.dist.allReduce(t, { op: 'mean' });
      }
      if (clip > 0) lmk.clipGradNorm(params, clip);
      optimizer.step();
      optimizer.zeroGrad();
      return r;
    });
    // Read the previous step's loss while this one runs; an evaluation
    // waits until no later step is queued, so it sees this step's weights.
    await settle();
    pending = { step, result, n: batch.inputs.length };
    if (evalFn && isEvalStep(step)) await settle();
  }
  await settle();
  const seconds = (performance.now() - start) / 1000 - evalSeconds;
  return { losses, all, val, seconds, tokens, evalSeconds };
}
