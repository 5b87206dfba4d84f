import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { f32Bits, philox4x32_10, philoxNormal, philoxUniform } from './reference';

describe('Philox4x32-10', () => {
  it('the BigInt reference reproduces the published known-answer vectors', () => {
    expect(philox4x32_10([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(philox4x32_10([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff])).toEqual([
      0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd,
    ]);
    expect(philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])).toEqual([
      0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1,
    ]);
  });

  it('rand() with a seed is bit-identical to the documented stream', async () => {
    for (const seed of [0, 1, 2 ** 40 + 7]) {
      const t = lmk.rand([37], { seed, low: -2, high: 3 });
      const got = await t.data();
      for (let i = 0; i < 37; i++) expect(f32Bits(got[i]!)).toBe(f32Bits(philoxUniform(seed, i, -2, 3)));
      t.dispose();
    }
  });

  it('randn() with a seed matches Box-Muller on the documented stream', async () => {
    const t = lmk.randn([1001], { seed: 42, mean: 1, std: 2 });
    const got = await t.data();
    for (let i = 0; i < 1001; i++) {
      const ref = philoxNormal(42, i, 1, 2);
      expect(Math.abs(got[i]! - ref)).toBeLessThanOrEqual(Math.abs(ref) * 2 ** -23 + 1e-7);
    }
    t.dispose();
  });

  it('same seed, same values; global seed advances and resets with manualSeed', async () => {
    const a = await lmk.randn([64], { seed: 9 }).data();
    const b = await lmk.randn([64], { seed: 9 }).data();
    expect(Array.from(a)).toEqual(Array.from(b));
    lmk.manualSeed(123);
    const c1 = await lmk.rand([16]).data();
    const c2 = await lmk.rand([16]).data();
    expect(Array.from(c1)).not.toEqual(Array.from(c2));
    lmk.manualSeed(123);
    expect(Array.from(await lmk.rand([16]).data())).toEqual(Array.from(c1));
  });

  it('moments and range are right', async () => {
    const n = 1 << 18;
    const z = await lmk.randn([n], { seed: 5 }).data();
    const u = await lmk.rand([n], { seed: 5 }).data();
    let mean = 0,
      sq = 0,
      umin = 1,
      umax = 0;
    for (let i = 0; i < n; i++) {
      mean += z[i]!;
      sq += z[i]! * z[i]!;
      umin = Math.min(umin, u[i]!);
      umax = Math.max(umax, u[i]!);
    }
    expect(Math.abs(mean / n)).toBeLessThan(0.01);
    expect(Math.abs(sq / n - 1)).toBeLessThan(0.01);
    expect(umin).toBeGreaterThanOrEqual(0);
    expect(umax).toBeLessThan(1);
  });

  it('bfloat16/float16 random tensors are the float32 values rounded once', async () => {
    const f = await lmk.randn([100], { seed: 3 }).data();
    const h = await lmk.randn([100], { seed: 3, dtype: 'bfloat16' }).data();
    const expected = await lmk.tensor(f, { dtype: 'bfloat16' }).data();
    expect(Array.from(h)).toEqual(Array.from(expected));
  });

  it.skipIf(!lmk.cudaAvailable())('CPU and CUDA give bit-identical values for a seed', async () => {
    const cpu = await lmk.randn([4099], { seed: 77, device: 'cpu' }).data();
    const cuda = await lmk.randn([4099], { seed: 77, device: 'cuda' }).data();
    expect(Array.from(cuda).map(f32Bits)).toEqual(Array.from(cpu).map(f32Bits));
    const ucpu = await lmk.rand([4099], { seed: 77, device: 'cpu' }).data();
    const ucuda = await lmk.rand([4099], { seed: 77, device: 'cuda' }).data();
    expect(Array.from(ucuda).map(f32Bits)).toEqual(Array.from(ucpu).map(f32Bits));
  });
});
