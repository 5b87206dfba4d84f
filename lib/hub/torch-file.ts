// PyTorch checkpoint files (pytorch_model.bin, *.pth) as torch.save writes
// them since PyTorch 1.6: a zip archive holding `<name>/data.pkl` (a pickle of
// the state dict) and one entry `<name>/data/<key>` per storage. Only what
// torch.load(weights_only=True) accepts is read: the pickle may build
// OrderedDicts, tuples, lists, strings, numbers and tensors
// (torch._utils._rebuild_tensor_v2 / _rebuild_parameter over torch.*Storage);
// any other global is a RangeError naming it, and nothing is ever executed.
// Storages are read from their byte ranges in the archive, one tensor at a
// time, like safetensors files.
import { promises as fs } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import type { DType } from '../dtype';
import { DTYPE_BYTES, type RawTensor } from '../safetensors';

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  localHeaderOffset: number;
}

async function readAt(fh: fs.FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

/** The central directory of a zip archive (zip64 included). */
async function zipEntries(fh: fs.FileHandle, size: number, where: string): Promise<Map<string, ZipEntry>> {
  const tailLength = Math.min(size, 65557);
  const tail = await readAt(fh, size - tailLength, tailLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new RangeError(`${where} is not a zip archive (not a PyTorch file written by torch.save)`);
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locator = eocd - 20;
    if (locator < 0 || tail.readUInt32LE(locator) !== 0x07064b50) throw new RangeError(`${where}: bad zip64 archive`);
    const record = await readAt(fh, Number(tail.readBigUInt64LE(locator + 8)), 56);
    if (record.readUInt32LE(0) !== 0x06064b50) throw new RangeError(`${where}: bad zip64 archive`);
    count = Number(record.readBigUInt64LE(32));
    cdSize = Number(record.readBigUInt64LE(40));
    cdOffset = Number(record.readBigUInt64LE(48));
  }
  const cd = await readAt(fh, cdOffset, cdSize);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (cd.readUInt32LE(p) !== 0x02014b50) throw new RangeError(`${where}: bad zip central directory`);
    const method = cd.readUInt16LE(p + 10);
    let compressedSize = cd.readUInt32LE(p + 20);
    let uncompressedSize = cd.readUInt32LE(p + 24);
    const nameLength = cd.readUInt16LE(p + 28),
      extraLength = cd.readUInt16LE(p + 30),
      commentLength = cd.readUInt16LE(p + 32);
    let localHeaderOffset = cd.readUInt32LE(p + 42);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLength);
    // zip64 extra field: the 64-bit values of the fields that hold 0xffffffff, in order.
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e),
        length = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (uncompressedSize === 0xffffffff) {
          uncompressedSize = Number(cd.readBigUInt64LE(q));
          q += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = Number(cd.readBigUInt64LE(q));
          q += 8;
        }
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = Number(cd.readBigUInt64LE(q));
      }
      e += 4 + length;
    }
    entries.set(name, { name, method, compressedSize, localHeaderOffset });
    p = extraEnd + commentLength;
  }
  return entries;
}

/** Where an entry's data starts (after its local header). */
async function dataOffset(fh: fs.FileHandle, entry: ZipEntry, where: string): Promise<number> {
  const header = await readAt(fh, entry.localHeaderOffset, 30);
  if (header.readUInt32LE(0) !== 0x04034b50) throw new RangeError(`${where}: bad zip entry ${entry.name}`);
  return entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
}

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  IntStorage: 'int32',
};

interface StorageRef {
  kind: 'storage';
  dtype: DType;
  key: string;
}
interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}
type Global = { kind: 'global'; name: string };

