// Reproduction of "Be like a Goldfish, Don't Memorize!" (Hans et al. 2024) at
// small scale: two identical byte-level RWKV-4 models are trained for many
// epochs on the same 30 short documents (distinct 200-byte passages of
// examples/data/shakespeare.txt), one with plain cross-entropy and one with
// the goldfish loss (k = 4, h = 13, hash strategy: the dropped tokens are
// chosen by a hash of the 13 preceding tokens, so the same tokens are
// dropped in every epoch). Memorisation is then measured as in the paper:
// greedy decoding of the last 32 bytes of each document from its prefix,
// counting exact matches and the mean longest-common-subsequence ratio
// (LCS length / 32, the paper's Rouge-L recall). Validation loss on held-out
// Shakespeare (the last 10% of the file) shows whether generalisation is kept.
// As in the paper's standard setting, the documents are mixed into ordinary
// training text: every step also takes `general` random windows of the rest
// of the training part of the file (the same windows for both models), and
// each model's loss (CE or goldfish) is applied to all of it. A third,
// control model is trained with cross-entropy on the same stream with the
// documents replaced by other text: it never sees them, so its scores are
// the baseline that prefixes and general knowledge of the text alone give.
//
//   npx tsx examples/reproduce/goldfish.mts [--epochs N] [--seed S] [--no-control] [--out FILE.json] [--smoke] [--help]
import { writeFileSync } from 'node:fs';
import * as lmk from 'lmkernels';
import { integerFlag, numberFlag, parseFlags } from '../lib/cli.mts';
import { SHAKESPEARE, loadBytes, splitHoldout, evalBatches, randomBatch, decode } from '../lib/data.mts';
import type { Batch } from '../lib/data.mts';
import { Rng } from '../lib/rng.mts';
import { ProgressBar } from '../lib/progress.mts';
import { terminalPlot } from '../lib/plot.mts';
import { parameterCount, evaluate, train, type LossKind } from '../lib/train.mts';

const FULL = {
  docs: 30,
  docBytes: 200,
  suffix: 32,
  dModel: 128,
  layers: 2,
  batch: 10,
  general: 10,
  epochs: 120,
  lr: 3e-3,
  valBatches: 16,
};
const SMOKE = {
  docs: 6,
  docBytes: 80,
  suffix: 16,
  dModel: 16,
  layers: 1,
  batch: 3,
  general: 2,
  epochs: 2,
  lr: 3e-3,
  valBatches: 2,
};

const HELP = `Usage: npx tsx examples/reproduce/goldfish.mts [options]

Trains two identical byte-level RWKV-4 models on the same 30 documents for
many epochs, one with cross-entropy and one with goldfish loss (k 4, h 13,
hash), and a control model that never sees them (cross-entropy on other
training text instead), then measures memorisation (greedy decoding of each document's last
32 bytes from its prefix) and held-out validation loss, and prints a table.

  --epochs N     passes over the documents (default ${FULL.epochs})
  --seed S       seed of weights and batch order (default 1)
  --d-model N    model width (default ${FULL.dModel})
  --layers N     RWKV-4 blocks (default ${FULL.layers})
  --lr X         peak learning rate (default ${FULL.lr})
  --general N    random windows of other training text per step (default ${FULL.general}; 0 = documents only)
  --no-control   skip the control model (trained without the documents)
  --out FILE     also write the results as JSON (configuration, per-model scores and loss curves)
  --smoke        a tiny, fast configuration (for CI: checks that it runs, not the effect)
  --help         this text
`;

function options() {
  const values = parseFlags('goldfish', HELP, {
    epochs: { type: 'string' },
    seed: { type: 'string' },
    'd-model': { type: 'string' },
    layers: { type: 'string' },
    lr: { type: 'string' },
    general: { type: 'string' },
    'no-control': { type: 'boolean', default: false },
    out: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  });
  const base = values.smoke ? SMOKE : FULL;
  const int = (name: 'seed' | 'epochs' | 'd-model' | 'layers' | 'general', fallback: number, min = 1) =>
    integerFlag('goldfish', name, values[name], fallback, min);
  return {
    ...base,
    smoke: values.smoke,
    seed: int('seed', 1, 0),
    epochs: int('epochs', base.epochs),
    dModel: int('d-model', base.dModel),
    layers: int('layers', base.layers),
    lr: numberFlag('goldfish', 'lr', values.lr, base.lr),
    control: !values['no-control'],
    general: int('general', base.general, 0),
    out: values.out,
  };
}

