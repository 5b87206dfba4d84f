// Shared by the data-parallel test scripts (run by test/dist-training.test.ts through
// `lmkernels launch`, or alone as a world of one): a tiny RWKV-4 and a fixed pool of rows.
import { writeFileSync } from 'node:fs';
import * as lmk from 'lmkernels';

export const VOCAB = 32;
export const SEQ = 8;
/** Rows per optimizer step over all ranks. */
export const GLOBAL_BATCH = 8;
export const STEPS = 5;
/** Rows in the pool; step s of the whole run reads positions [8s, 8s + 8) of its seeded order. */
export const POOL = GLOBAL_BATCH * STEPS;

/** Token ids and labels of row i of the pool, from a 32-bit hash of (i, t). */
export function row(i: number): { ids: number[]; labels: number[] } {
  const value = (k: number) => (Math.imul(k ^ (k >>> 15), 0x2c1b3c6d) >>> 0) % VOCAB;
  const ids = Array.from({ length: SEQ }, (_, t) => value(i * 131 + t * 17 + 1));
  const labels = Array.from({ length: SEQ }, (_, t) => value(i * 137 + t * 19 + 2));
  return { ids, labels };
}

export function tinyModel(dtype: 'float32' | 'float64'): lmk.nn.RWKV4Model {
  return new lmk.nn.RWKV4Model({ vocabSize: VOCAB, dModel: 16, nLayers: 1, dtype, seed: 1 });
}

/**
 * This rank's rows of global step `step`: its share of the pool's order (dist.shardIndices,
 * seed 7) at local positions [step·b, (step+1)·b), b = GLOBAL_BATCH / worldSize; micro-batch
 * `part` of `parts` takes the positions part, part + parts, ... of those rows (so micro-batch p
 * of one process holds the rows of rank p of `parts` ranks, in the same order).
 */
export function localBatch(step: number, part = 0, parts = 1): { ids: lmk.Tensor; labels: lmk.Tensor } {
  const b = GLOBAL_BATCH / lmk.dist.worldSize();
  const share = lmk.dist.shardIndices(POOL, { seed: 7 });
  const rows = Array.from(share.subarray(step * b, (step + 1) * b), row).filter((_, j) => j % parts === part);
  const shape = [rows.length, SEQ];
  return {
    ids: lmk.tensor(Int32Array.from(rows.flatMap((r) => r.ids)), { shape }),
    labels: lmk.tensor(Int32Array.from(rows.flatMap((r) => r.labels)), { shape }),
  };
}

/**
 * One training step's gradients: the mean cross-entropy of this rank's rows, backward. With
 * parts > 1 (one process), the rows as `parts` micro-batches whose losses are scaled by 1/parts
 * and whose gradients accumulate: the same sums, in the same order, as `parts` ranks averaging
 * theirs. Returns the mean loss over ranks (or micro-batches), summed then scaled in the dtype as
 * dist.allReduce('mean') does.
 */
export async function forwardBackward(model: lmk.nn.RWKV4Model, step: number, parts = 1): Promise<number> {
  return lmk.tidy(async () => {
    let total: lmk.Tensor | null = null;
    for (let part = 0; part < parts; part++) {
      const { ids, labels } = localBatch(step, part, parts);
      const { loss } = lmk.ops.crossEntropy({ logits: model.forward(ids), labels });
      (parts > 1 ? lmk.ops.scale(loss, 1 / parts) : loss).backward();
      total = lmk.noGrad(() => (total ? lmk.ops.add(total, loss) : loss.clone()));
    }
    if (parts > 1) total = lmk.noGrad(() => lmk.ops.scale(total!, 1 / parts));
    lmk.dist.allReduce(total!, { op: 'mean' });
    return total!.item();
  });
}

/** Rank 0 writes the run's losses and weights (every element, as float64 numbers) to `file`. */
export function writeResult(file: string, model: lmk.nn.RWKV4Model, losses: number[]): void {
  if (lmk.dist.rank() !== 0) return;
  const weights = Object.fromEntries(model.namedParameters().map(([n, p]) => [n, Array.from(p.dataSync())]));
  writeFileSync(file, JSON.stringify({ worldSize: lmk.dist.worldSize(), losses, weights }));
}
