import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import {
  goldfishMaskRef,
  mix64,
  noise,
  randomLabels,
  refCrossEntropy,
  refOrpo,
  relErr,
  trlOrpo,
  type GoldfishSpec,
} from './losses-reference';

import { floats, int32, TOL, type FloatDType } from './loss-helpers';
const values = async (t: lmk.Tensor) => Array.from(await t.data());
const scalar = async (t: lmk.Tensor) => (await t.data())[0]!;
const relScalar = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

// Logits as the kernel sees them (rounded to the storage dtype), in float64.
async function logitsOf(n: number, seed: number, scale: number, shape: number[], dtype: FloatDType) {
  const t = floats(noise(n, seed, scale), shape, dtype);
  return { t, z: await values(t) };
}

describe('losses.crossEntropy', () => {
  it('matches a float64 reference for every dtype and reduction', async () => {
    const cases: [FloatDType, number, number, number][] = [
      ['float64', 3, 7, 2500],
      ['float32', 4, 9, 4099],
      ['float32', 1, 50, 37],
      ['bfloat16', 2, 8, 3001],
      ['float16', 2, 8, 1500],
    ];
    for (const [dtype, B, T, V] of cases) {
      const { t: logits, z } = await logitsOf(B * T * V, B * 100 + V, 3, [B, T, V], dtype);
      const y = randomLabels(B * T, V, V + 1, 0.2);
      const w = Array.from(noise(B * T, 5, 1), (x) => Math.fround(Math.abs(x) + 0.1));
      for (const reduction of ['mean', 'sum', 'none'] as const) {
        for (const weighted of [false, true]) {
          const r = lmk.losses.crossEntropy({
            logits,
            labels: int32(y, [B, T]),
            reduction,
            gradScale: 0.5,
            ...(weighted ? { weights: floats(w, [B, T], 'float32') } : {}),
          });
          const ref = refCrossEntropy(z, y, V, { reduction, gradScale: 0.5, ...(weighted ? { weights: w } : {}) });
          expect(r.loss.dtype).toBe(dtype === 'float64' ? 'float64' : 'float32');
          expect(r.gradLogits!.dtype).toBe(dtype);
          expect(r.gradLogits!.shape).toEqual([B, T, V]);
          expect(r.lse.shape).toEqual([B, T]);
          if (reduction === 'none') {
            expect(r.loss.shape).toEqual([B, T]);
            expect(relErr(await values(r.loss), ref.perToken)).toBeLessThanOrEqual(TOL[dtype].fwd);
          } else {
            expect(r.loss.shape).toEqual([]);
            expect(relScalar(await scalar(r.loss), ref.loss)).toBeLessThanOrEqual(TOL[dtype].fwd);
          }
          expect(relErr(await values(r.lse), ref.lse)).toBeLessThanOrEqual(TOL[dtype].fwd);
          expect(relErr(await values(r.gradLogits!), ref.grad)).toBeLessThanOrEqual(TOL[dtype].grad);
        }
      }
    }
  });

  it('[N,V] logits, computeGrad false, and ignoreIndex inside [0,V)', async () => {
    const { t: logits, z } = await logitsOf(6 * 11, 3, 2, [6, 11], 'float32');
    const y = [1, 0, 4, 0, 10, 3];
    const r = lmk.losses.crossEntropy({
      logits,
      labels: int32(y, [6]),
      ignoreIndex: 0,
      computeGrad: false,
      reduction: 'sum',
    });
    expect(r.gradLogits).toBeUndefined();
    const ref = refCrossEntropy(z, y, 11, { reduction: 'sum', ignoreIndex: 0 });
    expect(relScalar(await scalar(r.loss), ref.loss)).toBeLessThanOrEqual(1e-5);
  });

  it('float64 gradients agree with central differences', async () => {
    const B = 2,
      T = 3,
      V = 7;
    const z = Array.from(noise(B * T * V, 11, 2));
    const y = [3, -100, 0, 6, 2, 2];
    const w = [0.5, 1, 2, 1.5, 0.25, 3];
    const lossAt = async (x: number[]) =>
      scalar(
        lmk.losses.crossEntropy({
          logits: floats(x, [B, T, V]),
          labels: int32(y, [B, T]),
          weights: floats(w, [B, T]),
          computeGrad: false,
        }).loss,
      );
    const grad = await values(
      lmk.losses.crossEntropy({ logits: floats(z, [B, T, V]), labels: int32(y, [B, T]), weights: floats(w, [B, T]) })
        .gradLogits!,
    );
    const fd: number[] = [];
    for (let k = 0; k < z.length; k++) {
      const p = [...z],
        m = [...z];
      p[k]! += 1e-6;
      m[k]! -= 1e-6;
      fd.push(((await lossAt(p)) - (await lossAt(m))) / 2e-6);
    }
    expect(relErr(grad, fd)).toBeLessThanOrEqual(1e-6);
  });

  it('stays finite where the model is certain (label logit 200 above the rest)', async () => {
    const V = 500;
    for (const dtype of ['float32', 'bfloat16', 'float16', 'float64'] as const) {
      const z = new Float64Array(3 * V);
      z[7] = 200;
      z[V + 9] = 200;
      z[2 * V + 11] = 12;
      const r = lmk.losses.crossEntropy({
        logits: floats(z, [3, V], dtype),
        labels: int32([7, 4, 11], [3]),
        reduction: 'none',
      });
      const loss = await values(r.loss),
        grad = await values(r.gradLogits!),
        lse = await values(r.lse);
      for (const v of [...loss, ...grad, ...lse]) expect(Number.isFinite(v)).toBe(true);
      expect(loss[0]).toBeLessThan(1e-30);
      expect(Math.abs(loss[1]! - 200) / 200).toBeLessThanOrEqual(TOL[dtype].fwd);
      // -log p = log1p(499 e^-12): far below lse's resolution, still exact to the bar.
      const expected = Math.log1p(499 * Math.exp(-12));
      expect(relScalar(loss[2]!, expected)).toBeLessThanOrEqual(dtype === 'float64' ? 1e-12 : 1e-5);
    }
  });

  it("'mean' with no supervised token is 0 with a zero gradient (PyTorch: NaN)", async () => {
    const r = lmk.losses.crossEntropy({
      logits: floats(noise(15, 1), [3, 5], 'float32'),
      labels: int32([-100, -100, -100], [3]),
    });
    expect(await scalar(r.loss)).toBe(0);
    expect((await values(r.gradLogits!)).every((g) => g === 0)).toBe(true);
    const empty = lmk.losses.crossEntropy({ logits: lmk.zeros([0, 5]), labels: lmk.zeros([0], { dtype: 'int32' }) });
    expect(await scalar(empty.loss)).toBe(0);
  });
});

