// Debugging helpers that exercise the runtime's error path.
import { native } from './native';
import { checkTensor, Tensor } from './tensor';
import { checkInteger } from './validate';

/**
 * A copy of the int32 tensor `values`. A value outside [0, limit) is found by
 * the kernel and reported as a RangeError (with the first bad flat index) at
 * the next data()/synchronize(); reading the returned copy rejects with it.
 */
export function checkIndices(values: Tensor, limit: number): Tensor {
  const handle = checkTensor(values, 'checkIndices', 'values')._handleFor('checkIndices', 'values');
  checkInteger(limit, 'checkIndices', 'limit', 0, 2 ** 31);
  return new Tensor(native().checkIndices(handle, limit));
}
