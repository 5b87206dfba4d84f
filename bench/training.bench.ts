// Tokens per second of one training step (forward, cross-entropy, backward,
// AdamW) of a small RWKV-4 (4 layers, d=256, T=256) and a small TransformerFAM
// model (4 layers, d=256, 4 heads, L=64, m=1, F=8, T=256) on the CPU, float32,
// byte vocabulary. Validated first: the loss is finite and falls over a few
// steps on a repeated batch. Reported relative to this machine's copy bandwidth
// is meaningless here (compute-bound), so the ratio is to the forward pass
// alone (training step / inference step time).
import * as lmk from 'lmkernels';
import { timeMs, type BenchContext, type BenchRow } from './harness';

type Model = { forward(t: lmk.Tensor): lmk.Tensor; parameters(): lmk.Tensor[]; dispose(): void };

async function benchModel(name: string, model: Model, B: number, T: number, quick: boolean): Promise<BenchRow> {
  const tokens = lmk.tensor(
    Int32Array.from({ length: B * T }, (_, i) => (i * 31 + 7) % 256),
    { shape: [B, T] },
  );
  const labels = lmk.tensor(
    Int32Array.from({ length: B * T }, (_, i) => (i * 31 + 38) % 256),
    { shape: [B, T] },
  );
  const optimizer = new lmk.optim.AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0 });
  const step = () =>
    lmk.tidy(() => {
      const { loss } = lmk.ops.crossEntropy({ logits: model.forward(tokens), labels });
      loss.backward();
      optimizer.step();
      optimizer.zeroGrad();
      return loss;
    });
  // Validate: finite, falling loss on a repeated batch.
  const first = await step().item();
  let last = first;
  for (let i = 0; i < 4; i++) last = await step().item();
  if (!Number.isFinite(first) || !(last < first)) throw new Error(`${name}: loss did not fall (${first} -> ${last})`);
  const runs = quick ? 2 : 4;
  const trainMs = await timeMs(
    async () => {
      const l = step();
      await l.item();
      l.dispose();
    },
    { warmup: 1, runs },
  );
  const forwardMs = await timeMs(
    async () => {
      const out = lmk.noGrad(() => model.forward(tokens));
      await lmk.synchronize('cpu');
      out.dispose();
    },
    { warmup: 1, runs },
  );
  optimizer.dispose();
  model.dispose();
  return {
    bench: 'training',
    case: `${name} B=${B} T=${T} step`,
    ms: trainMs,
    metrics: { 'tokens/s': ((B * T) / (trainMs / 1e3)).toFixed(0), 'step/forward': (trainMs / forwardMs).toFixed(2) },
  };
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const d = ctx.quick ? 64 : 256,
    layers = ctx.quick ? 2 : 4,
    T = ctx.quick ? 64 : 256,
    B = ctx.quick ? 2 : 4;
  const rows: BenchRow[] = [];
  rows.push(
    await benchModel(
      `rwkv4 ${layers}×d${d}`,
      new lmk.nn.RWKV4Model({ vocabSize: 256, dModel: d, nLayers: layers, seed: 1 }),
      B,
      T,
      ctx.quick,
    ),
  );
  rows.push(
    await benchModel(
      `fam ${layers}×d${d}`,
      new lmk.nn.FamTransformerModel({
        vocabSize: 256,
        dModel: d,
        nLayers: layers,
        nHeads: 4,
        blockSize: 64,
        memoryBlocks: 1,
        famLength: 8,
        seed: 1,
      }),
      B,
      T,
      ctx.quick,
    ),
  );
  return rows;
}
