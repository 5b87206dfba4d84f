// losses.linearCrossEntropy / losses.linearOrpo (docs/api.md "Losses from
// hidden states") against the logits versions followed by the matmul's
// backward, against float64 references written here (refMatmul + the loss
// references), and by finite differences through ops.*.
import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { goldfishMaskRef, noise, randomLabels, refCrossEntropy, refOrpo, relErr } from './losses-reference';

import { floats, int32, TOL, type FloatDType } from './loss-helpers';
const values = async (t: lmk.Tensor) => Float64Array.from(await t.data());
const scalar = async (t: lmk.Tensor) => (await t.data())[0]!;

/** A head problem: hidden [N,d] (or [B,T,d]), weight [V,d], bias [V], as tensors and their float64 values. */
async function head(N: number, d: number, V: number, dtype: FloatDType, seed: number, scale = 1, withBias = true) {
  const hidden = floats(noise(N * d, seed, scale), [N, d], dtype);
  const weight = floats(noise(V * d, seed + 1, 1 / Math.sqrt(d)), [V, d], dtype);
  const bias = withBias ? floats(noise(V, seed + 2, 0.5), [V], dtype) : undefined;
  return {
    hidden,
    weight,
    bias,
    h: await values(hidden),
    w: await values(weight),
    b: bias ? await values(bias) : null,
  };
}

/** out[i,j] = Σ_k a[i,k]·b[j,k] (+ bias[j]) in float64: the logits. */
function logits64(h: Float64Array, w: Float64Array, b: Float64Array | null, N: number, d: number, V: number) {
  const z = new Float64Array(N * V);
  for (let i = 0; i < N; i++)
    for (let j = 0; j < V; j++) {
      let s = b ? b[j]! : 0;
      for (let k = 0; k < d; k++) s += h[i * d + k]! * w[j * d + k]!;
      z[i * V + j] = s;
    }
  return z;
}

/** The matmul's backward in float64 from G = d loss / d logits [N,V]. */
function headBackward64(G: Float64Array, h: Float64Array, w: Float64Array, N: number, d: number, V: number) {
  const gh = new Float64Array(N * d),
    gw = new Float64Array(V * d),
    gb = new Float64Array(V);
  for (let i = 0; i < N; i++)
    for (let j = 0; j < V; j++) {
      const g = G[i * V + j]!;
      if (g === 0) continue;
      gb[j] = gb[j]! + g;
      for (let k = 0; k < d; k++) {
        gh[i * d + k] = gh[i * d + k]! + g * w[j * d + k]!;
        gw[j * d + k] = gw[j * d + k]! + g * h[i * d + k]!;
      }
    }
  return { gh, gw, gb };
}

/** The logits path with lmkernels itself: logits = hidden·weightᵀ + bias, then the matmul's backward of gradLogits. */
function logitsPath(hidden: lmk.Tensor, weight: lmk.Tensor, bias: lmk.Tensor | undefined) {
  const d = weight.shape[1]!;
  const flat = hidden.reshape([-1, d]);
  const wt = lmk.ops.transpose(weight, 0, 1);
  const z = lmk.ops.matmul(flat, wt);
  const logits = (bias ? lmk.ops.add(z, bias) : z).reshape([...hidden.shape.slice(0, -1), weight.shape[0]!]);
  const backward = (gradLogits: lmk.Tensor) => {
    const g = gradLogits.reshape([-1, weight.shape[0]!]);
    return {
      gradHidden: lmk.ops.matmul(g, weight).reshape(hidden.shape),
      gradWeight: lmk.ops.matmul(lmk.ops.transpose(g, 0, 1), flat),
      gradBias: lmk.ops.sum(g, { dim: 0 }),
    };
  };
  return { logits, backward };
}

async function expectClose(
  out: lmk.Tensor | undefined,
  ref: ArrayLike<number> | lmk.Tensor,
  tol: number,
  what: string,
) {
  expect(out, what).toBeDefined();
  const r = ref instanceof lmk.Tensor ? await values(ref) : ref;
  const err = relErr(await values(out!), r);
  expect(err, `${what}: relative error ${err}`).toBeLessThanOrEqual(tol);
}

