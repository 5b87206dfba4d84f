import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { roundTo16 } from './reference';
import {
  makeMemoryProblem,
  makeProblem,
  norm,
  numBlocks,
  referenceBlockAttention,
  referenceMemoryAttention,
  relativeError,
  type FamProblem,
  type FamResult,
  type MemoryProblem,
} from './fam-reference';

type FloatDType = 'float32' | 'float64' | 'bfloat16' | 'float16';
type Device = 'cpu' | 'cuda';

function rounded(x: Float64Array, dtype: FloatDType): Float64Array {
  if (dtype === 'float64') return x;
  if (dtype === 'float32') return x.map((v) => Math.fround(v));
  return x.map((v) => roundTo16(v, dtype));
}

function roundProblem(p: FamProblem, dtype: FloatDType): FamProblem {
  return {
    ...p,
    q: rounded(p.q, dtype),
    k: rounded(p.k, dtype),
    v: rounded(p.v, dtype),
    famK: rounded(p.famK, dtype),
    famV: rounded(p.famV, dtype),
    gOut: rounded(p.gOut, dtype),
  };
}

const f64 = async (t: lmk.Tensor): Promise<Float64Array> => Float64Array.from(await t.data());

interface BlockTensors {
  q: lmk.Tensor;
  k: lmk.Tensor;
  v: lmk.Tensor;
  famK?: lmk.Tensor;
  famV?: lmk.Tensor;
  blockSize: number;
  memoryBlocks: number;
  scale?: number;
}

function blockTensors(p: FamProblem, dtype: FloatDType, device: Device = 'cpu'): BlockTensors {
  const NB = numBlocks(p.T, p.L);
  const opts = { dtype, device };
  const t: BlockTensors = {
    q: lmk.tensor(p.q, { ...opts, shape: [p.B, p.H, p.T, p.D] }),
    k: lmk.tensor(p.k, { ...opts, shape: [p.B, p.Hkv, p.T, p.D] }),
    v: lmk.tensor(p.v, { ...opts, shape: [p.B, p.Hkv, p.T, p.D] }),
    blockSize: p.L,
    memoryBlocks: p.m,
  };
  if (p.fam) {
    t.famK = lmk.tensor(p.famK, { ...opts, shape: [p.B, p.Hkv, NB, p.F, p.D] });
    t.famV = lmk.tensor(p.famV, { ...opts, shape: [p.B, p.Hkv, NB, p.F, p.D] });
  }
  if (p.scale !== undefined) t.scale = p.scale;
  return t;
}

function disposeAll(...xs: (lmk.Tensor | undefined | Record<string, unknown>)[]): void {
  for (const x of xs) {
    if (x instanceof lmk.Tensor) x.dispose();
    else if (x) for (const v of Object.values(x)) if (v instanceof lmk.Tensor) v.dispose();
  }
}

async function runBlock(p: FamProblem, dtype: FloatDType, device: Device = 'cpu', backward = true): Promise<FamResult> {
  const inputs = blockTensors(p, dtype, device);
  const fwd = lmk.fam.blockAttention(inputs);
  expect(fwd.out.dtype).toBe(dtype);
  expect(fwd.lse.dtype).toBe(dtype === 'float64' ? 'float64' : 'float32');
  expect(fwd.lse.shape).toEqual([p.B, p.H, p.T]);
  const r: FamResult = {
    out: await f64(fwd.out),
    lse: await f64(fwd.lse),
    gq: new Float64Array(),
    gk: new Float64Array(),
    gv: new Float64Array(),
    gFamK: new Float64Array(),
    gFamV: new Float64Array(),
  };
  if (backward) {
    const gOut = lmk.tensor(p.gOut, { dtype, device, shape: [p.B, p.H, p.T, p.D] });
    const g = lmk.fam.blockAttentionBackward({ ...inputs, out: fwd.out, lse: fwd.lse, gOut });
    expect(g.gq.dtype).toBe(dtype);
    expect(g.gFamK !== undefined).toBe(p.fam);
    r.gq = await f64(g.gq);
    r.gk = await f64(g.gk);
    r.gv = await f64(g.gv);
    if (g.gFamK && g.gFamV) {
      expect(g.gFamK.shape).toEqual(inputs.famK!.shape);
      r.gFamK = await f64(g.gFamK);
      r.gFamV = await f64(g.gFamV);
    }
    disposeAll(gOut, g);
  }
  disposeAll(inputs as unknown as Record<string, unknown>, fwd);
  return r;
}

