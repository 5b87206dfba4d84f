// The fine-tuning data: rows of a JSON Lines file tokenized the way TRL does for the method,
// a held-out evaluation split, and the training order, all fixed by the seed.
import { jsonlLines } from '../data/jsonl';
import { IGNORE_INDEX, tokenizePreference, tokenizeText } from '../data/tokenize';
import type { Tokenizer } from '../hub/tokenizer';
import { permutation, streamSeed } from '../data/order';
import { shardIndices } from '../distributed/shard';
import type { FinetuneMethod } from './options';

export { streamSeed } from '../data/order';

export interface PreferenceExample {
  kind: 'preference';
  /** 1-based line in the data file. */
  line: number;
  chosenIds: Int32Array;
  chosenLabels: Int32Array;
  rejectedIds: Int32Array;
  rejectedLabels: Int32Array;
}

export interface TextExample {
  kind: 'text';
  line: number;
  inputIds: Int32Array;
  labels: Int32Array;
}

export type Example = PreferenceExample | TextExample;

/** A supervised position remains once labels are shifted (position t predicts labels[t + 1]). */
function supervises(labels: Int32Array): boolean {
  for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) return true;
  return false;
}

/** A preference row for supervised fine-tuning: the prompt and the chosen answer. */
function chosenAsText(row: Record<string, unknown>): Record<string, unknown> {
  if ('prompt' in row) return { prompt: row.prompt, completion: row.chosen };
  return Array.isArray(row.chosen) ? { messages: row.chosen } : { text: row.chosen };
}

/**
 * Every row tokenized for the method: 'orpo' needs preference rows (prompt/chosen/rejected);
 * 'sft' and 'goldfish' take 'text', 'messages' or 'prompt'/'completion' rows, and preference rows
 * as prompt + chosen (supervised fine-tuning on the chosen answers). Rows left with nothing to
 * supervise after truncation are skipped (TRL drops them too) and counted.
 */
export async function loadExamples(
  path: string,
  tokenizer: Tokenizer,
  method: FinetuneMethod,
  maxLength: number,
): Promise<{ examples: Example[]; skipped: number }> {
  const examples: Example[] = [];
  let skipped = 0;
  for await (const { line, row } of jsonlLines(path)) {
    try {
      if (method === 'orpo') {
        const t = tokenizePreference(tokenizer, row, { maxLength });
        if (supervises(t.chosenLabels) && supervises(t.rejectedLabels)) {
          examples.push({ kind: 'preference', line, ...t });
        } else skipped++;
      } else {
        const textRow = 'chosen' in row && !('text' in row) && !('messages' in row) ? chosenAsText(row) : row;
        const t = tokenizeText(tokenizer, textRow, { maxLength });
        if (supervises(t.labels)) examples.push({ kind: 'text', line, ...t });
        else skipped++;
      }
    } catch (error) {
      if ((error as Error).message.startsWith('data.readJsonl')) throw error;
      throw new Error(`finetune: ${path}:${line}: ${(error as Error).message}`);
    }
  }
  if (examples.length === 0) {
    throw new RangeError(`finetune: ${path} has no row usable for --method ${method} (${skipped} skipped)`);
  }
  return { examples, skipped };
}

/** Held-out rows: a tenth of the data (at most 1000), none below 10 rows. */
export function evalCount(n: number): number {
  return n < 10 ? 0 : Math.min(1000, Math.floor(n / 10));
}

/** The evaluation split and the training rows, fixed by the seed. */
export function splitExamples(examples: Example[], seed: number): { train: Example[]; evaluation: Example[] } {
  const order = permutation(examples.length, streamSeed(seed, 0));
  const k = evalCount(examples.length);
  const evaluation = Array.from(order.subarray(0, k), (i) => examples[i]!).sort((a, b) => a.line - b.line);
  const train = Array.from(order.subarray(k), (i) => examples[i]!).sort((a, b) => a.line - b.line);
  return { train, evaluation };
}

/**
 * The training rows as one stream: epoch e visits every row once in the order
 * permutation(n, streamSeed(seed, e + 1)); position g of the stream is row g mod n of epoch
 * floor(g / n). A checkpoint records g, so a resumed run reads the same rows in the same order.
 *
 * Data parallel (worldSize W > 1): rank r's stream is its share of each epoch's order
 * (dist.shardIndices: positions r, r + W, ... of it), floor(n / W) rows per epoch on every rank
 * so that the ranks stay in step (the n mod W rows left over differ from epoch to epoch). Step k
 * of W ranks with batch b then reads the rows of step k of one process with batch W·b.
 */
export class TrainingStream {
  private cachedEpoch = -1;
  private order: Int32Array = new Int32Array(0);
  /** Rows per epoch of this rank's stream. */
  readonly perEpoch: number;

  constructor(
    readonly rows: Example[],
    readonly seed: number,
    readonly world: { rank: number; worldSize: number } = { rank: 0, worldSize: 1 },
  ) {
    this.perEpoch = Math.floor(rows.length / world.worldSize);
    if (this.perEpoch === 0) {
      throw new RangeError(`finetune: ${rows.length} training rows cannot be shared by ${world.worldSize} ranks`);
    }
  }

  at(position: number): Example {
    const epoch = Math.floor(position / this.perEpoch);
    if (epoch !== this.cachedEpoch) {
      this.order = shardIndices(this.rows.length, { epoch, seed: this.seed, ...this.world });
      this.cachedEpoch = epoch;
    }
    return this.rows[this.order[position % this.perEpoch]!]!;
  }
}
