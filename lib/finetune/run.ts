// `lmkernels finetune`: the training loop (README.md "Fine-tuning"). AdamW (no weight decay,
// gradients clipped to norm 1, as transformers' Trainer), learning rate decayed linearly to 0,
// an evaluation split, checkpoints that --resume continues bit for bit.
//
// Launched on W ranks (`lmkernels launch -n W finetune ...`): each rank reads its share of the
// training rows (TrainingStream over dist.shardIndices), --batch rows per micro-batch per rank,
// gradients averaged by dist.syncGradients before clipping, so a step is one step of a batch of
// W × batch × grad-accum rows; every rank evaluates (the same weights, the same numbers); rank 0
// alone prints, writes checkpoints and the final files. A run resumes on as many ranks as began it.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, existsSync } from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import * as lmk from '../index';
import type { Tensor } from '../tensor';
import type { CausalLM } from '../hub/models';
import { noGrad } from '../autograd/engine';
import * as dense from '../kernels/dense';
import { loadExamples, splitExamples, streamSeed, TrainingStream, type Example } from './examples';
import { collate, methodLoss } from './loss';
import {
  completeCheckpoints,
  loadCheckpointTensors,
  readCheckpointState,
  removeTemporaries,
  saveCheckpoint,
} from './checkpoint';
import { checkFinetuneOptions, type FinetuneOptions } from './options';
import { ProgressBar, lossSvg } from './report';

const STATE_FORMAT = 'lmkernels-finetune-1';
/** Files of a tokenizer directory copied next to the fine-tuned weights. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];

export interface FinetuneResult {
  steps: number;
  finalLoss: number;
  evaluation: Record<string, number> | undefined;
  out: string;
}

interface RunState {
  step: number;
  losses: [number, number][];
  evaluations: { step: number; metrics: Record<string, number> }[];
  tokens: number;
}

/**
 * The Linear layers LoRA adapts: PEFT's defaults for the architecture (its
 * TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING): query and value projections for the
 * Llama family, key/value/receptance/output for RWKV.
 */
function loraTargets(model: CausalLM): string[] {
  return model.config.model_type === 'rwkv' ? ['key', 'value', 'receptance', 'output'] : ['q_proj', 'v_proj'];
}

function trainableParameters(model: CausalLM): [string, Tensor][] {
  return model.namedParameters().filter(([, p]) => p.requiresGrad);
}

/** Copies checkpoint tensors into the trainable parameters; every one must be there with its shape. */
function restoreWeights(model: CausalLM, weights: Record<string, Tensor>, where: string): void {
  for (const [name, param] of trainableParameters(model)) {
    const saved = weights[name];
    if (!saved || saved.shape.join(',') !== param.shape.join(',')) {
      throw new RangeError(`finetune --resume: ${where} lacks ${name} [${param.shape.join(',')}]`);
    }
    noGrad(() => dense.copyInto_(param, saved.dtype === param.dtype ? saved : saved.to(param.dtype)));
  }
}

/** SHA-256 of a file, read as a stream: a resumed run checks that its data is the same. */
async function fileDigest(file: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch (error) {
    throw new Error(`finetune: cannot read ${file}: ${(error as Error).message}`);
  }
  return hash.digest('hex');
}

/** Mean of each metric over the evaluation split, weighted by rows. */
async function evaluate(
  model: CausalLM,
  options: FinetuneOptions,
  rows: Example[],
  padId: number,
  device: lmk.Device,
): Promise<Record<string, number>> {
  const sums: Record<string, number> = {};
  for (let i = 0; i < rows.length; i += options.batch) {
    const chunk = rows.slice(i, i + options.batch);
    const values = await lmk.tidy(async () => {
      const metrics = lmk.noGrad(
        () => methodLoss(options.method, model, collate(chunk, padId, device), options).metrics,
      );
      const out: Record<string, number> = {};
      for (const [k, t] of Object.entries(metrics)) out[k] = await t.item();
      return out;
    });
    for (const [k, v] of Object.entries(values)) sums[k] = (sums[k] ?? 0) + v * chunk.length;
  }
  return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / rows.length]));
}