describe('goldfish', () => {
  const spec = (g: Partial<GoldfishSpec>): GoldfishSpec => ({
    k: 4,
    strategy: 'hash',
    contextWidth: 13,
    seed: 0,
    startPosition: 0,
    ...g,
  });

  it('the BigInt mix reproduces splitmix64 (its published outputs for seed 0)', () => {
    expect(mix64(0x9e3779b97f4a7c15n).toString(16)).toBe('e220a8397b1dcdaf');
    expect(mix64(2n * 0x9e3779b97f4a7c15n).toString(16)).toBe('6e789e6aa1b965f4');
  });

  it('hash and random masks equal known answers computed from the spec with BigInt', async () => {
    const B = 3,
      T = 64;
    const labels = randomLabels(B * T, 50000, 7, 0.1);
    for (const g of [
      spec({}),
      spec({ k: 2, contextWidth: 1 }),
      spec({ k: 7, contextWidth: 5, seed: 2 ** 52 + 12345 }),
      spec({ strategy: 'random', k: 3, seed: 99 }),
      spec({ strategy: 'random', k: 10 }),
    ]) {
      const mask = lmk.losses.goldfishMask({ labels: int32(labels, [B, T]), ...g });
      expect(mask.dtype).toBe('int32');
      expect(mask.shape).toEqual([B, T]);
      expect(Array.from(await mask.data())).toEqual(Array.from(goldfishMaskRef(labels, T, g)));
    }
    // A few hand-checked answers: window [1..13] of one sequence, seed 0.
    const tokens = Int32Array.from({ length: 13 }, (_, i) => i + 1);
    let x = mix64(0n + 0x9e3779b97f4a7c15n);
    for (const tok of tokens) x = mix64(x ^ BigInt(tok));
    const drop13 = Number(x >> 11n) / 2 ** 53 < 1 / 4;
    const m = await values(lmk.losses.goldfishMask({ labels: int32(tokens, [13]) }));
    expect(m.slice(0, 12).every((v) => v === 1)).toBe(true); // t < h − 1: always kept
    expect(m[12]).toBe(drop13 ? 0 : 1);
  });

  it('hashTokens other than the labels; the same window decides the same way in any layout', async () => {
    const T = 40;
    const labels = randomLabels(2 * T, 1000, 3, 0.2),
      tokens = randomLabels(2 * T, 1000, 4);
    const g = spec({ contextWidth: 6, k: 3 });
    const mask = await values(
      lmk.losses.goldfishMask({ labels: int32(labels, [2, T]), hashTokens: int32(tokens, [2, T]), ...g }),
    );
    expect(mask).toEqual(Array.from(goldfishMaskRef(labels, T, g, tokens)));
    // Row 1 alone, as a 1-D sequence: the same decisions.
    const alone = await values(
      lmk.losses.goldfishMask({ labels: int32(labels.slice(T), [T]), hashTokens: int32(tokens.slice(T), [T]), ...g }),
    );
    expect(alone).toEqual(mask.slice(T));
  });

  it('static masks drop exactly the positions start::k', async () => {
    const T = 30,
      labels = new Int32Array(2 * T).fill(5);
    for (const [k, start] of [
      [2, 0],
      [4, 3],
      [5, 29],
      [3, 40],
    ] as const) {
      const m = await values(
        lmk.losses.goldfishMask({ labels: int32(labels, [2, T]), strategy: 'static', k, startPosition: start }),
      );
      for (let i = 0; i < 2 * T; i++) {
        const t = i % T;
        expect(m[i]).toBe(t >= start && (t - start) % k === 0 ? 0 : 1);
      }
    }
  });

  it('hash and random drop about 1 in k', async () => {
    const B = 20,
      T = 5000;
    const labels = randomLabels(B * T, 32000, 17);
    for (const strategy of ['hash', 'random'] as const) {
      for (const k of [2, 4, 10]) {
        const m = await values(lmk.losses.goldfishMask({ labels: int32(labels, [B, T]), strategy, k }));
        const counted = strategy === 'hash' ? B * (T - 12) : B * T;
        const dropped = counted - (m.reduce((a, b) => a + b, 0) - (strategy === 'hash' ? B * 12 : 0));
        expect(Math.abs(dropped / counted - 1 / k)).toBeLessThan(0.01);
      }
    }
  });

  it('goldfishLoss matches the reference, with counts and the gradient of the kept mean', async () => {
    const B = 3,
      T = 30,
      V = 400;
    const y = randomLabels(B * T, V, 21, 0.15);
    for (const dtype of ['float64', 'float32', 'bfloat16'] as const) {
      const { t: logits, z } = await logitsOf(B * T * V, 22, 2, [B, T, V], dtype);
      for (const strategy of ['hash', 'static', 'random'] as const) {
        const g = spec({ strategy, k: 3, contextWidth: 4, seed: 5, startPosition: 1 });
        const keep = goldfishMaskRef(y, T, g);
        const dropped = Int32Array.from(y, (l, i) => (l !== -100 && !keep[i] ? 1 : 0));
        const r = lmk.losses.goldfishLoss({ logits, labels: int32(y, [B, T]), gradScale: 2, ...g });
        const kept = refCrossEntropy(z, y, V, { keep, gradScale: 2 });
        expect(relScalar(await scalar(r.loss), kept.loss)).toBeLessThanOrEqual(TOL[dtype].fwd);
        expect(relScalar(await scalar(r.lossAllTokens), refCrossEntropy(z, y, V).loss)).toBeLessThanOrEqual(
          TOL[dtype].fwd,
        );
        expect(
          relScalar(await scalar(r.lossDroppedTokens), refCrossEntropy(z, y, V, { keep: dropped }).loss),
        ).toBeLessThanOrEqual(TOL[dtype].fwd);
        expect(r.supervisedTokens.dtype).toBe('int32');
        expect(r.supervisedTokens.shape).toEqual([]);
        expect(await scalar(r.supervisedTokens)).toBe(y.filter((l) => l !== -100).length);
        expect(await scalar(r.keptTokens)).toBe(keep.reduce((a, b) => a + b, 0));
        expect(relErr(await values(r.gradLogits!), kept.grad)).toBeLessThanOrEqual(TOL[dtype].grad);
      }
    }
  });

  it('no kept token: loss 0 and a zero gradient', async () => {
    const r = lmk.losses.goldfishLoss({
      logits: floats(noise(3 * 7, 2), [3, 1, 7], 'float32'),
      labels: int32([1, 2, 3], [3, 1]),
      strategy: 'static',
      k: 2,
    });
    expect(await scalar(r.loss)).toBe(0);
    expect(await scalar(r.keptTokens)).toBe(0);
    expect(await scalar(r.lossDroppedTokens)).toBeGreaterThan(0);
    expect((await values(r.gradLogits!)).every((v) => v === 0)).toBe(true);
  });
});