/** `count` distinct passages of exactly `size` bytes, each starting at a line start, spread evenly over `bytes`. */
export function passages(bytes: Uint8Array, count: number, size: number): Uint8Array[] & { starts: number[] } {
  const out = Object.assign([] as Uint8Array[], { starts: [] as number[] });
  const stride = Math.floor((bytes.length - size - 1) / count);
  for (let i = 0; i < count; i++) {
    let start = i * stride;
    const nl = bytes.indexOf(10, start);
    if (nl >= 0 && nl + 1 + size <= bytes.length && nl + 1 < (i + 1) * stride) start = nl + 1;
    out.push(bytes.slice(start, start + size));
    out.starts.push(start);
  }
  return out;
}

/** Length of the longest common subsequence of two byte arrays. */
export function lcs(a: Uint8Array, b: Uint8Array): number {
  const prev = new Int32Array(b.length + 1),
    cur = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++)
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    prev.set(cur);
  }
  return prev[b.length]!;
}

/** Greedy continuation of every prefix by `length` bytes with recurrent step decoding, all documents as one batch. */
async function greedy(
  model: lmk.nn.RWKV4Model,
  prefixes: Uint8Array[],
  length: number,
  device: lmk.DeviceSpec,
): Promise<Uint8Array[]> {
  const B = prefixes.length,
    P = prefixes[0]!.length;
  // The state after the bytes read so far and the logits that predict the next byte.
  const at: { state?: lmk.RWKV4State; logits?: lmk.Tensor } = {};
  const feed = (tokens: Int32Array) => {
    const input = lmk.tensor(tokens, { device });
    const next = model.step(input, at.state);
    input.dispose();
    if (at.state) lmk.nn.disposeRWKV4State(at.state);
    at.logits?.dispose();
    at.state = next.state;
    at.logits = next.logits;
  };
  for (let t = 0; t < P; t++) feed(Int32Array.from(prefixes, (p) => p[t]!));
  const out = prefixes.map(() => new Uint8Array(length));
  for (let i = 0; i < length; i++) {
    const rows = await at.logits!.data();
    const V = rows.length / B;
    const next = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      let best = 0;
      for (let v = 1; v < V; v++) if (rows[b * V + v]! > rows[b * V + best]!) best = v;
      next[b] = best;
      out[b]![i] = best;
    }
    if (i + 1 < length) feed(next);
  }
  at.logits?.dispose();
  if (at.state) lmk.nn.disposeRWKV4State(at.state);
  return out;
}

interface Memorisation {
  /** Documents whose last `suffix` bytes greedy decoding reproduces exactly. */
  exact: number;
  /** Mean LCS / suffix (Rouge-L recall). */
  lcs: number;
  perDoc: { same: boolean; r: number; text: string }[];
}

async function memorisation(
  model: lmk.nn.RWKV4Model,
  docs: Uint8Array[],
  suffix: number,
  device: lmk.DeviceSpec,
): Promise<Memorisation> {
  const prefixes = docs.map((d) => d.subarray(0, d.length - suffix));
  const outs = await greedy(model, prefixes, suffix, device);
  let exact = 0,
    ratio = 0;
  const perDoc = outs.map((o, i) => {
    const doc = docs[i]!;
    const truth = doc.subarray(doc.length - suffix);
    const same = o.every((b, j) => b === truth[j]);
    const r = lcs(o, truth) / suffix;
    exact += same ? 1 : 0;
    ratio += r;
    return { same, r, text: decode(o) };
  });
  return { exact, lcs: ratio / docs.length, perDoc };
}

/** Fraction of the training labels goldfish drops (the same mask in every epoch: hash of the 13 previous tokens). */
async function droppedFraction(docBatch: Batch, device: lmk.DeviceSpec): Promise<number> {
  const labels = lmk.tensor(docBatch.labels, { shape: docBatch.shape, device });
  const mask = lmk.losses.goldfishMask({ labels, k: 4, contextWidth: 13, strategy: 'hash' });
  const m = await mask.data();
  labels.dispose();
  mask.dispose();
  let kept = 0;
  for (const v of m) kept += v;
  return 1 - kept / m.length;
}

