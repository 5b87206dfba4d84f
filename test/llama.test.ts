import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';

const base = {
  vocabSize: 20,
  dModel: 8,
  nLayers: 2,
  nHeads: 2,
  nKvHeads: 1,
  intermediateSize: 12,
  qkvBias: true,
  dtype: 'float64' as const,
  seed: 11,
};
const tokens = () => lmk.tensor(new Int32Array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]), { shape: [1, 11] });

/** <r, hiddenStates(tokens)> for a fixed pseudo-random r. */
function objective(model: lmk.nn.LlamaModel): lmk.Tensor {
  const h = model.hiddenStates(tokens());
  const r = lmk.tensor(
    Float64Array.from({ length: h.numel }, (_, i) => Math.sin(i * 12.9898) * 0.5),
    { shape: h.shape, dtype: 'float64' },
  );
  return lmk.ops.sum(lmk.ops.mul(h, r));
}

describe('nn.LlamaModel with fam', () => {
  const fam = { blockSize: 3, memoryBlocks: 1, famLength: 2 };

  it('runs: hiddenStates [B,T,d], logits [B,T,V]; only fam_init is new', async () => {
    const plain = new lmk.nn.LlamaModel(base);
    const model = new lmk.nn.LlamaModel({ ...base, fam });
    const extra = model
      .namedParameters()
      .filter(([n]) => !plain.stateDict()[n])
      .map(([n]) => n);
    expect(extra).toEqual(['layers.0.fam_init', 'layers.1.fam_init']);
    expect(model.hiddenStates(tokens()).shape).toEqual([1, 11, 8]);
    expect(model.forward(tokens()).shape).toEqual([1, 11, 20]);
    // Same seed, same base weights; the FAM changes what each token reads.
    for (const [n, t] of plain.namedParameters()) {
      expect(Array.from(await model.stateDict()[n]!.data()), n).toEqual(Array.from(await t.data()));
    }
    const a = Array.from(await plain.forward(tokens()).data());
    const c = Array.from(await model.forward(tokens()).data());
    expect(c).not.toEqual(a);
    expect(c.every(Number.isFinite)).toBe(true);
  });

  it('gradients of fam_init, q_proj, k_proj (RoPE order), v_proj bias equal central differences', async () => {
    const model = new lmk.nn.LlamaModel({ ...base, fam });
    objective(model).backward();
    const names = [
      'layers.0.fam_init',
      'layers.1.fam_init',
      'layers.0.self_attn.q_proj.weight',
      'layers.1.self_attn.k_proj.weight',
      'layers.0.self_attn.v_proj.bias',
      'layers.1.mlp.gate_proj.weight',
    ];
    const sd = model.stateDict();
    const eps = 1e-6;
    for (const name of names) {
      const param = sd[name]!;
      const grad = Array.from(await param.grad!.data());
      const values = Float64Array.from(await param.data());
      for (const j of [0, 3, Math.floor(values.length / 2), values.length - 1]) {
        const at = (v: number) => {
          const copy = Float64Array.from(values);
          copy[j] = v;
          model.loadStateDict({
            ...model.stateDict(),
            [name]: lmk.tensor(copy, { shape: param.shape, dtype: 'float64' }),
          });
          return lmk.noGrad(() => objective(model).dataSync()[0]!);
        };
        const numeric = (at(values[j]! + eps) - at(values[j]! - eps)) / (2 * eps);
        model.loadStateDict({
          ...model.stateDict(),
          [name]: lmk.tensor(values, { shape: param.shape, dtype: 'float64' }),
        });
        expect(Math.abs(grad[j]! - numeric), `${name}[${j}]: ${grad[j]} vs ${numeric}`).toBeLessThan(
          1e-6 + 1e-5 * Math.abs(numeric),
        );
      }
    }
  });

  it('checks its options', () => {
    expect(() => new lmk.nn.LlamaModel({ ...base, fam: { blockSize: 0, memoryBlocks: 1, famLength: 1 } })).toThrow(
      /fam\.blockSize/,
    );
    expect(() => new lmk.nn.LlamaModel({ ...base, nKvHeads: 3 })).toThrow(/multiple of nKvHeads/);
    expect(
      () => new lmk.nn.LlamaModel({ ...base, fam: { blockSize: 2, memoryBlocks: 1, famLen: 1 } as never }),
    ).toThrow(TypeError);
  });
});

describe('nn.LlamaModel without fam', () => {
  it('is causal: a token never changes the outputs before it', async () => {
    const model = new lmk.nn.LlamaModel(base);
    const a = await model.forward(lmk.tensor(new Int32Array([1, 2, 3, 4]), { shape: [1, 4] })).data();
    const b = await model.forward(lmk.tensor(new Int32Array([1, 2, 3, 17]), { shape: [1, 4] })).data();
    expect(Array.from(a.subarray(0, 60))).toEqual(Array.from(b.subarray(0, 60)));
    expect(Array.from(a.subarray(60))).not.toEqual(Array.from(b.subarray(60)));
  });

  it('tied embeddings: one tensor, the head shares it, listed once', async () => {
    const model = new lmk.nn.LlamaModel({ ...base, tieWordEmbeddings: true });
    expect(model.head.weight).toBe(model.embedTokens.weight);
    expect(model.parameters().filter((t) => t === model.embedTokens.weight)).toHaveLength(1);
    expect(model.namedParameters().some(([n]) => n.startsWith('lm_head'))).toBe(false);
  });
});

describe('nn.LlamaModel with llama3 RoPE scaling', () => {
  it('reuses its RoPE tables across layers and calls, and gives the same values as fresh tables', async () => {
    const opts = {
      ...base,
      ropeTheta: 500000,
      ropeScaling: {
        ropeType: 'llama3' as const,
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 8,
      },
    };
    const ids = lmk.tensor(
      Int32Array.from({ length: 40 }, (_, i) => (i * 7) % 20),
      { shape: [1, 40] },
    );
    const shorter = lmk.tensor(
      Int32Array.from({ length: 30 }, (_, i) => (i * 7) % 20),
      { shape: [1, 30] },
    );
    const model = new lmk.nn.LlamaModel(opts);
    const first = Array.from(await model.forward(ids).data());
    expect(Array.from(await model.forward(ids).data())).toEqual(first); // cached tables
    const cachedShort = Array.from(await model.forward(shorter).data()); // another length: other tables
    const fresh = new lmk.nn.LlamaModel(opts);
    expect(Array.from(await fresh.forward(shorter).data())).toEqual(cachedShort);
    expect(cachedShort).toEqual(first.slice(0, 30 * 20)); // causal: the first 30 positions agree
    model.dispose();
    fresh.dispose();
  });
});
