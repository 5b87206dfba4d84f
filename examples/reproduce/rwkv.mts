// Reproduction of RWKV's central claim ("RWKV: Reinventing RNNs for the
// Transformer Era", Peng et al. 2023) at small scale:
//   1. the parallel (training) form `forward` and the recurrent (decoding)
//      form `step` of RWKV-4 compute the same function: max |difference| of
//      their logits over a long sequence, in float32 and float64;
//   2. the cost of generating a token with `step` does not depend on how
//      long the context is, while a softmax-attention decoder of the same
//      width and depth must attend over its whole context for every token:
//      ms per generated token at contexts of 256 to 16k tokens.
//
// The attention baseline is a pre-LayerNorm causal Transformer (same d, same
// number of layers, 4 heads, SiLU MLP of 4d, no positional encoding — it does
// not change the cost) decoded with a key/value cache built from lmk ops.
// The cache has two parts so that it is not copied for every token: a large
// part (keys stored transposed, [H, D, T]) that grows by concatenation every
// 256 tokens, and a small part of the latest < 256 tokens that grows every
// token. Each token: project q, k, v; scores = q·K over both parts; the
// softmax's normaliser is the log-sum-exp that lmk.losses.crossEntropy
// returns (numerically stable); output = p·V over both parts. It is checked
// against the same model run in parallel with lmk.fam.blockAttention in its
// plain-BSWA form with one block holding every token (blockSize ≥ T,
// memoryBlocks 0, no FAM), which is exactly causal softmax attention.
// Both models have random weights: cost does not depend on the values.
//
//   npx tsx examples/reproduce/rwkv.mts [--contexts 256,1024,4096,16384] [--out FILE.json] [--smoke] [--help]
import { writeFileSync } from 'node:fs';
import * as lmk from 'lmkernels';
import { integerFlag, parseFlags, usageError } from '../lib/cli.mts';
import { SHAKESPEARE, loadBytes } from '../lib/data.mts';
import { ProgressBar } from '../lib/progress.mts';
import { parameterCount } from '../lib/train.mts';

const FULL = {
  dModel: 128,
  layers: 2,
  heads: 4,
  contexts: [256, 1024, 4096, 16384],
  window: 64,
  agreeT: 4096,
  attnCheckT: 512,
  chunk: 256,
};
const SMOKE = { dModel: 32, layers: 1, heads: 2, contexts: [16, 64], window: 4, agreeT: 64, attnCheckT: 40, chunk: 16 };

const HELP = `Usage: npx tsx examples/reproduce/rwkv.mts [options]

Checks that RWKV-4's parallel forward and recurrent step agree, then times
one generated token at growing context lengths for RWKV-4 (step) and for a
softmax-attention Transformer of the same size (KV-cache decoding).

  --contexts LIST  context lengths (default ${FULL.contexts.join(',')})
  --d-model N      width of both models (default ${FULL.dModel})
  --layers N       layers of both models (default ${FULL.layers})
  --window N       tokens timed at each context length (median reported; default ${FULL.window})
  --out FILE       also write the results as JSON (agreement checks and times per context length)
  --smoke          a tiny, fast configuration (for CI)
  --help           this text
`;

function options() {
  const values = parseFlags('rwkv', HELP, {
    contexts: { type: 'string' },
    'd-model': { type: 'string' },
    layers: { type: 'string' },
    window: { type: 'string' },
    out: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  });
  const base = values.smoke ? SMOKE : FULL;
  const int = (name: 'd-model' | 'layers' | 'window', fallback: number) =>
    integerFlag('rwkv', name, values[name], fallback);
  const contexts = values.contexts === undefined ? base.contexts : values.contexts.split(',').map(Number);
  if (!contexts.every((n) => Number.isInteger(n) && n >= 1)) {
    usageError('rwkv', `--contexts must be positive integers separated by commas, got '${values.contexts}'`);
  }
  return {
    ...base,
    smoke: values.smoke,
    contexts: contexts.sort((a, b) => a - b),
    dModel: int('d-model', base.dModel),
    layers: int('layers', base.layers),
    window: int('window', base.window),
    out: values.out,
  };
}