function formatMetrics(m: Record<string, number>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k} ${v.toFixed(4)}`)
    .join(', ');
}

/**
 * Runs (or, with resume, continues) a fine-tuning run. Progress goes to `log` (stderr by default).
 * With resume, the options come from the last complete checkpoint in options.out; only out is read
 * from the given options.
 */
export async function runFinetune(
  given: FinetuneOptions,
  { resume = false, log = process.stderr }: { resume?: boolean; log?: NodeJS.WriteStream } = {},
): Promise<FinetuneResult> {
  const world = await lmk.dist.init();
  const W = world.worldSize;
  const isRank0 = world.rank === 0;
  // Rank 0 alone reports.
  if (!isRank0) log = new Writable({ write: (_chunk, _encoding, done) => done() }) as unknown as NodeJS.WriteStream;
  const checkpoints = path.join(given.out, 'checkpoints');
  if (isRank0) await removeTemporaries(checkpoints);
  const saved = await completeCheckpoints(checkpoints);
  let options = given;
  let resumeFrom: number | undefined;
  if (resume) {
    if (saved.length === 0) throw new Error(`finetune --resume: no complete checkpoint in ${checkpoints}`);
    resumeFrom = saved[saved.length - 1]!;
    const state = await readCheckpointState(checkpoints, resumeFrom);
    if (state.format !== STATE_FORMAT) throw new Error(`finetune --resume: ${checkpoints} is not a finetune run`);
    options = { ...(state.options as FinetuneOptions), out: given.out };
    const savedWorld = (state.worldSize as number | undefined) ?? 1;
    if (savedWorld !== W) {
      throw new Error(
        `finetune --resume: ${checkpoints} was written by a run on ${savedWorld} rank${savedWorld > 1 ? 's' : ''}; ` +
          `resume it on as many (each rank's share of the data depends on it)` +
          (savedWorld > 1 ? `: lmkernels launch -n ${savedWorld} finetune --resume --out ${given.out}` : ''),
      );
    }
    const digest = await fileDigest(options.data);
    if (digest !== state.dataSha256) {
      throw new Error(
        `finetune --resume: ${options.data} changed since the run began (its rows would not be the same)`,
      );
    }
  } else if (saved.length > 0) {
    throw new Error(
      `finetune: ${given.out} already holds a run (${checkpoints}); pass --resume to continue it or choose another --out`,
    );
  }
  checkFinetuneOptions(options);
  const dataSha256 = await fileDigest(options.data);

  const tokenizer = await lmk.hub.loadTokenizer(options.model);
  const model = await lmk.hub.loadModel(options.model, {
    ...(options.device ? { device: options.device as lmk.DeviceSpec } : {}),
    ...(options.dtype ? { dtype: options.dtype } : {}),
  });
  try {
    const device = model.parameters()[0]!.device;
    // PEFT's adapter_config.json names the base model.
    model.config._name_or_path = path.resolve(options.model);
    if (options.lora > 0) {
      lmk.nn.LoRA.apply(model, { rank: options.lora, targets: loraTargets(model), seed: options.seed });
    }
    const { examples, skipped } = await loadExamples(options.data, tokenizer, options.method, options.maxLength);
    const { train, evaluation } = splitExamples(examples, options.seed);
    if (train.length === 0) throw new RangeError(`finetune: ${options.data} leaves no row for training`);
    // Rows per step on this rank; the step trains on W times as many.
    const rowsPerStep = options.batch * options.gradAccum;
    const stream = new TrainingStream(train, options.seed, { rank: world.rank, worldSize: W });
    const totalSteps = options.steps > 0 ? options.steps : Math.ceil((options.epochs * stream.perEpoch) / rowsPerStep);
    const saveEvery = options.saveEvery > 0 ? options.saveEvery : Math.max(1, Math.ceil(totalSteps / 10));
    const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
    const params = trainableParameters(model).map(([, p]) => p);
    const optimizer = new lmk.optim.AdamW(params, { lr: options.lr, weightDecay: 0 });
    const run: RunState = { step: 0, losses: [], evaluations: [], tokens: 0 };

    if (resumeFrom !== undefined) {
      const state = await readCheckpointState(checkpoints, resumeFrom);
      const tensors = await loadCheckpointTensors(checkpoints, resumeFrom, device);
      restoreWeights(model, tensors.weights, `checkpoint ${resumeFrom}`);
      optimizer.loadStateDict(tensors.optimizer);
      for (const t of [...Object.values(tensors.weights), ...Object.values(tensors.optimizer.tensors)]) t.dispose();
      Object.assign(run, state.run as RunState);
      log.write(`finetune: resuming ${options.out} at step ${run.step}/${totalSteps}\n`);
    }
    log.write(
      `finetune: ${options.method} on ${train.length} rows (${evaluation.length} held out for evaluation` +
        `${skipped ? `, ${skipped} skipped: nothing left to supervise` : ''}), ${totalSteps} steps of ` +
        `${W > 1 ? `${W} ranks × ` : ''}${options.batch}×${options.gradAccum} rows, ${params.length} trainable tensors on ${device}` +
        `${W > 1 ? ' each (gradients averaged by dist.syncGradients)' : ''}\n`,
    );
    if (run.step === 0 && evaluation.length > 0 && isRank0) {
      const metrics = await evaluate(model, options, evaluation, padId, device);
      run.evaluations.push({ step: 0, metrics });
      log.write(`finetune: evaluation at step 0: ${formatMetrics(metrics)}\n`);
    }

    const bar = new ProgressBar(totalSteps, run.step, log);
    const started = performance.now();
    let tokensThisProcess = 0;
    while (run.step < totalSteps) {
      optimizer.lr = options.lr * (1 - run.step / totalSteps);
      let stepLoss = 0;
      let tokensThisStep = 0;
      for (let micro = 0; micro < options.gradAccum; micro++) {
        const first = (run.step * options.gradAccum + micro) * options.batch;
        const rows = Array.from({ length: options.batch }, (_, i) => stream.at(first + i));
        const batch = collate(rows, padId, device);
        const value = await lmk.tidy(async () => {
          const { loss } = methodLoss(options.method, model, batch, options);
          const scaled = options.gradAccum > 1 ? lmk.ops.scale(loss, 1 / options.gradAccum) : loss;
          scaled.backward();
          return loss.item();
        });
        for (const t of batch.kind === 'text' ? [batch.text] : [batch.chosen, batch.rejected]) {
          t.ids.dispose();
          t.labels.dispose();
        }
        if (!Number.isFinite(value)) {
          throw new Error(
            `finetune: the loss is ${value} at step ${run.step + 1} (micro-batch ${micro + 1} of ${options.gradAccum}); ` +
              `the batch holds ${options.data} lines ${batch.lines.join(', ')}`,
          );
        }
        stepLoss += value / options.gradAccum;
        tokensThisProcess += batch.tokens;
        tokensThisStep += batch.tokens;
        run.tokens += batch.tokens;
      }
      if (W > 1) {
        lmk.dist.syncGradients(params);
        // The step's loss and tokens over every rank.
        const totals = lmk.tensor([stepLoss, tokensThisStep], { dtype: 'float64' });
        lmk.dist.allReduce(totals, { op: 'sum' });
        const [lossSum, tokens] = await totals.data();
        totals.dispose();
        stepLoss = lossSum! / W;
        run.tokens += tokens! - tokensThisStep;
        tokensThisProcess += tokens! - tokensThisStep;
      }
      lmk.tidy(() => lmk.clipGradNorm(params, 1.0));
      optimizer.step();
      optimizer.zeroGrad();
      run.step += 1;
      run.losses.push([run.step, stepLoss]);
      bar.update(run.step, stepLoss, tokensThisProcess / ((performance.now() - started) / 1000));

      if ((run.step % saveEvery === 0 || run.step === totalSteps) && isRank0) {
        if (evaluation.length > 0) {
          const metrics = await evaluate(model, options, evaluation, padId, device);
          run.evaluations.push({ step: run.step, metrics });
          bar.note(`finetune: evaluation at step ${run.step}: ${formatMetrics(metrics)}`);
        }
        await saveCheckpoint(checkpoints, run.step, {
          weights: Object.fromEntries(trainableParameters(model)),
          optimizer: optimizer.stateDict(),
          state: {
            format: STATE_FORMAT,
            options,
            dataSha256,
            // The data position: the next row of the training stream is position; the order of
            // epoch e comes from mulberry32(streamSeed(seed, e + 1)), the evaluation split from stream 0.
            position: run.step * rowsPerStep,
            rng: {
              generator: 'mulberry32',
              seed: options.seed,
              epoch: Math.floor((run.step * rowsPerStep) / train.length),
              epochSeed: streamSeed(options.seed, Math.floor((run.step * rowsPerStep) / train.length) + 1),
            },
            run,
            worldSize: W,
          },
        });
      }
    }
    bar.finish();
    optimizer.dispose();
    if (!isRank0) {
      return {
        steps: totalSteps,
        finalLoss: run.losses[run.losses.length - 1]?.[1] ?? NaN,
        evaluation: undefined,
        out: options.out,
      };
    }

    await fs.mkdir(options.out, { recursive: true });
    if (options.lora > 0) await lmk.hub.saveAdapter(model, options.out);
    else await lmk.hub.saveModel(model, options.out);
    for (const file of TOKENIZER_FILES) {
      const from = path.join(options.model, file);
      if (existsSync(from)) await fs.copyFile(from, path.join(options.out, file));
    }
    const evalLoss = run.evaluations.map((e): [number, number] => [e.step, e.metrics.loss ?? NaN]);
    await fs.writeFile(
      path.join(options.out, 'loss.svg'),
      lossSvg(run.losses, evalLoss, `${options.method} fine-tuning of ${path.basename(path.resolve(options.model))}`),
    );
    const last = run.evaluations[run.evaluations.length - 1];
    const metrics = {
      method: options.method,
      options,
      steps: totalSteps,
      trainRows: train.length,
      evalRows: evaluation.length,
      skippedRows: skipped,
      tokens: run.tokens,
      tokensPerSecond: tokensThisProcess / ((performance.now() - started) / 1000),
      finalTrainLoss: run.losses[run.losses.length - 1]?.[1] ?? NaN,
      evaluation: last?.metrics,
      evaluations: run.evaluations,
      losses: run.losses,
    };
    await fs.writeFile(path.join(options.out, 'metrics.json'), JSON.stringify(metrics, null, 1) + '\n');
    return { steps: totalSteps, finalLoss: metrics.finalTrainLoss, evaluation: last?.metrics, out: options.out };
  } finally {
    model.dispose();
  }
}
