// ORPO (Hong et al. 2024, "ORPO: Monolithic Preference Optimization without
// Reference Model") at small scale: does the odds-ratio term separate chosen
// from rejected responses more than supervised fine-tuning on the chosen
// responses alone?
//
// Synthetic preference pairs: a prompt "Q: <words>?\nA: " and a response of
// 3–5 random words ending with '.'. The chosen response is all lowercase, the
// rejected one is the same words in Title Case, so the two differ only in the
// first byte of each word and share every other byte (the situation where the
// paper observes SFT raising the rejected responses' likelihood along with the
// chosen ones).
//
// 1. base: a byte-level RWKV-4 is fine-tuned briefly on the format, with
//    responses in either style (50/50): it knows the task, not the preference.
// 2. From the same base weights, with the same batches and steps:
//    - SFT: cross-entropy on the chosen responses only;
//    - ORPO: ops.orpo (SFT on the chosen + λ·odds-ratio term, λ = 0.1).
// 3. On held-out pairs (prompts and responses never seen in training):
//    TRL's metrics from lmk.losses.orpo (rewards accuracy, margin, log-odds
//    ratio, log-odds of chosen), the mean per-byte log p of chosen and
//    rejected, and the share of greedy completions written in the chosen style.
//
// Usage: npx tsx examples/reproduce/orpo.mts [--smoke] [--seed N] [--base-steps N]
//        [--align-steps N] [--lambda X] [--out FILE.json]
import { writeFileSync } from 'node:fs';
import * as lmk from 'lmkernels';
import { integerFlag, numberFlag, parseFlags } from '../lib/cli.mts';
import { Rng } from '../lib/rng.mts';
import { encode, decode } from '../lib/data.mts';
import { ProgressBar } from '../lib/progress.mts';
import { parameterCount } from '../lib/train.mts';
import { terminalPlot } from '../lib/plot.mts';

const HELP = `Usage: npx tsx examples/reproduce/orpo.mts [options]

Fine-tunes a byte-level RWKV-4 on synthetic question/answer pairs in both
styles, then aligns copies of it to the lowercase style with SFT on the chosen
responses and with ORPO, and prints TRL's metrics on held-out pairs before,
during and after alignment.

  --seed N          seed of weights and data (default 1)
  --base-steps N    steps of the base fine-tuning (default 500)
  --align-steps N   steps of each alignment arm (default 150)
  --lambda X        ORPO's weight of the odds-ratio term (default 0.1)
  --out FILE        also write the results as JSON
  --smoke           a tiny, fast configuration (for CI: checks that it runs, not the effect)
  --help            this text
`;

const args = parseFlags('orpo', HELP, {
  smoke: { type: 'boolean', default: false },
  seed: { type: 'string' },
  'base-steps': { type: 'string' },
  'align-steps': { type: 'string' },
  lambda: { type: 'string' },
  out: { type: 'string' },
});

const smoke = args.smoke;
const seed = integerFlag('orpo', 'seed', args.seed, 1, 0);
const lambda = numberFlag('orpo', 'lambda', args.lambda, 0.1);
const cfg = smoke
  ? { dModel: 32, nLayers: 1, B: 4, baseSteps: 4, alignSteps: 3, evalPairs: 8, genPrompts: 2, lr: 3e-3 }
  : { dModel: 96, nLayers: 2, B: 16, baseSteps: 500, alignSteps: 150, evalPairs: 256, genPrompts: 64, lr: 2e-3 };
cfg.baseSteps = integerFlag('orpo', 'base-steps', args['base-steps'], cfg.baseSteps);
cfg.alignSteps = integerFlag('orpo', 'align-steps', args['align-steps'], cfg.alignSteps);
const T = 64; // bytes per sequence (prompt + response, padded)
const IGNORE = -100;
const device = lmk.defaultDevice();

// ---------------------------------------------------------------- data
const WORDS = (
  'red blue green small big old new cat dog fox bird fish tree river stone house road ' +
  'sun moon rain wind fire snow runs sits sees finds eats likes goes near over under by the a one two three ' +
  'happy quiet fast slow warm cold'
).split(' ');
const title = (w: string) => w.charAt(0).toUpperCase() + w.slice(1);

interface Pair {
  prompt: string;
  chosen: string;
  rejected: string;
}

