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
  // Read every tensor (one sync per tensor; values land after queued work).
  const bodies = names.map((name) => native().readRaw(tensors[name]!._handleFor(fn, `tensors['${name}']`)));
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  names.forEach((name, i) => {
    const t = tensors[name]!;
    header[name] = { dtype: TO_FILE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bodies[i]!.length] };
    offset += bodies[i]!.length;
  });
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(headerBytes.length));
  await fs.writeFile(path, Buffer.concat([length, headerBytes, ...bodies]));
}

export async function loadSafetensors(
  path: string,
  opts: { device?: DeviceSpec } = {},
): Promise<Record<string, Tensor>> {
  const fn = 'loadSafetensors';
  if (typeof path !== 'string') throw new TypeError(`${fn}: path must be a string`);
  checkOptions(opts, fn, ['device']);
  const device = deviceOrDefault(opts.device, fn);
  const file = await fs.readFile(path);
  if (file.length < 8) throw new RangeError(`${fn}: ${path} is too short to be a safetensors file`);
  const headerLength = Number(file.readBigUInt64LE(0));
  if (headerLength > file.length - 8)
    throw new RangeError(`${fn}: ${path}: header length ${headerLength} exceeds the file`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8'));
  } catch {
    throw new RangeError(`${fn}: ${path}: the header is not valid JSON`);
  }
  const dataStart = 8 + headerLength;
  const out: Record<string, Tensor> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const dtype = FROM_FILE[entry.dtype];
    if (!dtype) throw new RangeError(`${fn}: ${path}: tensor '${name}' has unsupported dtype ${entry.dtype}`);
    const [begin, end] = entry.data_offsets;
    if (!(begin >= 0 && end >= begin && dataStart + end <= file.length)) {
      throw new RangeError(`${fn}: ${path}: tensor '${name}' has offsets [${begin}, ${end}] outside the file`);
    }
    const bytes = new Uint8Array(file.buffer, file.byteOffset + dataStart + begin, end - begin);
    out[name] = new Tensor(native().fromRaw({ bytes: new Uint8Array(bytes), shape: entry.shape, dtype, device }));
  }
  return out;
}

/** The __metadata__ of a safetensors file. */
export async function safetensorsMetadata(path: string): Promise<Record<string, string>> {
  const file = await fs.readFile(path);
  const headerLength = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8'));
  return header.__metadata__ ?? {};
}