describe('losses.linearCrossEntropy', () => {
  const cases: [FloatDType, number, number, number, number | undefined][] = [
    // dtype, N, d, V, chunkSize
    ['float64', 13, 6, 37, 4], // chunk not dividing N
    ['float64', 13, 6, 37, undefined], // the default
    ['float64', 1, 5, 9, undefined], // N = 1
    ['float32', 29, 16, 1001, 8],
    ['float32', 29, 16, 1001, 1],
    ['float32', 29, 16, 1001, 64], // one chunk larger than N
    ['bfloat16', 24, 16, 515, 5],
    ['float16', 24, 16, 515, 7],
  ];

  it('equals the logits version followed by the matmul backward, and a float64 reference', async () => {
    for (const [dtype, N, d, V, chunkSize] of cases) {
      for (const withBias of [true, false]) {
        for (const reduction of ['mean', 'sum', 'none'] as const) {
          const what = `${dtype} N=${N} d=${d} V=${V} chunk=${chunkSize} bias=${withBias} ${reduction}`;
          const p = await head(N, d, V, dtype, N + V, 1.5, withBias);
          const y = randomLabels(N, V, V + 3, 0.2);
          const wts = Array.from(noise(N, 7, 1), (x) => Math.fround(Math.abs(x) + 0.1));
          const labels = int32(y, [N]);
          const weights = floats(wts, [N], 'float32');
          const r = lmk.losses.linearCrossEntropy({
            hidden: p.hidden,
            weight: p.weight,
            bias: p.bias,
            labels,
            weights,
            reduction,
            gradScale: 0.75,
            ...(chunkSize !== undefined ? { chunkSize } : {}),
          });
          const tol = TOL[dtype];

          // The logits version, in the same dtype.
          const path = logitsPath(p.hidden, p.weight, p.bias);
          const c = lmk.losses.crossEntropy({ logits: path.logits, labels, weights, reduction, gradScale: 0.75 });
          const back = path.backward(c.gradLogits!);
          await expectClose(r.loss, c.loss, tol.fwd, `${what}: loss vs logits path`);
          await expectClose(r.lse, c.lse, tol.fwd, `${what}: lse vs logits path`);
          await expectClose(r.gradHidden, back.gradHidden, tol.grad, `${what}: gradHidden vs logits path`);
          await expectClose(r.gradWeight, back.gradWeight, tol.grad, `${what}: gradWeight vs logits path`);
          if (withBias) await expectClose(r.gradBias, back.gradBias, tol.grad, `${what}: gradBias vs logits path`);
          else expect(r.gradBias).toBeUndefined();

          // float64 reference from the inputs' values.
          const z = logits64(p.h, p.w, p.b, N, d, V);
          const ref = refCrossEntropy(z, y, V, { reduction, weights: wts, gradScale: 0.75 });
          const g = headBackward64(ref.grad, p.h, p.w, N, d, V);
          await expectClose(r.loss, reduction === 'none' ? ref.perToken : [ref.loss], tol.fwd, `${what}: loss vs f64`);
          await expectClose(r.lse, ref.lse, tol.fwd, `${what}: lse vs f64`);
          await expectClose(r.gradHidden, g.gh, tol.grad, `${what}: gradHidden vs f64`);
          await expectClose(r.gradWeight, g.gw, tol.grad, `${what}: gradWeight vs f64`);
          if (withBias) await expectClose(r.gradBias, g.gb, tol.grad, `${what}: gradBias vs f64`);
        }
      }
    }
  });

  it('takes hidden [B,T,d] with labels [B,T], and the results do not depend on the chunk size', async () => {
    const [B, T, d, V] = [3, 5, 8, 67];
    const p = await head(B * T, d, V, 'float32', 11);
    const hidden = p.hidden.reshape([B, T, d]);
    const labels = int32(randomLabels(B * T, V, 5, 0.1), [B, T]);
    const results = [1, 2, 4, 15, 1000].map((chunkSize) =>
      lmk.losses.linearCrossEntropy({ hidden, weight: p.weight, bias: p.bias, labels, chunkSize }),
    );
    expect(results[0]!.gradHidden!.shape).toEqual([B, T, d]);
    expect(results[0]!.lse.shape).toEqual([B, T]);
    const first = results[0]!;
    for (const r of results.slice(1)) {
      expect(await values(r.loss)).toEqual(await values(first.loss));
      expect(await values(r.lse)).toEqual(await values(first.lse));
      expect(await values(r.gradHidden!)).toEqual(await values(first.gradHidden!));
      // The weight's gradient is summed over chunks: same value up to float32 rounding.
      await expectClose(r.gradWeight, first.gradWeight!, 1e-6, 'gradWeight across chunk sizes');
    }
  });

  it('with goldfish equals goldfishLoss on the logits', async () => {
    for (const [dtype, chunkSize] of [
      ['float64', 3],
      ['float32', 5],
      ['bfloat16', 4],
    ] as const) {
      const [B, T, d, V] = [2, 21, 8, 97];
      const p = await head(B * T, d, V, dtype, 21);
      const hidden = p.hidden.reshape([B, T, d]);
      const y = randomLabels(B * T, V, 9, 0.1);
      const labels = int32(y, [B, T]);
      const goldfish = { k: 3, strategy: 'hash' as const, contextWidth: 4, seed: 5 };
      const r = lmk.losses.linearCrossEntropy({ hidden, weight: p.weight, bias: p.bias, labels, goldfish, chunkSize });
      const path = logitsPath(hidden, p.weight, p.bias);
      const g = lmk.losses.goldfishLoss({ logits: path.logits, labels, ...goldfish });
      const back = path.backward(g.gradLogits!);
      const tol = TOL[dtype];
      for (const key of ['loss', 'lossAllTokens', 'lossDroppedTokens'] as const) {
        await expectClose(r[key], g[key], tol.fwd, `${dtype} goldfish ${key}`);
      }
      expect(await scalar(r.supervisedTokens!)).toBe(await scalar(g.supervisedTokens));
      expect(await scalar(r.keptTokens!)).toBe(await scalar(g.keptTokens));
      await expectClose(r.gradHidden, back.gradHidden, tol.grad, `${dtype} goldfish gradHidden`);
      await expectClose(r.gradWeight, back.gradWeight, tol.grad, `${dtype} goldfish gradWeight`);
      await expectClose(r.gradBias, back.gradBias, tol.grad, `${dtype} goldfish gradBias`);
      // And the float64 reference with the reference mask.
      const keep = goldfishMaskRef(y, T, { k: 3, strategy: 'hash', contextWidth: 4, seed: 5, startPosition: 0 });
      const ref = refCrossEntropy(logits64(p.h, p.w, p.b, B * T, d, V), y, V, { keep });
      await expectClose(r.loss, [ref.loss], tol.fwd, `${dtype} goldfish loss vs f64`);
    }
  });

  it('is finite where the model is certain, and gives 0 with every row ignored', async () => {
    const [N, d, V] = [6, 4, 33];
    const p = await head(N, d, V, 'float32', 31, 400); // logits of size ~1e3: softmax is one-hot
    const r = lmk.losses.linearCrossEntropy({
      hidden: p.hidden,
      weight: p.weight,
      bias: p.bias,
      labels: int32(randomLabels(N, V, 2), [N]),
      chunkSize: 4,
    });
    for (const t of [r.loss, r.lse, r.gradHidden!, r.gradWeight!, r.gradBias!]) {
      expect((await values(t)).every(Number.isFinite)).toBe(true);
    }
    const ref = refCrossEntropy(logits64(p.h, p.w, p.b, N, d, V), await values(int32(randomLabels(N, V, 2), [N])), V);
    await expectClose(r.loss, [ref.loss], 1e-5, 'certain model loss');

    const none = lmk.losses.linearCrossEntropy({
      hidden: p.hidden,
      weight: p.weight,
      bias: p.bias,
      labels: int32(new Array(N).fill(-100), [N]),
      chunkSize: 4,
    });
    expect(await scalar(none.loss)).toBe(0);
    for (const t of [none.gradHidden!, none.gradWeight!, none.gradBias!]) {
      expect((await values(t)).every((x) => x === 0)).toBe(true);
    }
    expect((await values(none.lse)).every(Number.isFinite)).toBe(true);
  });

  it('computeGrad false returns no gradients; a custom ignoreIndex is honoured', async () => {
    const [N, d, V] = [9, 4, 21];
    const p = await head(N, d, V, 'float64', 41);
    const y = Array.from(randomLabels(N, V, 3), (v, i) => (i % 3 === 0 ? 7 : v));
    const r = lmk.losses.linearCrossEntropy({
      hidden: p.hidden,
      weight: p.weight,
      labels: int32(y, [N]),
      ignoreIndex: 7,
      computeGrad: false,
      chunkSize: 2,
    });
    expect(r.gradHidden).toBeUndefined();
    expect(r.gradWeight).toBeUndefined();
    const ref = refCrossEntropy(logits64(p.h, p.w, null, N, d, V), y, V, { ignoreIndex: 7 });
    await expectClose(r.loss, [ref.loss], 1e-12, 'ignoreIndex 7');
  });

  it('rejects bad inputs with TypeError/RangeError naming the function and argument', () => {
    const fn = lmk.losses.linearCrossEntropy;
    const hidden = lmk.randn([4, 3]),
      weight = lmk.randn([5, 3]),
      labels = int32([0, 1, 2, 3], [4]);
    expect(() => fn({ hidden, weight: lmk.randn([5, 4]), labels })).toThrow(
      /losses\.linearCrossEntropy: weight must have shape \[V,d\] with d = 3/,
    );
    expect(() => fn({ hidden, weight: lmk.randn([5, 4]), labels })).toThrow(RangeError);
    expect(() => fn({ hidden: lmk.randn([4]), weight, labels })).toThrow(/linearCrossEntropy: hidden must have shape/);
    expect(() => fn({ hidden, weight, labels: int32([0, 1, 2], [3]) })).toThrow(RangeError);
    expect(() => fn({ hidden, weight, labels: int32([0, 1, 2], [3]) })).toThrow(/labels must have shape/);
    expect(() => fn({ hidden, weight, bias: lmk.randn([4]), labels })).toThrow(/bias must have shape \[V\]/);
    expect(() => fn({ hidden, weight: lmk.randn([5, 3], { dtype: 'float64' }), labels })).toThrow(TypeError);
    expect(() => fn({ hidden, weight: lmk.randn([5, 3], { dtype: 'float64' }), labels })).toThrow(
      /linearCrossEntropy: weight/,
    );
    expect(() => fn({ hidden, weight, labels: lmk.randn([4]) })).toThrow(TypeError);
    expect(() => fn({ hidden: int32([1, 2, 3], [3, 1]), weight, labels })).toThrow(TypeError);
    expect(() => fn({ hidden, weight, labels, chunkSize: 0 })).toThrow(/linearCrossEntropy: chunkSize/);
    expect(() => fn({ hidden, weight, labels, chunkSize: 0 })).toThrow(RangeError);
    expect(() => fn({ hidden, weight, labels, chunkSize: 1.5 })).toThrow(RangeError);
    expect(() => fn({ hidden, weight, labels, chunkSize: 'big' as unknown as number })).toThrow(TypeError);
    expect(() => fn({ hidden, weight, labels, reduction: 'avg' as 'mean' })).toThrow(/reduction/);
    expect(() => fn({ hidden, weight, labels, reduction: 'sum', goldfish: {} })).toThrow(RangeError);
    expect(() => fn({ hidden, weight, labels, goldfish: { k: 1 } })).toThrow(/linearCrossEntropy: k/);
    expect(() => fn({ hidden, weight, labels, logits: hidden } as never)).toThrow(TypeError);
    expect(() => fn({ hidden, weight } as never)).toThrow(/labels is required/);
    const gone = lmk.randn([5, 3]);
    gone.dispose();
    expect(() => fn({ hidden, weight: gone, labels })).toThrow(TypeError);
  });

  it('reports a label out of range at the next sync, and the library stays usable', async () => {
    const hidden = lmk.randn([4, 3]),
      weight = lmk.randn([5, 3]);
    const r = lmk.losses.linearCrossEntropy({ hidden, weight, labels: int32([0, 1, 5, 2], [4]), chunkSize: 2 });
    await expect(r.loss.data()).rejects.toThrow(RangeError);
    await expect(r.gradWeight!.data()).rejects.toThrow(/losses\.linearCrossEntropy: labels .* at flat index 2/);
    const ok = lmk.losses.linearCrossEntropy({ hidden, weight, labels: int32([0, 1, 4, 2], [4]) });
    expect(Number.isFinite(await scalar(ok.loss))).toBe(true);
  });

  it.runIf(lmk.cudaAvailable())('rejects tensors on different devices, and matches the CPU on CUDA', async () => {
    const hidden = lmk.randn([4, 3]),
      weight = lmk.randn([5, 3], { device: 'cuda' });
    expect(() => lmk.losses.linearCrossEntropy({ hidden, weight, labels: int32([0, 1, 2, 3], [4]) })).toThrow(
      TypeError,
    );
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const p = await head(37, 16, 301, dtype, 3);
      const labels = int32(randomLabels(37, 301, 4, 0.2), [37]);
      const cpu = lmk.losses.linearCrossEntropy({ hidden: p.hidden, weight: p.weight, bias: p.bias, labels });
      const gpu = lmk.losses.linearCrossEntropy({
        hidden: p.hidden.to('cuda'),
        weight: p.weight.to('cuda'),
        bias: p.bias!.to('cuda'),
        labels: labels.to('cuda'),
        chunkSize: 8,
      });
      const tol = TOL[dtype];
      await expectClose(gpu.loss, cpu.loss, tol.fwd, `cuda ${dtype} loss`);
      await expectClose(gpu.gradHidden, cpu.gradHidden!, tol.grad, `cuda ${dtype} gradHidden`);
      await expectClose(gpu.gradWeight, cpu.gradWeight!, tol.grad, `cuda ${dtype} gradWeight`);
      await expectClose(gpu.gradBias, cpu.gradBias!, tol.grad, `cuda ${dtype} gradBias`);
    }
  });
});