const device = 'cpu';
const ops = lmk.ops;

/** One attention layer's modules. */
interface AttentionLayer {
  ln1: lmk.nn.LayerNorm;
  ln2: lmk.nn.LayerNorm;
  q: lmk.nn.Linear;
  k: lmk.nn.Linear;
  v: lmk.nn.Linear;
  o: lmk.nn.Linear;
  up: lmk.nn.Linear;
  down: lmk.nn.Linear;
}

/** One layer's key/value cache: keys stored transposed ([H, D, T]), values [H, T, D]. */
interface LayerCache {
  kBig: lmk.Tensor | null;
  vBig: lmk.Tensor | null;
  kSmall: lmk.Tensor | null;
  vSmall: lmk.Tensor | null;
}

interface KVCache {
  /** Tokens read so far. */
  t: number;
  /** The small part moves into the big one when it holds this many tokens. */
  chunk: number;
  layers: LayerCache[];
}

/** A causal softmax-attention Transformer (pre-LN, H heads, SiLU MLP 4d), random weights. */
class AttentionModel {
  readonly vocabSize: number;
  readonly dModel: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly headDim: number;
  readonly emb: lmk.nn.Embedding;
  readonly layers: AttentionLayer[];
  readonly lnOut: lmk.nn.LayerNorm;
  readonly head: lmk.nn.Linear;

  constructor({
    vocabSize,
    dModel,
    nLayers,
    nHeads,
    seed,
  }: {
    vocabSize: number;
    dModel: number;
    nLayers: number;
    nHeads: number;
    seed: number;
  }) {
    this.vocabSize = vocabSize;
    this.dModel = dModel;
    this.nLayers = nLayers;
    this.nHeads = nHeads;
    this.headDim = dModel / nHeads;
    const lin = (i: number, o: number, s: number) =>
      new lmk.nn.Linear(i, o, { bias: false, device, seed: seed * 1000 + s });
    this.emb = new lmk.nn.Embedding(vocabSize, dModel, { device, seed, std: 0.02 * 50 });
    this.layers = Array.from({ length: nLayers }, (_, l) => ({
      ln1: new lmk.nn.LayerNorm(dModel, { device }),
      ln2: new lmk.nn.LayerNorm(dModel, { device }),
      q: lin(dModel, dModel, 10 * l + 1),
      k: lin(dModel, dModel, 10 * l + 2),
      v: lin(dModel, dModel, 10 * l + 3),
      o: lin(dModel, dModel, 10 * l + 4),
      up: lin(dModel, 4 * dModel, 10 * l + 5),
      down: lin(4 * dModel, dModel, 10 * l + 6),
    }));
    this.lnOut = new lmk.nn.LayerNorm(dModel, { device });
    this.head = lin(dModel, vocabSize, 999);
  }

  parameters(): lmk.Tensor[] {
    return [this.emb, ...this.layers.flatMap((l) => Object.values(l)), this.lnOut, this.head].flatMap((m) =>
      m.parameters(),
    );
  }

  mlp(l: AttentionLayer, x: lmk.Tensor): lmk.Tensor {
    return ops.add(x, l.down.forward(ops.silu(l.up.forward(l.ln2.forward(x)))));
  }

  /** tokens [1,T] → logits [1,T,V], in parallel: causal attention = plain BSWA with one block (blockSize T, memoryBlocks 0). */
  forward(tokens: lmk.Tensor): lmk.Tensor {
    const T = tokens.shape[1]!,
      H = this.nHeads,
      D = this.headDim;
    let x = this.emb.forward(tokens);
    for (const l of this.layers) {
      const h = l.ln1.forward(x);
      const heads = (t: lmk.Tensor) => ops.transpose(ops.reshape(t, [1, T, H, D]), 1, 2); // [1,H,T,D]
      const { out } = lmk.fam.blockAttention({
        q: heads(l.q.forward(h)),
        k: heads(l.k.forward(h)),
        v: heads(l.v.forward(h)),
        blockSize: T,
        memoryBlocks: 0,
      });
      x = ops.add(x, l.o.forward(ops.reshape(ops.transpose(out, 1, 2), [1, T, this.dModel])));
      x = this.mlp(l, x);
    }
    return this.head.forward(this.lnOut.forward(x));
  }

