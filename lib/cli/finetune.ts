// `npx lmkernels finetune`: options from the command line into lib/finetune (README.md "Fine-tuning").
import { FINETUNE_DEFAULTS, defaultLearningRate, type FinetuneMethod, type FinetuneOptions } from '../finetune/options';
import { runFinetune } from '../finetune/run';
import { rank } from '../distributed/index';
import { UsageError, numberFlag, parse, requiredFlag } from './args';

export const FINETUNE_USAGE = `usage: lmkernels finetune --model DIR --data FILE.jsonl --method sft|orpo|goldfish --out DIR
                          [--lora RANK] [--lambda 0.1] [--epochs N | --steps N] [--lr X] [--batch N]
                          [--grad-accum N] [--max-length N] [--device D] [--dtype D] [--seed S]
                          [--save-every N] [--resume]

  --model DIR        a Hugging Face model directory (config.json, safetensors, tokenizer.json)
  --data FILE.jsonl  rows in TRL's formats: prompt/chosen/rejected (orpo; sft and goldfish train on
                     prompt + chosen), text, messages, or prompt/completion (sft, goldfish)
  --method M         sft (cross-entropy), goldfish (goldfish loss, k = 4, h = 13) or orpo (ORPO)
  --out DIR          the fine-tuned model, loss.svg, metrics.json and checkpoints/
  --lora RANK        train a LoRA adapter of this rank instead of every weight (default: off)
  --lambda X         ORPO's weight of the odds-ratio term (default ${FINETUNE_DEFAULTS.lambda})
  --epochs N         passes over the training rows (default ${FINETUNE_DEFAULTS.epochs}); or --steps N optimizer steps
  --lr X             peak learning rate, decayed linearly to 0 (default 5e-5, or 2e-4 with --lora)
  --batch N          rows per micro-batch (default ${FINETUNE_DEFAULTS.batch})
  --grad-accum N     micro-batches per optimizer step (default ${FINETUNE_DEFAULTS.gradAccum})
  --max-length N     tokens per sequence; prompts keep at most half (default ${FINETUNE_DEFAULTS.maxLength})
  --device D         cpu, cuda or cuda:N (default: cuda:0 when usable, else cpu)
  --dtype D          float32, bfloat16 or float16 (default: float32 on the CPU, the checkpoint's on CUDA)
  --seed S           data order and evaluation split (default ${FINETUNE_DEFAULTS.seed})
  --save-every N     steps between checkpoints (default: each 10% of the run)
  --resume           continue the run in --out from its last complete checkpoint, with its options`;

const FLAGS = {
  model: { type: 'string' },
  data: { type: 'string' },
  method: { type: 'string' },
  out: { type: 'string' },
  lora: { type: 'string' },
  lambda: { type: 'string' },
  epochs: { type: 'string' },
  steps: { type: 'string' },
  lr: { type: 'string' },
  batch: { type: 'string' },
  'grad-accum': { type: 'string' },
  'max-length': { type: 'string' },
  device: { type: 'string' },
  dtype: { type: 'string' },
  seed: { type: 'string' },
  'save-every': { type: 'string' },
  resume: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function finetune(argv: string[]): Promise<number> {
  const cmd = 'finetune';
  const v = parse(cmd, argv, FLAGS);
  if (v.help) {
    console.log(FINETUNE_USAGE);
    return 0;
  }
  const out = requiredFlag(cmd, 'out', v.out);
  if (v.resume) {
    const ignored = Object.keys(v).filter((k) => k !== 'out' && k !== 'resume');
    if (ignored.length) {
      process.stderr.write(
        `lmkernels finetune: --resume runs with the options recorded in ${out}; ignoring ${ignored.map((k) => `--${k}`).join(', ')}\n`,
      );
    }
    await runFinetune({ out } as FinetuneOptions, { resume: true });
    return 0;
  }
  if (v.epochs !== undefined && v.steps !== undefined) {
    throw new UsageError('lmkernels finetune: give --epochs or --steps, not both');
  }
  const lora = numberFlag(cmd, 'lora', v.lora, FINETUNE_DEFAULTS.lora);
  const options: FinetuneOptions = {
    model: requiredFlag(cmd, 'model', v.model),
    data: requiredFlag(cmd, 'data', v.data),
    method: requiredFlag(cmd, 'method', v.method) as FinetuneMethod,
    out,
    lora,
    lambda: numberFlag(cmd, 'lambda', v.lambda, FINETUNE_DEFAULTS.lambda),
    epochs: numberFlag(cmd, 'epochs', v.epochs, FINETUNE_DEFAULTS.epochs),
    steps: numberFlag(cmd, 'steps', v.steps, FINETUNE_DEFAULTS.steps),
    lr: numberFlag(cmd, 'lr', v.lr, defaultLearningRate(lora)),
    batch: numberFlag(cmd, 'batch', v.batch, FINETUNE_DEFAULTS.batch),
    gradAccum: numberFlag(cmd, 'grad-accum', v['grad-accum'], FINETUNE_DEFAULTS.gradAccum),
    maxLength: numberFlag(cmd, 'max-length', v['max-length'], FINETUNE_DEFAULTS.maxLength),
    seed: numberFlag(cmd, 'seed', v.seed, FINETUNE_DEFAULTS.seed),
    saveEvery: numberFlag(cmd, 'save-every', v['save-every'], FINETUNE_DEFAULTS.saveEvery),
    ...(v.device !== undefined ? { device: String(v.device) } : {}),
    ...(v.dtype !== undefined ? { dtype: v.dtype as FinetuneOptions['dtype'] } : {}),
  };
  const result = await runFinetune(options);
  if (rank() !== 0) return 0; // launched on several ranks: rank 0 reports
  const evaluation = result.evaluation
    ? '; evaluation: ' +
      Object.entries(result.evaluation)
        .map(([k, x]) => `${k} ${x.toFixed(4)}`)
        .join(', ')
    : '';
  console.log(`finetune: ${result.steps} steps, final training loss ${result.finalLoss.toFixed(4)}${evaluation}`);
  console.log(`finetune: wrote ${result.out} (model, loss.svg, metrics.json, checkpoints/)`);
  return 0;
}
