import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { relError, uniform, wkv4Reference, type Wkv4Inputs } from './wkv4-reference';

function inputs(B: number, T: number, C: number, seed: number, withState = false, kRange = 1): Wkv4Inputs {
  const state = withState ? new Float64Array(B * 3 * C) : undefined;
  if (state) {
    const aa = uniform(B * C, seed + 5),
      bb = uniform(B * C, seed + 6, 0.1, 2),
      pp = uniform(B * C, seed + 7, -2, 2);
    for (let b = 0; b < B; b++) {
      for (let c = 0; c < C; c++) {
        state[(b * 3 + 0) * C + c] = aa[b * C + c]!;
        state[(b * 3 + 1) * C + c] = bb[b * C + c]!;
        state[(b * 3 + 2) * C + c] = pp[b * C + c]!;
      }
    }
  }
  return {
    B,
    T,
    C,
    timeDecay: uniform(C, seed + 1, -2, 1),
    timeFirst: uniform(C, seed + 2, -1, 1),
    k: uniform(B * T * C, seed + 3, -kRange, kRange),
    v: uniform(B * T * C, seed + 4),
    state,
  };
}

function toTensors(x: Wkv4Inputs, dtype: lmk.DType) {
  const acc = dtype === 'float64' ? 'float64' : 'float32';
  return {
    timeDecay: lmk.tensor(x.timeDecay, { dtype: acc }),
    timeFirst: lmk.tensor(x.timeFirst, { dtype: acc }),
    k: lmk.tensor(x.k, { shape: [x.B, x.T, x.C], dtype }),
    v: lmk.tensor(x.v, { shape: [x.B, x.T, x.C], dtype }),
    ...(x.state ? { state: lmk.tensor(x.state, { shape: [x.B, 3, x.C], dtype: acc }) } : {}),
  };
}

describe('wkv4.forward', () => {
  it('matches the direct formula in float64 (≤ 1e-12) and float32 (≤ 1e-5), with and without a state', async () => {
    for (const withState of [false, true]) {
      const x = inputs(2, 23, 37, 11, withState);
      const ref = wkv4Reference(x);
      for (const [dtype, bar] of [
        ['float64', 1e-12],
        ['float32', 1e-5],
      ] as const) {
        await lmk.tidy(async () => {
          const { y, state } = lmk.wkv4.forward(toTensors(x, dtype));
          expect(y.dtype).toBe(dtype);
          expect(state.shape).toEqual([2, 3, 37]);
          expect(relError(await y.data(), ref.y)).toBeLessThanOrEqual(bar);
          // The output state represents the same numerator and denominator.
          const s = await state.data();
          const logDen = ref.logDen.map((_, i) => {
            const b = Math.floor(i / 37),
              c = i % 37;
            return Math.log(s[(b * 3 + 1) * 37 + c]!) + s[(b * 3 + 2) * 37 + c]!;
          });
          expect(relError(logDen, ref.logDen)).toBeLessThanOrEqual(dtype === 'float64' ? 1e-12 : 1e-5);
        });
      }
    }
  });

  it('y_0 = v_0 from the empty state and T = 1 works', async () => {
    const x = inputs(3, 1, 5, 2);
    const { y } = lmk.wkv4.forward(toTensors(x, 'float64'));
    expect(relError(await y.data(), x.v)).toBeLessThanOrEqual(1e-15);
  });

  it('stays finite and accurate with k in ±1000', async () => {
    const x = inputs(2, 64, 33, 5, false, 1000);
    const ref = wkv4Reference(x);
    const { y, state } = lmk.wkv4.forward(toTensors(x, 'float32'));
    const out = await y.data();
    expect(out.every(Number.isFinite)).toBe(true);
    expect((await state.data()).every(Number.isFinite)).toBe(true);
    expect(relError(out, ref.y)).toBeLessThanOrEqual(1e-5);
  });

  it('T = 100 000 with small B·C: finite, and the last steps match the formula', async () => {
    const B = 1,
      T = 100_000,
      C = 3,
      W = 2000;
    const x = inputs(B, T, C, 9);
    const { y } = lmk.wkv4.forward(toTensors(x, 'float32'));
    const out = await y.data();
    expect(out.every(Number.isFinite)).toBe(true);
    // With w <= -exp(-2) and |k| <= 1, tokens more than W = 2000 steps back
    // weigh less than e^-270 of the newest: the formula over the last W
    // tokens (empty state) is the exact answer at float64 resolution.
    const suffix = wkv4Reference({ ...x, T: W, k: x.k.subarray((T - W) * C), v: x.v.subarray((T - W) * C) });
    const last = 200;
    expect(relError(out.subarray((T - last) * C), suffix.y.subarray((W - last) * C))).toBeLessThanOrEqual(1e-5);
  });

  it('bfloat16 and float16 are within 1e-2 of the formula on the rounded inputs', async () => {
    const x = inputs(2, 40, 19, 4);
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const t = toTensors(x, dtype);
      const rounded = { ...x, k: Float64Array.from(await t.k.data()), v: Float64Array.from(await t.v.data()) };
      const { y } = lmk.wkv4.forward(t);
      expect(y.dtype).toBe(dtype);
      expect(relError(await y.data(), wkv4Reference(rounded).y)).toBeLessThanOrEqual(1e-2);
    }
  });
});

