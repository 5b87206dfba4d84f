import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { roundTo16 } from './reference';

describe('creation', () => {
  it('tensor() infers shape from nested arrays and defaults to float32 on cpu', async () => {
    const t = lmk.tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(t.device.toString()).toBe('cpu');
    expect(t.numel).toBe(6);
    expect(String(t)).toBe('Tensor(float32[2,3] cpu)');
    expect(Array.from(await t.data())).toEqual([1, 2, 3, 4, 5, 6]);
    t.dispose();
  });

  it('tensor() takes typed arrays, array-likes, scalars and an explicit shape', async () => {
    const a = lmk.tensor(new Int32Array([1, -2, 3, 4]), { shape: [2, 2] });
    expect(a.dtype).toBe('int32');
    expect(a.shape).toEqual([2, 2]);
    expect(Array.from(await a.data())).toEqual([1, -2, 3, 4]);
    const b = lmk.tensor(new Uint8Array([7, 8]));
    expect(Array.from(await b.data())).toEqual([7, 8]);
    const c = lmk.tensor({ length: 2, 0: 0.5, 1: 1.5 });
    expect(Array.from(await c.data())).toEqual([0.5, 1.5]);
    const s = lmk.tensor(3.25, { dtype: 'float64' });
    expect(s.shape).toEqual([]);
    expect(await s.item()).toBe(3.25);
    const d = lmk.tensor(new Float64Array([1 / 3]), { dtype: 'float64' });
    expect((await d.data())[0]).toBe(1 / 3);
    expect(d.dataSync()).toBeInstanceOf(Float64Array);
    for (const t of [a, b, c, s, d]) t.dispose();
  });

  it('zeros, ones, full, empty, arange', async () => {
    expect(Array.from(await lmk.zeros([2, 2]).data())).toEqual([0, 0, 0, 0]);
    expect(Array.from(await lmk.ones([3], { dtype: 'int32' }).data())).toEqual([1, 1, 1]);
    expect(Array.from(await lmk.full([2], 2.5, { dtype: 'float16' }).data())).toEqual([2.5, 2.5]);
    expect(lmk.empty([4, 0]).numel).toBe(0);
    expect(Array.from(await lmk.empty([4, 0]).data())).toEqual([]);
    expect(Array.from(await lmk.arange(5).data())).toEqual([0, 1, 2, 3, 4]);
    expect(Array.from(await lmk.arange(4, { dtype: 'int32' }).data())).toEqual([0, 1, 2, 3]);
    expect(lmk.arange(0).shape).toEqual([0]);
  });

  it('reshape is a view with one inferred dimension; clone copies', async () => {
    const t = lmk.arange(6);
    const bytesBefore = lmk.memory().bytesInUse.cpu;
    const v = t.reshape([2, -1]);
    expect(v.shape).toEqual([2, 3]);
    expect(lmk.memory().bytesInUse.cpu).toBe(bytesBefore); // shares storage
    t.dispose();
    expect(Array.from(await v.data())).toEqual([0, 1, 2, 3, 4, 5]); // storage outlives the base
    const c = v.clone();
    expect(lmk.memory().bytesInUse.cpu).toBeGreaterThan(bytesBefore - 64);
    expect(Array.from(await c.data())).toEqual([0, 1, 2, 3, 4, 5]);
    expect(() => v.reshape([4, -1])).toThrow(RangeError);
    expect(() => v.reshape([-1, -1])).toThrow(/only one -1/);
    v.dispose();
    c.dispose();
  });
});

