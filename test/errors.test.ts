import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';

describe('bad inputs throw named errors at once', () => {
  it('wrong types are TypeErrors naming the function and argument', () => {
    expect(() => lmk.zeros('3' as never)).toThrow(TypeError);
    expect(() => lmk.zeros('3' as never)).toThrow(/zeros: shape must be an array of integers/);
    expect(() => lmk.zeros([1.5])).toThrow(/zeros: shape must be an array of integers/);
    expect(() => lmk.zeros([2], { dtype: 'float8' as never })).toThrow(/zeros: dtype must be one of/);
    expect(() => lmk.zeros([2], { device: 'tpu' as never })).toThrow(/zeros: device must be 'cpu', 'cuda'/);
    expect(() => lmk.zeros([2], { dtpye: 'float32' } as never)).toThrow(/zeros: unknown option 'dtpye'/);
    expect(() => lmk.full([2], 'x' as never)).toThrow(/full: value must be a number/);
    expect(() => lmk.tensor([1, 'a'] as never)).toThrow(/tensor: data\[1\] must be a number/);
    expect(() => lmk.tensor(null as never)).toThrow(TypeError);
    expect(() => lmk.checkIndices(lmk.zeros([2]), 3)).toThrow(/checkIndices: values must have dtype int32/);
    expect(() => lmk.keep({} as never)).toThrow(TypeError);
    expect(() => lmk.tidy(5 as never)).toThrow(/tidy: fn must be a function/);
  });

  it('wrong sizes and values are RangeErrors', async () => {
    expect(() => lmk.zeros([-1])).toThrow(RangeError);
    expect(() => lmk.zeros([2 ** 30, 2 ** 30, 2 ** 30])).toThrow(/more than 2\^53 elements/);
    expect(() => lmk.zeros([2 ** 26, 2 ** 26])).toThrow(/cannot allocate/);
    expect(() => lmk.tensor([[1, 2], [3]])).toThrow(/tensor: data is ragged/);
    expect(() => lmk.tensor([1, 2, 3], { shape: [2, 2] })).toThrow(
      /tensor: shape \[2,2\] holds 4 elements but data has 3/,
    );
    expect(() => lmk.arange(-1)).toThrow(RangeError);
    expect(() => lmk.rand([2], { low: 1, high: 1 })).toThrow(/rand: low must be less than high/);
    expect(() => lmk.randn([2], { std: -1 })).toThrow(RangeError);
    expect(() => lmk.randn([2], { seed: -1 })).toThrow(/randn: seed must be an integer/);
    expect(() => lmk.manualSeed(1.5)).toThrow(RangeError);
    await expect(lmk.ones([2]).item()).rejects.toThrow(/item: tensor must have exactly 1 element/);
  });

  it.skipIf(lmk.cudaAvailable())('CUDA requests on a machine without CUDA are TypeErrors with the reason', () => {
    expect(() => lmk.zeros([2], { device: 'cuda' })).toThrow(TypeError);
    expect(() => lmk.zeros([2], { device: 'cuda' })).toThrow(/zeros: device is cuda:0 but CUDA is not available/);
    expect(() => lmk.ones([1]).to('cuda:0')).toThrow(/Tensor.to: target is cuda:0 but CUDA is not available/);
    expect(() => lmk.setDefaultDevice('cuda')).toThrow(TypeError);
    expect(() => lmk.zeros([2], { dtype: 'float64', device: 'cuda' })).toThrow(TypeError);
  });

  it('the library stays usable after every error above', async () => {
    expect(Array.from(await lmk.arange(3).data())).toEqual([0, 1, 2]);
  });
});

describe('errors found by kernels surface at the next sync', () => {
  it('reports the op, argument and first bad index; the stream is usable afterwards', async () => {
    const values = lmk.tensor(new Int32Array([0, 2, 7, 1, -3]));
    const checked = lmk.checkIndices(values, 3); // queued: no throw here
    const later = lmk.arange(4);
    await expect(lmk.synchronize('cpu')).rejects.toThrow(RangeError);
    // Reported once; the stream works again.
    await lmk.synchronize('cpu');
    expect(Array.from(await later.data())).toEqual([0, 1, 2, 3]);
    // Reading the failed op's output keeps rejecting with its error.
    await expect(checked.data()).rejects.toThrow(/checkIndices: values has a value outside \[0, 3\) at flat index 2/);
    expect(() => checked.dataSync()).toThrow(RangeError);
    const ok = lmk.checkIndices(lmk.tensor(new Int32Array([0, 2, 7, 1])), 8);
    expect(Array.from(await ok.data())).toEqual([0, 2, 7, 1]);
    // A negative value is out of range too.
    await expect(lmk.checkIndices(values, 10).data()).rejects.toThrow(/at flat index 4/);
  });
});
