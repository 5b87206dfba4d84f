import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';

describe('dispose, tidy, keep, using', () => {
  it('dispose is idempotent and any later use throws TypeError', async () => {
    const t = lmk.ones([3]);
    t.dispose();
    t.dispose();
    expect(t.isDisposed).toBe(true);
    expect(() => t.data()).toThrow(TypeError);
    expect(() => t.data()).toThrow(/Tensor.data: tensor was disposed/);
    expect(() => t.dataSync()).toThrow(/disposed/);
    expect(() => t.clone()).toThrow(TypeError);
    expect(() => t.reshape([3])).toThrow(TypeError);
    expect(() => t.to('float64')).toThrow(TypeError);
    await expect(t.item()).rejects.toThrow(TypeError);
    expect(String(t)).toContain('disposed');
  });

  it('tidy disposes what it made, except the returned and kept tensors', () => {
    const before = lmk.memory().tensors;
    let inner!: lmk.Tensor, kept!: lmk.Tensor;
    const result = lmk.tidy(() => {
      inner = lmk.zeros([10]);
      kept = lmk.keep(lmk.ones([10]));
      return { a: lmk.full([2], 3), list: [lmk.zeros([1])] };
    });
    expect(inner.isDisposed).toBe(true);
    expect(kept.isDisposed).toBe(false);
    expect(result.a.isDisposed).toBe(false);
    expect(result.list[0]!.isDisposed).toBe(false);
    expect(lmk.memory().tensors).toBe(before + 3);
    result.a.dispose();
    result.list[0]!.dispose();
    kept.dispose();
    expect(lmk.memory().tensors).toBe(before);
  });

  it('nested tidy hands returned tensors to the outer scope', () => {
    let fromInner!: lmk.Tensor;
    lmk.tidy(() => {
      fromInner = lmk.tidy(() => lmk.zeros([1]));
      expect(fromInner.isDisposed).toBe(false);
    });
    expect(fromInner.isDisposed).toBe(true);
  });

  it('tidy disposes what a throwing function made', () => {
    let made!: lmk.Tensor;
    expect(() =>
      lmk.tidy(() => {
        made = lmk.zeros([4]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(made.isDisposed).toBe(true);
  });

  it('tidy accepts async functions, and concurrent async tidies do not mix', async () => {
    let a!: lmk.Tensor, b!: lmk.Tensor;
    const first = lmk.tidy(async () => {
      a = lmk.zeros([1]);
      await new Promise((r) => setTimeout(r, 20));
      return lmk.ones([1]);
    });
    const second = lmk.tidy(async () => {
      await new Promise((r) => setTimeout(r, 5));
      b = lmk.zeros([1]);
      return 7;
    });
    const outside = lmk.zeros([1]);
    expect(await second).toBe(7);
    expect(b.isDisposed).toBe(true);
    expect(a.isDisposed).toBe(false); // first still running
    const kept = await first;
    expect(a.isDisposed).toBe(true);
    expect(kept.isDisposed).toBe(false);
    expect(outside.isDisposed).toBe(false);
    await expect(
      lmk.tidy(async () => {
        a = lmk.zeros([1]);
        throw new Error('async boom');
      }),
    ).rejects.toThrow('async boom');
    expect(a.isDisposed).toBe(true);
    kept.dispose();
    outside.dispose();
  });

  it('`using` disposes at the end of the block', () => {
    let seen!: lmk.Tensor;
    {
      using t = lmk.zeros([2]);
      seen = t;
      expect(t.isDisposed).toBe(false);
    }
    expect(seen.isDisposed).toBe(true);
  });

  it('memory() accounts bytes and returns to baseline', async () => {
    await lmk.synchronize('cpu');
    const base = lmk.memory();
    const t = lmk.zeros([1000], { dtype: 'float64' });
    const during = lmk.memory();
    expect(during.tensors).toBe(base.tensors + 1);
    expect(during.bytesInUse.cpu - base.bytesInUse.cpu).toBeGreaterThanOrEqual(8000);
    expect(during.bytesReserved.cpu).toBeGreaterThanOrEqual(during.bytesInUse.cpu);
    t.dispose();
    await lmk.synchronize('cpu');
    expect(lmk.memory().bytesInUse.cpu).toBe(base.bytesInUse.cpu);
    expect(lmk.memory().tensors).toBe(base.tensors);
    lmk.emptyCache();
    expect(lmk.memory().bytesReserved.cpu).toBe(lmk.memory().bytesInUse.cpu);
    expect(lmk.memory().bytesInUse.cuda).toEqual(lmk.cudaAvailable() ? [expect.any(Number)] : []);
  });

  it('soak: 10 000 create/dispose cycles return memory exactly to baseline', async () => {
    expect(typeof globalThis.gc).toBe('function'); // vitest.config.mjs passes --expose-gc
    // Warm-up first (JIT, the pool's first blocks, allocator arenas): the bound
    // below is about steady state, not about what the first cycles allocate once.
    const cycle = (i: number) => {
      const a = lmk.randn([256], { seed: i });
      const b = a.to('bfloat16');
      const c = lmk.tidy(() => b.reshape([16, 16]).clone());
      a.dispose();
      b.dispose();
      c.dispose();
    };
    for (let i = 0; i < 2_000; i++) cycle(i);
    await lmk.synchronize('cpu');
    const base = lmk.memory();
    globalThis.gc!();
    const rssBefore = process.memoryUsage().rss;
    for (let i = 0; i < 10_000; i++) {
      cycle(i);
      if (i % 1000 === 999) await lmk.synchronize('cpu');
    }
    await lmk.synchronize('cpu');
    const after = lmk.memory();
    expect(after.tensors).toBe(base.tensors);
    expect(after.bytesInUse.cpu).toBe(base.bytesInUse.cpu);
    globalThis.gc!();
    const growth = process.memoryUsage().rss - rssBefore;
    console.log(`soak: RSS growth over 10 000 cycles after warm-up ${(growth / 2 ** 20).toFixed(1)} MiB`);
    expect(growth).toBeLessThan(20 * 2 ** 20);
  });

  it('an undisposed, unreachable tensor is freed by the GC finalizer', async () => {
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync(
      process.execPath,
      [
        '--expose-gc',
        '-e',
        `const lmk = require('lmkernels');
         (async () => {
           const base = lmk.memory();
           (() => { for (let i = 0; i < 100; i++) lmk.zeros([1024]); })();
           await lmk.synchronize('cpu');
           for (let i = 0; i < 10; i++) { global.gc(); await new Promise((r) => setTimeout(r, 10)); }
           const after = lmk.memory();
           console.log(JSON.stringify({ before: base.tensors, after: after.tensors, bytes: after.bytesInUse.cpu - base.bytesInUse.cpu }));
         })();`,
      ],
      { encoding: 'utf8' },
    );
    const r = JSON.parse(out);
    expect(r.after).toBe(r.before);
    expect(r.bytes).toBe(0);
  });
});
