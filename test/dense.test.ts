// The dense kernels (lib/kernels/dense.ts) against independent float64
// references (test/dense-reference.ts): forward values in every dtype,
// backward kernels against central differences of the forward in float64,
// broadcasting, both GEMM paths (OpenBLAS when it loads here, and ours through
// a child process with LMK_GEMM=builtin), determinism, AdamW against a
// transcription of PyTorch's, gradient clipping, and bad inputs.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
// The kernels are internal (lib/kernels): load them from the same build the
// package entry uses, so both share one Tensor class and one addon.
import * as dense from '../dist/cjs/kernels/dense.js';
import {
  type Arr,
  numel,
  numericGrad,
  randomArray,
  refAdamwStep,
  refBinary,
  refConcat,
  refEmbedding,
  refEmbeddingBackward,
  refExpandTo,
  refLayerNorm,
  refMatmul,
  refPermute,
  refRope,
  refSlice,
  refSum,
  refSumToShape,
  refTokenShift,
  relError,
  scalarFns,
  unaryFns,
} from './dense-reference';

type DType = 'float64' | 'float32' | 'bfloat16' | 'float16';
const FLOATS: DType[] = ['float64', 'float32', 'bfloat16', 'float16'];
const TOL: Record<DType, number> = { float64: 1e-12, float32: 1e-5, bfloat16: 1e-2, float16: 1e-2 };
const GRAD_TOL = 1e-6; // backward kernels against finite differences, float64

function T(data: ArrayLike<number>, shape: readonly number[], dtype: DType | 'int32' = 'float64'): lmk.Tensor {
  return lmk.tensor(Float64Array.from(data), { shape, dtype });
}

/** The values as stored (what the kernels see), in float64. */
function stored(data: ArrayLike<number>, shape: readonly number[], dtype: DType): Float64Array {
  return lmk.tidy(() => Float64Array.from(T(data, shape, dtype).dataSync()));
}

function values(t: lmk.Tensor): Float64Array {
  return Float64Array.from(t.dataSync());
}

function arr(data: Float64Array, shape: readonly number[]): Arr {
  return { data, shape };
}

/** A float64 forward for finite differences: x → f(x) values, tensors freed. */
function fwd(f: (x: lmk.Tensor) => lmk.Tensor, shape: readonly number[]) {
  return (x: Float64Array) => lmk.tidy(() => values(f(T(x, shape))));
}

