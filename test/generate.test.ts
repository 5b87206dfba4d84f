import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { FIXTURES, expectedOf } from './hf-fixtures';

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
}

describe('generate: greedy generations identical to transformers', () => {
  for (const name of ['rwkv4', 'llama-gqa-tied', 'llama-untied-sharded', 'mistral', 'qwen2']) {
    it(name, async () => {
      const exp = expectedOf(name);
      const model = await lmk.hub.loadModel(join(FIXTURES, name), { device: 'cpu' });
      const before = lmk.memory().tensors;
      const ids = await collect(
        lmk.generate(model, { inputIds: exp.prompt, maxNewTokens: exp.greedy.length, temperature: 0 }),
      );
      expect(ids).toEqual(exp.greedy);
      expect(lmk.memory().tensors).toBe(before); // state, cache and logits all disposed
      model.dispose();
    });
  }
});

describe('generate: decoding continues the prefix exactly', () => {
  // Each step's logits must equal forward() over the whole sequence at that position.
  async function checkSteps(model: lmk.hub.CausalLM, T: number, rel: number) {
    const seq = Int32Array.from({ length: T }, (_, i) => (i * 7 + 3) % 64);
    const full = (await model.forward(lmk.tensor(seq, { shape: [1, T] })).data()) as Float32Array;
    const V = 64;
    const stepLogits: number[][] = [];
    if (model instanceof lmk.nn.LlamaModel) {
      const p = 3;
      let { logits, cache } = model.prefill(lmk.tensor(seq.subarray(0, p), { shape: [1, p] }));
      stepLogits.push(Array.from(await logits.data()));
      for (let t = p; t < T; t++) {
        logits.dispose();
        ({ logits, cache } = model.decode(lmk.tensor(seq.subarray(t, t + 1)), cache));
        stepLogits.push(Array.from(await logits.data()));
      }
      logits.dispose();
      lmk.nn.disposeLlamaCache(cache);
      for (let i = 0; i < stepLogits.length; i++) {
        const want = full.subarray((p - 1 + i) * V, (p + i) * V);
        const scale = Math.max(...Array.from(want, Math.abs));
        const err = Math.max(...stepLogits[i]!.map((x, j) => Math.abs(x - want[j]!))) / scale;
        expect(err, `position ${p - 1 + i}`).toBeLessThan(rel);
      }
    }
  }

  it('RWKV-4: prefill (in parallel, continuing a state) then step equal forward', async () => {
    const model = await lmk.hub.loadModel(join(FIXTURES, 'rwkv4'), { device: 'cpu' });
    if (!(model instanceof lmk.nn.RWKV4Model)) throw new Error('expected an RWKV4Model');
    const seq = Int32Array.from({ length: 9 }, (_, i) => (i * 11 + 5) % 64);
    const V = 64;
    const full = await model.forward(lmk.tensor(seq, { shape: [1, 9] })).data();
    const at = (t: number) => Array.from(full.subarray(t * V, (t + 1) * V));
    const close = async (got: lmk.Tensor, t: number) => {
      const g = Array.from(await got.data()),
        want = at(t);
      const scale = Math.max(...want.map(Math.abs));
      expect(Math.max(...g.map((x, j) => Math.abs(x - want[j]!))) / scale, `position ${t}`).toBeLessThan(1e-5);
    };
    const a = model.prefill(lmk.tensor(seq.subarray(0, 4), { shape: [1, 4] }));
    await close(a.logits, 3);
    const b = model.prefill(lmk.tensor(seq.subarray(4, 6), { shape: [1, 2] }), a.state);
    await close(b.logits, 5);
    const c = model.step(lmk.tensor(seq.subarray(6, 7)), b.state);
    await close(c.logits, 6);
    const d = model.prefill(lmk.tensor(seq.subarray(7, 8), { shape: [1, 1] }), c.state);
    await close(d.logits, 7);
    for (const r of [a, b, c, d]) lmk.nn.disposeRWKV4State(r.state);
    model.dispose();
  });

  it('Llama KV cache (GQA, llama3 rope)', async () => {
    const model = await lmk.hub.loadModel(join(FIXTURES, 'llama-untied-sharded'), { device: 'cpu' });
    await checkSteps(model, 14, 1e-5);
    model.dispose();
  });

  for (const fam of [
    { blockSize: 4, memoryBlocks: 1, famLength: 2 },
    { blockSize: 3, memoryBlocks: 0, famLength: 1 },
    { blockSize: 2, memoryBlocks: 3, famLength: 3 },
  ]) {
    it(`Llama with fam ${JSON.stringify(fam)}: block state`, async () => {
      const model = await lmk.hub.loadModel(join(FIXTURES, 'qwen2'), { device: 'cpu', fam });
      await checkSteps(model, 15, 1e-5);
      model.dispose();
    });
  }
});

