// TransformerFAM (Hwang et al. 2024, "TransformerFAM: Feedback attention is
// working memory") at small scale: passkey retrieval as in the paper's
// Figure 3a. A sequence holds a random key near its start, filler text, and a
// query at its end whose answer is the key:
//
//   "the grass is ... key=483. the grass is green. the sky is blue. ... key=483"
//                              ^ within the first block         query ^ answer
//
// at lengths far beyond the attention window (blockSize L = 16). Only the key
// bytes after the final "key=" are supervised and scored (exact match of the
// whole key, greedy = argmax at each of its positions, teacher-forced).
//
// Three models of the same shape (d = 64, 2 layers, 4 heads, L = 16), trained
// from scratch with the same batches, steps and learning rate:
//   - FAM:      lmk.nn.FamTransformerModel, memoryBlocks m = 1, famLength F = 4;
//   - BSWA m=0: block sliding-window attention, each block attends only to itself;
//   - BSWA m=1: each block also attends to the previous block (memory segment).
// FamTransformerModel requires F >= 1, so the BSWA models are the same module
// (same initial weights) run by `bswaHidden` below: the FAM scan is skipped
// and ops.famBlockAttention gets F = 0 FAM keys/values (the kernel's plain
// BSWA). Their famInit parameters are unused and not optimised. So BSWA m=1
// and FAM differ only in the FAM path.
//
// Usage: npx tsx examples/reproduce/fam-passkey.mts [--smoke] [--seed N]
//        [--steps N] [--out FILE.json]
import { writeFileSync } from 'node:fs';
import * as lmk from 'lmkernels';
import { integerFlag, parseFlags, usageError } from '../lib/cli.mts';
import { Rng } from '../lib/rng.mts';
import { encode } from '../lib/data.mts';
import { ProgressBar } from '../lib/progress.mts';
import { parameterCount } from '../lib/train.mts';
import { terminalPlot } from '../lib/plot.mts';

const HELP = `Usage: npx tsx examples/reproduce/fam-passkey.mts [options]

Trains three byte-level models of the same shape on passkey retrieval (a key
in the first block, asked for at the end): TransformerFAM, and block
sliding-window attention with memory segments of 0 and 1 blocks; then scores
them on sequences up to 4× longer than any seen in training.

  --steps N          training steps of each model (default 400)
  --seed N           seed of weights and data (default 1)
  --models LIST      which of fam,bswa0,bswa1 to train (default all three)
  --out FILE         also write the results as JSON
  --smoke            a tiny, fast configuration (for CI: checks that it runs, not the effect)
  --help             this text
`;

const args = parseFlags('fam-passkey', HELP, {
  smoke: { type: 'boolean', default: false },
  seed: { type: 'string' },
  steps: { type: 'string' },
  models: { type: 'string' },
  out: { type: 'string' },
});
const smoke = args.smoke;
const seed = integerFlag('fam-passkey', 'seed', args.seed, 1, 0);
const cfg = smoke
  ? {
      dModel: 16,
      nLayers: 1,
      nHeads: 2,
      L: 16,
      F: 2,
      B: 4,
      steps: 3,
      lr: 2e-3,
      trainLengths: [32, 64],
      evalLengths: [32, 64],
      evalN: 8,
    }
  : {
      dModel: 64,
      nLayers: 2,
      nHeads: 4,
      L: 16,
      F: 4,
      B: 32,
      steps: 400,
      lr: 2e-3,
      trainLengths: [32, 64, 96, 128],
      evalLengths: [32, 64, 128, 256, 512],
      evalN: 200,
    };
cfg.steps = integerFlag('fam-passkey', 'steps', args.steps, cfg.steps);
const KEY_DIGITS = 3;
const IGNORE = -100;
const device = lmk.defaultDevice();

// ---------------------------------------------------------------- data
const FILLER = encode('the grass is green. the sky is blue. the sun is yellow. here we go. there and back again. ');

/**
 * One sequence of `length` input bytes (+1 for the last label): filler from a
 * random offset, "key=DDD." at a random position in the first block, filler,
 * then "key=" and the key at the very end. Returns { bytes, key, answerAt }
 * where bytes[answerAt..answerAt+3) is the answer.
 */