describe('element-wise ops', () => {
  const cases: [number[], number[]][] = [
    [
      [2, 3],
      [2, 3],
    ],
    [
      [2, 1, 3],
      [4, 1],
    ],
    [[3], [2, 3]],
    [[], [2, 2]],
    [
      [4, 1, 5],
      [1, 6, 1],
    ],
  ];

  it('binary ops broadcast like NumPy in every dtype', () => {
    lmk.tidy(() => {
      for (const [sa, sb] of cases) {
        const a = randomArray(numel(sa), 1, 0.5, 2),
          b = randomArray(numel(sb), 2, 0.5, 2);
        for (const dtype of FLOATS) {
          const ar = stored(a, sa, dtype),
            br = stored(b, sb, dtype);
          for (const op of ['add', 'sub', 'mul', 'div', 'maximum'] as const) {
            const out = dense.binary(op, T(a, sa, dtype), T(b, sb, dtype));
            const ref = refBinary(op, arr(ar, sa), arr(br, sb));
            expect(out.shape).toEqual(ref.shape);
            expect(out.dtype).toBe(dtype);
            expect(relError(values(out), ref.data)).toBeLessThanOrEqual(TOL[dtype]);
          }
        }
      }
    });
  });

  it('binaryBackward sums over broadcast axes (finite differences)', () => {
    lmk.tidy(() => {
      for (const [sa, sb] of cases) {
        const a = randomArray(numel(sa), 3, 0.5, 1.5),
          b = randomArray(numel(sb), 4, 0.5, 1.5);
        const outShape = refBinary('add', arr(a, sa), arr(b, sb)).shape;
        const gy = randomArray(numel(outShape), 5);
        for (const op of ['add', 'sub', 'mul', 'div', 'maximum'] as const) {
          const { ga, gb } = dense.binaryBackward(op, T(a, sa), T(b, sb), T(gy, outShape));
          expect(ga.shape).toEqual(sa);
          expect(gb.shape).toEqual(sb);
          const fa = fwd((x) => dense.binary(op, x, T(b, sb)), sa);
          const fb = fwd((x) => dense.binary(op, T(a, sa), x), sb);
          expect(relError(values(ga), numericGrad(fa, a, gy))).toBeLessThanOrEqual(GRAD_TOL);
          expect(relError(values(gb), numericGrad(fb, b, gy))).toBeLessThanOrEqual(GRAD_TOL);
        }
      }
      // maximum splits the gradient of a tie in half.
      const { ga, gb } = dense.binaryBackward('maximum', T([1, 2], [2]), T([1, 1], [2]), T([1, 1], [2]));
      expect(Array.from(ga.dataSync())).toEqual([0.5, 1]);
      expect(Array.from(gb.dataSync())).toEqual([0.5, 0]);
    });
  });

  it('scalar ops', () => {
    lmk.tidy(() => {
      const x = randomArray(50, 6, 0.5, 2);
      for (const dtype of FLOATS) {
        const xr = stored(x, [50], dtype);
        for (const [op, s] of [
          ['add', 1.5],
          ['mul', -2],
          ['pow', 2],
          ['pow', 0.5],
          ['pow', -1.5],
          ['rsub', 1],
          ['div_by', 3],
        ] as const) {
          const out = dense.scalarOp(op, T(x, [50], dtype), s);
          const ref = xr.map((v) => scalarFns[op]!(v, s));
          expect(relError(values(out), ref)).toBeLessThanOrEqual(TOL[dtype]);
        }
      }
    });
  });

  it('unary ops in every dtype and their gradients (finite differences)', () => {
    lmk.tidy(() => {
      const x = randomArray(40, 7, 0.1, 2.5);
      const signed = randomArray(40, 8, -3, 3);
      const gy = randomArray(40, 9);
      for (const op of Object.keys(unaryFns) as dense.UnaryOp[]) {
        const input = op === 'log' || op === 'sqrt' ? x : signed;
        for (const dtype of FLOATS) {
          const xr = stored(input, [40], dtype);
          const out = dense.unary(op, T(input, [40], dtype));
          expect(relError(values(out), xr.map(unaryFns[op]!))).toBeLessThanOrEqual(TOL[dtype]);
        }
        const xt = T(input, [40]);
        const y = dense.unary(op, xt);
        const gx = dense.unaryBackward(op, xt, y, T(gy, [40]));
        const numeric = numericGrad(
          fwd((t) => dense.unary(op, t), [40]),
          input,
          gy,
        );
        expect(relError(values(gx), numeric), op).toBeLessThanOrEqual(GRAD_TOL);
      }
      // The input or output not needed may be null.
      const y = dense.unary('exp', T([0, 1], [2]));
      expect(relError(values(dense.unaryBackward('exp', null, y, T([1, 1], [2]))), [1, Math.E])).toBeLessThan(1e-15);
      expect(() => dense.unaryBackward('exp', T([0, 1], [2]), null, T([1, 1], [2]))).toThrow(
        /ops.expBackward: y \(the forward's output\) is required/,
      );
      // Extreme inputs stay finite where the function is.
      expect(Array.from(dense.unary('sigmoid', T([-1000, 1000], [2], 'float32')).dataSync())).toEqual([0, 1]);
      expect(Array.from(dense.unary('silu', T([-1000], [1], 'float32')).dataSync())).toEqual([-0]);
    });
  });

  it('fill_, addInPlace_ and copyInto_ work in place', () => {
    lmk.tidy(() => {
      const x = randomArray(12, 10),
        y = randomArray(12, 11);
      const t = T(x, [3, 4]);
      expect(dense.addInPlace_(t, T(y, [3, 4]), -0.5)).toBe(t);
      expect(
        relError(
          values(t),
          x.map((v, i) => v - 0.5 * y[i]!),
        ),
      ).toBeLessThan(1e-15);
      dense.addInPlace_(t, T(y, [3, 4]));
      expect(
        relError(
          values(t),
          x.map((v, i) => v + 0.5 * y[i]!),
        ),
      ).toBeLessThan(1e-15);
      dense.fill_(t, 3);
      expect(Array.from(t.dataSync())).toEqual(new Array(12).fill(3));
      const half = lmk.zeros([3, 4], { dtype: 'bfloat16' });
      dense.copyInto_(half, T(x, [3, 4]));
      expect(relError(values(half), x)).toBeLessThan(1e-2);
      const ids = lmk.zeros([2], { dtype: 'int32' });
      dense.fill_(ids, 7);
      expect(Array.from(ids.dataSync())).toEqual([7, 7]);
    });
  });
});

describe('reductions and broadcasting', () => {
  const x = randomArray(3 * 4 * 5 * 2, 12);
  const shape = [3, 4, 5, 2];

  it('sum over any axes (float64 exact, float32 and bf16 within tolerance)', () => {
    lmk.tidy(() => {
      const dimsCases: [number[], boolean][] = [
        [[1], false],
        [[0, 2], true],
        [[-1, 1], false],
        [[], false],
        [[], true],
        [[0, 1, 2, 3], false],
        [[3], true],
      ];
      for (const dtype of FLOATS) {
        const xr = stored(x, shape, dtype);
        for (const [dims, keepDim] of dimsCases) {
          const out = dense.sum(T(x, shape, dtype), dims, keepDim);
          const ref = refSum(arr(xr, shape), dims, keepDim);
          expect(out.shape).toEqual(ref.shape);
          expect(relError(values(out), ref.data)).toBeLessThanOrEqual(TOL[dtype]);
        }
      }
    });
  });

  it('long float32 sums stay accurate', () => {
    lmk.tidy(() => {
      const big = randomArray(3 * 100_000, 13);
      const br = stored(big, [300_000], 'float32');
      const cases: [number[], number[]][] = [
        [[3, 100_000], [1]],
        [[100_000, 3], [0]],
        [[300_000], []],
      ];
      for (const [s, dims] of cases) {
        const out = dense.sum(T(big, s, 'float32'), dims, false);
        expect(relError(values(out), refSum(arr(br, s), dims, false).data)).toBeLessThanOrEqual(1e-5);
      }
    });
  });

  it('sumToShape reverses broadcasting and expandTo materialises it', () => {
    lmk.tidy(() => {
      for (const target of [[3, 1, 5, 1], [5, 2], [1], [], [4, 1, 1]]) {
        const out = dense.sumToShape(T(x, shape), target);
        expect(out.shape).toEqual(target);
        expect(relError(values(out), refSumToShape(arr(x, shape), target).data)).toBeLessThanOrEqual(1e-12);
      }
      const small = randomArray(5, 14);
      const e = dense.expandTo(T(small, [5, 1]), [2, 5, 3]);
      expect(e.shape).toEqual([2, 5, 3]);
      expect(relError(values(e), refExpandTo(arr(small, [5, 1]), [2, 5, 3]).data)).toBe(0);
      // expandTo and sumToShape are each other's gradient.
      const g = randomArray(30, 15);
      const numeric = numericGrad(
        fwd((t) => dense.expandTo(t, [2, 5, 3]), [5, 1]),
        small,
        g,
      );
      expect(relError(values(dense.sumToShape(T(g, [2, 5, 3]), [5, 1])), numeric)).toBeLessThanOrEqual(GRAD_TOL);
      expect(() => dense.sumToShape(T(x, shape), [4])).toThrow(RangeError);
      expect(() => dense.expandTo(T(small, [5, 1]), [5, 2, 3])).toThrow(
        /ops.expandTo: x of shape \[5,1\] cannot be broadcast to shape \[5,2,3\]/,
      );
    });
  });
});

// ---- matmul ---------------------------------------------------------------------------

interface MatmulCase {
  sa: number[];
  sb: number[];
  transA?: boolean;
  transB?: boolean;
}

const MATMUL_CASES: MatmulCase[] = [
  { sa: [7, 5], sb: [5, 3] },
  { sa: [2, 33, 70], sb: [70, 65] },
  { sa: [3, 40, 17], sb: [3, 17, 9] },
  { sa: [2, 1, 4, 6], sb: [3, 6, 5] },
  { sa: [64, 130], sb: [64, 96], transA: true },
  { sa: [2, 20, 300], sb: [2, 50, 300], transB: true },
  { sa: [5, 9], sb: [4, 5], transA: true, transB: true },
  { sa: [3, 0], sb: [0, 4] },
  { sa: [200, 40, 8], sb: [200, 8, 8] },
];

/** Worst relative error of every case and dtype, from the current process's GEMM. */
function matmulErrors(): number[] {
  const errors: number[] = [];
  lmk.tidy(() => {
    MATMUL_CASES.forEach((c, ci) => {
      const a = randomArray(numel(c.sa), 100 + ci),
        b = randomArray(numel(c.sb), 200 + ci);
      for (const dtype of FLOATS) {
        const out = dense.matmul(T(a, c.sa, dtype), T(b, c.sb, dtype), { transA: c.transA, transB: c.transB });
        const ref = refMatmul(arr(stored(a, c.sa, dtype), c.sa), arr(stored(b, c.sb, dtype), c.sb), c.transA, c.transB);
        if (JSON.stringify(out.shape) !== JSON.stringify(ref.shape)) errors.push(Infinity);
        else errors.push(relError(values(out), ref.data) / TOL[dtype]);
      }
    });
  });
  return errors;
}

describe('matmul', () => {
  it('matches float64 references with the default GEMM (OpenBLAS when it loads)', () => {
    const info = dense.gemmInfo();
    expect(['openblas', 'builtin']).toContain(info.cpu);
    expect(['cublas', 'builtin', 'unavailable']).toContain(info.cuda);
    if (!lmk.cudaAvailable()) expect(info.cuda).toBe('unavailable');
    if (process.env.LMK_EXPECT_OPENBLAS) expect(info.cpu).toBe('openblas');
    for (const e of matmulErrors()) expect(e).toBeLessThanOrEqual(1);
  });

  it('matches them with our kernels too (setGemmBackend and LMK_GEMM=builtin in a child process)', () => {
    dense.setGemmBackend('builtin');
    try {
      expect(dense.gemmInfo().cpu).toBe('builtin');
      for (const e of matmulErrors()) expect(e).toBeLessThanOrEqual(1);
    } finally {
      dense.setGemmBackend('auto');
    }
    // A fresh process with the environment variable: the documented switch.
    const root = join(__dirname, '..');
    const script = `
      const lmk = require(${JSON.stringify(join(root, 'dist/cjs/index.js'))});
      const dense = require(${JSON.stringify(join(root, 'dist/cjs/kernels/dense.js'))});
      const a = lmk.tensor(Float64Array.from({ length: 96 * 80 }, (_, i) => Math.sin(i)), { shape: [96, 80], dtype: 'float32' });
      const b = lmk.tensor(Float64Array.from({ length: 80 * 72 }, (_, i) => Math.cos(i)), { shape: [80, 72], dtype: 'float32' });
      const c = dense.matmul(a, b);
      process.stdout.write(JSON.stringify({ info: dense.gemmInfo(), c: Array.from(c.dataSync()) }));`;
    const child = JSON.parse(
      execFileSync(process.execPath, ['-e', script], {
        env: { ...process.env, LMK_GEMM: 'builtin' },
        encoding: 'utf8',
      }),
    ) as { info: dense.GemmInfo; c: number[] };
    expect(child.info.cpu).toBe('builtin');
    const a = stored(
      Float64Array.from({ length: 96 * 80 }, (_, i) => Math.sin(i)),
      [96 * 80],
      'float32',
    );
    const b = stored(
      Float64Array.from({ length: 80 * 72 }, (_, i) => Math.cos(i)),
      [80 * 72],
      'float32',
    );
    expect(relError(child.c, refMatmul(arr(a, [96, 80]), arr(b, [80, 72])).data)).toBeLessThanOrEqual(1e-5);
  });

  it('gradients are matmuls with transposed operands (finite differences)', () => {
    lmk.tidy(() => {
      const a = randomArray(2 * 4 * 3, 30),
        b = randomArray(3 * 5, 31),
        gy = randomArray(2 * 4 * 5, 32);
      // y = a·b with a [2,4,3], b [3,5]: ga = gy·bᵀ, gb = Σ_batch aᵀ·gy.
      const ga = dense.matmul(T(gy, [2, 4, 5]), T(b, [3, 5]), { transB: true });
      const gb = dense.matmul(T(a, [8, 3]), T(gy, [8, 5]), { transA: true });
      expect(
        relError(
          values(ga),
          numericGrad(
            fwd((t) => dense.matmul(t, T(b, [3, 5])), [2, 4, 3]),
            a,
            gy,
          ),
        ),
      ).toBeLessThanOrEqual(GRAD_TOL);
      expect(
        relError(
          values(gb),
          numericGrad(
            fwd((t) => dense.matmul(T(a, [2, 4, 3]), t), [3, 5]),
            b,
            gy,
          ),
        ),
      ).toBeLessThanOrEqual(GRAD_TOL);
    });
  });

  it('rejects shapes that do not multiply', () => {
    lmk.tidy(() => {
      expect(() => dense.matmul(T(new Float64Array(6), [2, 3]), T(new Float64Array(20), [4, 5]))).toThrow(RangeError);
      expect(() => dense.matmul(T(new Float64Array(6), [2, 3]), T(new Float64Array(20), [4, 5]))).toThrow(
        'ops.matmul: a has shape [2,3] but b has shape [4,5]: inner sizes 3 and 4 differ',
      );
      expect(() => dense.matmul(T(new Float64Array(24), [2, 3, 4]), T(new Float64Array(60), [3, 4, 5]))).toThrow(
        /do not broadcast/,
      );
      expect(() => dense.matmul(T([1, 2], [2]), T([1, 2], [2, 1]))).toThrow(
        /ops.matmul: a must have shape \[..., M, K\]/,
      );
      expect(() => dense.matmul(T([1], [1, 1]), T([1], [1, 1], 'float32'))).toThrow(TypeError);
      expect(() => dense.matmul(T([1], [1, 1]), T([1], [1, 1]), { transA: 1 as never })).toThrow(
        /ops.matmul: transA must be a boolean/,
      );
    });
  });
});

// ---- norms ------------------------------------------------------------------------------

describe('layer norm and RMS norm', () => {
  const shape = [2, 3, 8];
  const C = 8;
  const x = randomArray(48, 40, -2, 2),
    w = randomArray(C, 41, 0.5, 1.5),
    b = randomArray(C, 42),
    gy = randomArray(48, 43);

  it('forward matches the reference in every dtype', () => {
    lmk.tidy(() => {
      for (const dtype of FLOATS) {
        const xr = stored(x, shape, dtype),
          wr = stored(w, [C], dtype),
          br = stored(b, [C], dtype);
        const ln = dense.layerNorm(T(x, shape, dtype), T(w, [C], dtype), T(b, [C], dtype), 1e-5);
        const ref = refLayerNorm(arr(xr, shape), wr, br, 1e-5);
        expect(relError(values(ln.y), ref.y)).toBeLessThanOrEqual(TOL[dtype]);
        expect(ln.mean.shape).toEqual([2, 3]);
        expect(ln.mean.dtype).toBe(dtype === 'float64' ? 'float64' : 'float32');
        expect(relError(values(ln.rstd), ref.rstd)).toBeLessThanOrEqual(dtype === 'float64' ? 1e-12 : 1e-5);
        const rms = dense.rmsNorm(T(x, shape, dtype), T(w, [C], dtype), 1e-6);
        expect(relError(values(rms.y), refLayerNorm(arr(xr, shape), wr, null, 1e-6, true).y)).toBeLessThanOrEqual(
          TOL[dtype],
        );
        const plain = dense.layerNorm(T(x, shape, dtype), null, null, 1e-5);
        expect(relError(values(plain.y), refLayerNorm(arr(xr, shape), null, null, 1e-5).y)).toBeLessThanOrEqual(
          TOL[dtype],
        );
      }
    });
  });

  it('backward matches finite differences; gWeight/gBias present as documented', () => {
    lmk.tidy(() => {
      const f = dense.layerNorm(T(x, shape), T(w, [C]), T(b, [C]), 1e-5);
      const g = dense.layerNormBackward(T(x, shape), T(w, [C]), f.mean, f.rstd, T(gy, shape), T(b, [C]));
      const lnX = fwd((t) => dense.layerNorm(t, T(w, [C]), T(b, [C]), 1e-5).y, shape);
      const lnW = fwd((t) => dense.layerNorm(T(x, shape), t, T(b, [C]), 1e-5).y, [C]);
      const lnB = fwd((t) => dense.layerNorm(T(x, shape), T(w, [C]), t, 1e-5).y, [C]);
      expect(relError(values(g.gx), numericGrad(lnX, x, gy))).toBeLessThanOrEqual(GRAD_TOL);
      expect(relError(values(g.gWeight!), numericGrad(lnW, w, gy))).toBeLessThanOrEqual(GRAD_TOL);
      expect(relError(values(g.gBias!), numericGrad(lnB, b, gy))).toBeLessThanOrEqual(GRAD_TOL);
      expect(
        Object.keys(dense.layerNormBackward(T(x, shape), T(w, [C]), f.mean, f.rstd, T(gy, shape), null)).sort(),
      ).toEqual(['gWeight', 'gx']);
      expect(Object.keys(dense.layerNormBackward(T(x, shape), T(w, [C]), f.mean, f.rstd, T(gy, shape))).sort()).toEqual(
        ['gBias', 'gWeight', 'gx'],
      );
      const p = dense.layerNorm(T(x, shape), null, null, 1e-5);
      const gp = dense.layerNormBackward(T(x, shape), null, p.mean, p.rstd, T(gy, shape));
      expect(Object.keys(gp)).toEqual(['gx']);
      expect(
        relError(
          values(gp.gx),
          numericGrad(
            fwd((t) => dense.layerNorm(t, null, null, 1e-5).y, shape),
            x,
            gy,
          ),
        ),
      ).toBeLessThanOrEqual(GRAD_TOL);

      const r = dense.rmsNorm(T(x, shape), T(w, [C]), 1e-6);
      const gr = dense.rmsNormBackward(T(x, shape), T(w, [C]), r.rstd, T(gy, shape));
      const rmsX = fwd((t) => dense.rmsNorm(t, T(w, [C]), 1e-6).y, shape);
      const rmsW = fwd((t) => dense.rmsNorm(T(x, shape), t, 1e-6).y, [C]);
      expect(relError(values(gr.gx), numericGrad(rmsX, x, gy))).toBeLessThanOrEqual(GRAD_TOL);
      expect(relError(values(gr.gWeight!), numericGrad(rmsW, w, gy))).toBeLessThanOrEqual(GRAD_TOL);
      expect(dense.rmsNormBackward(T(x, shape), null, r.rstd, T(gy, shape)).gWeight).toBeUndefined();
    });
  });

  it('rejects bad shapes and dtypes', () => {
    lmk.tidy(() => {
      expect(() => dense.layerNorm(T(x, shape), T(w, [C]), T([1, 2], [2]), 1e-5)).toThrow(
        /ops.layerNorm: bias must have shape \[C\] = \[8\]/,
      );
      expect(() => dense.layerNorm(T(x, shape), T(w, [C], 'float32'), null, 1e-5)).toThrow(TypeError);
      expect(() => dense.rmsNorm(T(x, shape), null, -1)).toThrow(/ops.rmsNorm: eps must be a finite number >= 0/);
      const f = dense.rmsNorm(T(x, shape), null, 1e-6);
      expect(() => dense.rmsNormBackward(T(x, shape), null, f.rstd, T(gy, [6, 8]))).toThrow(
        /ops.rmsNormBackward: gy must have the shape of x/,
      );
    });
  });
});

// ---- embedding --------------------------------------------------------------------------

describe('embedding', () => {
  const V = 11,
    D = 6;
  const weight = randomArray(V * D, 50);
  const ids = Int32Array.from({ length: 40 }, (_, i) => (i * 7 + (i % 3)) % V);

  it('gathers rows and scatters gradients deterministically', async () => {
    await lmk.tidy(async () => {
      for (const dtype of FLOATS) {
        const wr = stored(weight, [V, D], dtype);
        const out = dense.embedding(T(weight, [V, D], dtype), lmk.tensor(ids, { shape: [5, 8], dtype: 'int32' }));
        expect(out.shape).toEqual([5, 8, D]);
        expect(relError(values(out), refEmbedding(wr, D, ids))).toBe(0);
        const g = randomArray(40 * D, 51);
        const gr = stored(g, [40 * D], dtype);
        const gw = dense.embeddingBackward(
          T(g, [5, 8, D], dtype),
          lmk.tensor(ids, { shape: [5, 8], dtype: 'int32' }),
          V,
        );
        expect(gw.shape).toEqual([V, D]);
        expect(relError(values(gw), refEmbeddingBackward(gr, D, ids, V))).toBeLessThanOrEqual(TOL[dtype]);
      }
      // Same bits every run.
      const many = Int32Array.from({ length: 20_000 }, (_, i) => ((i * 2654435761) % 97) >>> 0);
      const g = lmk.randn([20_000, 32], { seed: 3 });
      const idsT = lmk.tensor(
        Int32Array.from(many, (v) => v % 97),
        { shape: [20_000], dtype: 'int32' },
      );
      const first = await dense.embeddingBackward(g, idsT, 97).data();
      for (let run = 0; run < 3; run++) expect(await dense.embeddingBackward(g, idsT, 97).data()).toEqual(first);
    });
  });

  it('the gradient matches finite differences of the gather', () => {
    lmk.tidy(() => {
      const small = Int32Array.from([3, 0, 3, 10, 3]);
      const gy = randomArray(5 * D, 52);
      const idsT = lmk.tensor(small, { shape: [5], dtype: 'int32' });
      const numeric = numericGrad(
        fwd((t) => dense.embedding(t, idsT), [V, D]),
        weight,
        gy,
      );
      expect(relError(values(dense.embeddingBackward(T(gy, [5, D]), idsT, V)), numeric)).toBeLessThanOrEqual(GRAD_TOL);
    });
  });

  it('an id outside [0, V) is a RangeError at the next sync, naming ids and the index', async () => {
    const w = T(weight, [V, D]);
    const bad = lmk.tensor(Int32Array.from([1, 2, V, -1]), { shape: [4], dtype: 'int32' });
    const out = dense.embedding(w, bad); // no throw yet: found by the kernel
    await expect(lmk.synchronize('cpu')).rejects.toThrow(RangeError);
    await expect(out.data()).rejects.toThrow(/ops.embedding: ids has a value outside \[0, 11\) at flat index 2/);
    const gw = dense.embeddingBackward(T(randomArray(4 * D, 53), [4, D]), bad, V);
    await expect(gw.data()).rejects.toThrow(/ops.embeddingBackward: ids has a value outside \[0, 11\) at flat index 2/);
    await lmk.synchronize('cpu'); // the stream is usable again
    expect(() => dense.embedding(w, T([1, 2], [2]))).toThrow(/ops.embedding: ids must have dtype int32/);
    expect(() =>
      dense.embeddingBackward(
        T(new Float64Array(12), [2, D]),
        lmk.tensor(Int32Array.from([0, 1, 2]), { shape: [3], dtype: 'int32' }),
        V,
      ),
    ).toThrow(RangeError);
    for (const t of [w, bad, out, gw]) t.dispose();
  });
});

// ---- rope --------------------------------------------------------------------------------

describe('rope', () => {
  it('rotates interleaved pairs by pos·base^(-2i/D) and its inverse is its gradient', () => {
    lmk.tidy(() => {
      const shape = [2, 3, 4, 8];
      const x = randomArray(numel(shape), 60);
      const pos2 = Int32Array.from([0, 1, 2, 500_000, 7, 3, 3, 100]);
      const pos1 = Int32Array.from([5, 0, 70_000, 2]);
      for (const dtype of FLOATS) {
        const xr = stored(x, shape, dtype);
        for (const [pos, ps] of [
          [pos2, [2, 4]],
          [pos1, [4]],
        ] as const) {
          const pt = lmk.tensor(pos, { shape: ps, dtype: 'int32' });
          const y = dense.rope(T(x, shape, dtype), pt, 10_000, false);
          expect(relError(values(y), refRope(arr(xr, shape), pos, ps, 10_000, false))).toBeLessThanOrEqual(TOL[dtype]);
          if (dtype === 'float64') {
            expect(relError(values(dense.rope(y, pt, 10_000, true)), x)).toBeLessThanOrEqual(1e-12);
            const gy = randomArray(numel(shape), 61);
            const numeric = numericGrad(
              fwd((t) => dense.rope(t, pt, 10_000, false), shape),
              x,
              gy,
            );
            expect(relError(values(dense.rope(T(gy, shape), pt, 10_000, true)), numeric)).toBeLessThanOrEqual(GRAD_TOL);
          }
        }
      }
      expect(() =>
        dense.rope(
          T(x, [2, 3, 4, 8]),
          lmk.tensor(Int32Array.from([0, 1, 2]), { shape: [3], dtype: 'int32' }),
          10_000,
          false,
        ),
      ).toThrow(/ops.rope: positions must have shape \[T\] = \[4\]/);
      expect(() =>
        dense.rope(
          T(new Float64Array(6), [2, 3]),
          lmk.tensor(Int32Array.from([0, 1]), { shape: [2], dtype: 'int32' }),
          10_000,
          false,
        ),
      ).toThrow(/D even/);
    });
  });
});

// ---- shape ops -------------------------------------------------------------------------------

describe('shape ops', () => {
  const shape = [2, 3, 4];
  const x = randomArray(24, 70);

  it('permute, slice, concat and tokenShift copy the right elements', () => {
    lmk.tidy(() => {
      for (const dims of [
        [2, 0, 1],
        [0, 2, 1],
        [1, 0, 2],
        [-1, -2, -3],
      ]) {
        const norm = dims.map((d) => (d < 0 ? d + 3 : d));
        const out = dense.permute(T(x, shape), dims);
        expect(out.shape).toEqual(norm.map((d) => shape[d]));
        expect(Array.from(values(out))).toEqual(Array.from(refPermute(arr(x, shape), norm).data));
      }
      expect(Array.from(values(dense.slice(T(x, shape), 1, -2, 3)))).toEqual(
        Array.from(refSlice(arr(x, shape), 1, 1, 3).data),
      );
      expect(Array.from(values(dense.slice(T(x, shape), -1, 0, -1)))).toEqual(
        Array.from(refSlice(arr(x, shape), 2, 0, 3).data),
      );
      expect(dense.slice(T(x, shape), 0, 1, 1).shape).toEqual([0, 3, 4]);
      const y = randomArray(2 * 2 * 4, 71);
      const cat = dense.concat([T(x, shape), T(y, [2, 2, 4])], 1);
      expect(cat.shape).toEqual([2, 5, 4]);
      expect(Array.from(values(cat))).toEqual(Array.from(refConcat([arr(x, shape), arr(y, [2, 2, 4])], 1).data));
      expect(Array.from(values(dense.tokenShift(T(x, shape))))).toEqual(Array.from(refTokenShift(arr(x, shape))));
      const ids = lmk.tensor(Int32Array.from([1, 2, 3, 4, 5, 6]), { shape: [2, 3], dtype: 'int32' });
      expect(Array.from(dense.permute(ids, [1, 0]).dataSync())).toEqual([1, 4, 2, 5, 3, 6]);
      const bf = dense.concat([T(x, shape, 'bfloat16'), T(x, shape, 'bfloat16')], 0);
      expect(bf.dtype).toBe('bfloat16');
    });
  });

  it('the backward copies are the gradients (finite differences)', () => {
    lmk.tidy(() => {
      const g = randomArray(24, 72);
      const shiftNumeric = numericGrad(
        fwd((t) => dense.tokenShift(t), shape),
        x,
        g,
      );
      expect(relError(values(dense.tokenShiftBackward(T(g, shape))), shiftNumeric)).toBeLessThanOrEqual(GRAD_TOL);
      const gs = randomArray(2 * 2 * 4, 73);
      const sliceNumeric = numericGrad(
        fwd((t) => dense.slice(t, 1, 1, 3), shape),
        x,
        gs,
      );
      expect(relError(values(dense.sliceBackward(T(gs, [2, 2, 4]), shape, 1, 1, 3)), sliceNumeric)).toBeLessThanOrEqual(
        GRAD_TOL,
      );
      const gp = randomArray(24, 74);
      const permNumeric = numericGrad(
        fwd((t) => dense.permute(t, [2, 0, 1]), shape),
        x,
        gp,
      );
      expect(relError(values(dense.permute(T(gp, [4, 2, 3]), [1, 2, 0])), permNumeric)).toBeLessThanOrEqual(GRAD_TOL);
    });
  });

  it('rejects bad indices and shapes', () => {
    lmk.tidy(() => {
      expect(() => dense.slice(T(x, shape), 1, 0, 4)).toThrow(RangeError);
      expect(() => dense.slice(T(x, shape), 1, 0, 4)).toThrow(
        /ops.slice: start 0 and end 4 are out of range for dim 1 of size 3/,
      );
      expect(() => dense.slice(T(x, shape), 3, 0, 1)).toThrow(/ops.slice: dim 3 is out of range/);
      expect(() => dense.slice(T(x, shape), 0, 0.5, 1)).toThrow(RangeError);
      expect(() => dense.concat([], 0)).toThrow(/ops.concat: xs must hold at least one tensor/);
      expect(() => dense.concat([T(x, shape), T(x, [4, 3, 2])], 0)).toThrow(/ops.concat: xs\[1\] has shape \[4,3,2\]/);
      expect(() => dense.concat([T(x, shape), T(x, shape, 'float32')], 0)).toThrow(TypeError);
      expect(() => dense.permute(T(x, shape), [0, 1])).toThrow(/ops.permute: dims must list each of the 3 axes/);
      expect(() => dense.tokenShift(T(x, [24]))).toThrow(/ops.tokenShift: x must have shape \[B,T,C\]/);
      expect(() => dense.sliceBackward(T(x, shape), [2, 3, 4], 1, 0, 2)).toThrow(
        /ops.sliceBackward: g must have the slice's shape \[2,2,4\]/,
      );
    });
  });
});

// ---- optimizer -------------------------------------------------------------------------------

describe('AdamW and gradient clipping', () => {
  const hyper = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };

  it('adamwStep_ equals a float64 transcription of torch.optim.AdamW over several steps', () => {
    lmk.tidy(() => {
      const n = 300;
      for (const [dtype, moments] of [
        ['float64', 'float64'],
        ['float32', 'float32'],
        ['bfloat16', 'float32'],
        ['float16', 'float32'],
        ['bfloat16', 'bfloat16'],
      ] as const) {
        const p0 = randomArray(n, 80);
        const param = T(p0, [n], dtype);
        const expAvg = lmk.zeros([n], { dtype: moments }),
          expAvgSq = lmk.zeros([n], { dtype: moments });
        const p = stored(p0, [n], dtype),
          m = new Float64Array(n),
          v = new Float64Array(n);
        for (let step = 1; step <= 5; step++) {
          const g = randomArray(n, 81 + step);
          dense.adamwStep_({ param, grad: T(g, [n], dtype), expAvg, expAvgSq, ...hyper, step });
          refAdamwStep(p, stored(g, [n], dtype), m, v, { ...hyper, step });
        }
        const tol = dtype === 'float64' ? 1e-12 : dtype === 'float32' ? 1e-5 : 1e-2;
        expect(relError(values(param), p), dtype).toBeLessThanOrEqual(tol);
        expect(relError(values(expAvg), m), dtype).toBeLessThanOrEqual(moments === 'bfloat16' ? 1e-2 : tol);
        expect(relError(values(expAvgSq), v), dtype).toBeLessThanOrEqual(moments === 'bfloat16' ? 2e-2 : tol);
      }
    });
  });

  it('adamwStep_ rejects bad hyper-parameters and mismatched tensors', () => {
    lmk.tidy(() => {
      const p = T([1, 2], [2]),
        g = T([1, 1], [2]),
        m = T([0, 0], [2]),
        v = T([0, 0], [2]);
      expect(() =>
        dense.adamwStep_({ param: p, grad: g, expAvg: m, expAvgSq: v, ...hyper, beta1: 1, step: 1 }),
      ).toThrow(/optim.AdamW.step: beta1 must be a finite number in \[0, 1\)/);
      expect(() => dense.adamwStep_({ param: p, grad: g, expAvg: m, expAvgSq: v, ...hyper, step: 0 })).toThrow(
        /step must be an integer >= 1/,
      );
      expect(() =>
        dense.adamwStep_({ param: p, grad: T([1, 1, 1], [3]), expAvg: m, expAvgSq: v, ...hyper, step: 1 }),
      ).toThrow(/grad must have the shape of param/);
      expect(() =>
        dense.adamwStep_({ param: p, grad: g, expAvg: T([0, 0], [2], 'bfloat16'), expAvgSq: v, ...hyper, step: 1 }),
      ).toThrow(TypeError);
      expect(() =>
        dense.adamwStep_({ param: p, grad: g, expAvg: m, expAvgSq: v, ...hyper, lr: 'x' as never, step: 1 }),
      ).toThrow(/optim.AdamW.step: lr must be a number/);
    });
  });

  it('gradNormClip_ returns the total norm and scales on the device', () => {
    lmk.tidy(() => {
      for (const dtype of ['float64', 'float32', 'bfloat16'] as const) {
        const g1 = randomArray(7, 90),
          g2 = randomArray(50_000, 91);
        const r1 = stored(g1, [7], dtype),
          r2 = stored(g2, [50_000], dtype);
        let total = 0;
        for (const x of [...r1, ...r2]) total += x * x;
        const norm = Math.sqrt(total);
        const t1 = T(g1, [7], dtype),
          t2 = T(g2, [100, 500], dtype);
        const nt = dense.gradNormClip_([t1, t2], 0.5);
        expect(nt.shape).toEqual([]);
        expect(nt.dtype).toBe(dtype === 'float64' ? 'float64' : 'float32');
        const tol = dtype === 'float64' ? 1e-12 : dtype === 'float32' ? 1e-5 : 1e-2;
        expect(Math.abs(nt.dataSync()[0]! - norm) / norm).toBeLessThanOrEqual(dtype === 'bfloat16' ? 1e-5 : tol);
        const coef = 0.5 / (norm + 1e-6);
        expect(
          relError(
            values(t1),
            r1.map((x) => x * coef),
          ),
        ).toBeLessThanOrEqual(tol);
        expect(
          relError(
            values(t2),
            r2.map((x) => x * coef),
          ),
        ).toBeLessThanOrEqual(tol);
        // Under maxNorm: untouched.
        const t3 = T(g1, [7], dtype);
        dense.gradNormClip_([t3], 1e9);
        expect(Array.from(values(t3))).toEqual(Array.from(r1));
      }
      const empty = dense.gradNormClip_([], 1);
      expect(empty.dataSync()[0]).toBe(0);
      expect(() => dense.gradNormClip_([T([1], [1]), T([1], [1], 'float32')], 1)).toThrow(
        /clipGradNorm: grads\[1\] must have dtype float64/,
      );
      expect(() => dense.gradNormClip_([T([1], [1])], -1)).toThrow(RangeError);
      expect(() => dense.gradNormClip_('x' as never, 1)).toThrow(TypeError);
    });
  });
});