describe('dtypes', () => {
  const specials = [
    0,
    -0,
    1,
    -1,
    0.1,
    1 / 3,
    65504,
    65519.99,
    65520,
    1e-8,
    5.96e-8,
    2.98e-8,
    3e38,
    3.4e38,
    -1e-40,
    1 + 2 ** -8,
    1 + 3 * 2 ** -9,
    1 + 2 ** -11,
    1 + 3 * 2 ** -12,
    Infinity,
    -Infinity,
  ];

  it('float64 -> bfloat16/float16 rounds to nearest even, bit for bit', async () => {
    const values = [...specials];
    let x = 12345;
    for (let i = 0; i < 2000; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      values.push((x / 2 ** 31 - 0.5) * 2 ** ((i % 60) - 30));
    }
    for (const kind of ['bfloat16', 'float16'] as const) {
      const t = lmk.tensor(values, { dtype: kind });
      const got = await t.data();
      const expected = values.map((v) => roundTo16(v, kind));
      for (let i = 0; i < values.length; i++) {
        if (!Object.is(got[i], expected[i]) && !(got[i] === 0 && expected[i] === 0)) {
          throw new Error(`${kind}(${values[i]}) = ${got[i]}, expected ${expected[i]}`);
        }
      }
      t.dispose();
    }
  });

  it('to(dtype) round-trips and rounds once', async () => {
    const src = lmk.tensor([1.00390625, 1.005859375, -2.5, 1e-3, 70000], { dtype: 'float64' });
    const bf = src.to('bfloat16');
    expect(Array.from(await bf.data())).toEqual(
      [1.00390625, 1.005859375, -2.5, 1e-3, 70000].map((v) => roundTo16(v, 'bfloat16')),
    );
    const h = src.to('float16');
    expect(Array.from(await h.data())).toEqual(
      [1.00390625, 1.005859375, -2.5, 1e-3, 70000].map((v) => roundTo16(v, 'float16')),
    );
    const back = h.to('float32').to('float64');
    expect(back.dtype).toBe('float64');
    expect(Array.from(await back.data())).toEqual(Array.from(await h.data()));
    const ints = lmk.tensor([1.9, -1.9, 3e10, -3e10]).to('int32');
    expect(Array.from(await ints.data())).toEqual([1, -1, 2147483647, -2147483648]);
    const nan = lmk.tensor([NaN]).to('bfloat16');
    expect(Number.isNaN((await nan.data())[0])).toBe(true);
  });

  it('to(device) to the same device copies', async () => {
    const t = lmk.tensor([1, 2]);
    const u = t.to('cpu');
    expect(u).not.toBe(t);
    t.dispose();
    expect(Array.from(await u.data())).toEqual([1, 2]);
  });
});

describe('ordering', () => {
  it('data() issued after ops sees their results, in order', async () => {
    const reads: Promise<Float32Array | Float64Array | Int32Array>[] = [];
    const tensors: lmk.Tensor[] = [];
    for (let i = 0; i < 50; i++) {
      const t = lmk.full([1000], i);
      tensors.push(t);
      reads.push(t.data());
    }
    const results = await Promise.all(reads);
    results.forEach((r, i) => {
      expect(r[0]).toBe(i);
      expect(r[999]).toBe(i);
    });
    tensors.forEach((t) => t.dispose());
  });

  it('a tensor disposed right after an op keeps its memory until the op ran', async () => {
    const big = lmk.randn([1 << 20], { seed: 1 });
    const copy = big.to('float64');
    big.dispose();
    const d = await copy.data();
    expect(d.length).toBe(1 << 20);
    expect(Number.isFinite(d[12345])).toBe(true);
    copy.dispose();
  });

  it('reads after small ops settle at once, in order, and a loop awaiting only them still lets timers run', async () => {
    const a = lmk.full([1], 1),
      b = lmk.full([1], 2);
    // In order with the ops around them: each read sees the value written just before.
    for (let i = 0; i < 100; i++) {
      const c = lmk.full([1], i);
      const s = lmk.ops.add(a, c);
      expect((await s.data())[0]).toBe(1 + i);
      expect(s.dataSync()[0]).toBe(1 + i);
      c.dispose();
      s.dispose();
    }
    // These promises settle before the call returns, yet at least every 10 ms
    // one waits for a setImmediate, so a 1 ms interval keeps firing.
    let fired = 0;
    const timer = setInterval(() => fired++, 1);
    const start = Date.now();
    while (Date.now() - start < 300) {
      const s = lmk.ops.add(a, b);
      await s.data();
      s.dispose();
    }
    clearInterval(timer);
    expect(fired).toBeGreaterThanOrEqual(5);
    a.dispose();
    b.dispose();
  });
});
