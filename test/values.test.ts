// NaN and ±Infinity are values (as in PyTorch): creation functions and the
// options that are data accept them; options with a range (eps, lr, scale,
// gradScale, lambda, std) reject them with a RangeError naming the range, and
// sizes, counts, indices and seeds with a RangeError too (never "must be a
// number, got number NaN").
import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import * as dense from '../dist/cjs/kernels/dense.js';

const specials = [Number.NaN, Infinity, -Infinity];

function same(a: ArrayLike<number>, b: readonly number[]): boolean {
  return a.length === b.length && b.every((v, i) => Object.is(a[i], v));
}

describe('NaN and infinities are values', () => {
  it('full, tensor and fill_ store them in every floating dtype', async () => {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'float16'] as const) {
      for (const v of specials) {
        const t = lmk.full([3], v, { dtype });
        expect(same(await t.data(), [v, v, v]), `${dtype} ${v}`).toBe(true);
        t.dispose();
      }
      const t = lmk.tensor([Number.NaN, Infinity, -Infinity, 1.5], { dtype });
      expect(same(await t.data(), [Number.NaN, Infinity, -Infinity, 1.5]), dtype).toBe(true);
      dense.fill_(t, -Infinity);
      expect(same(await t.data(), [-Infinity, -Infinity, -Infinity, -Infinity]), dtype).toBe(true);
      t.dispose();
    }
  });

  it('int32 takes finite values in its range only (RangeError otherwise)', () => {
    for (const v of [...specials, 2 ** 31, -(2 ** 31) - 1]) {
      expect(() => lmk.full([2], v, { dtype: 'int32' }), String(v)).toThrow(RangeError);
      expect(() => lmk.full([2], v, { dtype: 'int32' })).toThrow(/full: value .* cannot be stored in int32/);
    }
    expect(Array.from(lmk.full([2], -2.9, { dtype: 'int32' }).dataSync())).toEqual([-2, -2]);
    expect(() => dense.fill_(lmk.zeros([1], { dtype: 'int32' }), Number.NaN)).toThrow(/ops\.fill_: value NaN/);
  });

  it('scalar operands and randn means are data', async () => {
    const x = lmk.tensor([1, -2, 0]);
    expect(same(await lmk.ops.scale(x, Number.NaN).data(), [Number.NaN, Number.NaN, Number.NaN])).toBe(true);
    expect(same(await lmk.ops.scale(x, Infinity).data(), [Infinity, -Infinity, Number.NaN])).toBe(true);
    const acc = lmk.zeros([3]);
    dense.addInPlace_(acc, x, -Infinity);
    expect(same(await acc.data(), [-Infinity, Infinity, Number.NaN])).toBe(true);
    expect(same(await lmk.randn([2], { mean: Number.NaN, seed: 1 }).data(), [Number.NaN, Number.NaN])).toBe(true);
    expect(same(await lmk.randn([2], { mean: Infinity, seed: 1 }).data(), [Infinity, Infinity])).toBe(true);
  });

  it('options with a range reject NaN and infinities with a RangeError naming the range', () => {
    const x = lmk.ones([2, 4]);
    const cases: [() => unknown, RegExp][] = [
      [() => lmk.randn([2], { std: Number.NaN }), /randn: std must be >= 0, got NaN/],
      [() => lmk.rand([2], { low: Number.NaN }), /rand: low must be less than high, both finite, got low=NaN/],
      [() => lmk.rand([2], { high: Infinity }), /high=Infinity/],
      [
        () => lmk.ops.layerNorm(x, null, null, { eps: Number.NaN }),
        /ops\.layerNorm: eps must be a finite number >= 0, got NaN/,
      ],
      [() => lmk.ops.rmsNorm(x, null, { eps: Infinity }), /ops\.rmsNorm: eps must be .*, got Infinity/],
      [
        () => new lmk.optim.AdamW([x], { lr: Number.NaN }),
        /optim\.AdamW: lr must be a finite number in \[0, Infinity\), got NaN/,
      ],
      [() => new lmk.optim.AdamW([x], { lr: 1, eps: Infinity }), /optim\.AdamW: eps must be .*, got Infinity/],
      [() => lmk.clipGradNorm([], Number.NaN), /clipGradNorm: maxNorm must be > 0, got NaN/],
      [
        () => lmk.losses.crossEntropy({ logits: x, labels: lmk.zeros([2], { dtype: 'int32' }), gradScale: Number.NaN }),
        /losses\.crossEntropy: gradScale must be a finite number, got NaN/,
      ],
      [
        () =>
          lmk.fam.blockAttention({
            q: lmk.zeros([1, 1, 2, 4]),
            k: lmk.zeros([1, 1, 2, 4]),
            v: lmk.zeros([1, 1, 2, 4]),
            blockSize: 2,
            memoryBlocks: 0,
            scale: -Infinity,
          }),
        /fam\.blockAttention: scale must be a finite number, got -Infinity/,
      ],
    ];
    for (const [call, message] of cases) {
      expect(call, String(message)).toThrow(RangeError);
      expect(call).toThrow(message);
    }
  });

  it('sizes, counts, indices and seeds reject NaN, infinities and fractions with a RangeError', () => {
    const x = lmk.ones([2, 4]);
    const labels = lmk.zeros([2], { dtype: 'int32' });
    const cases: [() => unknown, RegExp][] = [
      [() => lmk.zeros([Number.NaN]), /zeros: shape must be an array of integers, got NaN at index 0/],
      [() => lmk.ones([2, Infinity]), /ones: shape must be an array of integers, got Infinity at index 1/],
      [() => lmk.zeros([1.5]), /zeros: shape must be an array of integers, got 1\.5/],
      [() => lmk.arange(Number.NaN), /arange: n must be an integer, got NaN/],
      [() => lmk.arange(Infinity), /arange: n must be an integer, got Infinity/],
      [() => lmk.manualSeed(Number.NaN), /manualSeed: seed must be an integer, got NaN/],
      [() => lmk.randn([2], { seed: Infinity }), /randn: seed must be an integer, got Infinity/],
      [() => x.reshape([Number.NaN]), /Tensor\.reshape: shape must be an array of integers/],
      [() => lmk.ops.slice(x, 1, 0, Number.NaN), /ops\.slice: end must be an integer, got NaN/],
      [() => lmk.checkIndices(labels, Infinity), /checkIndices: limit must be an integer, got Infinity/],
      [
        () => lmk.losses.crossEntropy({ logits: x, labels, ignoreIndex: Number.NaN }),
        /ignoreIndex must be an integer, got NaN/,
      ],
      [
        () => lmk.losses.goldfishMask({ labels, k: Infinity }),
        /losses\.goldfishMask: k must be an integer, got Infinity/,
      ],
      [
        () =>
          lmk.fam.blockAttention({
            q: lmk.zeros([1, 1, 2, 4]),
            k: lmk.zeros([1, 1, 2, 4]),
            v: lmk.zeros([1, 1, 2, 4]),
            blockSize: Number.NaN,
            memoryBlocks: 0,
          }),
        /fam\.blockAttention: blockSize must be an integer, got NaN/,
      ],
    ];
    for (const [call, message] of cases) {
      expect(call, String(message)).toThrow(RangeError);
      expect(call).toThrow(message);
    }
    // A value of another JS type is still a TypeError naming the argument.
    expect(() => lmk.full([2], 'x' as never)).toThrow(TypeError);
    expect(() => lmk.full([2], 'x' as never)).toThrow(/full: value must be a number, got string 'x'/);
    expect(() => lmk.arange('3' as never)).toThrow(/arange: n must be an integer, got string '3'/);
  });
});
