import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { FIXTURES, idsTensor, relativeError } from './hf-fixtures';

const tmp = mkdtempSync(join(tmpdir(), 'lmk-lora-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tiny = () =>
  new lmk.nn.LlamaModel({
    vocabSize: 24,
    dModel: 8,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 1,
    intermediateSize: 12,
    dtype: 'float64',
    seed: 5,
  });

function params(model: lmk.nn.Module): Map<string, lmk.Tensor> {
  return new Map(model.namedParameters());
}

describe('nn.LoRA', () => {
  it('apply: y = x Wᵀ + (alpha/rank)·B A x, against float64 loops; merge folds it in', async () => {
    const model = tiny();
    const cfg = lmk.nn.LoRA.apply(model, { rank: 3, alpha: 6, targets: ['v_proj', 'up_proj'] });
    expect(cfg.modules).toEqual(['layers.0.self_attn.v_proj', 'layers.0.mlp.up_proj']);
    const p = params(model);
    const A = p.get('layers.0.self_attn.v_proj.lora_A.weight')!;
    const B = p.get('layers.0.self_attn.v_proj.lora_B.weight')!;
    expect(A.shape).toEqual([3, 8]);
    expect(B.shape).toEqual([4, 3]);
    expect(Array.from(await B.data()).every((x) => x === 0)).toBe(true); // starts as the base model
    // Give B values (A keeps its random init) through the public stateDict path.
    const bValues = Float64Array.from({ length: 12 }, (_, i) => Math.sin(i + 1));
    model.loadStateDict({
      ...model.stateDict(),
      'layers.0.self_attn.v_proj.lora_B.weight': lmk.tensor(bValues, { shape: [4, 3], dtype: 'float64' }),
    });
    const W = Array.from(await p.get('layers.0.self_attn.v_proj.weight')!.data());
    const a = Array.from(await A.data());
    const x = Float64Array.from({ length: 2 * 8 }, (_, i) => Math.cos(i * 0.7));
    const y = await model.layers[0]!.selfAttn.vProj.forward(lmk.tensor(x, { shape: [2, 8], dtype: 'float64' })).data();
    const s = 6 / 3;
    for (let n = 0; n < 2; n++) {
      for (let o = 0; o < 4; o++) {
        let ref = 0;
        for (let i = 0; i < 8; i++) ref += x[n * 8 + i]! * W[o * 8 + i]!;
        for (let r = 0; r < 3; r++) {
          let ax = 0;
          for (let i = 0; i < 8; i++) ax += a[r * 8 + i]! * x[n * 8 + i]!;
          ref += s * bValues[o * 3 + r]! * ax;
        }
        expect(y[n * 4 + o]).toBeCloseTo(ref, 12);
      }
    }
    const tokens = lmk.tensor(new Int32Array([1, 5, 7, 2, 9]), { shape: [1, 5] });
    const before = Array.from(await model.forward(tokens).data());
    lmk.nn.LoRA.merge(model);
    const merged = Array.from(await model.layers[0]!.selfAttn.vProj.weight.data());
    for (let o = 0; o < 4; o++) {
      for (let i = 0; i < 8; i++) {
        let ba = 0;
        for (let r = 0; r < 3; r++) ba += bValues[o * 3 + r]! * a[r * 8 + i]!;
        expect(merged[o * 8 + i]).toBeCloseTo(W[o * 8 + i]! + s * ba, 12);
      }
    }
    const after = Array.from(await model.forward(tokens).data());
    after.forEach((v, i) => expect(v).toBeCloseTo(before[i]!, 10));
    expect(model.namedParameters().some(([n]) => n.includes('lora'))).toBe(false);
    expect(model.parameters().every((t) => t.requiresGrad)).toBe(true);
  });

  it('freezes the base: only adapters get gradients and move under AdamW', async () => {
    const model = tiny();
    lmk.nn.LoRA.apply(model, { rank: 2, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] });
    const adapters = lmk.nn.LoRA.parameters(model);
    expect(adapters).toHaveLength(8);
    const all = model.parameters();
    expect(all.length).toBe(adapters.length + 12); // the 12 base weights still listed
    for (const t of all) expect(t.requiresGrad).toBe(adapters.includes(t));
    const baseBefore = await Promise.all(all.filter((t) => !adapters.includes(t)).map((t) => t.data()));
    const opt = new lmk.optim.AdamW(adapters, { lr: 1e-2 });
    for (let step = 0; step < 2; step++) {
      const tokens = lmk.tensor(new Int32Array([1, 5, 7, 2, 9, 3]), { shape: [1, 6] });
      const labels = lmk.tensor(new Int32Array([5, 7, 2, 9, 3, -100]), { shape: [1, 6] });
      const { loss } = lmk.ops.crossEntropy({ logits: model.forward(tokens), labels });
      loss.backward();
      opt.step();
      opt.zeroGrad();
    }
    for (const t of all) if (!adapters.includes(t)) expect(t.grad).toBeNull();
    const baseAfter = await Promise.all(all.filter((t) => !adapters.includes(t)).map((t) => t.data()));
    expect(baseAfter.map((d) => Array.from(d))).toEqual(baseBefore.map((d) => Array.from(d)));
    const bAfter = await adapters[1]!.data();
    expect(Array.from(bAfter).some((x) => x !== 0)).toBe(true);
  });

  it('dropout applies while recording gradients only', async () => {
    const model = tiny();
    lmk.nn.LoRA.apply(model, { rank: 2, targets: ['v_proj'], dropout: 0.5 });
    model.loadStateDict({
      ...model.stateDict(),
      'layers.0.self_attn.v_proj.lora_B.weight': lmk.ones([4, 2], { dtype: 'float64' }),
    });
    const x = lmk.randn([3, 8], { dtype: 'float64', seed: 3 });
    const v = model.layers[0]!.selfAttn.vProj;
    const a = Array.from(await lmk.noGrad(() => v.forward(x)).data());
    const b = Array.from(await lmk.noGrad(() => v.forward(x)).data());
    expect(a).toEqual(b);
    const c = Array.from(await v.forward(x).data());
    expect(c).not.toEqual(a);
  });

  it('errors: no matching module, applied twice, merge without adapters', () => {
    const model = tiny();
    expect(() => lmk.nn.LoRA.apply(model, { rank: 2, targets: ['c_attn'] })).toThrow(/c_attn.*q_proj/);
    expect(() => lmk.nn.LoRA.apply(model, { rank: 0, targets: ['q_proj'] })).toThrow(RangeError);
    lmk.nn.LoRA.apply(model, { rank: 2, targets: ['q_proj'] });
    expect(() => lmk.nn.LoRA.apply(model, { rank: 2, targets: ['q_proj'] })).toThrow(/already/);
    lmk.nn.LoRA.merge(model);
    expect(() => lmk.nn.LoRA.merge(model)).toThrow(/no LoRA adapters/);
  });
});

describe('hub adapters (PEFT layout)', () => {
  it("loadAdapter on the base model gives PEFT's logits", async () => {
    const exp = JSON.parse(readFileSync(join(FIXTURES, 'llama-lora', 'expected.json'), 'utf8'));
    const model = await lmk.hub.loadModel(join(FIXTURES, 'llama-gqa-tied'), { device: 'cpu' });
    await lmk.hub.loadAdapter(model, join(FIXTURES, 'llama-lora'));
    expect(lmk.nn.LoRA.config(model)!.modules).toHaveLength(8);
    const logits = await model.forward(idsTensor(exp.input_ids)).data();
    expect(relativeError(logits, exp.logits)).toBeLessThan(1e-4);
    // merged, the same logits
    lmk.nn.LoRA.merge(model);
    expect(relativeError(await model.forward(idsTensor(exp.input_ids)).data(), exp.logits)).toBeLessThan(1e-4);
    model.dispose();
  });

  it('saveAdapter writes what PEFT wrote (names, shapes, values, config)', async () => {
    const model = await lmk.hub.loadModel(join(FIXTURES, 'llama-gqa-tied'), { device: 'cpu' });
    await lmk.hub.loadAdapter(model, join(FIXTURES, 'llama-lora'));
    const out = join(tmp, 'adapter');
    await lmk.hub.saveAdapter(model, out);
    const mine = await lmk.loadSafetensors(join(out, 'adapter_model.safetensors'), { device: 'cpu' });
    const theirs = await lmk.loadSafetensors(join(FIXTURES, 'llama-lora', 'adapter_model.safetensors'), {
      device: 'cpu',
    });
    expect(Object.keys(mine).sort()).toEqual(Object.keys(theirs).sort());
    for (const [k, t] of Object.entries(theirs))
      expect(Array.from(await mine[k]!.data()), k).toEqual(Array.from(await t.data()));
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, task_type: 'CAUSAL_LM' });
    expect([...cfg.target_modules].sort()).toEqual(['down_proj', 'k_proj', 'q_proj', 'v_proj']);
    // saveModel writes the base weights only
    await lmk.hub.saveModel(model, join(tmp, 'base'));
    const base = await lmk.loadSafetensors(join(tmp, 'base', 'model.safetensors'), { device: 'cpu' });
    expect(Object.keys(base).some((k) => k.includes('lora'))).toBe(false);
    model.dispose();
  });

  it('a missing adapter tensor is named', async () => {
    const dir = join(tmp, 'broken');
    const model = await lmk.hub.loadModel(join(FIXTURES, 'llama-gqa-tied'), { device: 'cpu' });
    lmk.nn.LoRA.apply(model, { rank: 4, targets: ['q_proj'] });
    await lmk.hub.saveAdapter(model, dir);
    lmk.nn.LoRA.remove(model);
    const t = await lmk.loadSafetensors(join(dir, 'adapter_model.safetensors'), { device: 'cpu' });
    delete t['base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight'];
    await lmk.saveSafetensors(join(dir, 'adapter_model.safetensors'), t);
    await expect(lmk.hub.loadAdapter(model, dir)).rejects.toThrow(
      /base_model\.model\.model\.layers\.1\.self_attn\.q_proj\.lora_B\.weight is missing/,
    );
    expect(lmk.nn.LoRA.config(model)).toBeUndefined(); // left as it was
    model.dispose();
  });
});
