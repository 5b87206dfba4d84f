import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';

const { ops } = lmk;

function leaf(shape: number[], seed: number, dtype: lmk.DType = 'float64'): lmk.Tensor {
  const t = lmk.randn(shape, { seed, dtype });
  t.requiresGrad = true;
  return t;
}

const labels23 = () => lmk.tensor(new Int32Array([1, 3, -100, 0, 2, 4]), { shape: [2, 3] });

describe('gradcheck of every differentiable op (float64)', () => {
  const ids = () => lmk.tensor(new Int32Array([0, 4, 4, 2]), { shape: [2, 2] });
  const cases: [string, (...xs: lmk.Tensor[]) => lmk.Tensor, () => lmk.Tensor[]][] = [
    ['add (broadcast)', (a, b) => ops.add(a!, b!), () => [leaf([2, 3], 1), leaf([3], 2)]],
    ['sub', (a, b) => ops.sub(a!, b!), () => [leaf([2, 3], 1), leaf([2, 1], 2)]],
    ['mul (broadcast)', (a, b) => ops.mul(a!, b!), () => [leaf([2, 3], 1), leaf([2, 1], 2)]],
    ['mul (same tensor twice)', (a) => ops.mul(a!, a!), () => [leaf([4], 1)]],
    ['sigmoid', (a) => ops.sigmoid(a!), () => [leaf([5], 3)]],
    ['relu', (a) => ops.relu(a!), () => [leaf([5], 3)]],
    ['square', (a) => ops.square(a!), () => [leaf([5], 3)]],
    ['exp', (a) => ops.exp(a!), () => [leaf([5], 3)]],
    ['tanh', (a) => ops.tanh(a!), () => [leaf([5], 3)]],
    ['silu', (a) => ops.silu(a!), () => [leaf([5], 3)]],
    ['sum over a dim', (a) => ops.sum(a!, { dim: 1 }), () => [leaf([2, 3, 2], 4)]],
    ['mean, keepDim', (a) => ops.mean(a!, { dim: [0, 2], keepDim: true }), () => [leaf([2, 3, 2], 4)]],
    ['matmul, shared weight', (a, b) => ops.matmul(a!, b!), () => [leaf([2, 3, 4], 5), leaf([4, 2], 6)]],
    ['matmul, batched', (a, b) => ops.matmul(a!, b!), () => [leaf([2, 3, 4], 5), leaf([2, 4, 2], 6)]],
    ['linear', (x, w, b) => ops.linear(x!, w!, b!), () => [leaf([2, 3, 4], 5), leaf([5, 4], 6), leaf([5], 7)]],
    ['embedding', (w, i) => ops.embedding(w!, i!), () => [leaf([5, 3], 1), ids()]],
    ['layerNorm', (x, w, b) => ops.layerNorm(x!, w!, b!), () => [leaf([3, 6], 5), leaf([6], 6), leaf([6], 7)]],
    ['layerNorm, bias without weight', (x, b) => ops.layerNorm(x!, null, b!), () => [leaf([3, 6], 5), leaf([6], 7)]],
    ['rmsNorm', (x, w) => ops.rmsNorm(x!, w!), () => [leaf([3, 6], 5), leaf([6], 6)]],
    ['rope', (x, p) => ops.rope(x!, p!), () => [leaf([2, 3, 4], 1), lmk.tensor(new Int32Array([3, 7, 11]))]],
    ['tokenShift', (x) => ops.tokenShift(x!), () => [leaf([2, 4, 3], 8)]],
    ['concat', (a, b) => ops.concat([a!, b!], 1), () => [leaf([2, 2], 1), leaf([2, 3], 2)]],
    ['slice', (a) => ops.slice(a!, 1, 1, 3), () => [leaf([2, 4], 1)]],
    ['transpose', (a) => ops.transpose(a!, 0, 2), () => [leaf([2, 3, 4], 1)]],
    ['reshape', (a) => ops.reshape(a!, [6, 2]), () => [leaf([3, 4], 1)]],
    [
      'wkv4 y',
      (d, f, k, v) => ops.wkv4({ timeDecay: d!, timeFirst: f!, k: k!, v: v! }).y,
      () => [leaf([3], 1), leaf([3], 2), leaf([2, 4, 3], 3), leaf([2, 4, 3], 4)],
    ],
    [
      'wkv4 state, with an input state',
      (d, f, k, v, s) => ops.wkv4({ timeDecay: d!, timeFirst: f!, k: k!, v: v!, state: s! }).state,
      () => {
        const s = lmk.tensor(
          Float64Array.from({ length: 18 }, (_, i) => (i % 9 < 3 ? 0.3 : i % 9 < 6 ? 1.2 : -0.5)),
          { shape: [2, 3, 3], dtype: 'float64' },
        );
        s.requiresGrad = true;
        return [leaf([3], 1), leaf([3], 2), leaf([2, 4, 3], 3), leaf([2, 4, 3], 4), s];
      },
    ],
    [
      'crossEntropy (mean, ignored label)',
      (z) => ops.crossEntropy({ logits: z!, labels: labels23() }).loss,
      () => [leaf([2, 3, 5], 1)],
    ],
    [
      'crossEntropy (none)',
      (z) => ops.crossEntropy({ logits: z!, labels: labels23(), reduction: 'none' }).loss,
      () => [leaf([2, 3, 5], 1)],
    ],
    [
      'goldfishLoss (static k=2)',
      (z) => ops.goldfishLoss({ logits: z!, labels: labels23(), k: 2, strategy: 'static' }).loss,
      () => [leaf([2, 3, 5], 1)],
    ],
    [
      'orpo',
      (a, b) =>
        ops.orpo({
          chosenLogits: a!,
          rejectedLogits: b!,
          chosenLabels: lmk.tensor(new Int32Array([1, 3, 2, 0, 2, 4]), { shape: [2, 3] }),
          rejectedLabels: lmk.tensor(new Int32Array([2, 2, 4, 1]), { shape: [2, 2] }),
        }).loss,
      () => [leaf([2, 3, 5], 1), leaf([2, 2, 5], 2)],
    ],
    [
      'famBlockAttention (grouped heads, FAM, memory)',
      (q, k, v, fk, fv) =>
        ops.famBlockAttention({ q: q!, k: k!, v: v!, famK: fk!, famV: fv!, blockSize: 2, memoryBlocks: 1 }).out,
      () => [
        leaf([1, 2, 5, 4], 1),
        leaf([1, 1, 5, 4], 2),
        leaf([1, 1, 5, 4], 3),
        leaf([1, 1, 3, 2, 4], 4),
        leaf([1, 1, 3, 2, 4], 5),
      ],
    ],
    [
      'famMemoryAttention',
      (q, k, v, bk, bv) => ops.famMemoryAttention({ famQ: q!, famK: k!, famV: v!, blockK: bk!, blockV: bv! }).out,
      () => [
        leaf([1, 2, 2, 4], 1),
        leaf([1, 1, 2, 4], 2),
        leaf([1, 1, 2, 4], 3),
        leaf([1, 1, 3, 4], 4),
        leaf([1, 1, 3, 4], 5),
      ],
    ],
    [
      'a composite graph with reuse',
      (a, b) => {
        const m = ops.matmul(a!, b!);
        return ops.sum(ops.mul(ops.sigmoid(m), ops.tanh(m)));
      },
      () => [leaf([3, 4], 1), leaf([4, 2], 2)],
    ],
  ];
  for (const [name, fn, make] of cases) {
    it(name, () => {
      expect(lmk.gradcheck(fn, make())).toBe(true);
    });
  }

  it('gradcheck reports a wrong gradient with its worst element', () => {
    // y = x·x with one factor detached: the analytic gradient is x, the true one 2x.
    const x = leaf([3], 9);
    expect(() =>
      lmk.gradcheck(
        (t) =>
          ops.mul(
            t!,
            lmk.noGrad(() => t!.clone()),
          ),
        [x],
      ),
    ).toThrow(/gradcheck: gradient mismatch at inputs\[0\]\[\d\] \(flat\): analytic .*, numeric/);
    expect(() => lmk.gradcheck((t) => ops.exp(t!), [lmk.randn([2], { seed: 1 })])).toThrow(/must be float64/);
  });
});