describe('losses.orpo', () => {
  const B = 3,
    Tw = 8,
    Tl = 6,
    V = 300;
  async function inputs(dtype: FloatDType, seed: number) {
    const w = await logitsOf(B * Tw * V, seed, 2, [B, Tw, V], dtype);
    const l = await logitsOf(B * Tl * V, seed + 1, 2, [B, Tl, V], dtype);
    const yw = randomLabels(B * Tw, V, seed + 2, 0.3),
      yl = randomLabels(B * Tl, V, seed + 3, 0.3);
    for (let b = 0; b < B; b++) {
      yw[b * Tw] = 5;
      yl[b * Tl + 1] = 9;
    }
    return { w, l, yw, yl };
  }

  it('matches the float64 reference: losses, log-probabilities, metrics, both gradients', async () => {
    for (const dtype of ['float64', 'float32', 'bfloat16', 'float16'] as const) {
      for (const variant of ['plain', 'nllLabels+goldfish'] as const) {
        const { w, l, yw, yl } = await inputs(dtype, dtype.length * 10 + variant.length);
        const ynll = variant === 'plain' ? yw : randomLabels(B * Tw, V, 77, 0.3);
        const g: GoldfishSpec = { k: 3, strategy: 'hash', contextWidth: 3, seed: 1, startPosition: 0 };
        const keep = variant === 'plain' ? undefined : goldfishMaskRef(ynll, Tw, g);
        const r = lmk.losses.orpo({
          chosenLogits: w.t,
          rejectedLogits: l.t,
          chosenLabels: int32(yw, [B, Tw]),
          rejectedLabels: int32(yl, [B, Tl]),
          lambda: 0.3,
          ...(variant === 'plain' ? {} : { nllLabels: int32(ynll, [B, Tw]), goldfish: g }),
        });
        const ref = refOrpo(w.z, l.z, yw, yl, B, Tw, Tl, V, {
          lambda: 0.3,
          nllLabels: ynll,
          ...(keep ? { keep } : {}),
        });
        const tol = TOL[dtype];
        expect(relScalar(await scalar(r.loss), ref.loss)).toBeLessThanOrEqual(tol.fwd);
        expect(relScalar(await scalar(r.nllLoss), ref.nllLoss)).toBeLessThanOrEqual(tol.fwd);
        expect(relScalar(await scalar(r.orLoss), ref.orLoss)).toBeLessThanOrEqual(tol.fwd);
        expect(r.chosenLogps.shape).toEqual([B]);
        expect(relErr(await values(r.chosenLogps), ref.chosenLogps)).toBeLessThanOrEqual(tol.fwd);
        expect(relErr(await values(r.rejectedLogps), ref.rejectedLogps)).toBeLessThanOrEqual(tol.fwd);
        expect(relErr(await values(r.logOdds), ref.logOdds)).toBeLessThanOrEqual(tol.fwd * 10);
        for (const [name, v] of Object.entries(ref.metrics)) {
          const t = r.metrics[name as keyof typeof r.metrics];
          expect(t.shape).toEqual([]);
          expect(Math.abs((await scalar(t)) - v)).toBeLessThanOrEqual(tol.fwd * 10 * Math.max(1, Math.abs(v)));
        }
        expect(relErr(await values(r.gradChosenLogits!), ref.gradChosen)).toBeLessThanOrEqual(tol.grad);
        expect(relErr(await values(r.gradRejectedLogits!), ref.gradRejected)).toBeLessThanOrEqual(tol.grad);
      }
    }
  });

  it("agrees with a direct transcription of TRL's odds_ratio_loss on moderate inputs", async () => {
    const { w, l, yw, yl } = await inputs('float64', 5);
    const r = lmk.losses.orpo({
      chosenLogits: w.t,
      rejectedLogits: l.t,
      chosenLabels: int32(yw, [B, Tw]),
      rejectedLabels: int32(yl, [B, Tl]),
    });
    const trl = trlOrpo(w.z, l.z, yw, yl, B, Tw, Tl, V, 0.1);
    expect(relScalar(await scalar(r.loss), trl.loss)).toBeLessThanOrEqual(1e-12);
    expect(relScalar(await scalar(r.nllLoss), trl.nllLoss)).toBeLessThanOrEqual(1e-12);
    expect(relErr(await values(r.logOdds), trl.logOdds)).toBeLessThanOrEqual(1e-12);
    expect(relErr(await values(r.chosenLogps), trl.chosenLogps)).toBeLessThanOrEqual(1e-12);
    for (const [name, v] of Object.entries(trl.metrics)) {
      expect(Math.abs((await scalar(r.metrics[name as keyof typeof r.metrics])) - v)).toBeLessThanOrEqual(
        1e-12 * Math.max(1, Math.abs(v)),
      );
    }
  });

  it('float64 gradients agree with central differences', async () => {
    const b = 2,
      tw = 3,
      tl = 2,
      v = 5;
    const zw = Array.from(noise(b * tw * v, 31, 1.5)),
      zl = Array.from(noise(b * tl * v, 32, 1.5));
    const yw = [1, 4, -100, 0, 2, 2],
      yl = [3, -100, 1, 1],
      ynll = [1, -100, 3, 0, 2, -100];
    const run = (w: number[], l: number[], computeGrad: boolean) =>
      lmk.losses.orpo({
        chosenLogits: floats(w, [b, tw, v]),
        rejectedLogits: floats(l, [b, tl, v]),
        chosenLabels: int32(yw, [b, tw]),
        rejectedLabels: int32(yl, [b, tl]),
        nllLabels: int32(ynll, [b, tw]),
        lambda: 0.7,
        computeGrad,
      });
    const r = run(zw, zl, true);
    const fd = async (which: 'w' | 'l') => {
      const base = which === 'w' ? zw : zl,
        out: number[] = [];
      for (let k = 0; k < base.length; k++) {
        const p = [...base],
          m = [...base];
        p[k]! += 1e-6;
        m[k]! -= 1e-6;
        const lp = await scalar((which === 'w' ? run(p, zl, false) : run(zw, p, false)).loss);
        const lm = await scalar((which === 'w' ? run(m, zl, false) : run(zw, m, false)).loss);
        out.push((lp - lm) / 2e-6);
      }
      return out;
    };
    expect(relErr(await values(r.gradChosenLogits!), await fd('w'))).toBeLessThanOrEqual(1e-6);
    expect(relErr(await values(r.gradRejectedLogits!), await fd('l'))).toBeLessThanOrEqual(1e-6);
  });

  it("is finite where the model is certain, where TRL's formula gives NaN or Inf", async () => {
    const b = 2,
      t = 4,
      v = 64;
    const y = Int32Array.from({ length: b * t }, (_, i) => (i * 7) % v);
    const zw = new Float64Array(b * t * v),
      zl = noise(b * t * v, 41, 1);
    for (let i = 0; i < b * t; i++) {
      zw[i * v + y[i]!] = 200;
      zl[i * v + y[i]!] = i % 2 ? 200 : -200;
    }
    const trl = trlOrpo(zw, zl, y, y, b, t, t, v, 0.1);
    expect(trl.logOdds.some((x) => !Number.isFinite(x))).toBe(true);
    for (const dtype of ['float32', 'bfloat16', 'float16', 'float64'] as const) {
      const r = lmk.losses.orpo({
        chosenLogits: floats(zw, [b, t, v], dtype),
        rejectedLogits: floats(zl, [b, t, v], dtype),
        chosenLabels: int32(y, [b, t]),
        rejectedLabels: int32(y, [b, t]),
      });
      const all = [
        r.loss,
        r.nllLoss,
        r.orLoss,
        r.chosenLogps,
        r.rejectedLogps,
        r.logOdds,
        r.gradChosenLogits!,
        r.gradRejectedLogits!,
        ...Object.values(r.metrics),
      ];
      for (const tensor of all) for (const x of await values(tensor)) expect(Number.isFinite(x)).toBe(true);
      expect((await values(r.logOdds))[0]).toBeGreaterThan(60);
    }
  });

  it('a pair with no supervised token rejects at the next sync, naming the pair', async () => {
    const z = floats(noise(3 * 2 * 4, 1), [3, 2, 4], 'float32');
    const r = lmk.losses.orpo({
      chosenLogits: z,
      rejectedLogits: z,
      chosenLabels: int32([1, 2, -100, -100, 3, 0], [3, 2]),
      rejectedLabels: int32([1, 2, 3, 0, 1, 1], [3, 2]),
    });
    await expect(lmk.synchronize('cpu')).rejects.toThrow(RangeError);
    await expect(r.loss.data()).rejects.toThrow(/losses\.orpo: chosenLabels has no supervised token .* in pair 1/);
    await lmk.synchronize('cpu');
    const ok = lmk.losses.orpo({
      chosenLogits: z,
      rejectedLogits: z,
      chosenLabels: int32([1, 2, 0, 3, 3, 0], [3, 2]),
      rejectedLabels: int32([1, 2, 3, 0, 1, 1], [3, 2]),
    });
    expect(Number.isFinite(await scalar(ok.loss))).toBe(true);
  });
});

