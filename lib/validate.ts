// The argument checks TypeScript makes itself: what the native layer cannot
// see (an options object's names) and the inputs of functions written in
// TypeScript. Everything an op receives is checked once, in the native core.

/** How a JS value reads in a message: "string 'x'", "number NaN", "array of length 2". */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return `${typeof value} ${String(value)}`;
}

/** `opts` as a record: TypeError unless an object (or undefined) with only `allowed` names. */
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

/**
 * An integer in [min, max] for a function written in TypeScript (layer sizes,
 * dims it computes with): TypeError for another JS type, RangeError for NaN,
 * ±Infinity, a fraction or a value out of range.
 */
/** An option that is a finite number (TypeScript-only options such as model
 * configurations and sampling settings; tensor options are checked in core). */
export function checkFinite(value: unknown, fn: string, arg: string): number {
  if (typeof value !== 'number') throw new TypeError(`${fn}: ${arg} must be a number, got ${describe(value)}`);
  if (!Number.isFinite(value)) throw new RangeError(`${fn}: ${arg} must be a finite number, got ${value}`);
  return value;
}

export function checkInteger(value: unknown, fn: string, arg: string, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number') throw new TypeError(`${fn}: ${arg} must be an integer, got ${describe(value)}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${fn}: ${arg} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}