describe('wkv4.step and chaining', () => {
  it('step repeated equals forward (RNN mode = parallel mode)', async () => {
    const x = inputs(2, 12, 7, 3, true);
    const t = toTensors(x, 'float64');
    const full = lmk.wkv4.forward(t);
    let state = t.state!;
    const ys: number[] = [];
    const kv = [await t.k.data(), await t.v.data()];
    for (let step = 0; step < 12; step++) {
      const pick = (src: ArrayLike<number>) => {
        const out = new Float64Array(2 * 7);
        for (let b = 0; b < 2; b++) for (let c = 0; c < 7; c++) out[b * 7 + c] = src[(b * 12 + step) * 7 + c]!;
        return lmk.tensor(out, { shape: [2, 7], dtype: 'float64' });
      };
      const r = lmk.wkv4.step({
        timeDecay: t.timeDecay,
        timeFirst: t.timeFirst,
        k: pick(kv[0]!),
        v: pick(kv[1]!),
        state,
      });
      state = r.state;
      ys.push(...(await r.y.data()));
    }
    const fy = await full.y.data();
    const reordered = new Float64Array(2 * 12 * 7);
    for (let s = 0; s < 12; s++)
      for (let b = 0; b < 2; b++)
        for (let c = 0; c < 7; c++) reordered[(b * 12 + s) * 7 + c] = ys[(s * 2 + b) * 7 + c]!;
    expect(relError(reordered, fy)).toBeLessThanOrEqual(1e-14);
    expect(relError(await state.data(), await full.state.data())).toBeLessThanOrEqual(1e-14);
  });

  it('forward and backward over two chunks equal one call over the whole sequence', async () => {
    const B = 2,
      T = 16,
      C = 5,
      T1 = 7;
    const x = inputs(B, T, C, 21, true);
    const gy = uniform(B * T * C, 99),
      gs = uniform(B * 3 * C, 98);
    const cut = (a: Float64Array, from: number, to: number) => {
      const out: number[] = [];
      for (let b = 0; b < B; b++) out.push(...a.subarray((b * T + from) * C, (b * T + to) * C));
      return Float64Array.from(out);
    };
    const whole = toTensors(x, 'float64');
    const f = lmk.wkv4.forward(whole);
    const g = lmk.wkv4.backward({
      ...whole,
      y: f.y,
      gy: lmk.tensor(gy, { shape: [B, T, C], dtype: 'float64' }),
      gState: lmk.tensor(gs, { shape: [B, 3, C], dtype: 'float64' }),
    });

    const p1 = toTensors({ ...x, T: T1, k: cut(x.k, 0, T1), v: cut(x.v, 0, T1) }, 'float64');
    const f1 = lmk.wkv4.forward(p1);
    const p2 = {
      ...toTensors({ ...x, T: T - T1, k: cut(x.k, T1, T), v: cut(x.v, T1, T), state: undefined }, 'float64'),
      state: f1.state,
    };
    const f2 = lmk.wkv4.forward(p2);
    const g2 = lmk.wkv4.backward({
      ...p2,
      y: f2.y,
      gy: lmk.tensor(cut(gy, T1, T), { shape: [B, T - T1, C], dtype: 'float64' }),
      gState: lmk.tensor(gs, { shape: [B, 3, C], dtype: 'float64' }),
    });
    const g1 = lmk.wkv4.backward({
      ...p1,
      y: f1.y,
      gy: lmk.tensor(cut(gy, 0, T1), { shape: [B, T1, C], dtype: 'float64' }),
      gState: g2.gState!,
    });

    const join = async (a: lmk.Tensor, b: lmk.Tensor, Ta: number, Tb: number) => {
      const da = await a.data(),
        db = await b.data();
      const out: number[] = [];
      for (let bi = 0; bi < B; bi++)
        out.push(...da.subarray(bi * Ta * C, (bi + 1) * Ta * C), ...db.subarray(bi * Tb * C, (bi + 1) * Tb * C));
      return out;
    };
    expect(relError(await join(f1.y, f2.y, T1, T - T1), await f.y.data())).toBeLessThanOrEqual(1e-13);
    expect(relError(await f2.state.data(), await f.state.data())).toBeLessThanOrEqual(1e-13);
    expect(relError(await join(g1.gk, g2.gk, T1, T - T1), await g.gk.data())).toBeLessThanOrEqual(1e-12);
    expect(relError(await join(g1.gv, g2.gv, T1, T - T1), await g.gv.data())).toBeLessThanOrEqual(1e-12);
    const sum = async (a: lmk.Tensor, b: lmk.Tensor) =>
      Array.from(await a.data()).map((v, i) => v + (b.dataSync()[i] as number));
    expect(relError(await sum(g1.gTimeDecay, g2.gTimeDecay), await g.gTimeDecay.data())).toBeLessThanOrEqual(1e-12);
    expect(relError(await sum(g1.gTimeFirst, g2.gTimeFirst), await g.gTimeFirst.data())).toBeLessThanOrEqual(1e-12);
    expect(relError(await g1.gState!.data(), await g.gState!.data())).toBeLessThanOrEqual(1e-12);
  });
});

