// Tensor creation: from host data, constants, ranges and Philox random numbers.
// TypeScript turns host data into a typed array and checks option names; the
// native core checks shapes, dtypes, devices and values and holds the defaults.
import { deviceOrDefault, type DeviceSpec } from './device';
import type { DType } from './dtype';
import { native, type HostArray } from './native';
import { Tensor } from './tensor';
import { checkOptions, describe } from './validate';

export interface CreationOptions {
  dtype?: DType;
  device?: DeviceSpec;
}

type TypedArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array;

export type NestedNumbers = number | readonly NestedNumbers[];

/** Shape and flat values of nested arrays; RangeError when ragged. */
function flattenNested(data: readonly NestedNumbers[], fn: string): { shape: number[]; values: number[] } {
  const shape: number[] = [];
  let level: unknown = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  const values: number[] = [];
  const walk = (node: unknown, depth: number, where: string) => {
    if (depth === shape.length) {
      if (typeof node !== 'number') throw new TypeError(`${fn}: data${where} must be a number, got ${describe(node)}`);
      values.push(node);
      return;
    }
    if (!Array.isArray(node) || node.length !== shape[depth]) {
      throw new RangeError(
        `${fn}: data is ragged: data${where} should be an array of length ${shape[depth]}, got ${describe(node)}`,
      );
    }
    node.forEach((child, i) => walk(child, depth + 1, `${where}[${i}]`));
  };
  walk(data, 0, '');
  return { shape, values };
}

/**
 * A tensor from host data: nested arrays (shape inferred), a flat array or
 * typed array (shape defaults to [length]). dtype defaults to int32 for an
 * Int32Array and float32 otherwise; values are rounded once to the dtype.
 */
export function tensor(
  data: NestedNumbers | ArrayLike<number> | TypedArray,
  opts: CreationOptions & { shape?: readonly number[] } = {},
): Tensor {
  const fn = 'tensor';
  checkOptions(opts, fn, ['shape', 'dtype', 'device']);
  let host: HostArray;
  let inferred: number[];
  if (typeof data === 'number') {
    host = new Float64Array([data]);
    inferred = [];
  } else if (data instanceof Float64Array || data instanceof Float32Array || data instanceof Int32Array) {
    host = data;
    inferred = [data.length];
  } else if (ArrayBuffer.isView(data)) {
    host = Float64Array.from(data as unknown as ArrayLike<number>);
    inferred = [host.length];
  } else if (Array.isArray(data)) {
    const { shape, values } = flattenNested(data as readonly NestedNumbers[], fn);
    host = Float64Array.from(values);
    inferred = shape;
  } else if (data !== null && typeof data === 'object' && typeof (data as ArrayLike<number>).length === 'number') {
    const like = data as ArrayLike<number>;
    host = new Float64Array(like.length);
    for (let i = 0; i < like.length; i++) {
      const v = like[i];
      if (typeof v !== 'number') throw new TypeError(`${fn}: data[${i}] must be a number, got ${describe(v)}`);
      host[i] = v;
    }
    inferred = [like.length];
  } else {
    throw new TypeError(
      `${fn}: data must be a number, an array, an array-like or a typed array, got ${describe(data)}`,
    );
  }
  const shape = opts.shape === undefined ? inferred : opts.shape;
  const dtype = opts.dtype;
  return new Tensor(native().fromHost({ data: host, shape, dtype, device: deviceOrDefault(opts.device, fn) }));
}

export function empty(shape: readonly number[], opts: CreationOptions = {}): Tensor {
  checkOptions(opts, 'empty', ['dtype', 'device']);
  return new Tensor(native().empty({ shape, dtype: opts.dtype, device: deviceOrDefault(opts.device, 'empty') }));
}

/** Every element = value; NaN and ±Infinity are values (int32 takes finite values in its range). */
export function full(shape: readonly number[], value: number, opts: CreationOptions = {}): Tensor {
  checkOptions(opts, 'full', ['dtype', 'device']);
  const device = deviceOrDefault(opts.device, 'full');
  return new Tensor(native().full({ fn: 'full', shape, value, dtype: opts.dtype, device }));
}

export function zeros(shape: readonly number[], opts: CreationOptions = {}): Tensor {
  checkOptions(opts, 'zeros', ['dtype', 'device']);
  const device = deviceOrDefault(opts.device, 'zeros');
  return new Tensor(native().full({ fn: 'zeros', shape, value: 0, dtype: opts.dtype, device }));
}

export function ones(shape: readonly number[], opts: CreationOptions = {}): Tensor {
  checkOptions(opts, 'ones', ['dtype', 'device']);
  const device = deviceOrDefault(opts.device, 'ones');
  return new Tensor(native().full({ fn: 'ones', shape, value: 1, dtype: opts.dtype, device }));
}

/** [0, 1, ..., n-1]; dtype defaults to float32 (int32 on request). */
export function arange(n: number, opts: CreationOptions = {}): Tensor {
  checkOptions(opts, 'arange', ['dtype', 'device']);
  return new Tensor(native().arange({ n, dtype: opts.dtype, device: deviceOrDefault(opts.device, 'arange') }));
}

/** Global seed for random creation without an explicit seed. */
export function manualSeed(seed: number): void {
  native().manualSeed({ seed });
}

/** Normal samples (Philox4x32-10 + Box-Muller): the same seed gives bit-identical float32 on CPU and CUDA. */
export function randn(
  shape: readonly number[],
  opts: CreationOptions & { seed?: number; mean?: number; std?: number } = {},
): Tensor {
  checkOptions(opts, 'randn', ['dtype', 'device', 'seed', 'mean', 'std']);
  const { dtype, seed, mean, std } = opts;
  return new Tensor(native().randn({ shape, dtype, device: deviceOrDefault(opts.device, 'randn'), seed, mean, std }));
}

/** Uniform samples in [low, high) (Philox4x32-10). */
export function rand(
  shape: readonly number[],
  opts: CreationOptions & { seed?: number; low?: number; high?: number } = {},
): Tensor {
  checkOptions(opts, 'rand', ['dtype', 'device', 'seed', 'low', 'high']);
  const { dtype, seed, low, high } = opts;
  return new Tensor(native().rand({ shape, dtype, device: deviceOrDefault(opts.device, 'rand'), seed, low, high }));
}