/**
 * Every result within the bar. `keyFloor`: in saturated softmax the true dk of a
 * key holding (almost) all the weight is p·(dp − Δ) with dp − Δ below the
 * rounding of dp, so dk and dFamK are measured against ‖dq‖ (the same
 * structure, scale·ds times a vector of the same norm) instead of their own
 * tiny norm.
 */
function expectClose(
  got: FamResult,
  want: FamResult,
  fwd: number,
  grad: number,
  label: string,
  keyFloor = false,
): void {
  const floor = keyFloor ? norm(want.gq) : 0;
  const keyError = (a: Float64Array, b: Float64Array): number => {
    const e = relativeError(a, b),
      n = norm(b);
    return n >= floor || n === 0 ? e : (e * n) / floor;
  };
  const errors: Record<string, number> = {
    out: relativeError(got.out, want.out),
    lse: relativeError(got.lse, want.lse),
  };
  if (got.gq.length) {
    errors.gq = relativeError(got.gq, want.gq);
    errors.gk = keyError(got.gk, want.gk);
    errors.gv = relativeError(got.gv, want.gv);
    if (want.gFamK.length) {
      errors.gFamK = keyError(got.gFamK, want.gFamK);
      errors.gFamV = relativeError(got.gFamV, want.gFamV);
    }
  }
  for (const [name, e] of Object.entries(errors)) {
    const bar = name === 'out' || name === 'lse' ? fwd : grad;
    expect(e, `${label}: ${name} relative error`).toBeLessThanOrEqual(bar);
  }
  for (const [name, values] of Object.entries(got)) {
    expect((values as Float64Array).every(Number.isFinite), `${label}: ${name} finite`).toBe(true);
  }
}

