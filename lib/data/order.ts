// Seeded orders of rows, shared by fine-tuning (lib/finetune/examples.ts) and data-parallel
// sharding (lib/distributed/shard.ts): the same seed gives the same order in every process.
import { mulberry32 } from '../generate';

/** The seed of stream `stream` (0: the evaluation split, e + 1: the order of epoch e) for a run seed. */
export function streamSeed(seed: number, stream: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
}

/** A Fisher–Yates permutation of 0..n-1 from mulberry32(seed). */
export function permutation(n: number, seed: number): Int32Array {
  const random = mulberry32(seed);
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** The order of epoch `epoch` of n rows for a run seed: what a one-process run visits. */
export function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  return permutation(n, streamSeed(seed, epoch + 1));
}