/** The pickle of a state dict → its tensors (no code runs: globals are a fixed allow-list). */
function unpickle(data: Buffer, where: string): Map<string, TensorRef> {
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const fail = (what: string): never => {
    throw new RangeError(`${where}: ${what} (only what torch.load(weights_only=True) accepts is read)`);
  };
  const popMark = () => {
    const m = marks.pop();
    if (m === undefined) fail('pickle MARK missing');
    return stack.splice(m!);
  };
  const call = (fnObj: unknown, args: unknown[]): unknown => {
    const name = (fnObj as Global | undefined)?.kind === 'global' ? (fnObj as Global).name : '';
    switch (name) {
      case 'collections.OrderedDict':
        return new Map<unknown, unknown>();
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, shape, stride] = args as [StorageRef, number, number[], number[]];
        if (storage?.kind !== 'storage') fail('a tensor without a storage');
        return { kind: 'tensor', storage, offset, shape: [...shape], stride: [...stride] } satisfies TensorRef;
      }
      case 'torch._utils._rebuild_parameter':
        return args[0];
      default:
        return fail(`global ${name || String(fnObj)} is not allowed`);
    }
  };
  let p = 0;
  const u8 = () => data[p++]!;
  for (;;) {
    if (p >= data.length) fail('pickle ends without STOP');
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        p += 1;
        break;
      case 0x95: // FRAME
        p += 8;
        break;
      case 0x2e: {
        // STOP
        const result = stack.pop();
        if (!(result instanceof Map)) fail('the pickle is not a state dict');
        const out = new Map<string, TensorRef>();
        for (const [k, v] of result as Map<unknown, unknown>) {
          if (typeof k === 'string' && (v as TensorRef)?.kind === 'tensor') out.set(k, v as TensorRef);
        }
        return out;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x71: // BINPUT
        memo.set(u8(), stack[stack.length - 1]);
        break;
      case 0x72: // LONG_BINPUT
        memo.set(data.readUInt32LE(p), stack[stack.length - 1]);
        p += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, stack[stack.length - 1]);
        break;
      case 0x68: // BINGET
        stack.push(memo.get(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memo.get(data.readUInt32LE(p)));
        p += 4;
        break;
      case 0x58: {
        // BINUNICODE
        const n = data.readUInt32LE(p);
        stack.push(data.toString('utf8', p + 4, p + 4 + n));
        p += 4 + n;
        break;
      }
      case 0x8c: {
        // SHORT_BINUNICODE
        const n = u8();
        stack.push(data.toString('utf8', p, p + n));
        p += n;
        break;
      }
      case 0x55: {
        // SHORT_BINSTRING
        const n = u8();
        stack.push(data.toString('latin1', p, p + n));
        p += n;
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const end1 = data.indexOf(0x0a, p),
          end2 = data.indexOf(0x0a, end1 + 1);
        stack.push({
          kind: 'global',
          name: `${data.toString('utf8', p, end1)}.${data.toString('utf8', end1 + 1, end2)}`,
        });
        p = end2 + 1;
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = stack.pop() as string,
          module = stack.pop() as string;
        stack.push({ kind: 'global', name: `${module}.${name}` });
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', storage type, key, location, numel)
        const pid = stack.pop() as unknown[];
        const type = (pid?.[1] as Global | undefined)?.name ?? '';
        const dtype = STORAGE_DTYPES[type.replace(/^torch\./, '')];
        if (pid?.[0] !== 'storage' || !type.startsWith('torch.')) fail('an unknown persistent id');
        if (!dtype) return fail(`storage type ${type} is not supported (float32, float64, float16, bfloat16, int32)`);
        stack.push({ kind: 'storage', dtype, key: String(pid[2]) } satisfies StorageRef);
        break;
      }
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(data.readUInt16LE(p));
        p += 2;
        break;
      case 0x4a: // BININT
        stack.push(data.readInt32LE(p));
        p += 4;
        break;
      case 0x8a: {
        // LONG1
        const n = u8();
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[p + i]!);
        if (n > 0 && data[p + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(Number(v));
        p += n;
        break;
      }
      case 0x47: // BINFLOAT
        stack.push(data.readDoubleBE(p));
        p += 8;
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push(stack.splice(-1));
        break;
      case 0x86: // TUPLE2
        stack.push(stack.splice(-2));
        break;
      case 0x87: // TUPLE3
        stack.push(stack.splice(-3));
        break;
      case 0x52: {
        // REDUCE
        const args = stack.pop() as unknown[];
        stack.push(call(stack.pop(), args));
        break;
      }
      case 0x62: // BUILD: state of an object (an OrderedDict's _metadata): not needed
        stack.pop();
        break;
      case 0x73: {
        // SETITEM
        const v = stack.pop(),
          k = stack.pop();
        (stack[stack.length - 1] as Map<unknown, unknown>).set(k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const dict = stack[stack.length - 1] as Map<unknown, unknown>;
        for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
        break;
      }
      case 0x61: // APPEND
        (stack[stack.length - 2] as unknown[]).push(stack.pop());
        break;
      case 0x65: {
        // APPENDS
        const items = popMark();
        (stack[stack.length - 1] as unknown[]).push(...items);
        break;
      }
      default:
        fail(`pickle opcode 0x${op.toString(16)} is not supported`);
    }
  }
}

/** A torch.save zip archive opened for reading tensors one at a time. */
export class TorchFileReader {
  private constructor(
    readonly path: string,
    private readonly fh: fs.FileHandle,
    private readonly entries: Map<string, ZipEntry>,
    private readonly prefix: string,
    private readonly tensors: Map<string, TensorRef>,
  ) {}

  static async open(path: string, fn: string): Promise<TorchFileReader> {
    const fh = await fs.open(path, 'r');
    try {
      const where = `${fn}: ${path}`;
      const { size } = await fh.stat();
      const entries = await zipEntries(fh, size, where);
      const pkl = [...entries.keys()].find((n) => n.endsWith('data.pkl') && n.split('/').length === 2);
      if (!pkl) throw new RangeError(`${where} has no data.pkl (not a torch.save archive)`);
      const entry = entries.get(pkl)!;
      const start = await dataOffset(fh, entry, where);
      let bytes = await readAt(fh, start, entry.compressedSize);
      if (entry.method === 8) bytes = inflateRawSync(bytes);
      else if (entry.method !== 0) throw new RangeError(`${where}: zip compression ${entry.method} is not supported`);
      return new TorchFileReader(path, fh, entries, pkl.slice(0, -'data.pkl'.length), unpickle(bytes, where));
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): { dtype: DType; shape: number[] } {
    const t = this.tensors.get(name)!;
    return { dtype: t.storage.dtype, shape: t.shape };
  }

  /** The tensor's elements in row-major order (gathered when the stored strides are not). */
  async readRaw(name: string): Promise<RawTensor> {
    const t = this.tensors.get(name);
    if (!t) throw new RangeError(`TorchFileReader: ${this.path} has no tensor '${name}'`);
    const entry = this.entries.get(`${this.prefix}data/${t.storage.key}`);
    if (!entry || entry.method !== 0)
      throw new RangeError(`${this.path}: storage ${t.storage.key} of ${name} is missing`);
    const size = DTYPE_BYTES[t.storage.dtype];
    const numel = t.shape.reduce((a, b) => a * b, 1);
    // The storage range the tensor reads: from its offset to its last element.
    const span = numel === 0 ? 0 : 1 + t.shape.reduce((s, d, i) => s + (d - 1) * t.stride[i]!, 0);
    if ((t.offset + span) * size > entry.compressedSize) {
      throw new RangeError(`${this.path}: tensor ${name} reads past its storage`);
    }
    const base = (await dataOffset(this.fh, entry, this.path)) + t.offset * size;
    const stored = await readAt(this.fh, base, span * size);
    const contiguous = t.shape.every((_, i) => t.stride[i] === t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    if (contiguous) return { dtype: t.storage.dtype, shape: t.shape, bytes: new Uint8Array(stored) };
    const bytes = new Uint8Array(numel * size);
    const index = new Array<number>(t.shape.length).fill(0);
    for (let e = 0; e < numel; e++) {
      const from = index.reduce((s, v, i) => s + v * t.stride[i]!, 0) * size;
      bytes.set(stored.subarray(from, from + size), e * size);
      for (let d = t.shape.length - 1; d >= 0; d--) {
        if (++index[d]! < t.shape[d]!) break;
        index[d] = 0;
      }
    }
    return { dtype: t.storage.dtype, shape: t.shape, bytes };
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
