// A small RWKV-4 trained for a few steps with the goldfish loss (examples/train-tiny.mts,
// the README's example; run it with `npx tsx examples/train-tiny.mts`).
import * as lmk from 'lmkernels';

const text = 'It was the best of times, it was the worst of times, it was the age of wisdom. '.repeat(8);
const bytes = Int32Array.from(Buffer.from(text));
const [B, T] = [4, 64];
const model = new lmk.nn.RWKV4Model({ vocabSize: 256, dModel: 64, nLayers: 2, seed: 1 });
const optimizer = new lmk.optim.AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0.01 });

function batch(step: number) {
  const inputs = new Int32Array(B * T),
    labels = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = (step * 97 + b * 131) % (bytes.length - T - 1);
    inputs.set(bytes.subarray(start, start + T), b * T);
    labels.set(bytes.subarray(start + 1, start + T + 1), b * T);
  }
  return { x: lmk.tensor(inputs, { shape: [B, T] }), y: lmk.tensor(labels, { shape: [B, T] }) };
}

for (let step = 0; step < 30; step++) {
  const loss = await lmk.tidy(async () => {
    const { x, y } = batch(step);
    const { loss } = lmk.ops.goldfishLoss({ logits: model.forward(x), labels: y, k: 4, contextWidth: 13 });
    loss.backward();
    lmk.clipGradNorm(model.parameters(), 1.0);
    optimizer.step();
    optimizer.zeroGrad();
    return loss.item();
  });
  if (step % 5 === 0 || step === 29) console.log(`step ${step}  goldfish loss ${loss.toFixed(3)}`);
}