describe('losses.shiftLabels', () => {
  it('shifts left and puts ignoreIndex last', async () => {
    expect(await values(lmk.losses.shiftLabels({ inputIds: int32([1, 2, 3, 4, 5, 6], [2, 3]) }))).toEqual([
      2, 3, -100, 5, 6, -100,
    ]);
    const s = lmk.losses.shiftLabels({ inputIds: int32([7, 8, 9], [3]), ignoreIndex: -1 });
    expect(s.dtype).toBe('int32');
    expect(await values(s)).toEqual([8, 9, -1]);
  });
});

describe('determinism', () => {
  // Enough rows for several parallel chunks at this V.
  const script = `
    const lmk = require('lmkernels');
    const { createHash } = require('node:crypto');
    const N = 2048, V = 1000;
    const logits = lmk.randn([8, N / 8, V], { seed: 3, std: 3 });
    const y = lmk.tensor(Int32Array.from({ length: N }, (_, i) => (i % 17 ? (i * 7919) % V : -100)), { shape: [8, N / 8], dtype: 'int32' });
    const h = createHash('sha256');
    const add = (t) => h.update(Buffer.from(t.dataSync().buffer));
    const ce = lmk.losses.crossEntropy({ logits, labels: y });
    [ce.loss, ce.lse, ce.gradLogits].forEach(add);
    const gl = lmk.losses.goldfishLoss({ logits, labels: y, k: 3 });
    [gl.loss, gl.lossAllTokens, gl.gradLogits].forEach(add);
    const o = lmk.losses.orpo({ chosenLogits: logits, rejectedLogits: logits.reshape([8, N / 8, V]), chosenLabels: y, rejectedLabels: y.reshape([8, N / 8]) });
    [o.loss, o.logOdds, o.gradChosenLogits].forEach(add);
    const bf = lmk.losses.crossEntropy({ logits: logits.to('bfloat16'), labels: y });
    [bf.loss, bf.gradLogits].forEach(add);
    process.stdout.write(h.digest('hex'));
  `;
  const digest = (threads: string) =>
    execFileSync(process.execPath, ['-e', script], {
      env: { ...process.env, LMK_NUM_THREADS: threads },
      encoding: 'utf8',
    });

  it('same input gives bit-identical results across runs and thread counts (LMK_NUM_THREADS=1 vs 2)', () => {
    const one = digest('1'),
      two = digest('2'),
      again = digest('2');
    expect(one).toMatch(/^[0-9a-f]{64}$/);
    expect(two).toBe(one);
    expect(again).toBe(one);
  });

  it('in-process repeats are bit-identical', async () => {
    const logits = lmk.randn([4, 50, 3000], { seed: 8, std: 4 });
    const y = int32(randomLabels(200, 3000, 9, 0.1), [4, 50]);
    const h = async () => {
      const r = lmk.losses.crossEntropy({ logits, labels: y });
      return createHash('sha256')
        .update(Buffer.from((await r.gradLogits!.data()).buffer))
        .update(Buffer.from((await r.loss.data()).buffer))
        .digest('hex');
    };
    expect(await h()).toBe(await h());
  });
});

