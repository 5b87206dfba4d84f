// data.readJsonl: one JSON object per line, streamed (docs/api.md "Pretrained models, tokenizers and data").
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { describe } from '../validate';

/**
 * The rows of a JSON Lines file, one object per non-blank line, read as a stream.
 * A line that is not a JSON object is an Error naming the file and the 1-based line
 * ("data.jsonl:7: ..."); a missing file rejects with the file's name.
 */
export function readJsonl(path: string): AsyncIterable<Record<string, unknown>> {
  if (typeof path !== 'string') throw new TypeError(`data.readJsonl: path must be a string, got ${describe(path)}`);
  return rowsOnly(path);
}

async function* rowsOnly(path: string): AsyncIterable<Record<string, unknown>> {
  for await (const { row } of jsonlLines(path)) yield row;
}

/** readJsonl's rows with their 1-based line numbers (the finetune command names lines in its errors). */
export async function* jsonlLines(path: string): AsyncIterable<{ line: number; row: Record<string, unknown> }> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (error) => reject(new Error(`data.readJsonl: cannot read ${path}: ${error.message}`)));
  });
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line += 1;
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        throw new Error(`data.readJsonl: ${path}:${line}: malformed JSON (${(error as Error).message})`);
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new Error(`data.readJsonl: ${path}:${line}: expected a JSON object, got ${describe(value)}`);
      }
      yield { line, row: value as Record<string, unknown> };
    }
  } finally {
    lines.close();
    stream.destroy();
  }
}
