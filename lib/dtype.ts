export type DType = 'float32' | 'float64' | 'bfloat16' | 'float16' | 'int32';

export const DTYPES: readonly DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int32'];

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && (DTYPES as readonly string[]).includes(value);
}

export function checkDType(value: unknown, fn: string, arg = 'dtype'): DType {
  if (!isDType(value)) {
    throw new TypeError(`${fn}: ${arg} must be one of ${DTYPES.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value;
}
