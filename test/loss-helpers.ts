// What the loss tests share: the accuracy bars of docs/kernels.md per dtype
// and tensor constructors.
import * as lmk from 'lmkernels';

export type FloatDType = 'float32' | 'float64' | 'bfloat16' | 'float16';

/** Relative error bars: forward results and gradients. */
export const TOL: Record<FloatDType, { fwd: number; grad: number }> = {
  float64: { fwd: 1e-12, grad: 1e-12 },
  float32: { fwd: 1e-5, grad: 1e-4 },
  bfloat16: { fwd: 1e-2, grad: 1e-2 },
  float16: { fwd: 1e-2, grad: 1e-2 },
};

export const int32 = (v: ArrayLike<number>, shape: number[]) =>
  lmk.tensor(Int32Array.from(v), { shape, dtype: 'int32' });
export const floats = (v: ArrayLike<number>, shape: number[], dtype: FloatDType = 'float64') =>
  lmk.tensor(Float64Array.from(v), { shape, dtype });