function makeSequence(rng: Rng, length: number): { bytes: Uint8Array; key: number[]; answerAt: number } {
  const key = Array.from({ length: KEY_DIGITS }, () => 48 + rng.int(10));
  const n = length + 1;
  const bytes = new Uint8Array(n);
  const off = rng.int(FILLER.length);
  for (let i = 0; i < n; i++) bytes[i] = FILLER[(off + i) % FILLER.length]!;
  const tag = encode('key=');
  const at = rng.int(cfg.L - tag.length - KEY_DIGITS - 1 + 1); // the whole "key=DDD." inside block 0
  bytes.set([...tag, ...key, 46], at);
  const answerAt = n - KEY_DIGITS;
  bytes.set(tag, answerAt - tag.length);
  bytes.set(key, answerAt);
  return { bytes, key, answerAt };
}

interface PasskeyBatch {
  inputs: Int32Array;
  /** IGNORE except at the positions that predict the key's digits. */
  labels: Int32Array;
  /** The digits (byte values) of each sequence's key. */
  keys: number[][];
  shape: [number, number];
}

function makeBatch(rng: Rng, B: number, length: number): PasskeyBatch {
  const inputs = new Int32Array(B * length),
    labels = new Int32Array(B * length).fill(IGNORE);
  const keys: number[][] = [];
  for (let b = 0; b < B; b++) {
    const { bytes, key, answerAt } = makeSequence(rng, length);
    for (let t = 0; t < length; t++) inputs[b * length + t] = bytes[t]!;
    for (let j = 0; j < KEY_DIGITS; j++) labels[b * length + answerAt - 1 + j] = bytes[answerAt + j]!;
    keys.push(key);
  }
  return { inputs, labels, keys, shape: [B, length] };
}

// ---------------------------------------------------------------- models
function newModel(memoryBlocks: number): lmk.nn.FamTransformerModel {
  return new lmk.nn.FamTransformerModel({
    vocabSize: 256,
    dModel: cfg.dModel,
    nLayers: cfg.nLayers,
    nHeads: cfg.nHeads,
    blockSize: cfg.L,
    memoryBlocks,
    famLength: cfg.F,
    device,
    seed,
  });
}

/** [B,N,C] → [B,heads,N,D] (RoPE at positions when given), as FamTransformerBlock does. */
function heads(x: lmk.Tensor, proj: lmk.nn.Linear, count: number, positions: lmk.Tensor | null): lmk.Tensor {
  const [B, N] = x.shape as [number, number, number];
  const D = cfg.dModel / cfg.nHeads;
  const h = lmk.ops.transpose(lmk.ops.reshape(proj.forward(x), [B, N, count, D]), 1, 2);
  return positions ? lmk.ops.rope(h, positions) : h;
}

/** The FAM model's network with its FAM path removed: plain BSWA (F = 0); the hidden states (the head's input). */
function bswaHidden(model: lmk.nn.FamTransformerModel, tokens: lmk.Tensor): lmk.Tensor {
  const [B, T] = tokens.shape as [number, number];
  const { nHeads: H, blockSize: L, memoryBlocks: m } = model.config;
  const D = cfg.dModel / H;
  const NB = Math.ceil(T / L);
  const positions = lmk.tensor(Int32Array.from({ length: T }, (_, t) => t));
  const noFam = lmk.zeros([B, H, NB, 0, D], { device });
  let x = model.emb.forward(tokens);
  for (const block of model.blocks) {
    const xn = block.norm1.forward(x);
    const q = heads(xn, block.wq, H, positions);
    const k = heads(xn, block.wk, H, positions);
    const v = heads(xn, block.wv, H, null);
    const o = lmk.ops.famBlockAttention({ q, k, v, famK: noFam, famV: noFam, blockSize: L, memoryBlocks: m }).out;
    const merged = lmk.ops.reshape(lmk.ops.transpose(o, 1, 2), [B, T, H * D]);
    const h = lmk.ops.add(x, block.wo.forward(merged));
    x = lmk.ops.add(h, block.ffn.forward(block.norm2.forward(h)));
  }
  return model.normOut.forward(x);
}