/** One model's scores: memorisation, validation and training-document CE, and its loss curve. */
interface RunResult extends Memorisation {
  val: number;
  trainAll: number;
  seconds: number;
  losses: number[];
  params: number;
}

async function main() {
  const o = options();
  const wall = performance.now();
  const device = 'cpu';
  const corpus = loadBytes(SHAKESPEARE);
  const { train: trainBytes, val: valBytes } = splitHoldout(corpus, 0.1);
  const docs = passages(trainBytes, o.docs, o.docBytes);
  if (new Set(docs.map((d) => decode(d))).size !== docs.length) throw new Error('goldfish: documents are not distinct');
  // The other training text: the training part with the documents cut out.
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const start of docs.starts) {
    pieces.push(trainBytes.subarray(from, start));
    from = start + o.docBytes;
  }
  pieces.push(trainBytes.subarray(from));
  const generalBytes = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  pieces.reduce((at, p) => (generalBytes.set(p, at), at + p.length), 0);
  const T = o.docBytes - 1;
  // Every document is one training sequence: inputs bytes[0..T), labels bytes[1..T].
  const docBatch = (ids: number[]): Batch => {
    const inputs = new Int32Array(ids.length * T),
      labels = new Int32Array(ids.length * T);
    ids.forEach((d, b) => {
      for (let t = 0; t < T; t++) {
        inputs[b * T + t] = docs[d]![t]!;
        labels[b * T + t] = docs[d]![t + 1]!;
      }
    });
    return { inputs, labels, shape: [ids.length, T] };
  };
  const stepsPerEpoch = Math.ceil(o.docs / o.batch);
  const steps = o.epochs * stepsPerEpoch;
  const valSet = evalBatches(valBytes, o.batch, T, o.valBatches);
  const valTokens = valSet.reduce((n, b) => n + b.inputs.length, 0);
  const allDocs = docBatch(docs.map((_, i) => i));
  const dropped = await droppedFraction(allDocs, device);

  console.log(
    `goldfish reproduction (Hans et al. 2024), lmkernels ${lmk.backendInfo().version}, cpu (${lmk.backendInfo().cpu.threads} threads)${o.smoke ? '  [smoke]' : ''}`,
  );
  console.log(
    `  documents  ${o.docs} distinct ${o.docBytes}-byte passages of ${'examples/data/shakespeare.txt'} (training part)`,
  );
  console.log(
    `  model      byte-level RWKV-4, d ${o.dModel}, ${o.layers} layers; ${o.epochs} epochs × ${stepsPerEpoch} steps of ${o.batch} documents + ${o.general} random ${T}-byte windows of the other ${generalBytes.length} training bytes = ${steps} steps, AdamW (lr ${o.lr}, cosine), seed ${o.seed}`,
  );
  console.log(
    `  goldfish   k 4, h 13, hash: drops ${(100 * dropped).toFixed(1)}% of the ${allDocs.labels.length} training labels, the same ones every epoch`,
  );
  console.log(
    `  memorised  greedy decoding of the last ${o.suffix} bytes of each document from its first ${o.docBytes - o.suffix}`,
  );
  console.log(`  validation ${valTokens} held-out bytes (last 10% of the file)`);

  const results: { ce?: RunResult; goldfish?: RunResult; control?: RunResult } = {};
  // 'control': cross-entropy on the same stream with the documents replaced by
  // other training text, i.e. a model that never saw the documents: its
  // memorisation scores are what the prefixes and general knowledge of the
  // text alone give (the paper's control model).
  const runs: (keyof typeof results)[] = o.control ? ['ce', 'goldfish', 'control'] : ['ce', 'goldfish'];
  for (const run of runs) {
    const loss: LossKind = run === 'control' ? 'ce' : run;
    const model = new lmk.nn.RWKV4Model({ vocabSize: 256, dModel: o.dModel, nLayers: o.layers, device, seed: o.seed });
    const optimizer = new lmk.optim.AdamW(model.parameters(), { lr: o.lr, weightDecay: 0 });
    const lr = lmk.optim.cosineSchedule({
      maxLr: o.lr,
      minLr: o.lr / 10,
      warmupSteps: Math.min(20, Math.ceil(steps / 10)),
      totalSteps: steps,
    });
    const rng = new Rng(o.seed); // same document order and general windows for both models
    let order: number[] = [];
    const nextBatch = (step: number): Batch => {
      const i = step % stepsPerEpoch;
      if (i === 0) {
        order = docs.map((_, j) => j);
        for (let j = order.length - 1; j > 0; j--) {
          const r = rng.int(j + 1);
          [order[j], order[r]] = [order[r]!, order[j]!];
        }
      }
      const batch =
        run === 'control'
          ? randomBatch(generalBytes, Math.min(o.batch, o.docs - i * o.batch), T, rng)
          : docBatch(order.slice(i * o.batch, (i + 1) * o.batch));
      if (o.general === 0) return batch;
      const extra = randomBatch(generalBytes, o.general, T, rng);
      const cat = (a: Int32Array, b: Int32Array) => {
        const c = new Int32Array(a.length + b.length);
        c.set(a);
        c.set(b, a.length);
        return c;
      };
      return {
        inputs: cat(batch.inputs, extra.inputs),
        labels: cat(batch.labels, extra.labels),
        shape: [batch.shape[0] + o.general, T],
      };
    };
    const bar = new ProgressBar(steps, { label: `  ${run.padEnd(8)} ` });
    const r = await train({
      model,
      optimizer,
      lr,
      nextBatch,
      loss,
      goldfish: { k: 4, contextWidth: 13, strategy: 'hash' },
      clip: 1,
      device,
      steps,
      onStep: ({ step, loss: l, all }) => bar.update(step, { loss: l.toFixed(3), 'all tokens': all.toFixed(3) }),
    });
    bar.finish();
    const mem = await memorisation(model, docs, o.suffix, device);
    const val = await evaluate(model, valSet, device);
    const trainAll = await evaluate(model, [allDocs], device);
    const params = parameterCount(model);
    results[run] = { ...mem, val, trainAll, seconds: r.seconds, losses: r.losses, params };
    console.log(
      `  ${run}: ${mem.exact}/${o.docs} exact, LCS ratio ${mem.lcs.toFixed(3)}, train-docs CE ${trainAll.toFixed(3)}, validation ${val.toFixed(3)} nats/byte (${r.seconds.toFixed(0)} s)`,
    );
  }

  const ce = results.ce!,
    goldfish = results.goldfish!,
    control = results.control;
  console.log();
  console.log(
    terminalPlot(
      [
        { name: 'cross-entropy', points: ce.losses.map((v, i) => [i + 1, v]) },
        { name: 'goldfish (kept tokens)', points: goldfish.losses.map((v, i) => [i + 1, v]) },
      ],
      { title: '  training loss (nats per byte) by step', xLabel: 'step', height: 10 },
    ),
  );
  console.log();
  const shown = [0, goldfish.perDoc.findIndex((d, i) => i > 0 && !d.same)].filter((i) => i >= 0);
  for (const i of shown) {
    console.log(`  example (document ${i + 1}, last ${o.suffix} bytes):`);
    console.log(`    truth     ${JSON.stringify(decode(docs[i]!.subarray(o.docBytes - o.suffix)))}`);
    console.log(`    ce        ${JSON.stringify(ce.perDoc[i]!.text)}`);
    console.log(`    goldfish  ${JSON.stringify(goldfish.perDoc[i]!.text)}`);
    if (control) console.log(`    control   ${JSON.stringify(control.perDoc[i]!.text)}`);
  }
  console.log();
  const row = (name: string, r: RunResult) =>
    `| ${name} | ${r.exact} / ${o.docs} | ${r.lcs.toFixed(3)} | ${r.trainAll.toFixed(3)} | ${r.val.toFixed(3)} |`;
  console.log(
    '| loss | exact-match suffixes | mean LCS ratio | CE on training documents (nats/byte) | validation CE (nats/byte) |',
  );
  console.log('| --- | --- | --- | --- | --- |');
  console.log(row('cross-entropy', ce));
  console.log(row('goldfish (k 4, h 13, hash)', goldfish));
  if (control) console.log(row('control: cross-entropy, documents never seen', control));
  console.log();
  const wallSeconds = (performance.now() - wall) / 1000;
  console.log(`  ${(ce.params / 1e6).toFixed(2)}M parameters per model; wall time ${wallSeconds.toFixed(0)} s`);
  if (o.out) {
    const { out, ...config } = o;
    writeFileSync(out, JSON.stringify({ config, dropped, results, wallSeconds }, null, 1) + '\n');
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
