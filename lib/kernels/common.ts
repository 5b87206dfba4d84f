// Shared plumbing for kernel entry points: check an options object, turn its
// tensor fields into native handles, wrap the native results as Tensors.
import type { NativeTensor } from '../native';
import { Tensor } from '../tensor';
import { checkOptions } from '../validate';

type NativeResult = { [name: string]: NativeTensor | undefined };

/**
 * TypeError unless `opts` is an object with only `allowed` keys and every key
 * in `tensors` holds a live Tensor (or is absent, when listed in `optional`).
 * Returns the options with those tensors replaced by native handles.
 */
export function tensorOptions(
  fn: string,
  opts: unknown,
  tensors: readonly string[],
  optional: readonly string[],
  others: readonly string[] = [],
): Record<string, unknown> {
  const o = checkOptions(opts, fn, [...tensors, ...optional, ...others], 'options');
  if (opts === undefined) throw new TypeError(`${fn}: options must be an object`);
  const out: Record<string, unknown> = { ...o };
  for (const name of [...tensors, ...optional]) {
    const v = o[name];
    if (v === undefined || v === null) {
      if (tensors.includes(name)) throw new TypeError(`${fn}: ${name} is required (a Tensor)`);
      delete out[name];
      continue;
    }
    if (!(v instanceof Tensor)) throw new TypeError(`${fn}: ${name} must be a Tensor, got ${typeof v}`);
    out[name] = v._handleFor(fn, name);
  }
  return out;
}

/** Wraps every native tensor of a result object; absent entries stay absent. */
export function wrapResult<T>(result: object): T {
  const out: Record<string, Tensor> = {};
  for (const [name, value] of Object.entries(result as NativeResult)) if (value) out[name] = new Tensor(value);
  return out as unknown as T;
}