describe('losses.linearOrpo', () => {
  it('equals orpo on the logits followed by the matmul backward, and a float64 reference', async () => {
    const cases: [FloatDType, number, number, number, number, number, number | undefined][] = [
      // dtype, B, Tw, Tl, d, V, chunkSize
      ['float64', 3, 5, 4, 6, 29, 4],
      ['float64', 1, 1, 1, 3, 7, undefined],
      ['float32', 2, 9, 6, 8, 203, 5],
      ['bfloat16', 2, 8, 8, 8, 131, 3],
      ['float16', 2, 8, 5, 8, 131, 16],
    ];
    for (const [dtype, B, Tw, Tl, d, V, chunkSize] of cases) {
      const what = `${dtype} B=${B} Tw=${Tw} Tl=${Tl} V=${V} chunk=${chunkSize}`;
      const p = await head(B * Tw, d, V, dtype, V);
      const rejected = floats(noise(B * Tl * d, V + 9, 1), [B, Tl, d], dtype);
      const hl = await values(rejected);
      const chosen = p.hidden.reshape([B, Tw, d]);
      const yw = Array.from(randomLabels(B * Tw, V, 1, 0.2), (y, i) => (i % Tw === 0 ? Math.abs(y) % V : y));
      const yl = Array.from(randomLabels(B * Tl, V, 2, 0.2), (y, i) => (i % Tl === 0 ? Math.abs(y) % V : y));
      const chosenLabels = int32(yw, [B, Tw]),
        rejectedLabels = int32(yl, [B, Tl]);
      const r = lmk.losses.linearOrpo({
        chosenHidden: chosen,
        rejectedHidden: rejected,
        weight: p.weight,
        bias: p.bias,
        chosenLabels,
        rejectedLabels,
        lambda: 0.3,
        gradScale: 2,
        ...(chunkSize !== undefined ? { chunkSize } : {}),
      });
      const tol = TOL[dtype];
      const pw = logitsPath(chosen, p.weight, p.bias),
        pl = logitsPath(rejected, p.weight, p.bias);
      const o = lmk.losses.orpo({
        chosenLogits: pw.logits,
        rejectedLogits: pl.logits,
        chosenLabels,
        rejectedLabels,
        lambda: 0.3,
        gradScale: 2,
      });
      for (const key of ['loss', 'nllLoss', 'orLoss', 'chosenLogps', 'rejectedLogps', 'logOdds'] as const) {
        await expectClose(r[key], o[key], tol.fwd, `${what}: ${key}`);
      }
      for (const key of Object.keys(o.metrics) as (keyof lmk.OrpoMetrics)[]) {
        await expectClose(r.metrics[key], o.metrics[key], tol.fwd, `${what}: metrics.${key}`);
      }
      const bw = pw.backward(o.gradChosenLogits!),
        bl = pl.backward(o.gradRejectedLogits!);
      await expectClose(r.gradChosenHidden, bw.gradHidden, tol.grad, `${what}: gradChosenHidden`);
      await expectClose(r.gradRejectedHidden, bl.gradHidden, tol.grad, `${what}: gradRejectedHidden`);
      await expectClose(r.gradWeight, lmk.ops.add(bw.gradWeight, bl.gradWeight), tol.grad, `${what}: gradWeight`);
      await expectClose(r.gradBias, lmk.ops.add(bw.gradBias, bl.gradBias), tol.grad, `${what}: gradBias`);

      const zw = logits64(p.h, p.w, p.b, B * Tw, d, V),
        zl = logits64(hl, p.w, p.b, B * Tl, d, V);
      const ref = refOrpo(zw, zl, yw, yl, B, Tw, Tl, V, { lambda: 0.3 });
      await expectClose(r.loss, [ref.loss], tol.fwd, `${what}: loss vs f64`);
      await expectClose(r.logOdds, ref.logOdds, tol.fwd, `${what}: logOdds vs f64`);
      const gw = headBackward64(
        ref.gradChosen.map((x) => 2 * x),
        p.h,
        p.w,
        B * Tw,
        d,
        V,
      );
      const gl = headBackward64(
        ref.gradRejected.map((x) => 2 * x),
        hl,
        p.w,
        B * Tl,
        d,
        V,
      );
      await expectClose(r.gradChosenHidden, gw.gh, tol.grad, `${what}: gradChosenHidden vs f64`);
      await expectClose(r.gradRejectedHidden, gl.gh, tol.grad, `${what}: gradRejectedHidden vs f64`);
      await expectClose(
        r.gradWeight,
        gw.gw.map((x, i) => x + gl.gw[i]!),
        tol.grad,
        `${what}: gradWeight vs f64`,
      );
      await expectClose(
        r.gradBias,
        gw.gb.map((x, i) => x + gl.gb[i]!),
        tol.grad,
        `${what}: gradBias vs f64`,
      );
    }
  });

  it('with nllLabels and goldfish equals orpo on the logits', async () => {
    const [B, Tw, Tl, d, V] = [2, 16, 12, 6, 53];
    const p = await head(B * Tw, d, V, 'float64', 77, 1, false);
    const rejected = floats(noise(B * Tl * d, 78, 1), [B, Tl, d]);
    const chosen = p.hidden.reshape([B, Tw, d]);
    const chosenLabels = int32(randomLabels(B * Tw, V, 3), [B, Tw]);
    const nllLabels = int32(randomLabels(B * Tw, V, 4, 0.3), [B, Tw]);
    const rejectedLabels = int32(randomLabels(B * Tl, V, 5), [B, Tl]);
    const goldfish = { k: 2, strategy: 'static' as const, startPosition: 1 };
    const common = { chosenLabels, rejectedLabels, nllLabels, goldfish };
    const r = lmk.losses.linearOrpo({
      chosenHidden: chosen,
      rejectedHidden: rejected,
      weight: p.weight,
      ...common,
      chunkSize: 7,
    });
    const pw = logitsPath(chosen, p.weight, undefined),
      pl = logitsPath(rejected, p.weight, undefined);
    const o = lmk.losses.orpo({ chosenLogits: pw.logits, rejectedLogits: pl.logits, ...common });
    await expectClose(r.loss, o.loss, 1e-12, 'goldfish orpo loss');
    await expectClose(r.nllLoss, o.nllLoss, 1e-12, 'goldfish orpo nllLoss');
    const bw = pw.backward(o.gradChosenLogits!),
      bl = pl.backward(o.gradRejectedLogits!);
    await expectClose(r.gradChosenHidden, bw.gradHidden, 1e-12, 'goldfish orpo gradChosenHidden');
    await expectClose(r.gradWeight, lmk.ops.add(bw.gradWeight, bl.gradWeight), 1e-12, 'goldfish orpo gradWeight');
    expect(r.gradBias).toBeUndefined();
  });

  it('is finite where the model is certain', async () => {
    const [B, T, d, V] = [2, 3, 4, 17];
    const p = await head(B * T, d, V, 'float32', 5, 500);
    const hidden = p.hidden.reshape([B, T, d]);
    // Labels = the argmax of each row: log p = 0 exactly, the clamped log-odds stay finite.
    const z = logits64(p.h, p.w, p.b, B * T, d, V);
    const argmax = Array.from({ length: B * T }, (_, i) => {
      let best = 0;
      for (let j = 1; j < V; j++) if (z[i * V + j]! > z[i * V + best]!) best = j;
      return best;
    });
    const labels = int32(argmax, [B, T]);
    const r = lmk.losses.linearOrpo({
      chosenHidden: hidden,
      rejectedHidden: hidden,
      weight: p.weight,
      bias: p.bias,
      chosenLabels: labels,
      rejectedLabels: labels,
      chunkSize: 4,
    });
    for (const t of [r.loss, r.logOdds, r.gradChosenHidden!, r.gradRejectedHidden!, r.gradWeight!, r.gradBias!]) {
      expect((await values(t)).every(Number.isFinite)).toBe(true);
    }
  });

  it('rejects bad inputs and reports an empty pair at the next sync', async () => {
    const fn = lmk.losses.linearOrpo;
    const chosenHidden = lmk.randn([2, 3, 4]),
      rejectedHidden = lmk.randn([2, 2, 4]),
      weight = lmk.randn([6, 4]);
    const chosenLabels = int32([0, 1, 2, 3, 4, 5], [2, 3]),
      rejectedLabels = int32([0, 1, 2, 3], [2, 2]);
    const base = { chosenHidden, rejectedHidden, weight, chosenLabels, rejectedLabels };
    expect(() => fn({ ...base, chosenHidden: lmk.randn([6, 4]) })).toThrow(
      /linearOrpo: chosenHidden must have shape \[B,T,d\]/,
    );
    expect(() => fn({ ...base, rejectedHidden: lmk.randn([3, 2, 4]) })).toThrow(RangeError);
    expect(() => fn({ ...base, rejectedHidden: lmk.randn([2, 2, 4], { dtype: 'float64' }) })).toThrow(TypeError);
    expect(() => fn({ ...base, weight: lmk.randn([6, 5]) })).toThrow(/linearOrpo: weight/);
    expect(() => fn({ ...base, rejectedLabels: chosenLabels })).toThrow(/linearOrpo: rejectedLabels must have shape/);
    expect(() => fn({ ...base, chunkSize: -1 })).toThrow(RangeError);
    expect(() => fn({ ...base, lambda: Number.NaN })).toThrow(/linearOrpo: lambda/);
    const empty = fn({ ...base, rejectedLabels: int32([0, 1, -100, -100], [2, 2]) });
    await expect(empty.loss.data()).rejects.toThrow(/linearOrpo: rejectedLabels has no supervised token .* pair 1/);
    const bad = fn({ ...base, chosenLabels: int32([0, 1, 2, 3, 9, 5], [2, 3]) });
    await expect(bad.gradWeight!.data()).rejects.toThrow(/linearOrpo: chosenLabels .* at flat index 4/);
    const ok = fn(base);
    expect(Number.isFinite(await scalar(ok.loss))).toBe(true);
  });
});