describe('wkv4.backward', () => {
  it('matches central finite differences in float64 for every input, the state included', async () => {
    const B = 2,
      T = 6,
      C = 3;
    const x = inputs(B, T, C, 31, true);
    const gy = uniform(B * T * C, 7),
      gs = uniform(B * 3 * C, 8);
    // Objective: <gy, y> + <gs, state'>.
    const objective = (p: Wkv4Inputs) =>
      lmk.tidy(() => {
        const r = lmk.wkv4.forward(toTensors(p, 'float64'));
        const y = r.y.dataSync(),
          s = r.state.dataSync();
        let o = 0;
        y.forEach((v, i) => (o += v * gy[i]!));
        s.forEach((v, i) => (o += v * gs[i]!));
        return o;
      });
    const t = toTensors(x, 'float64');
    const f = lmk.wkv4.forward(t);
    const g = lmk.wkv4.backward({
      ...t,
      y: f.y,
      gy: lmk.tensor(gy, { shape: [B, T, C], dtype: 'float64' }),
      gState: lmk.tensor(gs, { shape: [B, 3, C], dtype: 'float64' }),
    });
    const analytic: Record<string, ArrayLike<number>> = {
      timeDecay: await g.gTimeDecay.data(),
      timeFirst: await g.gTimeFirst.data(),
      k: await g.gk.data(),
      v: await g.gv.data(),
      state: await g.gState!.data(),
    };
    const eps = 1e-6;
    for (const name of ['timeDecay', 'timeFirst', 'k', 'v', 'state'] as const) {
      const base = x[name]!;
      const numeric = Float64Array.from(base, (_, j) => {
        const plus = Float64Array.from(base),
          minus = Float64Array.from(base);
        plus[j]! += eps;
        minus[j]! -= eps;
        return (objective({ ...x, [name]: plus }) - objective({ ...x, [name]: minus })) / (2 * eps);
      });
      expect(relError(analytic[name]!, numeric), name).toBeLessThanOrEqual(1e-6);
    }
  });

  it('float32 gradients are within 1e-4 of float64 ones', async () => {
    const x = inputs(2, 30, 40, 41, true);
    const gy = uniform(2 * 30 * 40, 3);
    const grads = async (dtype: lmk.DType) => {
      const t = toTensors(x, dtype);
      const f = lmk.wkv4.forward(t);
      const g = lmk.wkv4.backward({ ...t, y: f.y, gy: lmk.tensor(gy, { shape: [2, 30, 40], dtype }) });
      return Promise.all([g.gTimeDecay, g.gTimeFirst, g.gk, g.gv, g.gState!].map((u) => u.data()));
    };
    const [g64, g32] = [await grads('float64'), await grads('float32')];
    g64.forEach((ref, i) => expect(relError(g32[i]!, ref)).toBeLessThanOrEqual(1e-4));
  });
});