describe('bad inputs', () => {
  const z = lmk.zeros([2, 3, 5]);
  const y = lmk.zeros([2, 3], { dtype: 'int32' });

  it('wrong types are TypeErrors naming the function and argument', () => {
    expect(() => lmk.losses.crossEntropy({ logits: y, labels: y })).toThrow(TypeError);
    expect(() => lmk.losses.crossEntropy({ logits: y, labels: y })).toThrow(
      /losses\.crossEntropy: logits must have dtype float32, bfloat16, float16 or float64, got int32/,
    );
    expect(() => lmk.losses.crossEntropy({ logits: z, labels: z })).toThrow(
      /losses\.crossEntropy: labels must have dtype int32, got float32/,
    );
    expect(() => lmk.losses.crossEntropy({ logits: z } as never)).toThrow(/losses\.crossEntropy: labels is required/);
    expect(() => lmk.losses.crossEntropy({ logits: [1, 2] as never, labels: y })).toThrow(
      /losses\.crossEntropy: logits must be a Tensor/,
    );
    expect(() => lmk.losses.crossEntropy({ logits: z, labels: y, gradScale: '2' as never })).toThrow(
      /losses\.crossEntropy: gradScale must be a number/,
    );
    expect(() => lmk.losses.crossEntropy({ logits: z, labels: y, computeGrad: 1 as never })).toThrow(TypeError);
    expect(() => lmk.losses.crossEntropy({ logits: z, labels: y, reduce: 'sum' } as never)).toThrow(
      /losses\.crossEntropy: unknown option 'reduce'/,
    );
    expect(() =>
      lmk.losses.crossEntropy({ logits: z, labels: y, weights: lmk.zeros([2, 3], { dtype: 'bfloat16' }) }),
    ).toThrow(/weights must be float32/);
    expect(() => lmk.losses.goldfishMask({ labels: z })).toThrow(/losses\.goldfishMask: labels must have dtype int32/);
    expect(() => lmk.losses.goldfishLoss({ logits: z, labels: y, hashTokens: z })).toThrow(
      /losses\.goldfishLoss: hashTokens must have dtype int32/,
    );
    expect(() =>
      lmk.losses.orpo({
        chosenLogits: z,
        rejectedLogits: lmk.zeros([2, 3, 5], { dtype: 'float64' }),
        chosenLabels: y,
        rejectedLabels: y,
      }),
    ).toThrow(/losses\.orpo: rejectedLogits must have dtype float32 like chosenLogits/);
    expect(() =>
      lmk.losses.orpo({ chosenLogits: z, rejectedLogits: z, chosenLabels: y, rejectedLabels: y, goldfish: 3 as never }),
    ).toThrow(TypeError);
    expect(() => lmk.losses.shiftLabels({ inputIds: z })).toThrow(
      /losses\.shiftLabels: inputIds must have dtype int32/,
    );
    const gone = lmk.zeros([2, 3, 5]);
    gone.dispose();
    expect(() => lmk.losses.crossEntropy({ logits: gone, labels: y })).toThrow(
      /losses\.crossEntropy: logits tensor was disposed/,
    );
  });

  it.runIf(lmk.cudaAvailable())('labels on another device than the logits are TypeErrors', () => {
    expect(() => lmk.losses.crossEntropy({ logits: z.to('cuda'), labels: y })).toThrow(
      /labels must be on cuda:0 like logits/,
    );
  });

  it('wrong shapes and option values are RangeErrors', () => {
    expect(() => lmk.losses.crossEntropy({ logits: z, labels: lmk.zeros([2, 4], { dtype: 'int32' }) })).toThrow(
      /losses\.crossEntropy: labels must have shape \[B,T\] = \[2,3\] like logits \[2,3,5\], got \[2,4\]/,
    );
    expect(() => lmk.losses.crossEntropy({ logits: lmk.zeros([5]), labels: y })).toThrow(RangeError);
    expect(() => lmk.losses.crossEntropy({ logits: z, labels: y, reduction: 'avg' as never })).toThrow(
      /reduction must be one of 'mean', 'sum', 'none'/,
    );
    expect(() => lmk.losses.crossEntropy({ logits: z, labels: y, gradScale: Infinity })).toThrow(
      /gradScale must be a finite number/,
    );
    expect(() => lmk.losses.crossEntropy({ logits: z, labels: y, ignoreIndex: 0.5 })).toThrow(
      /ignoreIndex must be an integer/,
    );
    expect(() => lmk.losses.goldfishMask({ labels: y, k: 1 })).toThrow(
      /losses\.goldfishMask: k must be an integer >= 2, got 1/,
    );
    expect(() => lmk.losses.goldfishMask({ labels: y, k: 2.5 })).toThrow(RangeError);
    expect(() => lmk.losses.goldfishMask({ labels: y, strategy: 'mod' as never })).toThrow(
      /strategy must be one of 'hash', 'static', 'random'/,
    );
    expect(() => lmk.losses.goldfishMask({ labels: y, contextWidth: 0 })).toThrow(
      /contextWidth must be an integer >= 1/,
    );
    expect(() => lmk.losses.goldfishMask({ labels: y, seed: -1 })).toThrow(/seed must be an integer in \[0, 2\^53\)/);
    expect(() => lmk.losses.goldfishMask({ labels: y, startPosition: -2 })).toThrow(
      /startPosition must be an integer >= 0/,
    );
    expect(() => lmk.losses.goldfishMask({ labels: y, hashTokens: lmk.zeros([3, 2], { dtype: 'int32' }) })).toThrow(
      /hashTokens must have shape like labels/,
    );
    expect(() => lmk.losses.goldfishLoss({ logits: z, labels: y, k: 0 })).toThrow(/losses\.goldfishLoss: k must be/);
    const zr = lmk.zeros([3, 4, 5]),
      yr = lmk.zeros([3, 4], { dtype: 'int32' });
    expect(() => lmk.losses.orpo({ chosenLogits: z, rejectedLogits: zr, chosenLabels: y, rejectedLabels: yr })).toThrow(
      /losses\.orpo: rejectedLogits must have shape \[B,T',V\] with B = 2/,
    );
    expect(() =>
      lmk.losses.orpo({ chosenLogits: lmk.zeros([6, 5]), rejectedLogits: z, chosenLabels: y, rejectedLabels: y }),
    ).toThrow(/chosenLogits must have shape \[B,T,V\]/);
    expect(() =>
      lmk.losses.orpo({ chosenLogits: z, rejectedLogits: z, chosenLabels: y, rejectedLabels: y, nllLabels: yr }),
    ).toThrow(/nllLabels must have shape like chosenLabels/);
    expect(() =>
      lmk.losses.orpo({ chosenLogits: z, rejectedLogits: z, chosenLabels: y, rejectedLabels: y, lambda: NaN }),
    ).toThrow(/lambda must be a finite number/);
    expect(() =>
      lmk.losses.orpo({ chosenLogits: z, rejectedLogits: z, chosenLabels: y, rejectedLabels: y, goldfish: { k: 1 } }),
    ).toThrow(/losses\.orpo: k must be an integer >= 2/);
    expect(() =>
      lmk.losses.orpo({
        chosenLogits: lmk.zeros([0, 3, 5]),
        rejectedLogits: lmk.zeros([0, 3, 5]),
        chosenLabels: lmk.zeros([0, 3], { dtype: 'int32' }),
        rejectedLabels: lmk.zeros([0, 3], { dtype: 'int32' }),
      }),
    ).toThrow(/at least one pair/);
    expect(() => lmk.losses.shiftLabels({ inputIds: lmk.zeros([2, 2, 2], { dtype: 'int32' }) })).toThrow(RangeError);
  });

  it('a label outside [0,V) rejects at the next sync with the op, argument and first bad index', async () => {
    const logits = floats(noise(24, 4), [2, 2, 6], 'float32');
    const r = lmk.losses.crossEntropy({ logits, labels: int32([1, 6, -100, -7], [2, 2]) }); // queued: no throw
    await expect(lmk.synchronize('cpu')).rejects.toThrow(RangeError);
    await expect(r.loss.data()).rejects.toThrow(
      /losses\.crossEntropy: labels has a value outside \[0, 6\) other than ignoreIndex -100 at flat index 1/,
    );
    await expect(r.gradLogits!.data()).rejects.toThrow(RangeError);
    await lmk.synchronize('cpu'); // reported once; the stream is usable again
    const g = lmk.losses.goldfishLoss({ logits, labels: int32([1, 2, 3, 60], [2, 2]) });
    await expect(g.loss.data()).rejects.toThrow(
      /losses\.goldfishLoss: labels has a value outside \[0, 6\) .* at flat index 3/,
    );
    const o = lmk.losses.orpo({
      chosenLogits: logits,
      rejectedLogits: logits,
      chosenLabels: int32([1, 2, 3, 0], [2, 2]),
      rejectedLabels: int32([1, 2, 3, 0], [2, 2]),
      nllLabels: int32([1, 9, 3, 0], [2, 2]),
    });
    await expect(o.orLoss.data()).rejects.toThrow(
      /losses\.orpo: nllLabels has a value outside \[0, 6\) .* at flat index 1/,
    );
    await lmk.synchronize('cpu').catch(() => undefined);
    expect(
      Number.isFinite(await scalar(lmk.losses.crossEntropy({ logits, labels: int32([1, 2, 3, 0], [2, 2]) }).loss)),
    ).toBe(true);
  });
});

describe('CUDA', () => {
  it.runIf(lmk.cudaAvailable())('matches the CPU', async () => {
    const B = 2,
      T = 9,
      V = 5003;
    const logits = lmk.randn([B, T, V], { seed: 4, std: 3 });
    const y = int32(randomLabels(B * T, V, 5, 0.2), [B, T]);
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const cpu = lmk.losses.crossEntropy({ logits: logits.to(dtype), labels: y });
      const gpu = lmk.losses.crossEntropy({ logits: logits.to(dtype).to('cuda'), labels: y.to('cuda') });
      expect(relScalar(await scalar(gpu.loss), await scalar(cpu.loss))).toBeLessThanOrEqual(TOL[dtype].fwd);
      expect(relErr(await values(gpu.gradLogits!), await values(cpu.gradLogits!))).toBeLessThanOrEqual(TOL[dtype].grad);
    }
  });
});
