// JS-level argument checks (types and structure) shared by the public API.
// Semantic checks (shape agreement, sizes) live in the native core.
import { describe } from './device';

export function checkShape(shape: unknown, fn: string, arg = 'shape', allowInfer = false): readonly number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${fn}: ${arg} must be an array of integers, got ${describe(shape)}`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d)) {
      throw new TypeError(`${fn}: ${arg} must be an array of integers, got [${shape.join(',')}]`);
    }
    if (d < 0 && !(allowInfer && d === -1)) {
      throw new RangeError(`${fn}: ${arg} must have non-negative sizes, got [${shape.join(',')}]`);
    }
  }
  return shape as readonly number[];
}

export function checkOptions(
  opts: unknown,
  fn: string,
  allowed: readonly string[],
  arg = 'opts',
): Record<string, unknown> {
  if (opts === undefined) return {};
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw new TypeError(`${fn}: ${arg} must be an object, got ${describe(opts)}`);
  }
  for (const key of Object.keys(opts)) {
    if (!allowed.includes(key)) {
      throw new TypeError(`${fn}: unknown option '${key}' (expected one of ${allowed.join(', ')})`);
    }
  }
  return opts as Record<string, unknown>;
}

export function checkNumber(value: unknown, fn: string, arg: string): number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`${fn}: ${arg} must be a number, got ${describe(value)}`);
  }
  return value;
}

export function checkInteger(value: unknown, fn: string, arg: string, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`${fn}: ${arg} must be an integer, got ${describe(value)}`);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${fn}: ${arg} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}