describe('fam.blockAttention and blockAttentionBackward (CPU)', () => {
  it('match the float64 reference: T = 1, T not a multiple of L, m = 0, m beyond the blocks, F = 1', async () => {
    const cases = [
      { T: 1, L: 4, m: 1, F: 1 },
      { T: 13, L: 4, m: 0, F: 2 },
      { T: 13, L: 4, m: 1, F: 3 },
      { T: 13, L: 5, m: 9, F: 1 },
      { T: 9, L: 1, m: 2, F: 2 },
      { T: 70, L: 16, m: 2, F: 5 },
      { T: 40, L: 40, m: 1, F: 3 },
    ];
    for (const [i, c] of cases.entries()) {
      const p = makeProblem({ ...c, D: 16 }, 100 + i);
      expectClose(
        await runBlock(p, 'float64'),
        referenceBlockAttention(p),
        1e-12,
        1e-12,
        `float64 ${JSON.stringify(c)}`,
      );
    }
  });

  it('float32 is within 1e-5 forward and 1e-4 gradients for D = 16, 64, 128 across tile edges', async () => {
    for (const [i, c] of [
      { T: 131, L: 70, m: 1, F: 3, D: 16 },
      { T: 100, L: 33, m: 2, F: 65, D: 64 },
      { T: 67, L: 64, m: 1, F: 1, D: 128 },
    ].entries()) {
      const p = roundProblem(makeProblem(c, 200 + i), 'float32');
      expectClose(await runBlock(p, 'float32'), referenceBlockAttention(p), 1e-5, 1e-4, `float32 D=${c.D}`);
    }
  });

  it('bfloat16 and float16 storage is within 1e-2 (float32 inside)', async () => {
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const p = roundProblem(makeProblem({ T: 45, L: 8, m: 2, F: 5, D: 64 }, 300), dtype);
      const got = await runBlock(p, dtype);
      // The backward reads the rounded out it is given (Δ = rowsum(gOut∘out)).
      expectClose(got, referenceBlockAttention(p), 1e-2, 1e-2, dtype);
      expectClose(got, referenceBlockAttention(p, got.out), 1e-2, 1e-2, `${dtype}, Δ from the given out`);
    }
  });

  it('grouped heads: a key/value head sums the gradients of its query heads (H=4, Hkv=2 and 1)', async () => {
    for (const Hkv of [2, 1]) {
      const p = makeProblem({ B: 2, H: 4, Hkv, T: 19, L: 6, m: 1, F: 2, D: 16 }, 400 + Hkv);
      expectClose(await runBlock(p, 'float64'), referenceBlockAttention(p), 1e-12, 1e-12, `Hkv=${Hkv}`);
      const p32 = roundProblem(p, 'float32');
      expectClose(await runBlock(p32, 'float32'), referenceBlockAttention(p32), 1e-5, 1e-4, `float32 Hkv=${Hkv}`);
    }
  });

  it('plain block sliding-window attention when famK and famV are omitted', async () => {
    const p = makeProblem({ T: 23, L: 5, m: 2, D: 16, fam: false }, 500);
    const r = await runBlock(p, 'float64');
    expect(r.gFamK.length).toBe(0);
    expectClose(r, referenceBlockAttention(p), 1e-12, 1e-12, 'bswa');
  });

  it('an explicit scale replaces 1/sqrt(D)', async () => {
    const p = makeProblem({ T: 10, L: 4, m: 1, D: 16, scale: 0.7 }, 550);
    expectClose(await runBlock(p, 'float64'), referenceBlockAttention(p), 1e-12, 1e-12, 'scale');
  });

  it('q and k of norm 100 saturate the softmax and every result stays finite', async () => {
    const p = makeProblem({ T: 21, L: 4, m: 2, F: 3, D: 64 }, 600);
    for (const x of [p.q, p.k, p.famK]) {
      for (let r = 0; r < x.length; r += p.D) {
        let n = 0;
        for (let d = 0; d < p.D; d++) n += x[r + d]! ** 2;
        for (let d = 0; d < p.D; d++) x[r + d] = (x[r + d]! * 100) / Math.sqrt(n);
      }
    }
    expectClose(await runBlock(p, 'float64'), referenceBlockAttention(p), 1e-12, 1e-12, 'saturated float64', true);
    const p32 = roundProblem(p, 'float32');
    expectClose(await runBlock(p32, 'float32'), referenceBlockAttention(p32), 1e-5, 1e-4, 'saturated float32', true);
    // bfloat16: the backward's Δ comes from the out it is given, rounded to
    // 8 bits; saturated, that rounding is most of dq, so the reference uses it too.
    const p16 = roundProblem(p, 'bfloat16');
    const got16 = await runBlock(p16, 'bfloat16');
    expectClose(got16, referenceBlockAttention(p16, got16.out), 1e-2, 1e-2, 'saturated bfloat16', true);
  });

  it('finite differences of sum(gOut * out) in float64 match every gradient', async () => {
    const p = makeProblem({ H: 2, Hkv: 1, T: 11, L: 4, m: 1, F: 2, D: 8 }, 700);
    const grads = await runBlock(p, 'float64');
    const loss = async (x: FamProblem): Promise<number> => {
      const r = await runBlock(x, 'float64', 'cpu', false);
      let s = 0;
      for (let i = 0; i < r.out.length; i++) s += r.out[i]! * x.gOut[i]!;
      return s;
    };
    const eps = 1e-6;
    const fields = [
      ['q', 'gq'],
      ['k', 'gk'],
      ['v', 'gv'],
      ['famK', 'gFamK'],
      ['famV', 'gFamV'],
    ] as const;
    for (const [input, grad] of fields) {
      const n = p[input].length;
      for (let i = 0; i < n; i += Math.max(1, Math.floor(n / 13))) {
        const plus = { ...p, [input]: Float64Array.from(p[input]) };
        const minus = { ...p, [input]: Float64Array.from(p[input]) };
        plus[input][i] = p[input][i]! + eps;
        minus[input][i] = p[input][i]! - eps;
        const fd = ((await loss(plus)) - (await loss(minus))) / (2 * eps);
        const an = grads[grad][i]!;
        expect(Math.abs(fd - an), `${input}[${i}]: fd ${fd} vs ${an}`).toBeLessThanOrEqual(
          1e-6 * Math.max(1, Math.abs(an)),
        );
      }
    }
  });

  it('is deterministic: the same inputs give the same bits', async () => {
    const p = makeProblem({ H: 4, Hkv: 2, T: 150, L: 40, m: 2, F: 7, D: 32 }, 800);
    const a = await runBlock(p, 'float32');
    const b = await runBlock(p, 'float32');
    for (const key of Object.keys(a) as (keyof FamResult)[]) expect(Array.from(a[key])).toEqual(Array.from(b[key]));
  });

  it('accepts empty problems', async () => {
    const p = makeProblem({ B: 0, T: 5, L: 2, m: 1, D: 8 }, 900);
    const r = await runBlock(p, 'float32');
    expect(r.out.length).toBe(0);
    expect(r.gFamK.length).toBe(0);
  });
});

