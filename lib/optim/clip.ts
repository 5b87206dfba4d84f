// Gradient clipping by total norm (torch.nn.utils.clip_grad_norm_), on the
// device and without a host sync.
import { Tensor, checkTensor } from '../tensor';
import * as dense from '../kernels/dense';
import { noGrad } from '../autograd/engine';

/**
 * Scales all gradients in place so their total L2 norm is at most maxNorm;
 * returns the norm before clipping (0-d). Parameters without a gradient are
 * skipped; with none at all the norm is a 0-d zero on the CPU.
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): Tensor {
  const fn = 'clipGradNorm';
  if (!Array.isArray(params)) throw new TypeError(`${fn}: params must be an array of Tensors`);
  const grads = params.map((p, i) => checkTensor(p, fn, `params[${i}]`).grad).filter((g): g is Tensor => g !== null);
  return noGrad(() => dense.gradNormClip_(grads, maxNorm));
}