interface Arm {
  name: string;
  memoryBlocks: number;
  /** false: BSWA, the FAM path removed (bswaHidden). */
  fam: boolean;
}
const ARMS: Record<string, Arm> = {
  fam: { name: `FAM (m=1, F=${cfg.F})`, memoryBlocks: 1, fam: true },
  bswa0: { name: 'BSWA m=0', memoryBlocks: 0, fam: false },
  bswa1: { name: 'BSWA m=1', memoryBlocks: 1, fam: false },
};
const armKeys = (args.models ?? 'fam,bswa0,bswa1').split(',');
for (const key of armKeys) {
  if (!Object.hasOwn(ARMS, key))
    usageError('fam-passkey', `--models: unknown model '${key}' (expected fam, bswa0, bswa1)`);
}

/** The arm's hidden states [B,T,d] (the head's input): the loss is taken from them and the head (no logits tensor). */
function hiddenOf(arm: Arm, model: lmk.nn.FamTransformerModel): (tokens: lmk.Tensor) => lmk.Tensor {
  return arm.fam ? (t) => model.hiddenStates(t) : (t) => bswaHidden(model, t);
}

/** Share of sequences whose key is predicted exactly, and of digits predicted right (argmax, teacher-forced). */
interface Accuracy {
  exact: number;
  digit: number;
}

async function accuracyAt(arm: Arm, model: lmk.nn.FamTransformerModel, length: number): Promise<Accuracy> {
  const rng = new Rng(`passkey-eval-${seed}-${length}`);
  const hiddenStates = hiddenOf(arm, model);
  const EB = length >= 512 ? 25 : 50;
  let exact = 0,
    digits = 0,
    n = 0;
  for (let i = 0; i < cfg.evalN; i += EB) {
    const B = Math.min(EB, cfg.evalN - i);
    const batch = makeBatch(rng, B, length);
    const pred = lmk.noGrad(() =>
      lmk.tidy(() => {
        const hidden = hiddenStates(lmk.tensor(batch.inputs, { shape: batch.shape, device }));
        return model.head.forward(lmk.ops.slice(hidden, 1, length - KEY_DIGITS, length));
      }),
    );
    const rows = await pred.data();
    pred.dispose();
    for (let b = 0; b < B; b++) {
      let all = true;
      for (let j = 0; j < KEY_DIGITS; j++) {
        const row = rows.subarray((b * KEY_DIGITS + j) * 256, (b * KEY_DIGITS + j + 1) * 256);
        let best = 0;
        for (let v = 1; v < 256; v++) if (row[v]! > row[best]!) best = v;
        if (best === batch.keys[b]![j]) digits++;
        else all = false;
      }
      if (all) exact++;
      n++;
    }
  }
  return { exact: exact / n, digit: digits / (n * KEY_DIGITS) };
}

interface ArmResult {
  key: string;
  name: string;
  losses: number[];
  /** By evaluation length. */
  acc: Record<number, Accuracy>;
  trainSeconds: number;
  evalSeconds: number;
  params: number;
}

