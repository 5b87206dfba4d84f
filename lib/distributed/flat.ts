// Flat buffers of many tensors, for collectives that move a whole model's gradients or
// parameters in a few calls (dist.syncGradients' buckets, optim.ZeroAdamW's flat parameters).
// A group holds tensors of one dtype on one device; packing concatenates them flattened (one
// copy), unpacking copies each range back into its tensor (shape restored by a view).
import type { DType } from '../dtype';
import type { Tensor } from '../tensor';
import * as dense from '../kernels/dense';
import { zeros } from '../creation';

export const DTYPE_BYTES: Record<DType, number> = { float32: 4, float64: 8, bfloat16: 2, float16: 2, int32: 4 };

/** Tensors of one dtype on one device, in the order given. */
export interface FlatGroup {
  dtype: DType;
  device: Tensor['device'];
  /** Indices into the list that was grouped. */
  members: number[];
  numel: number;
}

/**
 * Groups tensors by (dtype, device), keeping their order; a group is closed once it holds
 * maxBytes or more (Infinity: one group per dtype and device). A tensor is never split.
 */
export function groupTensors(tensors: readonly Tensor[], maxBytes = Infinity): FlatGroup[] {
  const closed: FlatGroup[] = [];
  const open = new Map<string, FlatGroup>();
  tensors.forEach((t, i) => {
    const key = `${t.dtype}@${t.device.toString()}`;
    let group = open.get(key);
    if (!group) {
      group = { dtype: t.dtype, device: t.device, members: [], numel: 0 };
      open.set(key, group);
    }
    group.members.push(i);
    group.numel += t.numel;
    if (group.numel * DTYPE_BYTES[t.dtype] >= maxBytes) {
      closed.push(group);
      open.delete(key);
    }
  });
  return [...closed, ...open.values()];
}

/** A new 1-D tensor: the tensors flattened one after the other, then `padding` zeros. */
export function packFlat(tensors: readonly Tensor[], padding = 0): Tensor {
  const parts = tensors.map((t) => t.reshape([t.numel]));
  if (padding > 0) parts.push(zeros([padding], { dtype: tensors[0]!.dtype, device: tensors[0]!.device }));
  try {
    return parts.length === 1 ? parts[0]!.clone() : dense.concat(parts, 0);
  } finally {
    for (const p of parts) p.dispose();
  }
}

/** Copies consecutive ranges of the 1-D `flat` (from element `offset` on) into each target. */
export function unpackFlat(flat: Tensor, targets: readonly Tensor[], offset = 0): void {
  let at = offset;
  for (const target of targets) {
    const piece = dense.slice(flat, 0, at, at + target.numel);
    const shaped = piece.reshape(target.shape);
    dense.copyInto_(target, shaped);
    shaped.dispose();
    piece.dispose();
    at += target.numel;
  }
}
