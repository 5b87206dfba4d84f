// The options of `lmkernels finetune` (docs/api.md, command line; README.md "Fine-tuning"):
// one object, validated once, recorded in every checkpoint so that --resume runs with them.

export type FinetuneMethod = 'sft' | 'orpo' | 'goldfish';

export interface FinetuneOptions {
  model: string;
  data: string;
  method: FinetuneMethod;
  out: string;
  /** LoRA rank; 0 = full fine-tuning. */
  lora: number;
  /** ORPO's λ (TRL's beta). */
  lambda: number;
  /** Passes over the training split; used when steps is 0. */
  epochs: number;
  /** Optimizer steps; 0 = from epochs. */
  steps: number;
  lr: number;
  /** Rows per micro-batch. */
  batch: number;
  /** Micro-batches per optimizer step. */
  gradAccum: number;
  /** Tokens per sequence after truncation (TRL's max_length); prompts keep at most half. */
  maxLength: number;
  device?: string;
  dtype?: 'float32' | 'bfloat16' | 'float16';
  seed: number;
  /** Steps between checkpoints; 0 = each 10% of the run. */
  saveEvery: number;
}

export const FINETUNE_DEFAULTS = {
  lora: 0,
  lambda: 0.1,
  epochs: 3,
  steps: 0,
  batch: 8,
  gradAccum: 1,
  maxLength: 1024,
  seed: 42,
  saveEvery: 0,
} as const;

/** Learning rate when --lr is not given: transformers' Trainer default for full fine-tuning, PEFT's usual for LoRA. */
export function defaultLearningRate(lora: number): number {
  return lora > 0 ? 2e-4 : 5e-5;
}

const METHODS: readonly FinetuneMethod[] = ['sft', 'orpo', 'goldfish'];
const DTYPES = ['float32', 'bfloat16', 'float16'] as const;

/** Throws a RangeError naming the option (as written on the command line) when a value is out of range. */
export function checkFinetuneOptions(o: FinetuneOptions): FinetuneOptions {
  const fail = (flag: string, what: string, got: unknown): never => {
    throw new RangeError(`finetune: --${flag} must be ${what}, got ${JSON.stringify(got)}`);
  };
  const int = (flag: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) fail(flag, `an integer >= ${min}`, v);
  };
  if (!o.model) fail('model', 'a directory', o.model);
  if (!o.data) fail('data', 'a .jsonl file', o.data);
  if (!o.out) fail('out', 'a directory', o.out);
  if (!METHODS.includes(o.method)) fail('method', METHODS.join(' | '), o.method);
  int('lora', o.lora, 0);
  if (!(o.lambda >= 0 && Number.isFinite(o.lambda))) fail('lambda', 'a number >= 0', o.lambda);
  if (!(o.epochs > 0 && Number.isFinite(o.epochs))) fail('epochs', 'a number > 0', o.epochs);
  int('steps', o.steps, 0);
  if (!(o.lr > 0 && Number.isFinite(o.lr))) fail('lr', 'a number > 0', o.lr);
  int('batch', o.batch, 1);
  int('grad-accum', o.gradAccum, 1);
  int('max-length', o.maxLength, 2);
  int('seed', o.seed, 0);
  int('save-every', o.saveEvery, 0);
  if (o.dtype !== undefined && !(DTYPES as readonly string[]).includes(o.dtype)) {
    fail('dtype', DTYPES.join(' | '), o.dtype);
  }
  return o;
}