describe('the tape', () => {
  it('accumulates into leaves across backward calls and frees the graph', async () => {
    const x = lmk.tensor([1, 2, 3], { dtype: 'float64' });
    x.requiresGrad = true;
    const y = ops.sum(ops.square(x));
    y.backward();
    expect(Array.from(await x.grad!.data())).toEqual([2, 4, 6]);
    expect(() => y.backward()).toThrow(/already released/);
    ops.sum(ops.scale(x, 3)).backward();
    expect(Array.from(await x.grad!.data())).toEqual([5, 7, 9]);
  });

  it('noGrad records nothing; non-scalars need a gradient; leaves only can turn grad off', () => {
    const x = leaf([2], 1);
    const y = lmk.noGrad(() => ops.exp(x));
    expect(y.requiresGrad).toBe(false);
    const z = ops.exp(x);
    expect(z.requiresGrad).toBe(true);
    expect(() => z.backward()).toThrow(/grad must be given for a non-scalar/);
    expect(() => (z.requiresGrad = false)).toThrow(RangeError);
    expect(() => y.backward()).toThrow(/does not require grad/);
    expect(() => (lmk.zeros([1], { dtype: 'int32' }).requiresGrad = true)).toThrow(TypeError);
    z.backward(lmk.ones([2], { dtype: 'float64' }));
    expect(x.grad!.shape).toEqual([2]);
  });

  it('backward works after tidy disposed the forward intermediates, and leaves no tensors behind', async () => {
    const w = leaf([4, 3], 2, 'float32');
    // Collect garbage from earlier tests first: the count includes tensors the
    // GC finalizer has not freed yet.
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        globalThis.gc!();
        await new Promise((r) => setImmediate(r));
      }
      await lmk.synchronize('cpu');
    };
    await settle();
    const before = lmk.memory().tensors;
    const loss = lmk.tidy(() => ops.mean(ops.square(ops.matmul(lmk.randn([5, 4], { seed: 1 }), w))));
    loss.backward();
    loss.dispose();
    expect(w.grad!.shape).toEqual([4, 3]);
    await settle();
    expect(lmk.memory().tensors).toBe(before + 1); // only w.grad
    w.grad!.dispose();
    w.grad = null;
  });
});

