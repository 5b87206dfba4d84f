// `train-equivalence.mts OUT.json float32|float64 adamw|zero [PARTS]`: 5 AdamW steps of a tiny RWKV-4 on
// global batches of 8 rows, each rank taking its share (dist.shardIndices); gradients averaged by
// dist.syncGradients (small buckets, so several) before optim.AdamW, or by optim.ZeroAdamW itself.
// Rank 0 writes the loss curve and the final weights. Run on 1 process it is the reference: with
// PARTS > 1, each step's 8 rows as PARTS accumulated micro-batches (common.mts forwardBackward).
import * as lmk from 'lmkernels';
import { STEPS, forwardBackward, tinyModel, writeResult } from './common.mts';

const [out, dtype, optimizer, partsText] = process.argv.slice(2) as [
  string,
  'float32' | 'float64',
  'adamw' | 'zero',
  string?,
];
const parts = Number(partsText ?? 1);
await lmk.dist.init();
const model = tinyModel(dtype);
const params = model.parameters();
const hyper = { lr: 1e-2, weightDecay: 0.1 };
const opt = optimizer === 'zero' ? new lmk.optim.ZeroAdamW(params, hyper) : new lmk.optim.AdamW(params, hyper);
const losses: number[] = [];
for (let step = 0; step < STEPS; step++) {
  losses.push(await forwardBackward(model, step, parts));
  if (optimizer === 'adamw') lmk.dist.syncGradients(params, { bucketBytes: 4096 });
  opt.step();
  opt.zeroGrad();
}
writeResult(out, model, losses);
opt.dispose();
model.dispose();
await lmk.dist.finalize();
