// lmk.generate: new token ids from a causal LM, streamed as they come
// (docs/api.md, "Pretrained models, tokenizers and data").
// RWKV-4 runs the prompt in parallel (prefill, giving the recurrent state) and
// then its recurrent step(); Llama-family models run the prompt once (prefill)
// and then one token at a time against a KV cache (with
// fam, against the memory segment, the FAM and the current block). The prefix
// is never run again.
//
// Sampling follows transformers' warpers, in its order: logits / temperature,
// then top-k (keep the k largest; ties with the k-th stay), then top-p (keep
// the smallest set of the largest probabilities whose sum reaches p, at least
// one), then one draw from the softmax of what is left. temperature 0 is
// greedy (the first largest logit). The draws come from our own generator,
// mulberry32 seeded with `seed` (default 0): the same seed, model and options
// give the same tokens on every run and device.
import { tensor } from './creation';
import { RWKV4Model, disposeRWKV4State, type RWKV4State } from './nn/rwkv4';
import { LlamaModel, disposeLlamaCache, type LlamaCache } from './nn/llama';
import type { Tensor } from './tensor';
import type { Device } from './device';
import { checkInteger, checkFinite, checkOptions } from './validate';
import type { CausalLM } from './hub/architectures';

export interface GenerateOptions {
  inputIds: Int32Array | number[];
  maxNewTokens: number;
  /** Default 1; 0 = greedy. */
  temperature?: number;
  /** Keep the k most likely tokens; default 0 = all. */
  topK?: number;
  /** Nucleus sampling threshold in (0, 1]; default 1 = all. */
  topP?: number;
  /** Seed of the sampling generator; default 0. */
  seed?: number;
  /** Generation stops after one of these (which is yielded); default: eos of generation_config.json. */
  stopTokenIds?: number[];
}

/** mulberry32: a 32-bit state generator of uniform numbers in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Sampling {
  temperature: number;
  topK: number;
  topP: number;
}

/** One token id from a row of logits (see the file comment). */
export function sampleToken(logits: ArrayLike<number>, s: Sampling, random: () => number): number {
  const V = logits.length;
  if (s.temperature === 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  const scores = Float64Array.from(logits, (x) => x / s.temperature);
  const keep = new Uint8Array(V).fill(1);
  if (s.topK > 0 && s.topK < V) {
    const kth = Float64Array.from(scores).sort()[V - s.topK]!;
    for (let i = 0; i < V; i++) if (scores[i]! < kth) keep[i] = 0;
  }
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (keep[i] && scores[i]! > max) max = scores[i]!;
  const p = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < V; i++) if (keep[i]) total += p[i] = Math.exp(scores[i]! - max);
  if (s.topP < 1) {
    // transformers: sort ascending, drop tokens while the cumulative mass stays ≤ 1 − p.
    const order = Array.from({ length: V }, (_, i) => i)
      .filter((i) => keep[i])
      .sort((a, b) => p[a]! - p[b]! || b - a);
    let cumulative = 0;
    for (let j = 0; j < order.length - 1; j++) {
      cumulative += p[order[j]!]! / total;
      if (cumulative > 1 - s.topP) break;
      keep[order[j]!] = 0;
    }
    total = 0;
    for (let i = 0; i < V; i++) if (keep[i]) total += p[i]!;
  }
  let u = random() * total;
  let last = 0;
  for (let i = 0; i < V; i++) {
    if (!keep[i]) continue;
    last = i;
    u -= p[i]!;
    if (u < 0) return i;
  }
  return last;
}

