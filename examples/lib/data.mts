// Byte-level data for the examples: a corpus read as bytes (vocabulary 256),
// a contiguous held-out split, random training windows and fixed validation
// windows. A window of T + 1 bytes gives inputs = bytes[0..T) and
// labels = bytes[1..T+1): logits at position t predict labels[t].
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Rng } from './rng.mts';

/** B windows of T bytes: inputs and the next byte of each as labels, row-major [B, T]. */
export interface Batch {
  inputs: Int32Array;
  labels: Int32Array;
  shape: [number, number];
}

/** The corpus shipped with the examples (see examples/data/SOURCE.md). */
export const SHAKESPEARE = fileURLToPath(new URL('../data/shakespeare.txt', import.meta.url));

export function loadBytes(path: string = SHAKESPEARE): Uint8Array {
  const buf = readFileSync(path);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
/** Bytes to text; invalid UTF-8 (a sampled stray byte) becomes U+FFFD. */
export const decode = (bytes: Uint8Array): string => new TextDecoder('utf-8', { fatal: false }).decode(bytes);

/** The last `fraction` of the bytes (cut at a line break when there is one nearby) is held out. */
export function splitHoldout(bytes: Uint8Array, fraction = 0.1): { train: Uint8Array; val: Uint8Array } {
  if (!(fraction > 0 && fraction < 1))
    throw new RangeError(`splitHoldout: fraction must be in (0, 1), got ${fraction}`);
  let cut = Math.floor(bytes.length * (1 - fraction));
  const nl = bytes.indexOf(10, cut);
  if (nl >= 0 && nl - cut < 1000) cut = nl + 1;
  return { train: bytes.subarray(0, cut), val: bytes.subarray(cut) };
}

function fill(bytes: Uint8Array, starts: number[], T: number): Batch {
  const B = starts.length;
  const inputs = new Int32Array(B * T),
    labels = new Int32Array(B * T);
  starts.forEach((start, b) => {
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = bytes[start + t]!;
      labels[b * T + t] = bytes[start + t + 1]!;
    }
  });
  return { inputs, labels, shape: [B, T] };
}

/** B windows of T + 1 bytes at uniformly random offsets (rng: examples/lib/rng.mts). */
export function randomBatch(bytes: Uint8Array, B: number, T: number, rng: Rng): Batch {
  const span = bytes.length - (T + 1);
  if (span < 0) throw new RangeError(`randomBatch: ${bytes.length} bytes are fewer than T + 1 = ${T + 1}`);
  return fill(
    bytes,
    Array.from({ length: B }, () => rng.int(span + 1)),
    T,
  );
}

/**
 * Non-overlapping windows covering the bytes from the start, as batches of
 * B (the last batch may be smaller); at most maxBatches batches, spread
 * evenly over the split when there are more.
 */
export function evalBatches(bytes: Uint8Array, B: number, T: number, maxBatches = Infinity): Batch[] {
  const windows = Math.floor((bytes.length - 1) / T);
  if (windows < 1) throw new RangeError(`evalBatches: ${bytes.length} bytes are fewer than T + 1 = ${T + 1}`);
  let starts = Array.from({ length: windows }, (_, i) => i * T);
  if (starts.length > maxBatches * B) {
    const n = maxBatches * B;
    starts = Array.from({ length: n }, (_, i) => starts[Math.floor((i * windows) / n)]!);
  }
  const batches: Batch[] = [];
  for (let i = 0; i < starts.length; i += B) batches.push(fill(bytes, starts.slice(i, i + B), T));
  return batches;
}