function makePair(rng: Rng): Pair {
  const pick = () => WORDS[rng.int(WORDS.length)]!;
  const q = Array.from({ length: 2 + rng.int(2) }, pick);
  const a = Array.from({ length: 3 + rng.int(3) }, pick);
  return {
    prompt: `Q: ${q.join(' ')}?\nA: `,
    chosen: `${a.join(' ')}.\n`,
    rejected: `${a.map(title).join(' ')}.\n`,
  };
}

/** Pairs → inputs [B,T] (prompt + response, padded with spaces) and labels (response bytes only). */
function encodeBatch<K extends string>(
  pairs: ({ prompt: string } & Record<K, string>)[],
  key: K,
): { inputs: lmk.Tensor; labels: lmk.Tensor } {
  const B = pairs.length;
  const inputs = new Int32Array(B * T).fill(32),
    labels = new Int32Array(B * T).fill(IGNORE);
  pairs.forEach((p, b) => {
    const pr = encode(p.prompt),
      re = encode(p[key]);
    const all = new Uint8Array([...pr, ...re]);
    if (all.length > T + 1) throw new RangeError(`pair too long: ${all.length}`);
    for (let t = 0; t + 1 < all.length; t++) {
      inputs[b * T + t] = all[t]!;
      if (t + 1 >= pr.length) labels[b * T + t] = all[t + 1]!;
    }
  });
  return {
    inputs: lmk.tensor(inputs, { shape: [B, T], device }),
    labels: lmk.tensor(labels, { shape: [B, T], device }),
  };
}

const trainRng = new Rng(`orpo-train-${seed}`);
const heldRng = new Rng(`orpo-heldout-${seed}`);
const heldOut = Array.from({ length: cfg.evalPairs }, () => makePair(heldRng));
const heldKeys = new Set(heldOut.map((p) => p.prompt + p.chosen));

function trainPairs(n: number): Pair[] {
  const out: Pair[] = [];
  while (out.length < n) {
    const p = makePair(trainRng);
    if (!heldKeys.has(p.prompt + p.chosen)) out.push(p);
  }
  return out;
}

// ---------------------------------------------------------------- model
const model = new lmk.nn.RWKV4Model({ vocabSize: 256, dModel: cfg.dModel, nLayers: cfg.nLayers, device, seed });
// Every loss is taken straight from the hidden states and the head (no logits tensor).
const head = { weight: model.head.weight, bias: model.head.bias ?? undefined };
const cloneState = (m: lmk.nn.Module) =>
  Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, lmk.keep(t.clone())]));
const cosine = (step: number, steps: number, peak: number) =>
  peak * (step < 10 ? (step + 1) / 10 : 0.5 * (1 + Math.cos((Math.PI * step) / steps)));

/** The held-out metrics: TRL's ORPO metrics and the mean log p per byte of each response. */
const METRICS = [
  'rewardsAccuracy',
  'rewardsMargin',
  'logOddsRatio',
  'logOddsChosen',
  'chosenLogp',
  'rejectedLogp',
] as const;
type Scores = Record<(typeof METRICS)[number], number>;
/** Scores and the style of greedy completions of held-out prompts. */
interface Evaluation extends Scores {
  greedyChosenStyle: number;
  greedyRejectedStyle: number;
  samples: string[];
}

async function runSteps<Batch>(
  label: string,
  steps: number,
  batchFor: (step: number) => Batch,
  lossFor: (batch: Batch) => lmk.Tensor,
  peakLr: number,
  track: number[] = [],
): Promise<{ losses: number[]; curve: [number, Scores][]; seconds: number }> {
  const optimizer = new lmk.optim.AdamW(model.parameters(), { lr: peakLr, weightDecay: 0.0 });
  const bar = new ProgressBar(steps, { label: `${label.padEnd(6)} ` });
  const losses: number[] = [],
    curve: [number, Scores][] = [];
  let evalSeconds = 0;
  const t0 = performance.now();
  for (let step = 0; step < steps; step++) {
    if (track.includes(step)) {
      const e0 = performance.now();
      curve.push([step, await heldOutScores()]);
      evalSeconds += (performance.now() - e0) / 1000;
    }
    optimizer.lr = cosine(step, steps, peakLr);
    const batch = batchFor(step);
    const loss = lmk.tidy(() => {
      const l = lossFor(batch);
      l.backward();
      lmk.clipGradNorm(model.parameters(), 1);
      optimizer.step();
      optimizer.zeroGrad();
      return l;
    });
    losses.push(await loss.item());
    loss.dispose();
    bar.update(step + 1, { loss: losses.at(-1)!.toFixed(3) });
  }
  bar.finish();
  optimizer.dispose();
  return { losses, curve, seconds: (performance.now() - t0) / 1000 - evalSeconds };
}

