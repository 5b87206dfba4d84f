// Rank script of bench/dist.bench.ts: training steps of the demo's default model (byte-level
// RWKV-4, d 128, 4 layers; 8 windows of 128 bytes per rank) with gradients averaged by
// dist.syncGradients, timed per step (forward, backward, sync, AdamW, the loss read back); the
// minimum over STEPS steps after a warm-up. Validated first: on a repeated batch the loss falls.
// Usage: [lmkernels launch -n W] train.mts STEPS ; rank 0 prints one JSON line.
import * as lmk from 'lmkernels';

const steps = Number(process.argv[2] ?? 5);
const { rank, worldSize } = await lmk.dist.init();
const B = 8,
  T = 128;
const model = new lmk.nn.RWKV4Model({ vocabSize: 256, dModel: 128, nLayers: 4, seed: 1 });
const params = model.parameters();
const optimizer = new lmk.optim.AdamW(params, { lr: 4e-3, weightDecay: 0.01 });
// Each rank's own windows (different data on each rank, as training has).
const tokens = (salt: number) =>
  lmk.tensor(
    Int32Array.from({ length: B * T }, (_, i) => (Math.imul(i + 7919 * (rank + 1), 2654435761 + salt) >>> 24) % 256),
    { shape: [B, T] },
  );
const inputs = tokens(0),
  labels = tokens(1);
const step = async () => {
  const loss = lmk.tidy(() => {
    const { loss } = lmk.ops.crossEntropy({ logits: model.forward(inputs), labels });
    loss.backward();
    lmk.dist.syncGradients(params);
    lmk.clipGradNorm(params, 1);
    optimizer.step();
    optimizer.zeroGrad();
    return loss;
  });
  const value = await loss.item();
  loss.dispose();
  return value;
};
const first = await step();
let last = first;
for (let i = 0; i < 3; i++) last = await step();
if (!(last < first)) throw new Error(`train.mts: the loss did not fall on a repeated batch (${first} -> ${last})`);
let best = Infinity;
for (let i = 0; i < steps; i++) {
  await lmk.dist.barrier();
  const t0 = performance.now();
  await step();
  best = Math.min(best, (performance.now() - t0) / 1000);
}
const tokensPerStep = worldSize * B * T;
if (rank === 0) console.log(JSON.stringify({ worldSize, seconds: best, tokensPerSecond: tokensPerStep / best }));
optimizer.dispose();
model.dispose();
await lmk.dist.finalize();
