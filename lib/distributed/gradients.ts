// dist.syncGradients: the data-parallel gradient average (PyTorch DDP's all-reduce of gradient
// buckets, done after backward rather than overlapped with it). Gradients are packed into flat
// buckets of one dtype and device of about bucketBytes each, each bucket is averaged over the
// ranks by one allReduce('mean') queued on its stream, and the result is copied back into .grad.
import type { Tensor } from '../tensor';
import { checkTensor } from '../tensor';
import { noGrad } from '../autograd/engine';
import { checkFinite, checkOptions, describe } from '../validate';
import { groupTensors, packFlat, unpackFlat } from './flat';
import { allReduce, worldSize } from './index';

/** PyTorch DDP's default bucket_cap_mb (25 MiB). */
export const DEFAULT_BUCKET_BYTES = 25 * 2 ** 20;

export function syncGradients(params: Tensor[], opts?: { bucketBytes?: number }): void {
  const fn = 'dist.syncGradients';
  if (!Array.isArray(params)) throw new TypeError(`${fn}: params must be an array of Tensors, got ${describe(params)}`);
  params.forEach((p, i) => checkTensor(p, fn, `params[${i}]`));
  const o = checkOptions(opts, fn, ['bucketBytes']);
  const bucketBytes =
    o.bucketBytes === undefined ? DEFAULT_BUCKET_BYTES : checkFinite(o.bucketBytes, fn, 'bucketBytes');
  if (bucketBytes <= 0) throw new RangeError(`${fn}: bucketBytes must be positive, got ${bucketBytes}`);
  if (worldSize() === 1) return;
  // Parameters without a gradient take no part; every rank must have gradients for the same
  // parameters (a bucket of another size on another rank is reported by allReduce).
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
  noGrad(() => {
    for (const group of groupTensors(grads, bucketBytes)) {
      const members = group.members.map((i) => grads[i]!);
      const bucket = packFlat(members);
      try {
        allReduce(bucket, { op: 'mean' });
        unpackFlat(bucket, members);
      } finally {
        bucket.dispose();
      }
    }
  });
}