describe('generate: sampling', () => {
  it('is reproducible by seed and follows top-k / top-p', async () => {
    const model = await lmk.hub.loadModel(join(FIXTURES, 'rwkv4'), { device: 'cpu' });
    const opts = { inputIds: [1, 2, 3], maxNewTokens: 12, temperature: 1.3, seed: 7, stopTokenIds: [] };
    const a = await collect(lmk.generate(model, opts));
    const b = await collect(lmk.generate(model, opts));
    expect(a).toEqual(b);
    expect(a).toHaveLength(12);
    const c = await collect(lmk.generate(model, { ...opts, seed: 8 }));
    expect(c).not.toEqual(a);
    // topK 1 and a tiny topP are greedy whatever the temperature.
    const greedy = await collect(lmk.generate(model, { ...opts, temperature: 0 }));
    expect(await collect(lmk.generate(model, { ...opts, topK: 1 }))).toEqual(greedy);
    expect(await collect(lmk.generate(model, { ...opts, topP: 1e-6 }))).toEqual(greedy);
    model.dispose();
  });

  it('draws from softmax(logits / temperature) restricted by top-k and top-p (frequencies over seeds)', async () => {
    const model = await lmk.hub.loadModel(join(FIXTURES, 'rwkv4'), { device: 'cpu' });
    const prompt = [5, 9, 2];
    const logits = Array.from(
      (await model.forward(lmk.tensor(Int32Array.from(prompt), { shape: [1, 3] })).data()).subarray(2 * 64, 3 * 64),
    );
    const temperature = 3;
    // float64 reference of the kept distribution
    const reference = (topK: number, topP: number) => {
      const order = logits.map((_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
      const kept = order.slice(0, topK || 64);
      const w = kept.map((i) => Math.exp((logits[i]! - logits[kept[0]!]!) / temperature));
      const total = w.reduce((a, b) => a + b, 0);
      const probs = new Map(kept.map((i, j) => [i, w[j]! / total]));
      if (topP < 1) {
        let cum = 0;
        for (const i of kept) {
          if (cum >= topP) probs.delete(i);
          cum += w[kept.indexOf(i)]! / total;
        }
        const t2 = [...probs.values()].reduce((a, b) => a + b, 0);
        for (const [i, p] of probs) probs.set(i, p / t2);
      }
      return probs;
    };
    const N = 1000;
    for (const [topK, topP] of [
      [5, 1],
      [0, 0.6],
    ] as const) {
      const counts = new Map<number, number>();
      for (let seed = 0; seed < N; seed++) {
        for await (const t of lmk.generate(model, {
          inputIds: prompt,
          maxNewTokens: 1,
          temperature,
          topK,
          topP,
          seed,
        })) {
          counts.set(t, (counts.get(t) ?? 0) + 1);
        }
      }
      const probs = reference(topK, topP);
      for (const t of counts.keys()) expect(probs.has(t), `token ${t} should not be drawn`).toBe(true);
      for (const [t, p] of probs) {
        const freq = (counts.get(t) ?? 0) / N;
        expect(Math.abs(freq - p), `token ${t}: ${freq} vs ${p}`).toBeLessThan(
          4.5 * Math.sqrt((p * (1 - p)) / N) + 1e-3,
        );
      }
    }
    model.dispose();
  });

  it('stops after a stop token (yielded) and on eos from generation_config.json', async () => {
    const exp = expectedOf('rwkv4');
    const model = await lmk.hub.loadModel(join(FIXTURES, 'rwkv4'), { device: 'cpu' });
    const stopAt = exp.greedy[3]!;
    const ids = await collect(
      lmk.generate(model, { inputIds: exp.prompt, maxNewTokens: 10, temperature: 0, stopTokenIds: [stopAt] }),
    );
    expect(ids).toEqual(exp.greedy.slice(0, exp.greedy.indexOf(stopAt) + 1));
    model.generationConfig = { eos_token_id: [exp.greedy[1]!] };
    const eos = await collect(lmk.generate(model, { inputIds: exp.prompt, maxNewTokens: 10, temperature: 0 }));
    expect(eos).toEqual(exp.greedy.slice(0, 2));
    model.dispose();
  });

  it('checks its options at once', async () => {
    const model = await lmk.hub.loadModel(join(FIXTURES, 'rwkv4'), { device: 'cpu' });
    expect(() => lmk.generate(model, { inputIds: [], maxNewTokens: 1 })).toThrow(RangeError);
    expect(() => lmk.generate(model, { inputIds: [64], maxNewTokens: 1 })).toThrow(/inputIds\[0\]/);
    expect(() => lmk.generate(model, { inputIds: [1], maxNewTokens: 1, topP: 0 })).toThrow(/topP/);
    expect(() => lmk.generate(model, { inputIds: [1], maxNewTokens: 1, temperature: -1 })).toThrow(/temperature/);
    expect(() => lmk.generate(model, { inputIds: [1], maxNewTokens: 1, tempreature: 1 } as never)).toThrow(TypeError);
    expect(() => lmk.generate({} as never, { inputIds: [1], maxNewTokens: 1 })).toThrow(TypeError);
    model.dispose();
  });
});

describe('the decode-path product (x [M≤4, K] · Wᵀ, the GEMV kernel)', () => {
  it('equals float64 loops for every dtype, M = 1..5, K not a multiple of the lanes', async () => {
    for (const dtype of ['float32', 'bfloat16', 'float16', 'float64'] as const) {
      for (const M of [1, 2, 3, 4, 5]) {
        const [N, K] = [37, 75];
        const x = lmk.randn([M, K], { seed: M, dtype });
        const w = lmk.randn([N, K], { seed: 100 + M, dtype });
        const y = await lmk.ops.linear(x, w).data();
        const [xh, wh] = [await x.data(), await w.data()];
        for (let m = 0; m < M; m++) {
          for (let n = 0; n < N; n++) {
            let ref = 0;
            for (let k = 0; k < K; k++) ref += xh[m * K + k]! * wh[n * K + k]!;
            const tol = dtype === 'float64' ? 1e-12 : dtype === 'float32' ? 1e-4 : 2e-2 * Math.max(1, Math.abs(ref));
            expect(Math.abs(y[m * N + n]! - ref), `${dtype} M=${M} [${m},${n}]`).toBeLessThan(tol);
          }
        }
      }
    }
  });
});
