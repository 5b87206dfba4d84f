// Debugging helpers that exercise the runtime's error path.
import { handle } from './kernels/common';
import { native } from './native';
import { Tensor } from './tensor';

/**
 * A copy of the int32 tensor `values`. A value outside [0, limit) is found by
 * the kernel and reported as a RangeError (with the first bad flat index) at
 * the next data()/synchronize(); reading the returned copy rejects with it.
 */
export function checkIndices(values: Tensor, limit: number): Tensor {
  return new Tensor(native().checkIndices({ values: handle(values, 'checkIndices', 'values'), limit }));
}
