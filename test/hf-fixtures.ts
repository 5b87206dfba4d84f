// The Hugging Face fixtures made by scripts/make-hf-fixtures.py (Python
// transformers), and comparisons against their expected outputs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as lmk from 'lmkernels';

export const FIXTURES = join(__dirname, 'fixtures', 'hf');

export interface Expected {
  input_ids: number[][];
  logits: number[][][];
  prompt: number[];
  greedy: number[];
}

export function expectedOf(name: string): Expected {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'expected.json'), 'utf8'));
}

export function idsTensor(ids: number[][]): lmk.Tensor {
  return lmk.tensor(Int32Array.from(ids.flat()), { shape: [ids.length, ids[0]!.length] });
}

/** max |actual − expected| / max |expected| over all logits. */
export function relativeError(actual: ArrayLike<number>, expected: number[][][]): number {
  const flat = expected.flat(2);
  if (flat.length !== actual.length) throw new Error(`${actual.length} logits, expected ${flat.length}`);
  let diff = 0,
    scale = 0;
  flat.forEach((e, i) => {
    diff = Math.max(diff, Math.abs(actual[i]! - e));
    scale = Math.max(scale, Math.abs(e));
  });
  return diff / scale;
}