  /** An empty key/value cache per layer: big part (grown every `chunk` tokens) and small part (every token). */
  emptyCache(chunk: number): KVCache {
    return { t: 0, chunk, layers: this.layers.map(() => ({ kBig: null, vBig: null, kSmall: null, vSmall: null })) };
  }

  /** One token (tokens [1] int32) with the cache → logits [1,V]; the cache is updated in place (its tensors are kept). */
  step(tokens: lmk.Tensor, cache: KVCache): lmk.Tensor {
    const H = this.nHeads,
      D = this.headDim,
      C = this.dModel,
      scale = 1 / Math.sqrt(D);
    return lmk.noGrad(() =>
      lmk.tidy(() => {
        let x = this.emb.forward(tokens); // [1,C]
        this.layers.forEach((l, i) => {
          const c = cache.layers[i]!;
          const h = l.ln1.forward(x);
          const q = ops.reshape(l.q.forward(h), [H, 1, D]);
          const kT = ops.reshape(l.k.forward(h), [H, D, 1]); // keys stored transposed: [H, D, T]
          const v = ops.reshape(l.v.forward(h), [H, 1, D]);
          const grow = (old: lmk.Tensor | null, t: lmk.Tensor, dim: number) => {
            const n = old ? ops.concat([old, t], dim) : ops.reshape(t, t.shape);
            lmk.keep(n);
            old?.dispose();
            return n;
          };
          c.kSmall = grow(c.kSmall, kT, 2);
          c.vSmall = grow(c.vSmall, v, 1);
          const parts = [c.kBig, c.kSmall].filter((k): k is lmk.Tensor => k !== null);
          const scores = ops.scale(
            parts.length === 1
              ? ops.matmul(q, parts[0]!)
              : ops.concat(
                  parts.map((k) => ops.matmul(q, k)),
                  2,
                ),
            scale,
          ); // [H,1,T]
          const T = scores.shape[2]!;
          const { lse } = lmk.losses.crossEntropy({
            logits: ops.reshape(scores, [H, T]),
            labels: lmk.zeros([H], { dtype: 'int32', device }),
            reduction: 'none',
            computeGrad: false,
          });
          const p = ops.exp(ops.sub(scores, ops.reshape(lse, [H, 1, 1])));
          let att: lmk.Tensor;
          if (c.kBig && c.vBig) {
            const Tb = c.kBig.shape[2]!;
            att = ops.add(ops.matmul(ops.slice(p, 2, 0, Tb), c.vBig), ops.matmul(ops.slice(p, 2, Tb, T), c.vSmall));
          } else att = ops.matmul(p, c.vSmall); // [H,1,D]
          x = ops.add(x, l.o.forward(ops.reshape(att, [1, C])));
          x = this.mlp(l, x);
          if (c.kSmall.shape[2] === cache.chunk) {
            // move the small part into the big one
            c.kBig = grow(c.kBig, c.kSmall, 2);
            c.vBig = grow(c.vBig, c.vSmall, 1);
            c.kSmall.dispose();
            c.vSmall.dispose();
            c.kSmall = c.vSmall = null;
          }
        });
        cache.t++;
        return this.head.forward(this.lnOut.forward(x));
      }),
    );
  }

  disposeCache(cache: KVCache): void {
    for (const c of cache.layers) for (const t of Object.values(c)) t?.dispose();
  }
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
const maxOf = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};

/** Logits of every position by forward (parallel) and by step (recurrent), max |difference|. */
/** Agreement of two ways to compute the same logits: max |difference| and max |logit| over T tokens. */
interface Agreement {
  diff: number;
  scale: number;
  T: number;
}

