// Text generation for the examples. A model with a recurrent `step` (RWKV-4)
// reads the prompt and generates one byte at a time, carrying its state; a
// model with `forwardChunk` (TransformerFAM) carries its state from block to
// block and re-reads the current block for each new byte; a model with only
// `forward` re-reads the last `context` bytes for each new byte. Sampling is done here in JS, in float64, with a seeded RNG
// (examples/lib/rng.mjs): the same logits and seed give the same text.
import * as lmk from 'lmkernels';
import { Rng } from './rng.mjs';
import { encode } from './data.mjs';

/**
 * Picks a token from one row of logits: temperature 0 is the argmax (ties to
 * the lowest index); otherwise softmax(logits / temperature), restricted to
 * the topK largest when topK > 0, sampled by inverse CDF with rng.float().
 */
export function sampleToken(logits, { temperature = 1, topK = 0, rng }) {
  const V = logits.length;
  let best = 0;
  for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
  if (temperature === 0) return best;
  let allowed = null;
  if (topK > 0 && topK < V) {
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
    allowed = new Set(order.slice(0, topK));
  }
  const p = new Float64Array(V);
  let sum = 0;
  for (let i = 0; i < V; i++) {
    if (allowed && !allowed.has(i)) continue;
    p[i] = Math.exp((logits[i] - logits[best]) / temperature);
    sum += p[i];
  }
  let u = rng.float() * sum;
  for (let i = 0; i < V; i++) {
    if (p[i] === 0) continue;
    u -= p[i];
    if (u < 0) return i;
  }
  return best;
}

/** Frees a recurrent state: the model's own disposeState when it has one, else RWKV-4's. */
function disposeState(model, state) {
  if (typeof model.disposeState === 'function') model.disposeState(state);
  else lmk.nn.disposeRWKV4State(state);
}

/**
 * Continues `prompt` (a string or bytes) by `length` bytes. Returns the new
 * bytes (Uint8Array). Options: temperature (default 0.8; 0 = greedy), topK,
 * seed (default 0), context (bytes re-read by forward-only models; default 256).
 */
export async function generate(model, { prompt, length, temperature = 0.8, topK = 0, seed = 0, context = 256 }) {
  const bytes = typeof prompt === 'string' ? encode(prompt) : prompt;
  if (bytes.length === 0) throw new RangeError('generate: the prompt must not be empty');
  const rng = new Rng(seed);
  const device = model.parameters()[0].device;
  const out = new Uint8Array(length);
  if (typeof model.step === 'function') {
    let state;
    let logits = null;
    const feed = (token) => {
      const input = lmk.tensor(Int32Array.of(token), { device });
      const next = model.step(input, state);
      input.dispose();
      if (state) disposeState(model, state);
      logits?.dispose();
      state = next.state;
      logits = next.logits;
    };
    for (const b of bytes) feed(b);
    for (let i = 0; i < length; i++) {
      const row = await logits.data();
      out[i] = sampleToken(row, { temperature, topK, rng });
      if (i + 1 < length) feed(out[i]);
    }
    logits.dispose();
    disposeState(model, state);
    return out;
  }
  if (typeof model.forwardChunk === 'function' && model.config?.blockSize) {
    // TransformerFAM: the state after each complete block is kept; the
    // current partial block is re-read for every new byte.
    const L = model.config.blockSize;
    let state;
    let tail = [];
    const next = async (token) => {
      tail.push(token);
      const r = lmk.noGrad(() =>
        lmk.tidy(() => {
          const ids = lmk.tensor(Int32Array.from(tail), { shape: [1, tail.length], device });
          const { logits, state: after } = model.forwardChunk(ids, state);
          const V = logits.shape[2];
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
    let row;
    for (const b of bytes) row = await next(b);
    for (let i = 0; i < length; i++) {
      out[i] = sampleToken(row, { temperature, topK, rng });
      if (i + 1 < length) row = await next(out[i]);
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
        const V = logits.shape[2];
        return lmk.ops.slice(logits.reshape([window.length, V]), 0, window.length - 1, window.length);
      }),
    );
    const row = await last.data();
    last.dispose();
    out[i] = sampleToken(row, { temperature, topK, rng });
    all.push(out[i]);
  }
  return out;
}