describe('wkv4 bad inputs', () => {
  const ok = () => toTensors(inputs(2, 4, 8, 1, true), 'float32');
  it('wrong shapes are RangeErrors naming the argument', () => {
    const t = ok();
    expect(() => lmk.wkv4.forward({ ...t, v: lmk.zeros([2, 4, 7]) })).toThrow(RangeError);
    expect(() => lmk.wkv4.forward({ ...t, v: lmk.zeros([2, 4, 7]) })).toThrow(/wkv4.forward: k must have shape/);
    expect(() => lmk.wkv4.forward({ ...t, timeDecay: lmk.zeros([7]) })).toThrow(/wkv4.forward: timeDecay/);
    expect(() => lmk.wkv4.forward({ ...t, state: lmk.zeros([2, 2, 8]) })).toThrow(/wkv4.forward: state/);
    expect(() => lmk.wkv4.step({ ...t, k: lmk.zeros([2, 4, 8]), v: lmk.zeros([2, 4, 8]), state: t.state! })).toThrow(
      /wkv4.step: [kv] must have shape/,
    );
  });
  it('wrong types are TypeErrors naming the argument', () => {
    const t = ok();
    expect(() => lmk.wkv4.forward({ ...t, k: [1, 2] as never })).toThrow(/wkv4.forward: k must be a Tensor/);
    expect(() => lmk.wkv4.forward({ ...t, k: lmk.zeros([2, 4, 8], { dtype: 'int32' }) })).toThrow(TypeError);
    expect(() => lmk.wkv4.forward({ ...t, timeDecay: lmk.zeros([8], { dtype: 'float64' }) })).toThrow(
      /wkv4.forward: timeDecay/,
    );
    expect(() => lmk.wkv4.forward({ timeDecay: t.timeDecay } as never)).toThrow(/wkv4.forward: timeFirst is required/);
    expect(() => lmk.wkv4.step({ ...t, k: lmk.zeros([2, 8]), v: lmk.zeros([2, 8]) } as never)).not.toThrow();
    expect(() =>
      lmk.wkv4.step({
        timeDecay: t.timeDecay,
        timeFirst: t.timeFirst,
        k: lmk.zeros([2, 8]),
        v: lmk.zeros([2, 8]),
      } as never),
    ).toThrow(/wkv4.step: state is required/);
    const d = lmk.zeros([2, 4, 8]);
    d.dispose();
    expect(() => lmk.wkv4.forward({ ...t, k: d })).toThrow(/wkv4.forward: k tensor was disposed/);
    expect(() => lmk.wkv4.forward({ ...t, bogus: 1 } as never)).toThrow(/unknown option 'bogus'/);
  });
});
