// safetensors files (the format PyTorch and Hugging Face read): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets}, __metadata__: {...}} padded with spaces to 8 bytes, then the
// raw little-endian tensor bytes. dtypes are kept bit for bit (BF16, F16 too).
import { promises as fs } from 'node:fs';
import { deviceOrDefault, type DeviceSpec } from './device';
import type { DType } from './dtype';
import { native } from './native';
import { Tensor, checkTensor } from './tensor';
import { checkOptions } from './validate';

const TO_FILE: Record<DType, string> = {
  float32: 'F32',
  float64: 'F64',
  bfloat16: 'BF16',
  float16: 'F16',
  int32: 'I32',
};
const FROM_FILE: Record<string, DType> = Object.fromEntries(Object.entries(TO_FILE).map(([k, v]) => [v, k as DType]));

/** One tensor as it is stored: dtype, shape and little-endian bytes. */
export interface RawTensor {
  dtype: DType;
  shape: readonly number[];
  bytes: Uint8Array;
}

/**
 * Writes a safetensors file tensor by tensor: `read(name)` is called once per
 * name, in sorted order, so at most one tensor's bytes are held at a time.
 */
export async function writeSafetensorsRaw(
  path: string,
  entries: { name: string; dtype: DType; shape: readonly number[]; byteLength: number }[],
  read: (name: string) => Uint8Array,
  metadata?: Record<string, string>,
): Promise<void> {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const e of sorted) {
    header[e.name] = { dtype: TO_FILE[e.dtype], shape: [...e.shape], data_offsets: [offset, offset + e.byteLength] };
    offset += e.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(headerBytes.length));
  const fh = await fs.open(path, 'w');
  try {
    await fh.write(length);
    await fh.write(headerBytes);
    for (const e of sorted) {
      const bytes = read(e.name);
      if (bytes.length !== e.byteLength) {
        throw new RangeError(`writeSafetensors: ${e.name} has ${bytes.length} bytes, expected ${e.byteLength}`);
      }
      await fh.write(bytes);
    }
  } finally {
    await fh.close();
  }
}

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<DType, number> = { float32: 4, float64: 8, bfloat16: 2, float16: 2, int32: 4 };

export async function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const fn = 'saveSafetensors';
  if (typeof path !== 'string') throw new TypeError(`${fn}: path must be a string`);
  if (typeof tensors !== 'object' || tensors === null)
    throw new TypeError(`${fn}: tensors must be an object of Tensors`);
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new TypeError(`${fn}: metadata['${k}'] must be a string`);
  }
  const names = Object.keys(tensors).sort();
  for (const name of names) checkTensor(tensors[name], fn, `tensors['${name}']`);
  const entries = names.map((name) => {
    const t = tensors[name]!;
    return { name, dtype: t.dtype, shape: t.shape, byteLength: t.numel * DTYPE_BYTES[t.dtype] };
  });
  // One sync per tensor; values land after queued work.
  await writeSafetensorsRaw(
    path,
    entries,
    (name) => native().readRaw(tensors[name]!._handleFor(fn, `tensors['${name}']`)),
    metadata,
  );
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/**
 * A safetensors file opened for reading tensors one at a time from their byte
 * ranges (big checkpoints are never read whole). close() when done.
 */
export class SafetensorsReader {
  private constructor(
    readonly path: string,
    private readonly fh: fs.FileHandle,
    private readonly header: Record<string, HeaderEntry>,
    private readonly dataStart: number,
    readonly metadata: Record<string, string>,
  ) {}

  static async open(path: string, fn = 'loadSafetensors'): Promise<SafetensorsReader> {
    const fh = await fs.open(path, 'r');
    try {
      const { size } = await fh.stat();
      if (size < 8) throw new RangeError(`${fn}: ${path} is too short to be a safetensors file`);
      const lengthBytes = Buffer.alloc(8);
      await fh.read(lengthBytes, 0, 8, 0);
      const headerLength = Number(lengthBytes.readBigUInt64LE(0));
      if (headerLength > size - 8)
        throw new RangeError(`${fn}: ${path}: header length ${headerLength} exceeds the file`);
      const headerBytes = Buffer.alloc(headerLength);
      await fh.read(headerBytes, 0, headerLength, 8);
      let header: Record<string, HeaderEntry>;
      try {
        header = JSON.parse(headerBytes.toString('utf8'));
      } catch {
        throw new RangeError(`${fn}: ${path}: the header is not valid JSON`);
      }
      const metadata = (header.__metadata__ ?? {}) as unknown as Record<string, string>;
      delete header.__metadata__;
      const dataStart = 8 + headerLength;
      for (const [name, entry] of Object.entries(header)) {
        if (!FROM_FILE[entry.dtype])
          throw new RangeError(`${fn}: ${path}: tensor '${name}' has unsupported dtype ${entry.dtype}`);
        const [begin, end] = entry.data_offsets;
        const expected = entry.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[FROM_FILE[entry.dtype]!];
        if (!(begin >= 0 && end >= begin && dataStart + end <= size) || end - begin !== expected) {
          throw new RangeError(`${fn}: ${path}: tensor '${name}' has offsets [${begin}, ${end}] outside the file`);
        }
      }
      return new SafetensorsReader(path, fh, header, dataStart, metadata);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  get names(): string[] {
    return Object.keys(this.header);
  }

  has(name: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.header, name);
  }

  /** dtype and shape of a stored tensor, without reading it. */
  info(name: string): { dtype: DType; shape: number[] } {
    const e = this.header[name]!;
    return { dtype: FROM_FILE[e.dtype]!, shape: e.shape };
  }

  /** The stored bytes of one tensor (read from its byte range). */
  async readRaw(name: string): Promise<RawTensor> {
    const e = this.header[name];
    if (!e) throw new RangeError(`SafetensorsReader: ${this.path} has no tensor '${name}'`);
    const [begin, end] = e.data_offsets;
    const bytes = new Uint8Array(end - begin);
    let done = 0;
    while (done < bytes.length) {
      const { bytesRead } = await this.fh.read(bytes, done, bytes.length - done, this.dataStart + begin + done);
      if (bytesRead === 0) throw new RangeError(`SafetensorsReader: ${this.path} ended inside tensor '${name}'`);
      done += bytesRead;
    }
    return { dtype: FROM_FILE[e.dtype]!, shape: e.shape, bytes };
  }

  /** One tensor, stored dtype, straight onto `device`. */
  async read(name: string, device: string): Promise<Tensor> {
    const raw = await this.readRaw(name);
    return new Tensor(native().fromRaw({ bytes: raw.bytes, shape: raw.shape, dtype: raw.dtype, device }));
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

export async function loadSafetensors(
  path: string,
  opts: { device?: DeviceSpec } = {},
): Promise<Record<string, Tensor>> {
  const fn = 'loadSafetensors';
  if (typeof path !== 'string') throw new TypeError(`${fn}: path must be a string`);
  checkOptions(opts, fn, ['device']);
  const device = deviceOrDefault(opts.device, fn);
  const reader = await SafetensorsReader.open(path, fn);
  try {
    const out: Record<string, Tensor> = {};
    for (const name of reader.names) out[name] = await reader.read(name, device);
    return out;
  } finally {
    await reader.close();
  }
}

/** The __metadata__ of a safetensors file. */
export async function safetensorsMetadata(path: string): Promise<Record<string, string>> {
  const reader = await SafetensorsReader.open(path, 'safetensorsMetadata');
  await reader.close();
  return reader.metadata;
}