async function rwkvAgreement(
  dtype: lmk.DType,
  tokens: Int32Array,
  o: { dModel: number; layers: number },
): Promise<Agreement> {
  const model = new lmk.nn.RWKV4Model({ vocabSize: 256, dModel: o.dModel, nLayers: o.layers, device, dtype, seed: 7 });
  const T = tokens.length;
  const par = lmk.noGrad(() => model.forward(lmk.tensor(tokens, { shape: [1, T], device })));
  const parallel = await par.data();
  par.dispose();
  const V = 256;
  let state: lmk.RWKV4State | undefined,
    diff = 0;
  for (let t = 0; t < T; t++) {
    const input = lmk.tensor(tokens.subarray(t, t + 1), { device });
    const r = model.step(input, state);
    input.dispose();
    if (state) lmk.nn.disposeRWKV4State(state);
    state = r.state;
    const row = await r.logits.data();
    r.logits.dispose();
    diff = Math.max(diff, maxAbs(row, parallel.subarray(t * V, (t + 1) * V)));
  }
  if (state) lmk.nn.disposeRWKV4State(state);
  return { diff, scale: maxOf(parallel), T };
}

/** KV-cache decoding against the parallel blockAttention forward of the same attention model. */
async function attentionAgreement(model: AttentionModel, tokens: Int32Array, chunk: number): Promise<Agreement> {
  const T = tokens.length,
    V = 256;
  const par = lmk.noGrad(() => lmk.tidy(() => model.forward(lmk.tensor(tokens, { shape: [1, T], device }))));
  const parallel = await par.data();
  par.dispose();
  const cache = model.emptyCache(chunk);
  let diff = 0;
  for (let t = 0; t < T; t++) {
    const input = lmk.tensor(tokens.subarray(t, t + 1), { device });
    const logits = model.step(input, cache);
    input.dispose();
    const row = await logits.data();
    logits.dispose();
    diff = Math.max(diff, maxAbs(row, parallel.subarray(t * V, (t + 1) * V)));
  }
  model.disposeCache(cache);
  return { diff, scale: maxOf(parallel), T };
}

const median = (xs: Iterable<number>) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/**
 * Feeds tokens one at a time (reading each token's logits, as generation
 * does) until the largest context + window; returns the median ms per token
 * over the `window` tokens that follow each context length.
 */
async function decodeTimes(
  label: string,
  stepFn: (token: number) => lmk.Tensor,
  tokens: Int32Array,
  contexts: number[],
  window: number,
): Promise<{ perContext: number[]; seconds: number }> {
  const total = contexts.at(-1)! + window;
  const times = new Float64Array(total);
  const bar = new ProgressBar(total, { label: `  ${label.padEnd(10)} ` });
  const start = performance.now();
  for (let t = 0; t < total; t++) {
    const t0 = performance.now();
    const logits = stepFn(tokens[t % tokens.length]!);
    await logits.data();
    logits.dispose();
    times[t] = performance.now() - t0;
    if ((t & 255) === 0 || t === total - 1) bar.update(t + 1, { 'ms/token': times[t]!.toFixed(2) });
  }
  bar.finish();
  return {
    perContext: contexts.map((n) => median(times.subarray(n, n + window))),
    seconds: (performance.now() - start) / 1000,
  };
}

