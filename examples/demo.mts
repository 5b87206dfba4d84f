// lmkernels demo: trains a small byte-level language model on the Shakespeare
// excerpt in examples/data/, on the GPU when there is one and else the CPU,
// then draws the loss curve, writes the model as a Hugging Face directory
// (which `npx lmkernels generate` and `finetune` read) and generates text
// with lmk.generate.
//
//   npm run demo -- [--model rwkv4|fam] [--loss ce|goldfish] [--steps N]
//                   [--device cpu|cuda] [--seed S] [--procs N] [--help]
//   (or npx tsx examples/demo.mts [options]: tsx runs TypeScript directly)
//
// --procs N trains data-parallel on N processes (it relaunches itself with
// `lmkernels launch -n N`, i.e. Open MPI's mpirun): each rank takes its share
// (lmk.dist.shardIndices) of a global batch of N × --batch windows, gradients
// are averaged by lmk.dist.syncGradients, and rank 0 alone prints and writes.
//
// Everything is seeded: the same seed gives the same batches, the same
// initial weights and (on the CPU, whose kernels are deterministic) the same
// loss curve and the same sample.
import { spawnSync } from 'node:child_process';
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lmk from 'lmkernels';
import { integerFlag, numberFlag, parseFlags, usageError } from './lib/cli.mts';
import { SHAKESPEARE, loadBytes, splitHoldout, randomBatch, evalBatches, type Batch } from './lib/data.mts';
import { Rng } from './lib/rng.mts';
import { ProgressBar } from './lib/progress.mts';
import { terminalPlot, writeSvg, ema, type Point } from './lib/plot.mts';
import { saveByteLevelModel } from './lib/byte-tokenizer.mts';
import {
  createModel,
  parameterCount,
  evaluate,
  train,
  type LanguageModel,
  type LossKind,
  type ModelKind,
} from './lib/train.mts';

const DEFAULTS = { dModel: 128, layers: 4, batch: 8, seqLen: 128, steps: 800, lr: 4e-3, sampleBytes: 300 };
const TINY = { dModel: 32, layers: 2, batch: 4, seqLen: 32, steps: 8, lr: 1e-2, sampleBytes: 64, evalBatches: 4 };

const HELP = `Usage: npm run demo -- [options]      (npx tsx examples/demo.mts [options])

Trains a byte-level language model on examples/data/shakespeare.txt (90% for
training, the last 10% held out), prints a progress bar, the loss curve and a
generated sample, and writes to runs/<timestamp>/ loss.svg, metrics.json,
sample.txt and the model as a Hugging Face directory (config.json,
model.safetensors, generation_config.json, and tokenizer.json +
tokenizer_config.json whose ids are the bytes), which
\`npx lmkernels generate --model DIR\` and \`npx lmkernels finetune --model DIR\` read.

  --model rwkv4|fam      rwkv4: RWKV-4 (transformers' RwkvForCausalLM, the default);
                         fam: a TransformerFAM with Llama blocks (nn.LlamaModel with fam)
  --loss ce|goldfish     cross-entropy, or goldfish loss (k = 4, h = 13) (default ce)
  --steps N              optimiser steps (default ${DEFAULTS.steps}; ${TINY.steps} with --tiny)
  --device cpu|cuda[:N]  where to train (default: lmkernels' default device, the GPU when usable)
  --seed S               seed of weights, batches and sampling (default 1)
  --d-model N            model width (default ${DEFAULTS.dModel})
  --layers N             blocks (default ${DEFAULTS.layers})
  --batch N              sequences per step (default ${DEFAULTS.batch})
  --seq-len N            bytes per sequence (default ${DEFAULTS.seqLen})
  --lr X                 peak learning rate of the cosine schedule (default ${DEFAULTS.lr})
  --eval-every N         validation every N steps (default steps / 5)
  --prompt TEXT          start of the sample (default "KING RICHARD III:\\n")
  --sample-bytes N       bytes to generate (default ${DEFAULTS.sampleBytes})
  --temperature X        sampling temperature (default 0.8; 0 = greedy)
  --out DIR              output directory (default runs/<timestamp>)
  --procs N              data-parallel on N processes through \`npx lmkernels launch -n N\` (Open MPI's
                         mpirun); --batch is per process, rank 0 prints and writes (default 1)
  --tiny                 a tiny model and run (for tests): d ${TINY.dModel}, ${TINY.layers} layers, batch ${TINY.batch}, seq ${TINY.seqLen}
  --help                 this text
`;

