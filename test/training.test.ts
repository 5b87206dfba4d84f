// End-to-end training checks: a tiny model overfits a tiny batch; a checkpoint
// round trip gives identical parameters and continues training identically.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';

const dir = mkdtempSync(join(tmpdir(), 'lmk-train-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const [B, T, V] = [2, 16, 32];
const x = () =>
  lmk.tensor(
    Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % V),
    { shape: [B, T] },
  );
const y = () =>
  lmk.tensor(
    Int32Array.from({ length: B * T }, (_, i) => (i * 11 + 5) % V),
    { shape: [B, T] },
  );

function trainStep(model: lmk.nn.RWKV4Model, opt: lmk.optim.AdamW, loss: 'ce' | 'goldfish' = 'ce'): Promise<number> {
  return lmk.tidy(async () => {
    const logits = model.forward(x());
    const l =
      loss === 'ce'
        ? lmk.ops.crossEntropy({ logits, labels: y() }).loss
        : lmk.ops.goldfishLoss({ logits, labels: y(), k: 4 }).loss;
    l.backward();
    lmk.clipGradNorm(model.parameters(), 1);
    opt.step();
    opt.zeroGrad();
    return l.item();
  });
}

describe('training', () => {
  it('a tiny RWKV-4 overfits a tiny batch', async () => {
    // A fixed random mapping of 32 token pairs: chance is ln(32) ≈ 3.47 nats;
    // memorising it drives the loss well below 0.5 within 150 steps.
    const model = new lmk.nn.RWKV4Model({ vocabSize: V, dModel: 32, nLayers: 2, seed: 1 });
    const opt = new lmk.optim.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
    const losses: number[] = [];
    for (let i = 0; i < 150; i++) losses.push(await trainStep(model, opt));
    expect(losses[0]).toBeGreaterThan(3);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(0.5);
    model.dispose();
    opt.dispose();
  });

  it('a checkpoint round trip restores parameters bit for bit and continues training identically', async () => {
    const make = () => new lmk.nn.RWKV4Model({ vocabSize: V, dModel: 16, nLayers: 1, seed: 2 });
    const a = make();
    const optA = new lmk.optim.AdamW(a.parameters(), { lr: 5e-3 });
    for (let i = 0; i < 3; i++) await trainStep(a, optA, 'goldfish');
    const path = join(dir, 'ckpt.safetensors');
    const optState = optA.stateDict();
    await lmk.saveSafetensors(
      path,
      { ...a.stateDict(), ...Object.fromEntries(Object.entries(optState.tensors).map(([k, t]) => [`optim.${k}`, t])) },
      optState.metadata,
    );

    const loaded = await lmk.loadSafetensors(path);
    const meta = await lmk.safetensorsMetadata(path);
    const b = make();
    b.loadStateDict(Object.fromEntries(Object.entries(loaded).filter(([k]) => !k.startsWith('optim.'))));
    const optB = new lmk.optim.AdamW(b.parameters(), { lr: 5e-3 });
    optB.loadStateDict({
      tensors: Object.fromEntries(
        Object.entries(loaded)
          .filter(([k]) => k.startsWith('optim.'))
          .map(([k, t]) => [k.slice(6), t]),
      ),
      metadata: meta,
    });
    for (const [name, p] of a.namedParameters()) {
      expect(Array.from(await b.stateDict()[name]!.data()), name).toEqual(Array.from(await p.data()));
    }
    for (let i = 0; i < 3; i++) expect(await trainStep(b, optB, 'goldfish')).toBe(await trainStep(a, optA, 'goldfish'));
    for (const [name, p] of a.namedParameters()) {
      expect(Array.from(await b.stateDict()[name]!.data()), name).toEqual(Array.from(await p.data()));
    }
    expect(() => b.loadStateDict({})).toThrow(/Module.loadStateDict: missing: emb.weight/);
  });

  it('AdamW and clipGradNorm reject bad options', () => {
    const p = lmk.zeros([2]);
    p.requiresGrad = true;
    expect(() => new lmk.optim.AdamW([p], { lr: -1 })).toThrow(RangeError);
    expect(() => new lmk.optim.AdamW([p], { lr: 1, betas: [1, 0.9] })).toThrow(/optim\.AdamW: beta1 must be/);
    expect(() => new lmk.optim.AdamW([], { lr: 1 })).toThrow(TypeError);
    expect(() => lmk.clipGradNorm([p], 0)).toThrow(/clipGradNorm: maxNorm must be > 0/);
    const sched = lmk.optim.cosineSchedule({ maxLr: 1, minLr: 0.1, warmupSteps: 10, totalSteps: 110 });
    expect(sched(0)).toBeCloseTo(0.1);
    expect(sched(9)).toBeCloseTo(1);
    expect(sched(60)).toBeCloseTo(0.55);
    expect(sched(110)).toBeCloseTo(0.1);
  });
});
