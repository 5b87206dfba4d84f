// The demo's training (examples/lib/train.mts, the demo's sizes: d 128, 4
// layers, batches of 8×128 bytes, AdamW at the demo's peak lr) takes its loss
// straight from the hidden states (ops.linearCrossEntropy on
// model.hiddenStates and model.head) by default. Trained from the same seed on
// the same batches, its loss curve is the logits path's (model.forward →
// ops.crossEntropy / goldfishLoss) within float32 rounding, for both model
// families and both objectives; and lossHead falls back to the logits where
// the head carries LoRA adapters.
import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { evalBatches, loadBytes, randomBatch, splitHoldout } from '../examples/lib/data.mts';
import { Rng } from '../examples/lib/rng.mts';
import { createModel, evaluate, train, type LossKind, type LossPath, type ModelKind } from '../examples/lib/train.mts';

const STEPS = 6;
const [B, T] = [8, 128];
const { train: trainBytes, val: valBytes } = splitHoldout(loadBytes(), 0.1);
const valSet = evalBatches(valBytes, B, T, 2);

async function curve(kind: ModelKind, loss: LossKind, lossPath: LossPath) {
  const model = createModel(kind, {
    vocabSize: 256,
    dModel: 128,
    nLayers: 4,
    device: 'cpu',
    seed: 5,
    fam: { nHeads: 4, blockSize: 32, memoryBlocks: 1, famLength: 8 },
  });
  const optimizer = new lmk.optim.AdamW(model.parameters(), { lr: 4e-3, weightDecay: 0.01 });
  const rng = new Rng(11);
  const result = await train({
    model,
    optimizer,
    lr: () => 4e-3,
    loss,
    lossPath,
    device: 'cpu',
    steps: STEPS,
    nextBatch: () => randomBatch(trainBytes, B, T, rng),
  });
  const val = await evaluate(model, valSet, 'cpu', lossPath);
  model.dispose();
  return { losses: result.losses, all: result.all, val };
}

const close = (a: number[], b: number[], tol: number) =>
  a.every((x, i) => Math.abs(x - b[i]!) <= tol * Math.abs(b[i]!));

describe('training from hidden states (the demo and the reproductions)', () => {
  for (const kind of ['rwkv4', 'fam'] as const) {
    for (const loss of ['ce', 'goldfish'] as const) {
      it(`${kind} ${loss}: the loss curve equals the logits path's`, async () => {
        const hidden = await curve(kind, loss, 'hidden');
        const logits = await curve(kind, loss, 'logits');
        expect(hidden.losses).toHaveLength(STEPS);
        // The first step sees the same weights: equal to float32 rounding of a mean over 1024 tokens.
        expect(Math.abs(hidden.losses[0]! - logits.losses[0]!)).toBeLessThanOrEqual(1e-5 * logits.losses[0]!);
        // Later steps carry the rounding through AdamW: still far below a step's change of the loss.
        expect(close(hidden.losses, logits.losses, 1e-4), `${hidden.losses} vs ${logits.losses}`).toBe(true);
        expect(close(hidden.all, logits.all, 1e-4)).toBe(true);
        expect(Math.abs(hidden.val - logits.val)).toBeLessThanOrEqual(1e-4 * logits.val);
        // And the loss fell (the curve is a real training run).
        expect(hidden.losses.at(-1)!).toBeLessThan(hidden.losses[0]!);
      }, 120_000);
    }
  }

  it('nn.lossHead gives the head, and null for a LoRA-adapted head or a model without hidden states', () => {
    const model = new lmk.nn.RWKV4Model({ vocabSize: 16, dModel: 8, nLayers: 1, seed: 1 });
    const head = lmk.nn.lossHead(model)!;
    expect(head.weight).toBe(model.head.weight);
    expect(lmk.nn.lossHead(new lmk.nn.Linear(4, 3))).toBeNull();
    lmk.nn.LoRA.apply(model, { rank: 2, targets: ['head'] });
    expect(lmk.nn.LoRA.adapts(model.head)).toBe(true);
    expect(lmk.nn.lossHead(model)).toBeNull();
    lmk.nn.LoRA.remove(model);
    expect(lmk.nn.lossHead(model)?.weight).toBe(model.head.weight);
    model.dispose();
  });
});
