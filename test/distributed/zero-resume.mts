// `zero-resume.mts OUT.json save DIR [PARTS]`: 5 ZeroAdamW steps; after step 3 the state dict (gathered
// from the shards) and the weights are written by rank 0 only to DIR; rank 0 writes the final
// weights to OUT. `zero-resume.mts OUT.json resume DIR` (any number of ranks): loads DIR, takes
// steps 4 and 5, writes the final weights: those of the run that saved. PARTS: as in
// train-equivalence.mts (one process accumulating PARTS micro-batches per step).
import { join } from 'node:path';
import * as lmk from 'lmkernels';
import { STEPS, forwardBackward, tinyModel, writeResult } from './common.mts';

const [out, phase, dir, partsText] = process.argv.slice(2) as [string, 'save' | 'resume', string, string?];
const parts = Number(partsText ?? 1);
const SAVED_AT = 3;
await lmk.dist.init();
const model = tinyModel('float64');
const params = model.parameters();
const opt = new lmk.optim.ZeroAdamW(params, { lr: 1e-2, weightDecay: 0.1 });
let first = 0;
if (phase === 'resume') {
  const weights = await lmk.loadSafetensors(join(dir, 'weights.safetensors'));
  model.loadStateDict(weights);
  const file = join(dir, 'optimizer.safetensors');
  opt.loadStateDict({ tensors: await lmk.loadSafetensors(file), metadata: await lmk.safetensorsMetadata(file) });
  first = SAVED_AT;
}
const losses: number[] = [];
for (let step = first; step < STEPS; step++) {
  losses.push(await forwardBackward(model, step, parts));
  opt.step();
  opt.zeroGrad();
  if (phase === 'save' && step + 1 === SAVED_AT) {
    const state = opt.stateDict(); // a collective: every rank takes part
    if (lmk.dist.rank() === 0) {
      await lmk.saveSafetensors(join(dir, 'weights.safetensors'), model.stateDict());
      await lmk.saveSafetensors(join(dir, 'optimizer.safetensors'), state.tensors, state.metadata);
    }
    for (const t of Object.values(state.tensors)) t.dispose();
  }
}
writeResult(out, model, losses);
opt.dispose();
model.dispose();
await lmk.dist.finalize();