async function runMemory(
  p: MemoryProblem,
  dtype: FloatDType,
  device: Device = 'cpu',
  backward = true,
): Promise<Record<string, Float64Array>> {
  const opts = { dtype, device };
  const inputs = {
    famQ: lmk.tensor(rounded(p.famQ, dtype), { ...opts, shape: [p.B, p.H, p.F, p.D] }),
    famK: lmk.tensor(rounded(p.famK, dtype), { ...opts, shape: [p.B, p.Hkv, p.F, p.D] }),
    famV: lmk.tensor(rounded(p.famV, dtype), { ...opts, shape: [p.B, p.Hkv, p.F, p.D] }),
    blockK: lmk.tensor(rounded(p.blockK, dtype), { ...opts, shape: [p.B, p.Hkv, p.Lb, p.D] }),
    blockV: lmk.tensor(rounded(p.blockV, dtype), { ...opts, shape: [p.B, p.Hkv, p.Lb, p.D] }),
  };
  const fwd = lmk.fam.memoryAttention(inputs);
  expect(fwd.lse.shape).toEqual([p.B, p.H, p.F]);
  const r: Record<string, Float64Array> = { out: await f64(fwd.out), lse: await f64(fwd.lse) };
  if (backward) {
    const gOut = lmk.tensor(rounded(p.gOut, dtype), { ...opts, shape: [p.B, p.H, p.F, p.D] });
    const g = lmk.fam.memoryAttentionBackward({ ...inputs, out: fwd.out, lse: fwd.lse, gOut });
    for (const [name, t] of Object.entries(g)) r[name] = await f64(t);
    disposeAll(gOut, g);
  }
  disposeAll(inputs, fwd);
  return r;
}

describe('fam.memoryAttention and memoryAttentionBackward (CPU)', () => {
  it("match the float64 reference, including L' = 0 and F = 1", async () => {
    for (const [i, s] of [
      { B: 2, H: 2, Hkv: 1, F: 3, Lb: 5, D: 8 },
      { B: 1, H: 4, Hkv: 2, F: 1, Lb: 9, D: 16 },
      { B: 1, H: 2, Hkv: 2, F: 4, Lb: 0, D: 16 },
      { B: 1, H: 2, Hkv: 1, F: 70, Lb: 130, D: 64 },
    ].entries()) {
      const p = makeMemoryProblem(s, 1000 + i);
      const got = await runMemory(p, 'float64');
      const want = referenceMemoryAttention(p);
      for (const name of Object.keys(want)) {
        expect(relativeError(got[name]!, want[name]!), `${JSON.stringify(s)} ${name}`).toBeLessThanOrEqual(1e-12);
      }
    }
  });

  it('float32 and bfloat16 within the bar', async () => {
    const p = makeMemoryProblem({ B: 1, H: 4, Hkv: 2, F: 64, Lb: 100, D: 64 }, 1100);
    for (const [dtype, fwd, grad] of [
      ['float32', 1e-5, 1e-4],
      ['bfloat16', 1e-2, 1e-2],
    ] as const) {
      const q: MemoryProblem = { ...p };
      for (const key of ['famQ', 'famK', 'famV', 'blockK', 'blockV', 'gOut'] as const) q[key] = rounded(p[key], dtype);
      const got = await runMemory(q, dtype);
      const want = referenceMemoryAttention(q);
      for (const name of Object.keys(want)) {
        const bar = name === 'out' || name === 'lse' ? fwd : grad;
        expect(relativeError(got[name]!, want[name]!), `${dtype} ${name}`).toBeLessThanOrEqual(bar);
      }
    }
  });

  it('finite differences in float64 match the gradients of famQ, famK, famV, blockK, blockV', async () => {
    const p = makeMemoryProblem({ B: 1, H: 2, Hkv: 1, F: 3, Lb: 4, D: 8 }, 1200);
    const grads = await runMemory(p, 'float64');
    const loss = async (x: MemoryProblem): Promise<number> => {
      const r = await runMemory(x, 'float64', 'cpu', false);
      let s = 0;
      for (let i = 0; i < r.out!.length; i++) s += r.out![i]! * x.gOut[i]!;
      return s;
    };
    const fields = [
      ['famQ', 'gFamQ'],
      ['famK', 'gFamK'],
      ['famV', 'gFamV'],
      ['blockK', 'gBlockK'],
      ['blockV', 'gBlockV'],
    ] as const;
    for (const [input, grad] of fields) {
      const n = p[input].length;
      for (let i = 0; i < n; i += Math.max(1, Math.floor(n / 11))) {
        const plus = { ...p, [input]: Float64Array.from(p[input]) };
        const minus = { ...p, [input]: Float64Array.from(p[input]) };
        plus[input][i] = p[input][i]! + 1e-6;
        minus[input][i] = p[input][i]! - 1e-6;
        const fd = ((await loss(plus)) - (await loss(minus))) / 2e-6;
        const an = grads[grad]![i]!;
        expect(Math.abs(fd - an), `${input}[${i}]: fd ${fd} vs ${an}`).toBeLessThanOrEqual(
          1e-6 * Math.max(1, Math.abs(an)),
        );
      }
    }
  });
});

