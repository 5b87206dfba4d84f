// Training pieces shared by the demo and the reproductions: model
// construction by name, the loss of a batch (cross-entropy or goldfish),
// held-out evaluation, and a training loop that reads each step's loss one
// step late so the CPU stream keeps working while JavaScript queues the next
// step.
import * as lmk from 'lmkernels';

/** Thrown when a model family the library does not provide (yet) is asked for. */
export class ModelUnavailable extends Error {}

/** Parameter count of a module. */
export const parameterCount = (model) => model.parameters().reduce((n, p) => n + p.numel, 0);

/**
 * model: 'rwkv4' | 'fam'. config: { vocabSize, dModel, nLayers, device, dtype?,
 * seed, fam?: { nHeads, blockSize, memoryBlocks, famLength } }.
 */
export function createModel(model, config) {
  const { vocabSize, dModel, nLayers, device, dtype, seed } = config;
  if (model === 'rwkv4') return new lmk.nn.RWKV4Model({ vocabSize, dModel, nLayers, device, dtype, seed });
  if (model === 'fam') {
    if (typeof lmk.nn.FamTransformerModel !== 'function') {
      throw new ModelUnavailable(
        'lmk.nn.FamTransformerModel is not available in this build of lmkernels yet; use --model rwkv4',
      );
    }
    return new lmk.nn.FamTransformerModel({ vocabSize, dModel, nLayers, device, dtype, seed, ...config.fam });
  }
  throw new RangeError(`createModel: unknown model '${model}' (expected rwkv4 or fam)`);
}

/** Batch arrays (examples/lib/data.mjs) as int32 tensors on `device`. */
export function batchTensors(batch, device) {
  return {
    inputs: lmk.tensor(batch.inputs, { shape: batch.shape, device }),
    labels: lmk.tensor(batch.labels, { shape: batch.shape, device }),
  };
}

/**
 * The training objective of logits [B,T,V] for labels [B,T]:
 * loss 'ce' (mean cross-entropy) or 'goldfish' (mean over the tokens goldfish
 * keeps; options in `goldfish`, default k 4, h 13). Returns { loss, all }:
 * `loss` is what backward() runs on, `all` the mean cross-entropy over every
 * token (the same tensor for 'ce').
 */
export function objective(kind, logits, labels, goldfish = {}) {
  if (kind === 'ce') {
    const { loss } = lmk.ops.crossEntropy({ logits, labels });
    return { loss, all: loss };
  }
  if (kind === 'goldfish') {
    const r = lmk.ops.goldfishLoss({ logits, labels, k: 4, contextWidth: 13, ...goldfish });
    return { loss: r.loss, all: r.lossAllTokens };
  }
  throw new RangeError(`objective: unknown loss '${kind}' (expected ce or goldfish)`);
}

/** Mean cross-entropy (nats per token) of the model over the batches, without gradients. */
export async function evaluate(model, batches, device) {
  let sum = 0,
    count = 0;
  for (const batch of batches) {
    const loss = lmk.noGrad(() =>
      lmk.tidy(() => {
        const { inputs, labels } = batchTensors(batch, device);
        return lmk.ops.crossEntropy({ logits: model.forward(inputs), labels, reduction: 'sum' }).loss;
      }),
    );
    sum += await loss.item();
    loss.dispose();
    count += batch.inputs.length;
  }
  return sum / count;
}

/**
 * Trains for `steps` steps. Options: model, optimizer (lmk.optim.AdamW),
 * lr (step → learning rate), nextBatch (step → batch arrays), loss ('ce' |
 * 'goldfish'), goldfish (options), clip (max gradient norm; 0 = none),
 * device, evalEvery and evalFn (async () → validation loss; also run before
 * the first step and after the last), onStep({ step, loss, all, tokens,
 * seconds, val }) after each step's loss is known.
 * Returns { losses, all, val: [[step, loss]], seconds, tokens }.
 */
export async function train({
  model,
  optimizer,
  lr,
  nextBatch,
  loss = 'ce',
  goldfish,
  clip = 1,
  device,
  steps,
  evalEvery = 0,
  evalFn,
  onStep,
}) {
  const params = model.parameters();
  const losses = [],
    all = [],
    val = [];
  let tokens = 0,
    evalSeconds = 0;
  const timeEval = async (step) => {
    const t0 = performance.now();
    val.push([step, await evalFn()]);
    evalSeconds += (performance.now() - t0) / 1000;
  };
  if (evalFn) await timeEval(0);
  evalSeconds = 0; // training time excludes only the evaluations made after it starts
  const start = performance.now();
  let pending = null;
  const isEvalStep = (step) => (evalEvery > 0 && step % evalEvery === 0) || step === steps;
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
      const r = objective(loss, model.forward(inputs), labels, goldfish);
      r.loss.backward();
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