async function main() {
  const o = options();
  const wall = performance.now();
  const info = lmk.backendInfo();
  const text = loadBytes(SHAKESPEARE);
  const maxContext = o.contexts.at(-1)!;
  const tokens = Int32Array.from(text.subarray(0, Math.max(o.agreeT, maxContext + o.window)));
  console.log(
    `RWKV reproduction (Peng et al. 2023), lmkernels ${info.version}, cpu (${info.cpu.threads} threads, GEMM ${info.gemm.cpu})${o.smoke ? '  [smoke]' : ''}`,
  );

  // 1. parallel forward = recurrent step.
  const agree: (Agreement & { dtype: lmk.DType })[] = [];
  for (const dtype of ['float32', 'float64'] as const)
    agree.push({ dtype, ...(await rwkvAgreement(dtype, tokens.subarray(0, o.agreeT), o)) });
  const rwkv = new lmk.nn.RWKV4Model({ vocabSize: 256, dModel: o.dModel, nLayers: o.layers, device, seed: 1 });
  const attn = new AttentionModel({ vocabSize: 256, dModel: o.dModel, nLayers: o.layers, nHeads: o.heads, seed: 1 });
  const attnCheck = await attentionAgreement(attn, tokens.subarray(0, o.attnCheckT), o.chunk);
  console.log(
    `  models     d ${o.dModel}, ${o.layers} layers: RWKV-4 ${(parameterCount(rwkv) / 1e6).toFixed(3)}M parameters, attention (${o.heads} heads) ${(parameterCount(attn) / 1e6).toFixed(3)}M`,
  );
  console.log();
  console.log('| check | tokens | max abs difference of logits | max abs logit |');
  console.log('| --- | --- | --- | --- |');
  for (const a of agree)
    console.log(
      `| RWKV-4 forward (parallel) vs step (recurrent), ${a.dtype} | ${a.T} | ${a.diff.toExponential(2)} | ${a.scale.toFixed(3)} |`,
    );
  console.log(
    `| attention baseline: KV-cache decoding vs parallel fam.blockAttention, float32 | ${attnCheck.T} | ${attnCheck.diff.toExponential(2)} | ${attnCheck.scale.toFixed(3)} |`,
  );
  console.log();

  // 2. ms per generated token by context length.
  const decoding: { state?: lmk.RWKV4State } = {};
  const rwkvStep = (token: number) => {
    const input = lmk.tensor(Int32Array.of(token), { device });
    const r = rwkv.step(input, decoding.state);
    input.dispose();
    if (decoding.state) lmk.nn.disposeRWKV4State(decoding.state);
    decoding.state = r.state;
    return r.logits;
  };
  const cache = attn.emptyCache(o.chunk);
  const attnStep = (token: number) => {
    const input = lmk.tensor(Int32Array.of(token), { device });
    const logits = attn.step(input, cache);
    input.dispose();
    return logits;
  };
  const r = await decodeTimes('RWKV-4', rwkvStep, tokens, o.contexts, o.window);
  if (decoding.state) lmk.nn.disposeRWKV4State(decoding.state);
  const a = await decodeTimes('attention', attnStep, tokens, o.contexts, o.window);
  attn.disposeCache(cache);
  console.log();
  console.log(
    `| context (tokens) | RWKV-4 step (ms/token) | softmax attention, KV cache (ms/token) | attention / RWKV |`,
  );
  console.log('| --- | --- | --- | --- |');
  o.contexts.forEach((n, i) =>
    console.log(
      `| ${n} | ${r.perContext[i]!.toFixed(3)} | ${a.perContext[i]!.toFixed(3)} | ${(a.perContext[i]! / r.perContext[i]!).toFixed(2)} |`,
    ),
  );
  console.log();
  const growth = (xs: number[]) => (xs.at(-1)! / xs[0]!).toFixed(2);
  console.log(
    `  from ${o.contexts[0]} to ${maxContext} tokens of context: RWKV-4 ×${growth(r.perContext)}, attention ×${growth(a.perContext)} per token`,
  );
  console.log(
    `  decoding ${maxContext + o.window} tokens took ${r.seconds.toFixed(1)} s (RWKV-4) and ${a.seconds.toFixed(1)} s (attention); median of ${o.window} tokens after each context length`,
  );
  const wallSeconds = (performance.now() - wall) / 1000;
  console.log(`  wall time ${wallSeconds.toFixed(0)} s`);
  if (o.out) {
    const { out, ...config } = o;
    const result = {
      config,
      parameters: { rwkv4: parameterCount(rwkv), attention: parameterCount(attn) },
      agreement: { rwkv4: agree, attention: { dtype: 'float32', ...attnCheck } },
      decoding: o.contexts.map((context, i) => ({
        context,
        rwkv4MsPerToken: r.perContext[i],
        attentionMsPerToken: a.perContext[i],
      })),
      decodingSeconds: { rwkv4: r.seconds, attention: a.seconds },
      wallSeconds,
    };
    writeFileSync(out, JSON.stringify(result, null, 1) + '\n');
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