describe('fam: bad inputs throw at once, naming the function and the argument', () => {
  const p = makeProblem({ T: 10, L: 4, m: 1, F: 3, D: 16 }, 1300);
  const good = (): BlockTensors => blockTensors(p, 'float32');

  it('mismatched shapes and head counts are RangeErrors', () => {
    const a = good();
    const k32 = lmk.zeros([1, 2, 10, 8]);
    expect(() => lmk.fam.blockAttention({ ...a, k: k32 })).toThrow(RangeError);
    expect(() => lmk.fam.blockAttention({ ...a, k: k32 })).toThrow(
      /fam\.blockAttention: k must have shape \[B,Hkv,T,D\] = \[1,Hkv,10,16\] \(B, T, D of q\), got \[1,2,10,8\]/,
    );
    expect(() => lmk.fam.blockAttention({ ...a, v: lmk.zeros([1, 1, 10, 16]) })).toThrow(
      /fam\.blockAttention: v must have shape \[B,Hkv,T,D\] = \[1,2,10,16\] like k, got \[1,1,10,16\]/,
    );
    expect(() => lmk.fam.blockAttention({ ...a, q: lmk.zeros([1, 3, 10, 16]) })).toThrow(
      /fam\.blockAttention: the H=3 query heads of q must be a multiple of the Hkv=2 key\/value heads of k/,
    );
    expect(() => lmk.fam.blockAttention({ ...a, q: lmk.zeros([2, 10, 16]) })).toThrow(/q must have shape \[B,H,T,D\]/);
    expect(() =>
      lmk.fam.blockAttention({ ...a, famK: lmk.zeros([1, 2, 2, 3, 16]), famV: lmk.zeros([1, 2, 2, 3, 16]) }),
    ).toThrow(
      /fam\.blockAttention: famK must have shape \[B,Hkv,NB,F,D\] = \[1,2,3,F,16\] \(NB = ceil\(T\/blockSize\) = ceil\(10\/4\)\), got \[1,2,2,3,16\]/,
    );
    expect(() => lmk.fam.blockAttention({ ...a, famV: lmk.zeros([1, 2, 3, 2, 16]) })).toThrow(
      /famV must have shape .* like famK/,
    );
    expect(() =>
      lmk.fam.blockAttention({ ...a, q: lmk.zeros([1, 2, 10, 300]), k: lmk.zeros([1, 2, 10, 300]) }),
    ).toThrow(/head dim D \(q\.shape\[3\]\) must be in \[1, 256\], got 300/);
  });

  it('famK without famV (and the reverse) is a TypeError', () => {
    const a = good();
    expect(() => lmk.fam.blockAttention({ ...a, famV: undefined })).toThrow(TypeError);
    expect(() => lmk.fam.blockAttention({ ...a, famV: undefined })).toThrow(
      /fam\.blockAttention: famV is required when famK is given/,
    );
    expect(() => lmk.fam.blockAttention({ ...a, famK: undefined })).toThrow(/famK is required when famV is given/);
  });

  it('bad options are RangeErrors or TypeErrors', () => {
    const a = good();
    expect(() => lmk.fam.blockAttention({ ...a, blockSize: 0 })).toThrow(RangeError);
    expect(() => lmk.fam.blockAttention({ ...a, blockSize: 0 })).toThrow(
      /fam\.blockAttention: blockSize must be an integer >= 1, got 0/,
    );
    expect(() => lmk.fam.blockAttention({ ...a, blockSize: 2.5 })).toThrow(RangeError);
    expect(() => lmk.fam.blockAttention({ ...a, memoryBlocks: -1 })).toThrow(
      /memoryBlocks must be an integer >= 0, got -1/,
    );
    expect(() => lmk.fam.blockAttention({ ...a, blockSize: '4' as never })).toThrow(TypeError);
    expect(() => lmk.fam.blockAttention({ ...a, memoryBlocks: undefined as never })).toThrow(
      /memoryBlocks must be an integer/,
    );
    expect(() => lmk.fam.blockAttention({ ...a, scale: Number.NaN })).toThrow(/scale must be a finite number/);
    expect(() => lmk.fam.blockAttention({ ...a, scale: 'x' as never })).toThrow(TypeError);
    expect(() => lmk.fam.blockAttention({ ...a, window: 3 } as never)).toThrow(
      /fam\.blockAttention: unknown option 'window'/,
    );
    expect(() => lmk.fam.blockAttention(undefined as never)).toThrow(TypeError);
  });

  it('wrong dtypes, missing and disposed tensors are TypeErrors', () => {
    const a = good();
    expect(() => lmk.fam.blockAttention({ ...a, k: lmk.zeros([1, 2, 10, 16], { dtype: 'bfloat16' }) })).toThrow(
      /fam\.blockAttention: k must have dtype float32 like q, got bfloat16/,
    );
    expect(() => lmk.fam.blockAttention({ ...a, q: lmk.zeros([1, 2, 10, 16], { dtype: 'int32' }) })).toThrow(
      /q must have dtype float32, bfloat16, float16 or float64, got int32/,
    );
    expect(() => lmk.fam.blockAttention({ ...a, q: undefined as never })).toThrow(/fam\.blockAttention: q is required/);
    expect(() => lmk.fam.blockAttention({ ...a, v: [1, 2] as never })).toThrow(/v must be a Tensor/);
    const k = lmk.zeros([1, 2, 10, 16]);
    k.dispose();
    expect(() => lmk.fam.blockAttention({ ...a, k })).toThrow(TypeError);
    expect(() => lmk.fam.blockAttention({ ...a, k })).toThrow(/fam\.blockAttention: k tensor was disposed/);
  });

  it('the backward checks out, lse and gOut', () => {
    const a = good();
    const f = lmk.fam.blockAttention(a);
    const fn = lmk.fam.blockAttentionBackward;
    expect(() => fn({ ...a, out: f.out, lse: f.lse.to('bfloat16'), gOut: f.out })).toThrow(
      /fam\.blockAttentionBackward: lse must have dtype float32 \(as fam\.blockAttention returns it for float32 inputs\), got bfloat16/,
    );
    expect(() => fn({ ...a, out: f.out, lse: lmk.zeros([1, 2, 9]), gOut: f.out })).toThrow(
      /lse must have shape \[B,H,T\] = \[1,2,10\]/,
    );
    expect(() => fn({ ...a, out: f.out, lse: f.lse, gOut: lmk.zeros([1, 2, 10, 8]) })).toThrow(
      /fam\.blockAttentionBackward: gOut must have shape \[B,H,T,D\] = \[1,2,10,16\] like q/,
    );
    expect(() => fn({ ...a, out: f.out, lse: f.lse } as never)).toThrow(/gOut is required/);
  });

  it('memoryAttention checks its five tensors', () => {
    const m = makeMemoryProblem({ B: 1, H: 2, Hkv: 1, F: 3, Lb: 5, D: 8 }, 1400);
    const t = (x: Float64Array, shape: number[]): lmk.Tensor => lmk.tensor(x, { shape });
    const a = {
      famQ: t(m.famQ, [1, 2, 3, 8]),
      famK: t(m.famK, [1, 1, 3, 8]),
      famV: t(m.famV, [1, 1, 3, 8]),
      blockK: t(m.blockK, [1, 1, 5, 8]),
      blockV: t(m.blockV, [1, 1, 5, 8]),
    };
    expect(() => lmk.fam.memoryAttention({ ...a, blockV: lmk.zeros([1, 1, 4, 8]) })).toThrow(
      /fam\.memoryAttention: blockV must have shape \[B,Hkv,L',D\] = \[1,1,5,8\] like blockK, got \[1,1,4,8\]/,
    );
    expect(() => lmk.fam.memoryAttention({ ...a, famK: lmk.zeros([1, 1, 2, 8]) })).toThrow(
      /famK must have shape \[B,Hkv,F,D\] = \[1,Hkv,3,8\] \(B, F, D of famQ\)/,
    );
    const two = {
      famK: lmk.zeros([1, 2, 3, 8]),
      famV: lmk.zeros([1, 2, 3, 8]),
      blockK: lmk.zeros([1, 2, 5, 8]),
      blockV: lmk.zeros([1, 2, 5, 8]),
    };
    expect(() => lmk.fam.memoryAttention({ ...two, famQ: lmk.zeros([1, 3, 3, 8]) })).toThrow(
      /fam\.memoryAttention: the H=3 query heads of famQ must be a multiple of the Hkv=2 key\/value heads of famK/,
    );
    expect(() => lmk.fam.memoryAttention({ ...a, blockK: lmk.zeros([1, 1, 5, 8], { dtype: 'float64' }) })).toThrow(
      /blockK must have dtype float32 like famQ, got float64/,
    );
    expect(() => lmk.fam.memoryAttention({ ...a, blockK: undefined as never })).toThrow(/blockK is required/);
    expect(() => lmk.fam.memoryAttention({ ...a, blockSize: 4 } as never)).toThrow(/unknown option 'blockSize'/);
  });

  it('the library stays usable after every error above', async () => {
    const p2 = makeProblem({ T: 6, L: 3, m: 1, D: 8 }, 1500);
    expectClose(await runBlock(p2, 'float64'), referenceBlockAttention(p2), 1e-12, 1e-12, 'after errors');
  });
});

describe.skipIf(!lmk.cudaAvailable())('fam on CUDA against the float64 reference', () => {
  it('blockAttention forward and backward, float32 and bfloat16, several head dims', async () => {
    for (const [i, c] of [
      { B: 1, H: 2, Hkv: 2, T: 37, L: 8, m: 1, F: 3, D: 16 },
      { B: 2, H: 4, Hkv: 2, T: 130, L: 64, m: 2, F: 64, D: 64 },
      { B: 1, H: 4, Hkv: 1, T: 200, L: 96, m: 1, F: 5, D: 128 },
      { B: 1, H: 2, Hkv: 1, T: 77, L: 16, m: 3, F: 1, D: 40 },
      { B: 1, H: 2, Hkv: 2, T: 50, L: 7, m: 0, F: 2, D: 64, fam: false },
    ].entries()) {
      for (const [dtype, fwd, grad] of [
        ['float32', 1e-5, 1e-4],
        ['bfloat16', 1e-2, 1e-2],
      ] as const) {
        const p = roundProblem(makeProblem(c, 1600 + i), dtype);
        expectClose(
          await runBlock(p, dtype, 'cuda'),
          referenceBlockAttention(p),
          fwd,
          grad,
          `cuda ${dtype} ${JSON.stringify(c)}`,
        );
      }
    }
  });

  it('memoryAttention forward and backward', async () => {
    const p = makeMemoryProblem({ B: 1, H: 4, Hkv: 2, F: 64, Lb: 100, D: 64 }, 1700);
    const got = await runMemory(p, 'float32', 'cuda');
    const want = referenceMemoryAttention(p);
    for (const name of Object.keys(want)) {
      expect(relativeError(got[name]!, want[name]!), name).toBeLessThanOrEqual(
        name === 'out' || name === 'lse' ? 1e-5 : 1e-4,
      );
    }
  });
});
