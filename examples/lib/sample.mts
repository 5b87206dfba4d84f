// Text generation for the examples. A model with a recurrent `step` (RWKV-4)
// reads the prompt and generates one byte at a time, carrying its state; a
// model with `forwardChunk` (TransformerFAM) carries its state from block to
// block and re-reads the current block for each new byte; a model with only
// `forward` re-reads the last `context` bytes for each new byte. Sampling is
// done here in JS, in float64, with a seeded RNG (examples/lib/rng.mts): the
// same logits and seed give the same text.
import * as lmk from 'lmkernels';
import { Rng } from './rng.mts';
import { encode } from './data.mts';

/**
 * What generate() needs of a model: `forward` and its parameters (for the
 * device), and either RWKV-4's recurrent `step` or TransformerFAM's
 * `forwardChunk` with its block size, when the model has one.
 */
export interface GenerativeModel {
  forward(tokens: lmk.Tensor): lmk.Tensor;
  parameters(): lmk.Tensor[];
  step?(tokens: lmk.Tensor, state?: lmk.RWKV4State): { logits: lmk.Tensor; state: lmk.RWKV4State };
  forwardChunk?(tokens: lmk.Tensor, state?: lmk.FamState): { logits: lmk.Tensor; state: lmk.FamState };
  /** FamTransformerModel's blockSize (forwardChunk takes whole blocks); other configs may hold anything. */
  config?: { blockSize?: unknown };
}

export interface SampleOptions {
  /** 0 = greedy (the argmax). */
  temperature?: number;
  /** Sample among the topK largest logits only (0 = all). */
  topK?: number;
  /** Needed when temperature > 0. */
  rng?: Rng;
}

export interface GenerateOptions {
  prompt: string | Uint8Array;
  length: number;
  temperature?: number;
  topK?: number;
  seed?: number;
  context?: number;
}

/**
 * Picks a token from one row of logits: temperature 0 is the argmax (ties to
 * the lowest index); otherwise softmax(logits / temperature), restricted to
 * the topK largest when topK > 0, sampled by inverse CDF with rng.float().
 */
export function sampleToken(logits: ArrayLike<number>, { temperature = 1, topK = 0, rng }: SampleOptions): number {
  const V = logits.length;
  let best = 0;
  for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
  if (temperature === 0) return best;
  if (!rng) throw new TypeError('sampleToken: rng is required when temperature > 0');
  let allowed: Set<number> | null = null;
  if (topK > 0 && topK < V) {
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
    allowed = new Set(order.slice(0, topK));
  }
  const p = new Float64Array(V);
  let sum = 0;
  for (let i = 0; i < V; i++) {
    if (allowed && !allowed.has(i)) continue;
    p[i] = Math.exp((logits[i]! - logits[best]!) / temperature);
    sum += p[i]!;
  }
  let u = rng.float() * sum;
  for (let i = 0; i < V; i++) {
    if (p[i] === 0) continue;
    u -= p[i]!;
    if (u < 0) return i;
  }
  return best;
}

/**
 * Continues `prompt` (a string or bytes) by `length` bytes. Returns the new
 * bytes (Uint8Array). Options: temperature (default 0.8; 0 = greedy), topK,
 * seed (default 0), context (bytes re-read by forward-only models; default 256).
 */
export async function generate(
  model: GenerativeModel,
  { prompt, length, temperature = 0.8, topK = 0, seed = 0, context = 256 }: GenerateOptions,
): Promise<Uint8Array> {
  const bytes = typeof prompt === 'string' ? encode(prompt) : prompt;
  if (bytes.length === 0) throw new RangeError('generate: the prompt must not be empty');
  const rng = new Rng(seed);
  const device = model.parameters()[0]!.device;
  const out = new Uint8Array(length);
  const { step, forwardChunk } = model;
  if (step) {
    // The state after the bytes read so far and the logits that predict the next byte.
    const at: { state?: lmk.RWKV4State; logits?: lmk.Tensor } = {};
    const feed = (token: number) => {
      const input = lmk.tensor(Int32Array.of(token), { device });
      const next = step.call(model, input, at.state);
      input.dispose();
      if (at.state) lmk.nn.disposeRWKV4State(at.state);
      at.logits?.dispose();
      at.state = next.state;
      at.logits = next.logits;
    };
    for (const b of bytes) feed(b);
    for (let i = 0; i < length; i++) {
      const row = await at.logits!.data();
      out[i] = sampleToken(row, { temperature, topK, rng });
      if (i + 1 < length) feed(out[i]!);
    }
    at.logits?.dispose();
    if (at.state) lmk.nn.disposeRWKV4State(at.state);
    return out;
  }
  const blockSize = model.config?.blockSize;
  if (forwardChunk && typeof blockSize === 'number' && blockSize > 0) {
    // TransformerFAM: the state after each complete block is kept; the
    // current partial block is re-read for every new byte.
    const L = blockSize;
    let state: lmk.FamState | undefined;
    let tail: number[] = [];
    const next = async (token: number) => {
      tail.push(token);
      const r = lmk.noGrad(() =>
        lmk.tidy(() => {
          const ids = lmk.tensor(Int32Array.from(tail), { shape: [1, tail.length], device });
          const { logits, state: after } = forwardChunk.call(model, ids, state);
          const V = logits.shape[2]!;
          return { row: lmk.ops.slice(logits.reshape([tail.length, V]), 0, tail.length - 1, tail.length), after };
        }),
      );
      const row = await r.row.data();
      r.row.dispose();
      if (tail.length === L) {
        if (state) lmk.nn.disposeFamState(state);
        state = r.after;
        tail = [];
      } else lmk.nn.disposeFamState(r.after);
      return row;
    };
    let row: ArrayLike<number> = [];
    for (const b of bytes) row = await next(b);
    for (let i = 0; i < length; i++) {
      out[i] = sampleToken(row, { temperature, topK, rng });
      if (i + 1 < length) row = await next(out[i]!);
    }
    if (state) lmk.nn.disposeFamState(state);
    return out;
  }
  const all = Array.from(bytes);
  for (let i = 0; i < length; i++) {
    const window = all.slice(-context);
    const last = lmk.noGrad(() =>
      lmk.tidy(() => {
        const ids = lmk.tensor(Int32Array.from(window), { shape: [1, window.length], device });
        const logits = model.forward(ids);
        const V = logits.shape[2]!;
        return lmk.ops.slice(logits.reshape([window.length, V]), 0, window.length - 1, window.length);
      }),
    );
    const row = await last.data();
    last.dispose();
    out[i] = sampleToken(row, { temperature, topK, rng });
    all.push(out[i]!);
  }
  return out;
}
