// Hugging Face checkpoint files: config.json, generation_config.json, and the
// weights as one model.safetensors or as shards listed by
// model.safetensors.index.json ({ metadata: { total_size }, weight_map: { tensor: file } }),
// or, read only, PyTorch's pytorch_model.bin (and its index) (torch-file.ts).
// Tensors are read one at a time from their byte ranges, so a checkpoint is
// never held in host memory whole.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { DType } from '../dtype';
import { DTYPE_BYTES, SafetensorsReader, writeSafetensorsRaw, type RawTensor } from '../safetensors';
import { TorchFileReader } from './torch-file';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
const TORCH_FILE = 'pytorch_model.bin';
const TORCH_INDEX_FILE = 'pytorch_model.bin.index.json';

/** One weights file, safetensors or torch.save. */
type TensorFile = SafetensorsReader | TorchFileReader;

function openTensorFile(file: string, fn: string): Promise<TensorFile> {
  return file.endsWith('.safetensors') ? SafetensorsReader.open(file, fn) : TorchFileReader.open(file, fn);
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

/** A JSON object from `dir/name`, or undefined when the file does not exist. */
export async function readJsonFile(file: string, fn: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch {
    throw new RangeError(`${fn}: ${file} is not a JSON object`);
  }
}

/** Writes JSON through a temporary file and a rename, so a crash never leaves half a file. */
export async function writeJsonFile(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`);
  await fs.rename(tmp, file);
}

/** The weights of a checkpoint directory, single file or sharded. */
export class CheckpointReader {
  private constructor(
    readonly dir: string,
    private readonly files: Map<string, TensorFile>,
    private readonly fileOf: Map<string, TensorFile>,
  ) {}

  /** model.safetensors(.index.json) first, else pytorch_model.bin(.index.json), as transformers looks. */
  static async open(dir: string, fn: string): Promise<CheckpointReader> {
    const files = new Map<string, TensorFile>();
    const fileOf = new Map<string, TensorFile>();
    try {
      let indexName: string | undefined;
      let single: string | undefined;
      for (const [index, file] of [
        [INDEX_FILE, SINGLE_FILE],
        [TORCH_INDEX_FILE, TORCH_FILE],
      ] as const) {
        if (await exists(path.join(dir, index))) indexName = index;
        else if (await exists(path.join(dir, file))) single = file;
        if (indexName || single) break;
      }
      if (indexName) {
        const index = (await readJsonFile(path.join(dir, indexName), fn))!;
        const weightMap = index.weight_map;
        if (typeof weightMap !== 'object' || weightMap === null) {
          throw new RangeError(`${fn}: ${path.join(dir, indexName)} has no weight_map`);
        }
        for (const [name, file] of Object.entries(weightMap as Record<string, unknown>)) {
          if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) {
            throw new RangeError(`${fn}: ${indexName}: weight_map['${name}'] must be a file name in ${dir}`);
          }
          let reader = files.get(file);
          if (!reader) {
            reader = await openTensorFile(path.join(dir, file), fn);
            files.set(file, reader);
          }
          if (!reader.has(name)) throw new RangeError(`${fn}: ${indexName} lists ${name} in ${file}, which lacks it`);
          fileOf.set(name, reader);
        }
      } else if (single) {
        const reader = await openTensorFile(path.join(dir, single), fn);
        files.set(single, reader);
        for (const name of reader.names) fileOf.set(name, reader);
      } else {
        throw new RangeError(`${fn}: ${dir} has neither ${SINGLE_FILE} nor ${INDEX_FILE} (nor ${TORCH_FILE})`);
      }
    } catch (e) {
      for (const r of files.values()) await r.close();
      throw e;
    }
    return new CheckpointReader(dir, files, fileOf);
  }

  /** Which file(s) the weights come from, for error messages. */
  get description(): string {
    return [...this.files.keys()].join(', ');
  }

  get names(): string[] {
    return [...this.fileOf.keys()];
  }

  has(name: string): boolean {
    return this.fileOf.has(name);
  }

  info(name: string): { dtype: DType; shape: number[] } {
    return this.fileOf.get(name)!.info(name);
  }

  readRaw(name: string): Promise<RawTensor> {
    return this.fileOf.get(name)!.readRaw(name);
  }

  async close(): Promise<void> {
    for (const r of this.files.values()) await r.close();
  }
}

export interface WeightEntry {
  name: string;
  dtype: DType;
  shape: readonly number[];
  /** The tensor's bytes, produced when the file is written (one tensor in memory at a time). */
  read: () => Uint8Array;
}

/**
 * Writes the weights as model.safetensors, or, past maxShardBytes, as
 * model-0000i-of-0000n.safetensors shards plus the index (transformers'
 * layout: tensors in order, a new shard when the next would overflow).
 * Every file is written under a temporary name and renamed into place.
 */
export async function writeWeights(dir: string, entries: WeightEntry[], maxShardBytes: number): Promise<void> {
  const bytesOf = (e: WeightEntry) => e.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[e.dtype];
  const shards: WeightEntry[][] = [[]];
  let current = 0;
  for (const e of entries) {
    const n = bytesOf(e);
    if (current > 0 && current + n > maxShardBytes) {
      shards.push([]);
      current = 0;
    }
    shards[shards.length - 1]!.push(e);
    current += n;
  }
  const metadata = { format: 'pt' };
  const byName = new Map(entries.map((e) => [e.name, e]));
  const write = async (file: string, list: WeightEntry[]) => {
    const tmp = path.join(dir, `${file}.tmp-${process.pid}`);
    await writeSafetensorsRaw(
      tmp,
      list.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, byteLength: bytesOf(e) })),
      (name) => byName.get(name)!.read(),
      metadata,
    );
    await fs.rename(tmp, path.join(dir, file));
  };
  if (shards.length === 1) {
    await write(SINGLE_FILE, shards[0]!);
    await fs.rm(path.join(dir, INDEX_FILE), { force: true });
    return;
  }
  const n = shards.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const file = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    await write(file, shards[i]!);
    for (const e of shards[i]!) weightMap[e.name] = file;
  }
  const totalSize = entries.reduce((s, e) => s + bytesOf(e), 0);
  const sorted = Object.fromEntries(
    Object.keys(weightMap)
      .sort()
      .map((k) => [k, weightMap[k]!]),
  );
  await writeJsonFile(path.join(dir, INDEX_FILE), { metadata: { total_size: totalSize }, weight_map: sorted });
  await fs.rm(path.join(dir, SINGLE_FILE), { force: true });
}
