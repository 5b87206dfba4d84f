// A small training soak: a few hundred steps of small demo-like
// models (bench/soak.ts; the 2 000-step soak of the demo's own model is
// bench/soak.bench.ts) return memory() to exactly the same tensor count and
// bytes in use after every step once AdamW's state exists, and RSS after a
// forced collection stays flat.
import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { loadBytes } from '../examples/lib/data.mts';
import { memoryDrift, soak } from '../bench/soak';

const corpus = loadBytes();
const STEPS = 200;
/** Steps before memory() must stop changing: AdamW creates its moments at the first step. */
const WARMUP = 2;
/** RSS settles (allocator arenas, JIT code, V8's heap) during the first steps; growth is measured after. */
const RSS_FROM = 50;
const MiB = 2 ** 20;

// Sequences of two FAM blocks: the FAM scan carries state from one block to the next.
const models = {
  'RWKV-4': {
    seqLen: 32,
    create: () => new lmk.nn.RWKV4Model({ vocabSize: 256, dModel: 32, nLayers: 2, device: 'cpu', seed: 1 }),
  },
  TransformerFAM: {
    seqLen: 16,
    create: () =>
      new lmk.nn.FamTransformerModel({
        vocabSize: 256,
        dModel: 32,
        nLayers: 2,
        nHeads: 4,
        blockSize: 8,
        memoryBlocks: 1,
        famLength: 4,
        device: 'cpu',
        seed: 1,
      }),
  },
};

describe('training soak (small)', () => {
  for (const [name, { seqLen, create }] of Object.entries(models)) {
    it(`${name}: ${STEPS} steps keep memory() exact and RSS flat`, async () => {
      const before = lmk.memory();
      const model = create();
      const r = await soak({
        model,
        corpus,
        steps: STEPS,
        batch: 4,
        seqLen,
        lr: 1e-2,
        evalEvery: 20,
        rssEvery: 25,
        device: 'cpu',
      });
      expect(r.losses.every(Number.isFinite)).toBe(true);
      expect(r.losses.slice(-10).reduce((a, b) => a + b) / 10).toBeLessThan(r.losses[0]! - 1); // it trains
      // Exact: the same live tensors and bytes in use after every step.
      const base = r.memory[WARMUP - 1]!;
      const changed = r.memory
        .slice(WARMUP)
        .findIndex((m) => m.tensors !== base.tensors || m.bytesInUse !== base.bytesInUse);
      expect(changed, `memory() changed at step ${changed + WARMUP + 1}`).toBe(-1);
      expect(memoryDrift(r.memory, WARMUP)).toEqual({ tensors: 0, bytesInUse: 0 });
      // Parameters (and their AdamW moments) are the only tensors left between steps.
      const params = model.parameters().length;
      expect(base.tensors - before.tensors).toBe(3 * params);
      // RSS after a forced collection: leaking one step's activations would add
      // megabytes per step; V8 may still grow its heap reservation by several
      // MiB early on, which is not a leak. Live JavaScript objects (tensor
      // wrappers, autograd nodes) must not accumulate either.
      const at = (step: number) => r.rss.find((x) => x.step === step)!;
      expect((at(STEPS).rss - at(RSS_FROM).rss) / MiB).toBeLessThan(16);
      expect((at(STEPS).heapUsed - at(RSS_FROM).heapUsed) / MiB).toBeLessThan(1);
      model.dispose();
      await lmk.synchronize('cpu');
      expect(lmk.memory().tensors).toBe(before.tensors);
      expect(lmk.memory().bytesInUse.cpu).toBe(before.bytesInUse.cpu);
    });
  }
});