function eosOf(model: CausalLM): number[] {
  const v = model.generationConfig?.eos_token_id ?? model.config.eos_token_id;
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

/** The model's next-token logits [1,V] after the prompt, and how to feed it one more token. */
interface Decoder {
  logits: Tensor;
  next(token: number): Tensor;
  dispose(): void;
}

/** How one kind of model starts from a prompt [1,T] and takes one more token [1] (the old state is spent). */
interface Recurrence<S> {
  start(ids: Tensor): { logits: Tensor; state: S };
  next(token: Tensor, state: S): { logits: Tensor; state: S };
  free(state: S): void;
}

function recurrence(model: CausalLM): Recurrence<RWKV4State> | Recurrence<LlamaCache> {
  if (model instanceof RWKV4Model) {
    const rwkv: Recurrence<RWKV4State> = {
      start: (ids) => model.prefill(ids),
      next: (token, state) => {
        const r = model.step(token, state);
        disposeRWKV4State(state);
        return r;
      },
      free: disposeRWKV4State,
    };
    return rwkv;
  }
  const llama: Recurrence<LlamaCache> = {
    start: (ids) => {
      const r = model.prefill(ids);
      return { logits: r.logits, state: r.cache };
    },
    next: (token, cache) => {
      const r = model.decode(token, cache); // disposes what the new cache does not reuse
      return { logits: r.logits, state: r.cache };
    },
    free: disposeLlamaCache,
  };
  return llama;
}

function openDecoder<S>(steps: Recurrence<S>, prompt: Int32Array, device: Device): Decoder {
  const ids = tensor(prompt, { shape: [1, prompt.length], device });
  let { logits, state } = steps.start(ids);
  ids.dispose();
  return {
    logits,
    next: (token: number) => {
      const t = tensor(Int32Array.of(token), { device });
      const r = steps.next(t, state);
      t.dispose();
      logits.dispose();
      ({ logits, state } = r);
      return logits;
    },
    dispose: () => {
      logits.dispose();
      steps.free(state);
    },
  };
}

export function generate(model: CausalLM, opts: GenerateOptions): AsyncIterable<number> {
  const fn = 'generate';
  if (!(model instanceof RWKV4Model) && !(model instanceof LlamaModel)) {
    throw new TypeError(`${fn}: model must be an nn.RWKV4Model or nn.LlamaModel (what hub.loadModel returns)`);
  }
  if (opts === undefined) throw new TypeError(`${fn}: options are required`);
  checkOptions(opts, fn, ['inputIds', 'maxNewTokens', 'temperature', 'topK', 'topP', 'seed', 'stopTokenIds']);
  const vocab = model instanceof RWKV4Model ? model.vocabSize : model.options.vocabSize;
  const ids = opts.inputIds;
  if (!(ids instanceof Int32Array) && !Array.isArray(ids)) {
    throw new TypeError(`${fn}: inputIds must be an Int32Array or an array of numbers`);
  }
  if (ids.length === 0) throw new RangeError(`${fn}: inputIds must hold at least one token`);
  const prompt = Int32Array.from(ids, (v, i) => checkInteger(v, fn, `inputIds[${i}]`, 0, vocab - 1));
  const maxNewTokens = checkInteger(opts.maxNewTokens, fn, 'maxNewTokens', 0);
  const temperature = opts.temperature === undefined ? 1 : checkFinite(opts.temperature, fn, 'temperature');
  if (!(temperature >= 0)) throw new RangeError(`${fn}: temperature must be >= 0, got ${temperature}`);
  const topK = opts.topK === undefined ? 0 : checkInteger(opts.topK, fn, 'topK', 0);
  const topP = opts.topP === undefined ? 1 : checkFinite(opts.topP, fn, 'topP');
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`${fn}: topP must be in (0, 1], got ${topP}`);
  const seed = opts.seed === undefined ? 0 : checkInteger(opts.seed, fn, 'seed', 0, 2 ** 32 - 1);
  if (opts.stopTokenIds !== undefined && !Array.isArray(opts.stopTokenIds)) {
    throw new TypeError(`${fn}: stopTokenIds must be an array of token ids`);
  }
  const stop = new Set(
    opts.stopTokenIds === undefined
      ? eosOf(model)
      : opts.stopTokenIds.map((v, i) => checkInteger(v, fn, `stopTokenIds[${i}]`, 0)),
  );
  const sampling = { temperature, topK, topP };

  async function* run(): AsyncGenerator<number> {
    if (maxNewTokens === 0) return;
    const random = mulberry32(seed);
    const decoder = openDecoder(recurrence(model) as Recurrence<unknown>, prompt, model.head.weight.device);
    try {
      let logits = decoder.logits;
      for (let n = 0; n < maxNewTokens; n++) {
        const token = sampleToken(await logits.data(), sampling, random);
        yield token;
        if (stop.has(token) || n === maxNewTokens - 1) return;
        logits = decoder.next(token);
      }
    } finally {
      decoder.dispose();
    }
  }
  return run();
}