/** A float64 leaf that requires grad. */
function leaf(v: ArrayLike<number>, shape: number[]): lmk.Tensor {
  const t = floats(v, shape);
  t.requiresGrad = true;
  return t;
}

describe('ops.linearCrossEntropy / ops.linearOrpo (autograd)', () => {
  it('pass gradcheck (float64 finite differences) for hidden, weight and bias', () => {
    const [N, d, V] = [5, 3, 7];
    const labels = int32([1, 6, -100, 0, 3], [N]);
    const make = () => [leaf(noise(N * d, 1, 1), [N, d]), leaf(noise(V * d, 2, 1), [V, d]), leaf(noise(V, 3, 1), [V])];
    for (const reduction of ['mean', 'sum'] as const) {
      expect(
        lmk.gradcheck(
          (hidden, weight, bias) =>
            lmk.ops.linearCrossEntropy({ hidden: hidden!, weight: weight!, bias, labels, reduction, chunkSize: 2 })
              .loss,
          make(),
        ),
      ).toBe(true);
    }
    // reduction 'none' through a weighted sum of the per-token losses
    const tokenWeights = floats([0.5, -1, 2, 3, 0.25], [N]);
    expect(
      lmk.gradcheck(
        (hidden, weight, bias) =>
          lmk.ops.sum(
            lmk.ops.mul(
              lmk.ops.linearCrossEntropy({
                hidden: hidden!,
                weight: weight!,
                bias,
                labels,
                reduction: 'none',
                chunkSize: 3,
              }).loss,
              tokenWeights,
            ),
          ),
        make(),
      ),
    ).toBe(true);
    const [B, Tw, Tl] = [2, 3, 2];
    const chosenLabels = int32([1, 2, 3, 4, -100, 6], [B, Tw]),
      rejectedLabels = int32([0, 5, 2, 2], [B, Tl]);
    expect(
      lmk.gradcheck(
        (c, r, weight, bias) =>
          lmk.ops.linearOrpo({
            chosenHidden: c!,
            rejectedHidden: r!,
            weight: weight!,
            bias,
            chosenLabels,
            rejectedLabels,
            lambda: 0.5,
            chunkSize: 2,
          }).loss,
        [
          leaf(noise(B * Tw * d, 4, 1), [B, Tw, d]),
          leaf(noise(B * Tl * d, 5, 1), [B, Tl, d]),
          leaf(noise(V * d, 6, 1), [V, d]),
          leaf(noise(V, 7, 1), [V]),
        ],
      ),
    ).toBe(true);
  });

  it('backward gives the kernel gradients scaled by the upstream gradient', async () => {
    const [N, d, V] = [6, 4, 11];
    const hidden = floats(noise(N * d, 1, 1), [N, d], 'float32');
    const weight = floats(noise(V * d, 2, 1), [V, d], 'float32');
    const bias = floats(noise(V, 3, 1), [V], 'float32');
    hidden.requiresGrad = true;
    weight.requiresGrad = true;
    bias.requiresGrad = true;
    const labels = int32([1, 2, 3, 4, 5, 6], [N]);
    const r = lmk.ops.linearCrossEntropy({ hidden, weight, bias, labels, chunkSize: 4 });
    lmk.ops.scale(r.loss, 3).backward();
    const k = lmk.losses.linearCrossEntropy({ hidden, weight, bias, labels, gradScale: 3 });
    await expectClose(hidden.grad!, k.gradHidden!, 1e-6, 'hidden.grad');
    await expectClose(weight.grad!, k.gradWeight!, 1e-6, 'weight.grad');
    await expectClose(bias.grad!, k.gradBias!, 1e-6, 'bias.grad');
  });
});