describe('layers and modules', () => {
  it('Linear follows PyTorch layout and init bounds', async () => {
    const lin = new lmk.nn.Linear(4, 3, { seed: 1 });
    expect(lin.weight.shape).toEqual([3, 4]);
    expect(lin.bias!.shape).toEqual([3]);
    const w = await lin.weight.data();
    expect(Math.max(...Array.from(w, Math.abs))).toBeLessThanOrEqual(0.5);
    const y = lin.forward(lmk.ones([2, 4]));
    expect(y.shape).toEqual([2, 3]);
    expect(lin.namedParameters().map(([n]) => n)).toEqual(['weight', 'bias']);
  });

  it('loadStateDict copies values and names missing, unexpected and mis-shaped entries', async () => {
    const a = new lmk.nn.Linear(4, 3, { seed: 1 });
    const b = new lmk.nn.Linear(4, 3, { seed: 2 });
    b.loadStateDict(a.stateDict());
    expect(Array.from(await b.weight.data())).toEqual(Array.from(await a.weight.data()));
    expect(() => b.loadStateDict({ weight: a.weight })).toThrow(/missing: bias/);
    expect(() => b.loadStateDict({ ...a.stateDict(), extra: a.bias! })).toThrow(/unexpected: extra/);
    expect(() => b.loadStateDict({ weight: lmk.zeros([4, 3]), bias: a.bias! })).toThrow(
      /wrong shape: weight \(expected \[3,4\], got \[4,3\]\)/,
    );
  });

  it('RWKV-4: step repeated equals forward on the same tokens', async () => {
    const model = new lmk.nn.RWKV4Model({ vocabSize: 32, dModel: 16, nLayers: 2, seed: 1, dtype: 'float64' });
    const seqs = [
      [1, 5, 7, 3, 9, 2],
      [4, 8, 6, 0, 11, 13],
    ];
    const tokens = lmk.tensor(new Int32Array(seqs.flat()), { shape: [2, 6] });
    const full = await lmk.noGrad(() => model.forward(tokens)).data();
    let state: lmk.RWKV4State | undefined;
    let maxDiff = 0;
    for (let t = 0; t < 6; t++) {
      const r = model.step(lmk.tensor(new Int32Array([seqs[0]![t]!, seqs[1]![t]!])), state);
      if (state) lmk.nn.disposeRWKV4State(state);
      state = r.state;
      const l = await r.logits.data();
      for (let b = 0; b < 2; b++)
        for (let v = 0; v < 32; v++)
          maxDiff = Math.max(maxDiff, Math.abs(full[(b * 6 + t) * 32 + v]! - l[b * 32 + v]!));
    }
    expect(maxDiff).toBeLessThan(1e-12);
    model.dispose();
  });

  it('RWKV-4 parameter gradients match finite differences through the whole model (float64)', async () => {
    const model = new lmk.nn.RWKV4Model({ vocabSize: 8, dModel: 4, nLayers: 2, seed: 3, dtype: 'float64' });
    const tokens = lmk.tensor(new Int32Array([1, 2, 3, 4, 5, 6]), { shape: [2, 3] });
    const r = Float64Array.from({ length: 2 * 3 * 8 }, (_, i) => Math.sin(i + 1));
    const rTensor = lmk.tensor(r, { shape: [2, 3, 8], dtype: 'float64' });
    const out = model.forward(tokens);
    out.backward(rTensor);
    const objective = () =>
      lmk.noGrad(() =>
        lmk.tidy(() => Array.from(model.forward(tokens).dataSync()).reduce((s, v, i) => s + v * r[i]!, 0)),
      );
    const eps = 1e-6;
    for (const [name, p] of model.namedParameters()) {
      const analytic = await p.grad!.data();
      const values = Float64Array.from(await p.data());
      for (const j of [0, Math.floor(values.length / 2), values.length - 1]) {
        const at = (v: number) => {
          values[j] = v;
          model.loadStateDict({
            ...model.stateDict(),
            [name]: lmk.tensor(values, { shape: p.shape, dtype: 'float64' }),
          });
          return objective();
        };
        const x0 = values[j]!;
        const numeric = (at(x0 + eps) - at(x0 - eps)) / (2 * eps);
        at(x0);
        expect(Math.abs(analytic[j]! - numeric), `${name}[${j}]`).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(numeric));
      }
    }
    model.dispose();
  });
});