function fail(message: string): never {
  return usageError('demo', message);
}

const isModel = (v: string): v is ModelKind => v === 'rwkv4' || v === 'fam';
const isLoss = (v: string): v is LossKind => v === 'ce' || v === 'goldfish';

function parse(argv: string[]) {
  const values = parseFlags(
    'demo',
    HELP,
    {
      model: { type: 'string', default: 'rwkv4' },
      loss: { type: 'string', default: 'ce' },
      steps: { type: 'string' },
      device: { type: 'string' },
      seed: { type: 'string', default: '1' },
      'd-model': { type: 'string' },
      layers: { type: 'string' },
      batch: { type: 'string' },
      'seq-len': { type: 'string' },
      lr: { type: 'string' },
      'eval-every': { type: 'string' },
      prompt: { type: 'string', default: 'KING RICHARD III:\n' },
      'sample-bytes': { type: 'string' },
      temperature: { type: 'string', default: '0.8' },
      out: { type: 'string' },
      procs: { type: 'string' },
      tiny: { type: 'boolean', default: false },
    },
    argv,
  );
  const base = values.tiny ? TINY : DEFAULTS;
  type Numeric =
    | 'steps'
    | 'seed'
    | 'd-model'
    | 'layers'
    | 'batch'
    | 'seq-len'
    | 'lr'
    | 'eval-every'
    | 'sample-bytes'
    | 'temperature'
    | 'procs';
  const int = (name: Numeric, fallback: number, min = 1) => integerFlag('demo', name, values[name], fallback, min);
  const num = (name: Numeric, fallback: number, min = 0) => numberFlag('demo', name, values[name], fallback, min);
  const model = values.model;
  const loss = values.loss;
  if (!isModel(model)) fail(`--model must be rwkv4 or fam, got '${model}'`);
  if (!isLoss(loss)) fail(`--loss must be ce or goldfish, got '${loss}'`);
  const steps = int('steps', base.steps);
  const opts = {
    model,
    loss,
    steps,
    seed: int('seed', 1, 0),
    dModel: int('d-model', base.dModel),
    layers: int('layers', base.layers),
    batch: int('batch', base.batch),
    seqLen: int('seq-len', base.seqLen, 2),
    lr: num('lr', base.lr),
    evalEvery: int('eval-every', Math.max(1, Math.round(steps / 5))),
    prompt: values.prompt,
    sampleBytes: int('sample-bytes', base.sampleBytes, 0),
    temperature: num('temperature', 0.8),
    out: values.out,
    tiny: values.tiny,
    procs: int('procs', 1),
  };
  if (opts.prompt.length === 0) fail('--prompt must not be empty');
  let device: 'cpu' | `cuda:${number}`;
  try {
    const name = values.device === undefined ? lmk.defaultDevice().toString() : values.device;
    const spec = name === 'cuda' ? 'cuda:0' : name;
    if (spec.startsWith('cuda') && !lmk.cudaAvailable()) {
      fail(
        `--device ${values.device}: CUDA is not usable here (${lmk.backendInfo().cuda.reason ?? 'no device'}); run \`npx lmkernels doctor\``,
      );
    }
    if (spec !== 'cpu' && !/^cuda:\d+$/.test(spec)) fail(`--device must be cpu or cuda[:N], got '${values.device}'`);
    device = spec as 'cpu' | `cuda:${number}`;
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  return { ...opts, device };
}

/** The rows `rows` of a batch (this rank's share of the global batch). */
function selectRows(batch: Batch, rows: Int32Array): Batch {
  const T = batch.shape[1];
  const pick = (a: Int32Array) => {
    const out = new Int32Array(rows.length * T);
    rows.forEach((r, i) => out.set(a.subarray(r * T, (r + 1) * T), i * T));
    return out;
  };
  return { inputs: pick(batch.inputs), labels: pick(batch.labels), shape: [rows.length, T] };
}

/** Runs this demo again on `procs` processes through `lmkernels launch` and exits with its status. */
function relaunch(procs: number, argv: string[]): never {
  const cli = join(dirname(createRequire(import.meta.url).resolve('lmkernels/package.json')), 'dist', 'cjs', 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'launch', '-n', String(procs), fileURLToPath(import.meta.url), ...argv], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

const fmtLoss = (v: number) => v.toFixed(4);
const bits = (nats: number) => nats / Math.LN2;

/**
 * The demo with the command-line flags `argv`: trains, writes the run's directory and prints as it
 * goes. Returns the trained model (the caller disposes it) and the directory.
 */
export async function main(argv: string[]): Promise<{ model: LanguageModel; out: string }> {
  const opts = parse(argv);
  const wallStart = performance.now();
  if (opts.procs > 1 && process.env.OMPI_COMM_WORLD_SIZE === undefined) relaunch(opts.procs, argv);
  // A world of one unless a launcher started this process.
  const world = await lmk.dist.init();
  const W = world.worldSize;
  const log = world.rank === 0 ? console.log : () => {};
  if (W > 1 && opts.device.startsWith('cuda')) {
    opts.device = `cuda:${world.localRank % lmk.backendInfo().cuda.devices.length}`;
  }
  // Every rank names the same directory (rank 0 writes it): the timestamp of rank 0.
  const stamp = lmk.tensor([Date.now()], { dtype: 'float64' });
  if (W > 1) lmk.dist.broadcast(stamp);
  const startedAt = new Date((await stamp.data())[0]!);
  stamp.dispose();
  const out = opts.out ?? join('runs', startedAt.toISOString().replace(/[:.]/g, '-'));
  const corpus = loadBytes(SHAKESPEARE);
  const { train: trainBytes, val: valBytes } = splitHoldout(corpus, 0.1);
  const T = opts.seqLen,
    B = opts.batch;
  const valSet = evalBatches(valBytes, B, T, opts.tiny ? TINY.evalBatches : Infinity);
  const valTokens = valSet.reduce((n, b) => n + b.inputs.length, 0);

  const config = {
    vocabSize: 256,
    dModel: opts.dModel,
    nLayers: opts.layers,
    device: opts.device,
    seed: opts.seed,
    // TransformerFAM: blocks of T/4 bytes (at most 32) attend to themselves,
    // one earlier block and a feedback memory of 8 slots.
    fam: { nHeads: 4, blockSize: Math.max(1, Math.min(32, Math.floor(T / 4))), memoryBlocks: 1, famLength: 8 },
  };
  let model: LanguageModel;
  try {
    model = createModel(opts.model, config);
  } catch (e) {
    // A configuration the model rejects (e.g. a width that is not a multiple of the heads).
    if (e instanceof RangeError || e instanceof TypeError) fail(e.message);
    throw e;
  }
  const lossName = opts.loss === 'ce' ? 'cross-entropy' : 'goldfish loss (k 4, h 13)';
  const info = lmk.backendInfo();
  const where =
    opts.device === 'cpu'
      ? `cpu (${info.cpu.threads} threads)`
      : `${opts.device} (${info.cuda.devices?.[Number(opts.device.split(':')[1])]?.name ?? 'GPU'})`;
  log(
    `lmkernels ${info.version} demo: byte-level ${opts.model === 'rwkv4' ? 'RWKV-4' : 'TransformerFAM'} language model`,
  );
  log(
    `  model   d ${opts.dModel}, ${opts.layers} layers, ${(parameterCount(model) / 1e6).toFixed(2)}M parameters, seed ${opts.seed}`,
  );
  log(
    `  data    ${relative(process.cwd(), SHAKESPEARE)}: ${trainBytes.length.toLocaleString('en')} bytes for training, ${valBytes.length.toLocaleString('en')} held out`,
  );
  log(
    `  train   ${opts.steps} steps of ${W > 1 ? `${W} ranks × ` : ''}${B}×${T} bytes, AdamW (peak lr ${opts.lr}, cosine), ${lossName}, on ${where}${W > 1 ? ' each (Open MPI, gradients averaged by dist.syncGradients)' : ''}`,
  );

  const optimizer = new lmk.optim.AdamW(model.parameters(), { lr: opts.lr, weightDecay: 0.01 });
  const schedule = lmk.optim.cosineSchedule({
    maxLr: opts.lr,
    minLr: opts.lr / 10,
    warmupSteps: Math.min(50, Math.ceil(opts.steps / 10)),
    totalSteps: opts.steps,
  });
  const rng = new Rng(opts.seed);
  // This rank's rows of each global batch of W × B windows (every rank draws the same windows).
  const mine = lmk.dist.shardIndices(W * B, { shuffle: false });
  const nextBatch = (): Batch => {
    const all = randomBatch(trainBytes, W * B, T, rng);
    return W === 1 ? all : selectRows(all, mine);
  };
  const bar = world.rank === 0 ? new ProgressBar(opts.steps, { label: '  ' }) : null;
  const smooth = { m: 0, w: 0 };
  const result = await train({
    model,
    optimizer,
    lr: schedule,
    loss: opts.loss,
    device: opts.device,
    steps: opts.steps,
    nextBatch,
    distributed: W > 1,
    evalEvery: opts.evalEvery,
    evalFn: () => evaluate(model, valSet, opts.device),
    onStep: ({ step, loss, tokens, seconds, val }) => {
      smooth.m = 0.9 * smooth.m + 0.1 * loss;
      smooth.w = 0.9 * smooth.w + 0.1;
      bar?.update(step, {
        'loss (ema)': fmtLoss(smooth.m / smooth.w),
        val: val ? fmtLoss(val[1]) : '-',
        'tok/s': String(Math.round((W * tokens) / Math.max(seconds, 1e-9))),
      });
    },
  });
  bar?.finish();
  if (world.rank !== 0) {
    // Rank 0 alone draws, writes and samples; the model is the same on every rank.
    optimizer.dispose();
    return { model, out };
  }

  // The curve, in the terminal and as SVG.
  const steps = result.losses.map((_, i) => i + 1);
  const trainPoints = steps.map((s, i): Point => [s, result.losses[i]!]);
  const smoothed = ema(result.losses, 0.9);
  const smoothPoints = steps.map((s, i): Point => [s, smoothed[i]!]);
  const objectiveName = opts.loss === 'ce' ? 'train' : 'train (goldfish)';
  log();
  log(
    terminalPlot(
      [
        { name: `${objectiveName} loss`, points: trainPoints },
        { name: 'validation', points: result.val, marker: '●' },
      ],
      { title: '  loss (nats per byte) by step', xLabel: 'step' },
    ),
  );
  log();

  mkdirSync(out, { recursive: true });
  const title = `byte-level ${opts.model === 'rwkv4' ? 'RWKV-4' : 'TransformerFAM'} on Shakespeare: ${lossName}, d ${opts.dModel}, ${opts.layers} layers, seed ${opts.seed}`;
  writeSvg(join(out, 'loss.svg'), {
    title,
    xLabel: 'step',
    yLabel: 'loss (nats per byte)',
    series: [
      { name: `${objectiveName} loss`, points: trainPoints, color: '#1f77b4', width: 1, opacity: 0.35 },
      { name: `${objectiveName} (EMA 0.9)`, points: smoothPoints, color: '#1f77b4', width: 2 },
      { name: 'validation', points: result.val, color: '#ff7f0e', markers: true, dash: '5 4' },
    ],
  });

  const tail = Math.min(20, result.losses.length);
  const finalTrain = result.losses.slice(-tail).reduce((a, b) => a + b, 0) / tail;
  const finalAll = result.all.slice(-tail).reduce((a, b) => a + b, 0) / tail;
  const finalVal = result.val.at(-1)![1];
  const marks = [
    ...new Set([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1].map((f) => Math.max(1, Math.round(f * opts.steps)))),
  ];
  log(`  train loss by step: ${marks.map((s) => `${s}: ${fmtLoss(result.losses[s - 1]!)}`).join('  ')}`);
  log(
    `  train loss ${fmtLoss(finalTrain)} (mean of the last ${tail} steps${opts.loss === 'goldfish' ? `; ${fmtLoss(finalAll)} over all tokens` : ''}), ` +
      `validation ${fmtLoss(finalVal)} nats/byte = ${bits(finalVal).toFixed(3)} bits/byte (on ${valTokens.toLocaleString('en')} held-out bytes; ${fmtLoss(result.val[0]![1])} before training)`,
  );
  log(
    `  ${(W * result.tokens).toLocaleString('en')} bytes in ${result.seconds.toFixed(1)} s of training = ${Math.round((W * result.tokens) / result.seconds)} tok/s${W > 1 ? ` on ${W} ranks` : ''} (+ ${result.evalSeconds.toFixed(1)} s of validation)`,
  );

  const metadata = {
    model: opts.model,
    config: JSON.stringify({
      vocabSize: 256,
      dModel: opts.dModel,
      nLayers: opts.layers,
      ...(opts.model === 'fam' ? config.fam : {}),
    }),
    loss: opts.loss,
    step: String(opts.steps),
    seed: String(opts.seed),
    train_loss: String(finalTrain),
    final_step_loss: String(result.losses.at(-1)),
    val_loss: String(finalVal),
    corpus: 'examples/data/shakespeare.txt',
  };
  // The model as a Hugging Face directory with the byte tokenizer (what `lmkernels generate` and `finetune` read).
  await saveByteLevelModel(model, out);
  writeFileSync(
    join(out, 'metrics.json'),
    JSON.stringify(
      {
        options: { ...opts, out },
        metadata,
        losses: result.losses,
        lossAllTokens: result.all,
        val: result.val,
        trainSeconds: result.seconds,
        evalSeconds: result.evalSeconds,
        tokens: W * result.tokens,
        ranks: W,
      },
      null,
      1,
    ) + '\n',
  );

  if (opts.sampleBytes > 0) {
    // The prompt through the tokenizer just written (its ids are the prompt's UTF-8 bytes), then
    // lmk.generate, as `npx lmkernels generate --model <out> --seed <seed>` does.
    const tokenizer = await lmk.hub.loadTokenizer(out);
    const t0 = performance.now();
    const ids: number[] = [];
    const sampling = { maxNewTokens: opts.sampleBytes, temperature: opts.temperature, seed: opts.seed };
    for await (const id of lmk.generate(model, { inputIds: tokenizer.encode(opts.prompt), ...sampling })) ids.push(id);
    const seconds = (performance.now() - t0) / 1000;
    const how =
      model instanceof lmk.nn.RWKV4Model ? 'recurrent step decoding' : 'KV-cache decoding with the FAM block state';
    log(
      `\n  sample (${opts.sampleBytes} bytes, temperature ${opts.temperature}, seed ${opts.seed}, ${how}, ${seconds.toFixed(1)} s):`,
    );
    log('  ' + '─'.repeat(60));
    const text = opts.prompt + tokenizer.decode(ids);
    // Control bytes (an undertrained model emits some) are shown as U+FFFD so they cannot drive the terminal.
    // eslint-disable-next-line no-control-regex -- matching control bytes is the point
    const shown = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '\ufffd');
    log(
      shown
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
    log('  ' + '─'.repeat(60));
    writeFileSync(join(out, 'sample.txt'), text);
  }
  log(`\n  wrote ${out}/: loss.svg, metrics.json, sample.txt, and the model as a Hugging Face directory`);
  log('  (config.json, model.safetensors, generation_config.json, tokenizer.json, tokenizer_config.json)');
  // config.json records a FAM model's settings, so hub.loadModel and the commands run it as trained.
  log(`  sample from it:  npx lmkernels generate --model ${out} --prompt "ROMEO:"`);
  log(
    `  fine-tune it:    npx lmkernels finetune --model ${out} --data examples/data/antonym-pairs.jsonl --method orpo \\\n` +
      `                       --out ${out}-orpo --lr 3e-3 --epochs 6 --batch 16`,
  );
  log(`  total ${((performance.now() - wallStart) / 1000).toFixed(1)} s`);
  optimizer.dispose();
  return { model, out };
}

/** Whether this file is the script being run (tsx examples/demo.mts) rather than a module imported by a test. */
function isEntryPoint(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  const { model } = await main(process.argv.slice(2));
  model.dispose();
}