async function heldOutScores(): Promise<Scores> {
  const sums: Scores = {
    rewardsAccuracy: 0,
    rewardsMargin: 0,
    logOddsRatio: 0,
    logOddsChosen: 0,
    chosenLogp: 0,
    rejectedLogp: 0,
  };
  const EB = 32;
  let n = 0;
  for (let i = 0; i < heldOut.length; i += EB) {
    const pairs = heldOut.slice(i, i + EB);
    const r = lmk.noGrad(() =>
      lmk.tidy(() => {
        const c = encodeBatch(pairs, 'chosen'),
          j = encodeBatch(pairs, 'rejected');
        const res = lmk.losses.linearOrpo({
          chosenHidden: model.hiddenStates(c.inputs),
          rejectedHidden: model.hiddenStates(j.inputs),
          ...head,
          computeGrad: false,
          chosenLabels: c.labels,
          rejectedLabels: j.labels,
          lambda: 0.1,
          ignoreIndex: IGNORE,
        });
        return {
          ...res.metrics,
          chosenLogp: lmk.ops.mean(res.chosenLogps),
          rejectedLogp: lmk.ops.mean(res.rejectedLogps),
        };
      }),
    );
    for (const k of METRICS) {
      sums[k] += (await r[k].item()) * pairs.length;
    }
    for (const t of Object.values(r)) t.dispose();
    n += pairs.length;
  }
  return Object.fromEntries(METRICS.map((k) => [k, sums[k] / n])) as Scores;
}

async function evaluate(): Promise<Evaluation> {
  const scores = await heldOutScores();
  // Behaviour: greedy completions of held-out prompts, in which style?
  let lower = 0,
    titled = 0;
  const samples: string[] = [];
  for (const p of heldOut.slice(0, cfg.genPrompts)) {
    // Greedy, 12 bytes (no stop token: the byte vocabulary has no EOS).
    const ids: number[] = [];
    const greedy = { maxNewTokens: 12, temperature: 0, stopTokenIds: [] };
    for await (const id of lmk.generate(model, { inputIds: Array.from(encode(p.prompt)), ...greedy })) ids.push(id);
    const text = decode(Uint8Array.from(ids));
    const first = text.trimStart().split(/\s+/)[0] ?? '';
    if (/^[a-z]/.test(first)) lower++;
    else if (/^[A-Z]/.test(first)) titled++;
    if (samples.length < 3) samples.push(p.prompt.replace('\n', ' ') + text.split('\n')[0]);
  }
  return {
    ...scores,
    greedyChosenStyle: lower / cfg.genPrompts,
    greedyRejectedStyle: titled / cfg.genPrompts,
    samples,
  };
}

// ---------------------------------------------------------------- run
const wall0 = performance.now();
console.log(
  `ORPO reproduction${smoke ? ' (smoke)' : ''}: RWKV-4 d=${cfg.dModel} L=${cfg.nLayers} ` +
    `(${parameterCount(model)} parameters) on ${device}, seed ${seed}, λ = ${lambda}, threads ${process.env.LMK_NUM_THREADS ?? 'default'}`,
);
const example = makePair(new Rng('example'));
console.log(
  `pair example: ${JSON.stringify(example.prompt)} chosen ${JSON.stringify(example.chosen)} rejected ${JSON.stringify(example.rejected)}`,
);

// 1. Base: both styles, 50/50.
const baseBatches = (step: number) => {
  void step;
  const pairs = trainPairs(cfg.B);
  return encodeBatch(
    pairs.map((p) => ({ prompt: p.prompt, response: trainRng.int(2) ? p.chosen : p.rejected })),
    'response',
  );
};
const ceLoss = (batch: { inputs: lmk.Tensor; labels: lmk.Tensor }) =>
  lmk.ops.linearCrossEntropy({
    hidden: model.hiddenStates(batch.inputs),
    ...head,
    labels: batch.labels,
    ignoreIndex: IGNORE,
  }).loss;
const base = await runSteps('base', cfg.baseSteps, baseBatches, ceLoss, cfg.lr);
const baseWeights = cloneState(model);
const before = await evaluate();

