// PLACEHOLDER until branch wip-dist (the collectives) is merged: a world of one. The merge
// replaces this file with the real module and keeps the re-exports of the training side below.
import type { Tensor } from '../tensor';

export async function init(_opts?: {
  backend?: 'auto' | 'mpi' | 'nccl';
}): Promise<{ rank: number; worldSize: number; localRank: number; backend: string }> {
  return { rank: 0, worldSize: 1, localRank: 0, backend: 'none' };
}
export async function finalize(): Promise<void> {}
export async function barrier(): Promise<void> {}
export function rank(): number {
  return 0;
}
export function worldSize(): number {
  return 1;
}
function notYet(name: string): never {
  throw new Error(`dist.${name}: collectives are not merged yet`);
}
export function allReduce(t: Tensor, _opts?: { op?: 'sum' | 'mean' | 'max' | 'min' }): Tensor {
  return t; // a world of one
}
export function broadcast(t: Tensor, _opts?: { root?: number }): Tensor {
  return t; // a world of one
}
export function allGather(_args: { input: Tensor; output: Tensor }): Tensor {
  return notYet('allGather');
}
export function reduceScatter(_args: { input: Tensor; output: Tensor; op?: 'sum' | 'mean' | 'max' | 'min' }): Tensor {
  return notYet('reduceScatter');
}

export { shardIndices } from './shard';
export type { ShardOptions } from './shard';
export { syncGradients } from './gradients';
