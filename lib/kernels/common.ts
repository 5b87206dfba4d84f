// What the raw kernel wrappers share: turning an options object into the
// native call's options, and native results into Tensors. TypeScript checks
// only what the native layer cannot see (an options object's names, which
// values are live Tensors); every other value passes through unchanged, and
// the native layer checks its JS type and the core its meaning and default
// (docs/architecture.md "Adding an op").
import type { NativeHandle, NativeTensor } from '../native';
import { checkTensor, Tensor } from '../tensor';
import { checkOptions, describe } from '../validate';

/** The option names of a kernel call: tensors (required or optional) and other values. */
export interface OptionNames {
  tensors: readonly string[];
  optionalTensors?: readonly string[];
  others?: readonly string[];
}

/**
 * TypeError unless `opts` is an object with only the named keys and every
 * tensor key holds a live Tensor (absent is allowed for optional ones).
 * Returns the options with those tensors replaced by their native handles.
 */
export function nativeOptions<T>(fn: string, opts: unknown, names: OptionNames): T {
  const { tensors, optionalTensors = [], others = [] } = names;
  if (opts === undefined) throw new TypeError(`${fn}: options must be an object`);
  const o = checkOptions(opts, fn, [...tensors, ...optionalTensors, ...others], 'options');
  const out: Record<string, unknown> = {};
  for (const name of tensors) {
    const v = o[name];
    if (v === undefined || v === null) throw new TypeError(`${fn}: ${name} is required (a Tensor)`);
    out[name] = handle(v, fn, name);
  }
  for (const name of optionalTensors) {
    const v = o[name];
    if (v !== undefined && v !== null) out[name] = handle(v, fn, name);
  }
  for (const name of others) if (o[name] !== undefined) out[name] = o[name];
  return out as T;
}

/** The native handle of a live Tensor; TypeError naming fn/arg otherwise. */
export function handle(value: unknown, fn: string, arg: string): NativeHandle {
  return checkTensor(value, fn, arg)._handleFor(fn, arg);
}

/** Same, for optional arguments: null/undefined stay absent. */
export function optionalHandle(value: unknown, fn: string, arg: string): NativeHandle | undefined {
  return value === null || value === undefined ? undefined : handle(value, fn, arg);
}

/** The native handles of an array of live Tensors. */
export function handles(value: unknown, fn: string, arg: string): NativeHandle[] {
  if (!Array.isArray(value)) throw new TypeError(`${fn}: ${arg} must be an array of Tensors, got ${describe(value)}`);
  return value.map((t, i) => handle(t, fn, `${arg}[${i}]`));
}

/** Wraps every native tensor of a result object; absent entries stay absent. */
export function wrapResult<T>(result: object): T {
  const out: Record<string, Tensor> = {};
  for (const [name, value] of Object.entries(result as Record<string, NativeTensor | undefined>)) {
    if (value !== undefined) out[name] = new Tensor(value);
  }
  return out as T;
}
