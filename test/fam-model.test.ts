import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';

const cfg = {
  vocabSize: 16,
  dModel: 16,
  nLayers: 2,
  nHeads: 2,
  nKvHeads: 1,
  blockSize: 4,
  memoryBlocks: 1,
  famLength: 2,
  seed: 1,
  dtype: 'float64' as const,
};

function chunkOf(host: Int32Array, T: number, from: number, n: number): lmk.Tensor {
  return lmk.tensor(
    Int32Array.from({ length: 2 * n }, (_, i) => host[Math.floor(i / n) * T + from + (i % n)]!),
    { shape: [2, n] },
  );
}

describe('FamTransformerModel', () => {
  const T = 14;
  const host = Int32Array.from({ length: 2 * T }, (_, i) => (i * 5 + 1) % 16);
  const tokens = lmk.tensor(host, { shape: [2, T] });

  it('a sequence run whole equals it run block by block with the carried state', async () => {
    const model = new lmk.nn.FamTransformerModel(cfg);
    const full = await lmk.noGrad(() => model.forward(tokens)).data();
    let state: lmk.FamState | undefined;
    let pos = 0,
      maxDiff = 0;
    for (const n of [4, 4, 4, 2]) {
      const r = lmk.noGrad(() => model.forwardChunk(chunkOf(host, T, pos, n), state));
      if (state) lmk.nn.disposeFamState(state);
      state = r.state;
      const l = await r.logits.data();
      for (let b = 0; b < 2; b++)
        for (let t = 0; t < n; t++)
          for (let v = 0; v < 16; v++) {
            maxDiff = Math.max(maxDiff, Math.abs(l[(b * n + t) * 16 + v]! - full[(b * T + pos + t) * 16 + v]!));
          }
      pos += n;
    }
    expect(maxDiff).toBeLessThan(1e-12);
    // The state matters: the second block run from a fresh state differs.
    const fresh = await lmk.noGrad(() => model.forwardChunk(chunkOf(host, T, 4, 4))).logits.data();
    const carried = full.subarray(4 * 16, 8 * 16);
    expect(Math.max(...Array.from(fresh.subarray(0, 64), (v, i) => Math.abs(v - carried[i]!)))).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('parameter gradients match finite differences (float64)', async () => {
    const model = new lmk.nn.FamTransformerModel({ ...cfg, nLayers: 1, dModel: 8, nHeads: 2 });
    const r = Float64Array.from({ length: 2 * T * 16 }, (_, i) => Math.sin(i + 1));
    model.forward(tokens).backward(lmk.tensor(r, { shape: [2, T, 16], dtype: 'float64' }));
    const objective = () =>
      lmk.noGrad(() =>
        lmk.tidy(() => Array.from(model.forward(tokens).dataSync()).reduce((s, v, i) => s + v * r[i]!, 0)),
      );
    const eps = 1e-6;
    for (const [name, p] of model.namedParameters()) {
      const analytic = await p.grad!.data();
      const values = Float64Array.from(await p.data());
      for (const j of [0, values.length - 1]) {
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

  it('rejects bad configurations and tokens', () => {
    expect(() => new lmk.nn.FamTransformerModel({ ...cfg, nHeads: 3 })).toThrow(/dModel \(16\) must be nHeads \(3\)/);
    expect(() => new lmk.nn.FamTransformerModel({ ...cfg, nKvHeads: 3, nHeads: 2 })).toThrow(RangeError);
    const model = new lmk.nn.FamTransformerModel(cfg);
    expect(() => model.forward(lmk.zeros([2, 4]))).toThrow(/tokens must be int32/);
    const r = lmk.noGrad(() => model.forwardChunk(chunkOf(host, T, 0, 3)));
    expect(() => model.forwardChunk(chunkOf(host, T, 3, 4), r.state)).toThrow(/ended inside a block/);
    model.dispose();
  });
});