async function runArm(key: string): Promise<ArmResult> {
  const arm = ARMS[key]!;
  const model = newModel(arm.memoryBlocks);
  const params = model
    .namedParameters()
    .filter(([name]) => arm.fam || !name.endsWith('famInit'))
    .map(([, p]) => p);
  const optimizer = new lmk.optim.AdamW(params, { lr: cfg.lr, weightDecay: 0.01 });
  const rng = new Rng(`passkey-train-${seed}`); // the same batches for every arm
  const hiddenStates = hiddenOf(arm, model);
  const head = { weight: model.head.weight, bias: model.head.bias ?? undefined };
  const bar = new ProgressBar(cfg.steps, { label: `${arm.name.padEnd(16)} ` });
  const losses: number[] = [];
  const t0 = performance.now();
  let pending: lmk.Tensor | null = null;
  for (let step = 0; step < cfg.steps; step++) {
    // Warm-up then cosine decay.
    const w = Math.min(1, (step + 1) / 20);
    optimizer.lr = cfg.lr * w * (0.1 + 0.9 * 0.5 * (1 + Math.cos((Math.PI * step) / cfg.steps)));
    const length = cfg.trainLengths[step % cfg.trainLengths.length]!;
    const batch = makeBatch(rng, cfg.B, length);
    const loss = lmk.tidy(() => {
      const inputs = lmk.tensor(batch.inputs, { shape: batch.shape, device });
      const labels = lmk.tensor(batch.labels, { shape: batch.shape, device });
      const hidden = hiddenStates(inputs);
      const { loss } = lmk.ops.linearCrossEntropy({ hidden, ...head, labels, ignoreIndex: IGNORE });
      loss.backward();
      lmk.clipGradNorm(params, 1);
      optimizer.step();
      optimizer.zeroGrad();
      return loss;
    });
    if (pending) {
      losses.push(await pending.item());
      pending.dispose();
      bar.update(step, { loss: losses.at(-1)!.toFixed(3) });
    }
    pending = loss;
  }
  if (pending) {
    losses.push(await pending.item());
    pending.dispose();
  }
  bar.update(cfg.steps, { loss: losses.at(-1)?.toFixed(3) ?? '-' });
  bar.finish();
  const trainSeconds = (performance.now() - t0) / 1000;
  const acc: Record<number, Accuracy> = {};
  const e0 = performance.now();
  for (const length of cfg.evalLengths) acc[length] = await accuracyAt(arm, model, length);
  const evalSeconds = (performance.now() - e0) / 1000;
  console.log(
    `${arm.name}: train ${trainSeconds.toFixed(1)} s, eval ${evalSeconds.toFixed(1)} s; exact-key accuracy ` +
      cfg.evalLengths.map((l) => `${l}: ${acc[l]!.exact.toFixed(2)}`).join(', '),
  );
  const paramCount = params.reduce((n, p) => n + p.numel, 0);
  model.dispose();
  return { key, name: arm.name, losses, acc, trainSeconds, evalSeconds, params: paramCount };
}

// ---------------------------------------------------------------- run
const wall0 = performance.now();
{
  const probe = newModel(1);
  console.log(
    `FAM passkey reproduction${smoke ? ' (smoke)' : ''}: d=${cfg.dModel}, ${cfg.nLayers} layers, ${cfg.nHeads} heads, ` +
      `blockSize ${cfg.L}, ${parameterCount(probe)} parameters (FAM), on ${device}, seed ${seed}, threads ${process.env.LMK_NUM_THREADS ?? 'default'}`,
  );
  probe.dispose();
  const ex = makeSequence(new Rng('example'), 64);
  console.log(`example (64 bytes + answer): ${JSON.stringify(new TextDecoder().decode(ex.bytes))}`);
  console.log(
    `${cfg.steps} steps of ${cfg.B} sequences, lengths cycling ${cfg.trainLengths.join('/')}; evaluated on ${cfg.evalN} fresh sequences per length`,
  );
}
const results: ArmResult[] = [];
for (const key of armKeys) results.push(await runArm(key));
const wall = (performance.now() - wall0) / 1000;

const header = `| model | params | ${cfg.evalLengths.map((l) => `len ${l}`).join(' | ')} | train s |`;
const sep = `| --- | --- | ${cfg.evalLengths.map(() => '---').join(' | ')} | --- |`;
const table = [
  header,
  sep,
  ...results.map(
    (r) =>
      `| ${r.name} | ${r.params} | ${cfg.evalLengths.map((l) => `${r.acc[l]!.exact.toFixed(2)} (${r.acc[l]!.digit.toFixed(2)})`).join(' | ')} | ${r.trainSeconds.toFixed(0)} |`,
  ),
].join('\n');
console.log(
  `\nExact-key accuracy by sequence length (per-digit accuracy in parentheses); chance: exact ${10 ** -KEY_DIGITS}, digit 0.1.`,
);
console.log(
  `Attention window: BSWA m=0 sees ${cfg.L} tokens back at most; m=1 up to ${2 * cfg.L} per layer (${(cfg.nLayers + 1) * cfg.L} through ${cfg.nLayers} layers).`,
);
console.log(table);
console.log(`wall ${wall.toFixed(1)} s`);
if (!smoke) {
  console.log(
    '\n' +
      terminalPlot(
        results.map((r) => ({ name: r.name, points: r.losses.map((l, i) => [i, l]) })),
        { title: 'training loss (answer bytes)', xLabel: 'step', width: 60, height: 10 },
      ),
  );
}
if (args.out) writeFileSync(args.out, JSON.stringify({ cfg, seed, wall, results, table }, null, 2));