// ---- determinism and bad inputs ------------------------------------------------------------

describe('determinism and argument checks', () => {
  it('sum and embeddingBackward give the same bits across runs and thread counts', () => {
    const root = join(__dirname, '..');
    const script = `
      const lmk = require(${JSON.stringify(join(root, 'dist/cjs/index.js'))});
      const dense = require(${JSON.stringify(join(root, 'dist/cjs/kernels/dense.js'))});
      const x = lmk.randn([300, 1000], { seed: 5 });
      const ids = lmk.tensor(Int32Array.from({ length: 300 }, (_, i) => (i * 37) % 50), { shape: [300], dtype: 'int32' });
      const parts = [dense.sum(x, [], false), dense.sum(x, [0], false), dense.sum(x, [1], true), dense.embeddingBackward(x, ids, 50)];
      process.stdout.write(JSON.stringify(parts.map((p) => Buffer.from(p.dataSync().buffer).toString('base64'))));`;
    const run = (threads: string) =>
      execFileSync(process.execPath, ['-e', script], {
        env: { ...process.env, LMK_NUM_THREADS: threads },
        encoding: 'utf8',
      });
    const one = run('1');
    expect(run('2')).toBe(one);
    expect(run('3')).toBe(one);
  });

  it('JS type errors name the function and argument at once', () => {
    lmk.tidy(() => {
      const t = T([1, 2], [2]);
      expect(() => dense.binary('pow' as never, t, t)).toThrow(RangeError);
      expect(() => dense.binary('pow' as never, t, t)).toThrow(/binary: op must be one of 'add'/);
      expect(() => dense.binary('add', t, [1, 2] as never)).toThrow(/ops.add: b must be a Tensor/);
      expect(() => dense.binary('add', t, T([1, 2], [2], 'float32'))).toThrow(
        /ops.add: b must have dtype float64 like a, got float32/,
      );
      expect(() => dense.binary('add', T([1, 2, 3], [3]), t)).toThrow(
        /ops.add: a has shape \[3\] and b has shape \[2\], which do not broadcast/,
      );
      expect(() => dense.unary('exp', lmk.tensor(Int32Array.from([1]), { dtype: 'int32' }))).toThrow(
        /ops.exp: x must have dtype float32, bfloat16, float16 or float64, got int32/,
      );
      expect(() => dense.scalarOp('add', t, 'x' as never)).toThrow(/ops.add: s must be a number/);
      expect(() => dense.sum(t, [0.5], false)).toThrow(/ops.sum: dims must be an array of integers/);
      expect(() => dense.sum(t, [0], 'yes' as never)).toThrow(/ops.sum: keepDim must be a boolean/);
      expect(() => dense.sum(t, [1], false)).toThrow(/ops.sum: dim 1 is out of range for a tensor of rank 1/);
      expect(() => dense.embeddingBackward(t, lmk.tensor(Int32Array.from([0, 1])), -1)).toThrow(RangeError);
      const gone = T([1], [1]);
      gone.dispose();
      expect(() => dense.unary('neg', gone)).toThrow(/ops.neg: x tensor was disposed/);
      expect(() => dense.setGemmBackend('fast' as never)).toThrow(
        /setGemmBackend: backend must be one of 'auto', 'builtin', got 'fast'/,
      );
    });
  });
});
