// dist.shardIndices: this rank's share of the rows 0..n-1 for one epoch (PyTorch's
// DistributedSampler without its padding). Every rank computes the same order from (seed, epoch)
// alone, so no communication is needed.
//
// Rule (docs/api.md "Choices where the contract is silent"): the epoch's order is
// epochOrder(n, seed, epoch) (identity when shuffle is false); rank r takes the positions
// r, r + W, r + 2W, ... of it. Every index appears on exactly one rank; when W does not divide n
// the first n mod W ranks hold one row more (ceil(n/W) against floor(n/W)). Strided rather than
// contiguous shares make step k of W ranks with local batch b read exactly the rows that step k of
// one process with batch W·b reads, so data-parallel training follows the one-process run.
import { epochOrder } from '../data/order';
import { checkInteger, checkOptions, describe } from '../validate';
import { rank as worldRank, worldSize as worldSizeNow } from './index';

export interface ShardOptions {
  /** Epoch number: a different order each epoch (default 0). */
  epoch?: number;
  /** Seed of the order, the same on every rank (default 0). */
  seed?: number;
  /** Shuffle the rows (default true, as DistributedSampler); false: 0..n-1 in order. */
  shuffle?: boolean;
  /** The share of this rank instead of dist.rank() (to inspect another rank's share). */
  rank?: number;
  /** The number of shares instead of dist.worldSize(). */
  worldSize?: number;
}

export function shardIndices(n: number, opts?: ShardOptions): Int32Array {
  const fn = 'dist.shardIndices';
  const o = checkOptions(opts, fn, ['epoch', 'seed', 'shuffle', 'rank', 'worldSize']) as ShardOptions;
  checkInteger(n, fn, 'n', 0, 2 ** 31 - 1);
  const epoch = o.epoch === undefined ? 0 : checkInteger(o.epoch, fn, 'epoch', 0);
  const seed = o.seed === undefined ? 0 : checkInteger(o.seed, fn, 'seed', 0, 2 ** 32 - 1);
  if (o.shuffle !== undefined && typeof o.shuffle !== 'boolean') {
    throw new TypeError(`${fn}: shuffle must be a boolean, got ${describe(o.shuffle)}`);
  }
  const world = o.worldSize === undefined ? worldSizeNow() : checkInteger(o.worldSize, fn, 'worldSize', 1);
  const r = o.rank === undefined ? worldRank() : checkInteger(o.rank, fn, 'rank', 0, world - 1);
  const order = o.shuffle === false ? null : epochOrder(n, seed, epoch);
  const count = r < n % world ? Math.ceil(n / world) : Math.floor(n / world);
  const share = new Int32Array(count);
  for (let j = 0; j < count; j++) {
    const position = r + j * world;
    share[j] = order ? order[position]! : position;
  }
  return share;
}