// 2. The same alignment batches for both arms.
const alignPairs = Array.from({ length: cfg.alignSteps }, () => trainPairs(cfg.B));
const pairBatch = (step: number) => ({
  chosen: encodeBatch(alignPairs[step]!, 'chosen'),
  rejected: encodeBatch(alignPairs[step]!, 'rejected'),
});
const alignLr = cfg.lr / 2;
// Held-out metrics during alignment (after this many steps), for the curve table.
const track = [...new Set([0, 5, 10, 20, 40, 80].filter((s) => s < cfg.alignSteps))];

const sft = await runSteps('SFT', cfg.alignSteps, pairBatch, (b) => ceLoss(b.chosen), alignLr, track);
const afterSft = await evaluate();

model.loadStateDict(baseWeights);
const orpo = await runSteps(
  'ORPO',
  cfg.alignSteps,
  pairBatch,
  (b) =>
    lmk.ops.linearOrpo({
      chosenHidden: model.hiddenStates(b.chosen.inputs),
      rejectedHidden: model.hiddenStates(b.rejected.inputs),
      ...head,
      chosenLabels: b.chosen.labels,
      rejectedLabels: b.rejected.labels,
      lambda,
      ignoreIndex: IGNORE,
    }).loss,
  alignLr,
  track,
);
const afterOrpo = await evaluate();
const wall = (performance.now() - wall0) / 1000;

// ---------------------------------------------------------------- report
const rows: [string, Evaluation][] = [
  ['base (before alignment)', before],
  [`SFT on chosen (${cfg.alignSteps} steps)`, afterSft],
  [`ORPO λ=${lambda} (${cfg.alignSteps} steps)`, afterOrpo],
];
const f = (v: number, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : String(v));
const table = [
  '| model | rewards accuracy | rewards margin | log-odds ratio | log-odds (chosen vs rejected) | mean log p chosen | mean log p rejected | greedy: chosen style | greedy: rejected style |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map(
    ([name, r]) =>
      `| ${name} | ${f(r.rewardsAccuracy)} | ${f(r.rewardsMargin, 4)} | ${f(r.logOddsRatio)} | ${f(r.logOddsChosen)} | ${f(r.chosenLogp)} | ${f(r.rejectedLogp)} | ${f(r.greedyChosenStyle, 2)} | ${f(r.greedyRejectedStyle, 2)} |`,
  ),
].join('\n');
console.log('\nHeld-out pairs: ' + heldOut.length + ` (rewards = 0.1 × mean log p per byte, TRL's convention)`);
console.log(table);
const curveRows = track.map((s, i): [number, Scores, Scores] => [s, sft.curve[i]![1], orpo.curve[i]![1]]);
curveRows.push([cfg.alignSteps, afterSft, afterOrpo]);
const curveTable = [
  '| alignment steps | SFT: accuracy | ORPO: accuracy | SFT: margin | ORPO: margin | SFT: log-odds | ORPO: log-odds |',
  '| --- | --- | --- | --- | --- | --- | --- |',
  ...curveRows.map(
    ([s, a, b]) =>
      `| ${s} | ${f(a.rewardsAccuracy)} | ${f(b.rewardsAccuracy)} | ${f(a.rewardsMargin, 4)} | ${f(b.rewardsMargin, 4)} | ${f(a.logOddsChosen)} | ${f(b.logOddsChosen)} |`,
  ),
].join('\n');
console.log('\nDuring alignment (held-out pairs, metrics after the given number of steps):');
console.log(curveTable);
console.log(
  `\ntimes: base ${base.seconds.toFixed(1)} s, SFT ${sft.seconds.toFixed(1)} s, ORPO ${orpo.seconds.toFixed(1)} s; wall ${wall.toFixed(1)} s`,
);
for (const [name, r] of rows)
  console.log(`${name} greedy samples: ${r.samples.map((s) => JSON.stringify(s)).join('  ')}`);
if (!smoke) {
  console.log(
    '\n' +
      terminalPlot(
        [
          { name: 'SFT (chosen NLL)', points: sft.losses.map((l, i) => [i, l]) },
          { name: 'ORPO (total loss)', points: orpo.losses.map((l, i) => [i, l]) },
        ],
        { title: 'alignment training loss', xLabel: 'step', width: 60, height: 10 },
      ),
  );
}
if (args.out) {
  writeFileSync(
    args.out,
    JSON.stringify(
      {
        cfg,
        seed,
        lambda,
        wall,
        rows: rows.map(([name, r]) => ({ name, ...r })),
        table,
        curveTable,
        times: { base: base.seconds, sft: sft.seconds, orpo: orpo.seconds },
      },
      null,
      2,
    ),
  );
}
for (const t of Object.values(baseWeights)) t.dispose();
