// Llama-family decoder (transformers' LlamaForCausalLM, and Mistral and Qwen2,
// which differ only in config): embedding → per layer
//   h = x + o_proj(attention(rope(q_proj(rmsnorm(x))), rope(k_proj(·)), v_proj(·)))
//   y = h + down_proj(silu(gate_proj(rmsnorm(h))) · up_proj(rmsnorm(h)))
// → RMSNorm → lm_head (tied to the embedding or not). Grouped-query attention:
// query head h reads key/value head floor(h / (H / Hkv)).
//
// RoPE pairing: transformers rotates the pairs (x[i], x[i + D/2]) of each head
// (rotate_half); ops.rope and the tables below rotate (x[2i], x[2i+1]). The two
// differ by a fixed permutation of each head's features, which leaves q·k
// unchanged when applied to both q and k. So q_proj/k_proj rows (and biases)
// are held here in the interleaved order, and lib/hub permutes them when it
// reads or writes Hugging Face files; v and everything else are untouched.
//
// Without `fam`, attention is full causal (fam.blockAttention with one block
// covering the sequence and no memory: exact). With `fam`, the same weights run
// as a TransformerFAM (docs/kernels.md#fam): block attention over `blockSize`
// blocks with `memoryBlocks` blocks of memory, and a feedback memory of
// `famLength` tokens per layer that each block updates through the layer's own
// attention and MLP; its initial value (`fam_init`) is the only new weight.
import { randn, tensor, zeros } from '../creation';
import { Tensor, checkTensor } from '../tensor';
import { checkInteger, checkFinite, checkOptions } from '../validate';
import * as ops from '../autograd/ops';
import { noGrad } from '../autograd/engine';
import { keep, tidy } from '../scope';
import { Module } from './module';
import { Embedding, Linear, RMSNorm, layerPlacement, subSeed, type LayerOptions } from './layers';

/** transformers' rope_scaling of type 'llama3' (Llama 3.1 and later). */
export interface LlamaRopeScaling {
  ropeType: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface LlamaFamOptions {
  blockSize: number;
  memoryBlocks: number;
  famLength: number;
}

export interface LlamaOptions extends LayerOptions {
  vocabSize: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  /** Key/value heads (grouped-query attention); default nHeads. */
  nKvHeads?: number;
  /** Default dModel / nHeads. */
  headDim?: number;
  intermediateSize: number;
  /** Default 1e-6. */
  rmsNormEps?: number;
  /** RoPE base; default 10000. */
  ropeTheta?: number;
  ropeScaling?: LlamaRopeScaling | null;
  /** lm_head shares the embedding's weight; default false. */
  tieWordEmbeddings?: boolean;
  /** Biases on q_proj, k_proj, v_proj (Qwen2; Llama's attention_bias). */
  qkvBias?: boolean;
  /** Bias on o_proj (Llama's attention_bias). */
  outputBias?: boolean;
  /** Biases in the MLP (Llama's mlp_bias). */
  mlpBias?: boolean;
  fam?: LlamaFamOptions;
}

/** Per layer, what decoding the next token needs (tensors [B,Hkv,n,D], keys RoPE'd). */
export interface LlamaLayerCache {
  /** Keys/values of the tokens since the last completed FAM block (all tokens without FAM); null when none. */
  k: Tensor | null;
  v: Tensor | null;
  /** FAM only: the memory segment (the last memoryBlocks complete blocks). */
  memK: Tensor | null;
  memV: Tensor | null;
  /** FAM only: the FAM entering the current block [B,F,C] and its keys/values. */
  fam: Tensor | null;
  famK: Tensor | null;
  famV: Tensor | null;
}

export interface LlamaCache {
  layers: LlamaLayerCache[];
  /** Position of the next token. */
  position: number;
}

/** transformers' _compute_llama3_parameters, in float32 as it computes them. */
function llama3InvFreq(headDim: number, theta: number, s: LlamaRopeScaling): Float64Array {
  const f = Math.fround;
  const out = new Float64Array(headDim / 2);
  const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < headDim / 2; i++) {
    const invFreq = f(1 / f(theta ** f((2 * i) / headDim)));
    const wavelen = (2 * Math.PI) / invFreq;
    let v = wavelen > lowFreqWavelen ? invFreq / s.factor : invFreq;
    if (!(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen)) {
      const smooth =
        (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      v = (1 - smooth) * (v / s.factor) + smooth * v;
    }
    out[i] = f(v);
  }
  return out;
}

/** RoPE on [B,heads,N,D] at explicit positions, pairs (2i, 2i+1) (see the file comment). */
class Rotary {
  private readonly invFreq: Float64Array | null;
  /** The last few tables of more than 16 positions (every layer's q and k of a forward share them). */
  private readonly tables = new Map<string, { cos: Tensor; sin: Tensor }>();
  constructor(
    readonly headDim: number,
    readonly theta: number,
    scaling: LlamaRopeScaling | null,
  ) {
    this.invFreq = scaling ? llama3InvFreq(headDim, theta, scaling) : null;
  }

  /** cos and signed sin tables [N,D] of `positions` (see apply), cached by positions, dtype and device. */
  private table(positions: number[], x: Tensor): { cos: Tensor; sin: Tensor } {
    const contiguous = positions.every((p, t) => p === positions[0]! + t);
    const key = `${x.dtype} ${x.device} ${contiguous ? `${positions[0]}+${positions.length}` : positions.join(',')}`;
    const hit = this.tables.get(key);
    if (hit && !hit.cos.isDisposed) return hit;
    const D = this.headDim,
      N = positions.length;
    const cos = new Float64Array(N * D),
      sin = new Float64Array(N * D);
    positions.forEach((p, t) => {
      for (let i = 0; i < D / 2; i++) {
        const angle = Math.fround(p * this.invFreq![i]!);
        cos[t * D + 2 * i] = cos[t * D + 2 * i + 1] = Math.cos(angle);
        sin[t * D + 2 * i] = -Math.sin(angle);
        sin[t * D + 2 * i + 1] = Math.sin(angle);
      }
    });
    const opts = { shape: [N, D], dtype: x.dtype, device: x.device };
    // A few positions (a decoding step, a FAM) are cheaper to remake than to cache.
    if (N <= 16) return { cos: tensor(cos, opts), sin: tensor(sin, opts) };
    const made = { cos: keep(tensor(cos, opts)), sin: keep(tensor(sin, opts)) };
    if (this.tables.size >= 8) {
      const [oldest, old] = this.tables.entries().next().value as [string, { cos: Tensor; sin: Tensor }];
      this.tables.delete(oldest);
      old.cos.dispose();
      old.sin.dispose();
    }
    this.tables.set(key, made);
    return made;
  }

  apply(x: Tensor, positions: number[]): Tensor {
    if (!this.invFreq)
      return ops.rope(x, tensor(Int32Array.from(positions), { device: x.device }), { base: this.theta });
    // Scaled frequencies: y = x·cos + swap(x)·sin with swap(x)[2i] = x[2i+1],
    // swap(x)[2i+1] = x[2i], and sin's sign −, + on the two halves of a pair.
    const { cos, sin } = this.table(positions, x);
    const pairs = ops.reshape(x, [...x.shape.slice(0, -1), this.headDim / 2, 2]);
    const last = pairs.shape.length - 1;
    const swapped = ops.reshape(
      ops.concat([ops.slice(pairs, last, 1, 2), ops.slice(pairs, last, 0, 1)], last),
      x.shape,
    );
    return ops.add(ops.mul(x, cos), ops.mul(swapped, sin));
  }

  dispose(): void {
    for (const t of this.tables.values()) [t.cos, t.sin].forEach((u) => u.dispose());
    this.tables.clear();
  }
}

export class LlamaAttention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;
  constructor(o: ResolvedOptions, opts: LayerOptions) {
    super();
    const lin = (k: number, inF: number, out: number, bias: boolean) =>
      new Linear(inF, out, { ...opts, bias, seed: subSeed(opts.seed, k) });
    const { dModel: C, nHeads: H, nKvHeads: Hkv, headDim: D } = o;
    this.qProj = this.registerModule('q_proj', lin(1, C, H * D, o.qkvBias));
    this.kProj = this.registerModule('k_proj', lin(2, C, Hkv * D, o.qkvBias));
    this.vProj = this.registerModule('v_proj', lin(3, C, Hkv * D, o.qkvBias));
    this.oProj = this.registerModule('o_proj', lin(4, H * D, C, o.outputBias));
  }
}

export class LlamaMLP extends Module {
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;
  constructor(o: ResolvedOptions, opts: LayerOptions) {
    super();
    const { dModel: C, intermediateSize: I, mlpBias: bias } = o;
    this.gateProj = this.registerModule('gate_proj', new Linear(C, I, { ...opts, bias, seed: subSeed(opts.seed, 1) }));
    this.upProj = this.registerModule('up_proj', new Linear(C, I, { ...opts, bias, seed: subSeed(opts.seed, 2) }));
    this.downProj = this.registerModule('down_proj', new Linear(I, C, { ...opts, bias, seed: subSeed(opts.seed, 3) }));
  }
  forward(x: Tensor): Tensor {
    return this.downProj.forward(ops.mul(ops.silu(this.gateProj.forward(x)), this.upProj.forward(x)));
  }
}

type ResolvedOptions = Required<Omit<LlamaOptions, 'device' | 'dtype' | 'seed' | 'fam' | 'ropeScaling'>> & {
  ropeScaling: LlamaRopeScaling | null;
  fam: LlamaFamOptions | null;
};

const EMPTY_LAYER_CACHE: LlamaLayerCache = {
  k: null,
  v: null,
  memK: null,
  memV: null,
  fam: null,
  famK: null,
  famV: null,
};

function cat(parts: (Tensor | null)[], dim: number): Tensor | null {
  const present = parts.filter((t): t is Tensor => t !== null);
  if (present.length === 0) return null;
  return present.length === 1 ? present[0]! : ops.concat(present, dim);
}

export class LlamaDecoderLayer extends Module {
  readonly inputLayernorm: RMSNorm;
  readonly selfAttn: LlamaAttention;
  readonly postAttentionLayernorm: RMSNorm;
  readonly mlp: LlamaMLP;
  /** FAM only: the learned initial FAM [famLength, dModel]. */
  readonly famInit: Tensor | null;

  constructor(
    private readonly o: ResolvedOptions,
    private readonly rotary: Rotary,
    opts: LayerOptions,
  ) {
    super();
    const norm = { device: opts.device, dtype: opts.dtype, eps: o.rmsNormEps };
    this.selfAttn = this.registerModule('self_attn', new LlamaAttention(o, { ...opts, seed: subSeed(opts.seed, 1) }));
    this.mlp = this.registerModule('mlp', new LlamaMLP(o, { ...opts, seed: subSeed(opts.seed, 2) }));
    this.inputLayernorm = this.registerModule('input_layernorm', new RMSNorm(o.dModel, norm));
    this.postAttentionLayernorm = this.registerModule('post_attention_layernorm', new RMSNorm(o.dModel, norm));
    if (o.fam) {
      const { device, dtype } = layerPlacement(opts, 'nn.LlamaModel');
      this.famInit = this.registerParameter(
        'fam_init',
        randn([o.fam.famLength, o.dModel], { device, dtype, seed: subSeed(opts.seed, 3), std: 0.02 }),
      );
    } else {
      this.famInit = null;
    }
  }

  /** [B,N,C] → [B,heads,N,D], RoPE'd at `positions` unless null. */
  private heads(x: Tensor, proj: Linear, count: number, positions: number[] | null): Tensor {
    const [B, N] = [x.shape[0]!, x.shape[1]!];
    const h = ops.transpose(ops.reshape(proj.forward(x), [B, N, count, this.o.headDim]), 1, 2);
    return positions ? this.rotary.apply(h, positions) : h;
  }

  private qkv(xn: Tensor, positions: number[]) {
    const a = this.selfAttn;
    return {
      q: this.heads(xn, a.qProj, this.o.nHeads, positions),
      k: this.heads(xn, a.kProj, this.o.nKvHeads, positions),
      v: this.heads(xn, a.vProj, this.o.nKvHeads, null),
    };
  }

  /** Attention output [B,H,N,D] → residual and MLP: the layer's output [B,N,C]. */
  private finish(x: Tensor, attn: Tensor): Tensor {
    const [B, , N] = [attn.shape[0]!, attn.shape[1]!, attn.shape[2]!];
    const merged = ops.reshape(ops.transpose(attn, 1, 2), [B, N, this.o.nHeads * this.o.headDim]);
    const h = ops.add(x, this.selfAttn.oProj.forward(merged));
    return ops.add(h, this.mlp.forward(this.postAttentionLayernorm.forward(h)));
  }

  /** Positions of the F FAM tokens entering the block that starts at `blockStart`. */
  private famPositions(blockStart: number): number[] {
    const F = this.o.fam!.famLength;
    return Array.from({ length: F }, (_, j) => Math.max(0, blockStart - F + j));
  }

  private famKeys(fam: Tensor, blockStart: number) {
    const fn = this.inputLayernorm.forward(fam);
    const pos = this.famPositions(blockStart);
    return {
      fq: this.heads(fn, this.selfAttn.qProj, this.o.nHeads, pos),
      fk: this.heads(fn, this.selfAttn.kProj, this.o.nKvHeads, pos),
      fv: this.heads(fn, this.selfAttn.vProj, this.o.nKvHeads, null),
    };
  }

  /** F_τ from F_{τ-1} (and its q/k/v) and block τ's keys/values. */
  private famUpdate(fam: Tensor, f: { fq: Tensor; fk: Tensor; fv: Tensor }, blockK: Tensor, blockV: Tensor): Tensor {
    const r = ops.famMemoryAttention({ famQ: f.fq, famK: f.fk, famV: f.fv, blockK, blockV });
    r.lse.dispose();
    return this.finish(fam, r.out);
  }

  /** The layer over a whole sequence from position 0; with `wantCache`, what decoding continues from. */
  forward(x: Tensor, wantCache: boolean): { y: Tensor; cache: LlamaLayerCache | null } {
    const [B, T] = [x.shape[0]!, x.shape[1]!];
    const positions = Array.from({ length: T }, (_, t) => t);
    const { q, k, v } = this.qkv(this.inputLayernorm.forward(x), positions);
    if (!this.o.fam) {
      const r = ops.famBlockAttention({ q, k, v, blockSize: Math.max(T, 1), memoryBlocks: 0 });
      r.lse.dispose();
      return { y: this.finish(x, r.out), cache: wantCache ? { ...EMPTY_LAYER_CACHE, k, v } : null };
    }
    const { blockSize: L, memoryBlocks: m, famLength: F } = this.o.fam;
    const { nKvHeads: Hkv, headDim: D } = this.o;
    const NB = Math.ceil(T / L);
    const current = Math.floor(T / L); // the block the next token falls in
    let fam = ops.add(zeros([B, F, this.o.dModel], { dtype: this.famInit!.dtype, device: x.device }), this.famInit!);
    const famKs: Tensor[] = [],
      famVs: Tensor[] = [];
    let entering: { fam: Tensor; fk: Tensor; fv: Tensor } | null = null;
    for (let tau = 0; tau < NB; tau++) {
      const f = this.famKeys(fam, tau * L);
      famKs.push(ops.reshape(f.fk, [B, Hkv, 1, F, D]));
      famVs.push(ops.reshape(f.fv, [B, Hkv, 1, F, D]));
      if (tau === current) entering = { fam, fk: f.fk, fv: f.fv };
      const end = Math.min(T, (tau + 1) * L);
      // The update after a partial last block is read by no token of this sequence.
      if (end - tau * L === L)
        fam = this.famUpdate(fam, f, ops.slice(k, 2, tau * L, end), ops.slice(v, 2, tau * L, end));
    }
    const r = ops.famBlockAttention({
      q,
      k,
      v,
      famK: cat(famKs, 2)!,
      famV: cat(famVs, 2)!,
      blockSize: L,
      memoryBlocks: m,
    });
    r.lse.dispose();
    const y = this.finish(x, r.out);
    if (!wantCache) return { y, cache: null };
    if (!entering) {
      const f = this.famKeys(fam, current * L);
      entering = { fam, fk: f.fk, fv: f.fv };
    }
    const memStart = Math.max(0, (current - m) * L);
    return {
      y,
      cache: {
        k: current * L < T ? ops.slice(k, 2, current * L, T) : null,
        v: current * L < T ? ops.slice(v, 2, current * L, T) : null,
        memK: m > 0 && current > 0 ? ops.slice(k, 2, memStart, current * L) : null,
        memV: m > 0 && current > 0 ? ops.slice(v, 2, memStart, current * L) : null,
        fam: entering.fam,
        famK: entering.fk,
        famV: entering.fv,
      },
    };
  }

  /** One token per sequence at `position`: x [B,1,C] → y [B,1,C] and the next cache. */
  decode(x: Tensor, cache: LlamaLayerCache, position: number): { y: Tensor; cache: LlamaLayerCache } {
    const { q, k, v } = this.qkv(this.inputLayernorm.forward(x), [position]);
    // The new token's query reads, unmasked, its own key and every earlier key it may see.
    const ctxK = cat([cache.memK, cache.famK, cache.k], 2);
    const ctxV = cat([cache.memV, cache.famV, cache.v], 2);
    let attn: Tensor;
    if (ctxK) {
      const r = ops.famMemoryAttention({ famQ: q, famK: k, famV: v, blockK: ctxK, blockV: ctxV! });
      r.lse.dispose();
      attn = r.out;
    } else {
      const r = ops.famBlockAttention({ q, k, v, blockSize: 1, memoryBlocks: 0 });
      r.lse.dispose();
      attn = r.out;
    }
    const y = this.finish(x, attn);
    const blockK = cat([cache.k, k], 2)!;
    const blockV = cat([cache.v, v], 2)!;
    const fam = this.o.fam;
    if (!fam || (position + 1) % fam.blockSize !== 0) return { y, cache: { ...cache, k: blockK, v: blockV } };
    // The block is complete: F_τ from F_{τ-1}, the memory segment moves on.
    const blockStart = position + 1 - fam.blockSize;
    const f = this.famKeys(cache.fam!, blockStart);
    const next = this.famUpdate(cache.fam!, { fq: f.fq, fk: cache.famK!, fv: cache.famV! }, blockK, blockV);
    const nf = this.famKeys(next, position + 1);
    let memK: Tensor | null = null,
      memV: Tensor | null = null;
    if (fam.memoryBlocks > 0) {
      const allK = cat([cache.memK, blockK], 2)!,
        allV = cat([cache.memV, blockV], 2)!;
      const n = allK.shape[2]!,
        keepN = Math.min(n, fam.memoryBlocks * fam.blockSize);
      memK = ops.slice(allK, 2, n - keepN, n);
      memV = ops.slice(allV, 2, n - keepN, n);
    }
    return { y, cache: { k: null, v: null, memK, memV, fam: next, famK: nf.fk, famV: nf.fv } };
  }
}

function cacheTensors(c: LlamaCache): Tensor[] {
  return c.layers.flatMap((l) =>
    [l.k, l.v, l.memK, l.memV, l.fam, l.famK, l.famV].filter((t): t is Tensor => t !== null),
  );
}

export function disposeLlamaCache(cache: LlamaCache): void {
  for (const t of new Set(cacheTensors(cache))) t.dispose();
}

export class LlamaModel extends Module {
  readonly options: Readonly<ResolvedOptions>;
  readonly embedTokens: Embedding;
  readonly layers: LlamaDecoderLayer[];
  readonly norm: RMSNorm;
  readonly head: Linear;
  /** The Hugging Face config fields (what hub.saveModel writes as config.json). */
  config: Record<string, unknown>;
  /** generation_config.json's fields when loaded by hub.loadModel (eos for generate). */
  generationConfig: Record<string, unknown> | undefined;
  private readonly rotary: Rotary;

  constructor(opts: LlamaOptions) {
    super();
    const fn = 'nn.LlamaModel';
    if (opts === undefined) throw new TypeError(`${fn}: options are required`);
    checkOptions(opts, fn, [
      'vocabSize',
      'dModel',
      'nLayers',
      'nHeads',
      'nKvHeads',
      'headDim',
      'intermediateSize',
      'rmsNormEps',
      'ropeTheta',
      'ropeScaling',
      'tieWordEmbeddings',
      'qkvBias',
      'outputBias',
      'mlpBias',
      'fam',
      'device',
      'dtype',
      'seed',
    ]);
    const vocabSize = checkInteger(opts.vocabSize, fn, 'vocabSize', 1);
    const dModel = checkInteger(opts.dModel, fn, 'dModel', 1);
    const nLayers = checkInteger(opts.nLayers, fn, 'nLayers', 1);
    const nHeads = checkInteger(opts.nHeads, fn, 'nHeads', 1);
    const nKvHeads = checkInteger(opts.nKvHeads ?? nHeads, fn, 'nKvHeads', 1);
    if (opts.headDim === undefined && dModel % nHeads !== 0) {
      throw new RangeError(`${fn}: dModel (${dModel}) must be a multiple of nHeads (${nHeads}), or give headDim`);
    }
    const headDim = checkInteger(opts.headDim ?? dModel / nHeads, fn, 'headDim', 2, 256);
    if (headDim % 2 !== 0) throw new RangeError(`${fn}: headDim must be even for RoPE, got ${headDim}`);
    if (nHeads % nKvHeads !== 0) {
      throw new RangeError(`${fn}: nHeads (${nHeads}) must be a multiple of nKvHeads (${nKvHeads})`);
    }
    const bool = (v: unknown, name: string) => {
      if (v === undefined) return false;
      if (typeof v !== 'boolean') throw new TypeError(`${fn}: ${name} must be a boolean, got ${typeof v}`);
      return v;
    };
    let ropeScaling: LlamaRopeScaling | null = null;
    if (opts.ropeScaling) {
      const s = opts.ropeScaling;
      if (s.ropeType !== 'llama3') {
        throw new RangeError(`${fn}: ropeScaling.ropeType must be 'llama3', got ${JSON.stringify(s.ropeType)}`);
      }
      for (const k of ['factor', 'lowFreqFactor', 'highFreqFactor', 'originalMaxPositionEmbeddings'] as const) {
        checkFinite(s[k], fn, `ropeScaling.${k}`);
      }
      ropeScaling = { ...s };
    }
    let fam: LlamaFamOptions | null = null;
    if (opts.fam !== undefined) {
      checkOptions(opts.fam, fn, ['blockSize', 'memoryBlocks', 'famLength'], 'fam');
      fam = {
        blockSize: checkInteger(opts.fam.blockSize, fn, 'fam.blockSize', 1),
        memoryBlocks: checkInteger(opts.fam.memoryBlocks, fn, 'fam.memoryBlocks', 0),
        famLength: checkInteger(opts.fam.famLength, fn, 'fam.famLength', 1),
      };
    }
    this.options = {
      vocabSize,
      dModel,
      nLayers,
      nHeads,
      nKvHeads,
      headDim,
      intermediateSize: checkInteger(opts.intermediateSize, fn, 'intermediateSize', 1),
      rmsNormEps: opts.rmsNormEps === undefined ? 1e-6 : checkFinite(opts.rmsNormEps, fn, 'rmsNormEps'),
      ropeTheta: opts.ropeTheta === undefined ? 10000 : checkFinite(opts.ropeTheta, fn, 'ropeTheta'),
      ropeScaling,
      tieWordEmbeddings: bool(opts.tieWordEmbeddings, 'tieWordEmbeddings'),
      qkvBias: bool(opts.qkvBias, 'qkvBias'),
      outputBias: bool(opts.outputBias, 'outputBias'),
      mlpBias: bool(opts.mlpBias, 'mlpBias'),
      fam,
    };
    const o = this.options;
    const base: LayerOptions = { device: opts.device, dtype: opts.dtype, seed: opts.seed };
    const rotary = new Rotary(headDim, o.ropeTheta, ropeScaling);
    this.rotary = rotary;
    this.embedTokens = this.registerModule(
      'embed_tokens',
      new Embedding(vocabSize, dModel, { ...base, seed: subSeed(opts.seed, 100), std: 0.02 }),
    );
    this.layers = Array.from({ length: nLayers }, (_, i) =>
      this.registerModule(
        `layers.${i}`,
        new LlamaDecoderLayer(o, rotary, { ...base, seed: subSeed(opts.seed, 200 + i) }),
      ),
    );
    this.norm = this.registerModule('norm', new RMSNorm(dModel, { ...base, eps: o.rmsNormEps }));
    if (o.tieWordEmbeddings) {
      // Not registered: its weight is embed_tokens.weight, listed once.
      this.head = new Linear(dModel, vocabSize, { ...base, bias: false, weight: this.embedTokens.weight });
    } else {
      this.head = this.registerModule(
        'lm_head',
        new Linear(dModel, vocabSize, { ...base, bias: false, seed: subSeed(opts.seed, 300) }),
      );
    }
    // transformers' LlamaConfig fields (4.x layout, which 5.x reads too).
    this.config = {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      vocab_size: vocabSize,
      hidden_size: dModel,
      intermediate_size: o.intermediateSize,
      num_hidden_layers: nLayers,
      num_attention_heads: nHeads,
      num_key_value_heads: nKvHeads,
      head_dim: headDim,
      hidden_act: 'silu',
      rms_norm_eps: o.rmsNormEps,
      rope_theta: o.ropeTheta,
      rope_scaling: ropeScaling && {
        rope_type: 'llama3',
        factor: ropeScaling.factor,
        low_freq_factor: ropeScaling.lowFreqFactor,
        high_freq_factor: ropeScaling.highFreqFactor,
        original_max_position_embeddings: ropeScaling.originalMaxPositionEmbeddings,
      },
      max_position_embeddings: 2048,
      tie_word_embeddings: o.tieWordEmbeddings,
      attention_bias: o.qkvBias && o.outputBias,
      mlp_bias: o.mlpBias,
      bos_token_id: 0,
      eos_token_id: 0,
      // Ours (transformers ignores it): hub.loadModel runs the model with FAM again.
      ...(o.fam
        ? { fam: { block_size: o.fam.blockSize, memory_blocks: o.fam.memoryBlocks, fam_length: o.fam.famLength } }
        : {}),
    };
    this.generationConfig = undefined;
  }

  private checkTokens(tokens: Tensor, fn: string): void {
    checkTensor(tokens, fn, 'tokens');
    if (tokens.dtype !== 'int32' || tokens.shape.length !== 2) {
      throw new TypeError(`${fn}: tokens must be int32 [B,T], got ${tokens.dtype} [${tokens.shape.join(',')}]`);
    }
  }

  private run(tokens: Tensor, wantCache: boolean): { hidden: Tensor; caches: LlamaLayerCache[] } {
    let x = this.embedTokens.forward(tokens);
    const caches: LlamaLayerCache[] = [];
    for (const layer of this.layers) {
      const r = layer.forward(x, wantCache);
      x = r.y;
      if (r.cache) caches.push(r.cache);
    }
    return { hidden: this.norm.forward(x), caches };
  }

  /** Disposes the parameters and the cached RoPE tables. */
  override dispose(): void {
    this.rotary.dispose();
    super.dispose();
  }

  /** tokens [B,T] int32 → hidden states [B,T,d] after the final norm (the head's input). */
  hiddenStates(tokens: Tensor): Tensor {
    this.checkTokens(tokens, 'LlamaModel.hiddenStates');
    return this.run(tokens, false).hidden;
  }

  /** tokens [B,T] int32 → logits [B,T,V] */
  forward(tokens: Tensor): Tensor {
    this.checkTokens(tokens, 'LlamaModel.forward');
    return this.head.forward(this.run(tokens, false).hidden);
  }

  /**
   * The prompt tokens [B,T] (T ≥ 1) in one pass, without gradients: the last
   * position's logits [B,V] and the cache that decode() continues from.
   */
  prefill(tokens: Tensor): { logits: Tensor; cache: LlamaCache } {
    const fn = 'LlamaModel.prefill';
    this.checkTokens(tokens, fn);
    const T = tokens.shape[1]!;
    if (T < 1) throw new RangeError(`${fn}: tokens must hold at least one position`);
    return noGrad(() =>
      tidy(() => {
        const { hidden, caches } = this.run(tokens, true);
        const last = ops.slice(hidden, 1, T - 1, T);
        const logits = keep(this.head.forward(ops.reshape(last, [tokens.shape[0]!, this.options.dModel])));
        const cache = { layers: caches, position: T };
        cacheTensors(cache).forEach((t) => keep(t));
        return { logits, cache };
      }),
    );
  }

  /**
   * One token per sequence (tokens [B] int32) after `cache`: logits [B,V] and
   * the next cache. The given cache's tensors that the new one does not reuse
   * are disposed, so pass each cache once.
   */
  decode(tokens: Tensor, cache: LlamaCache): { logits: Tensor; cache: LlamaCache } {
    const fn = 'LlamaModel.decode';
    checkTensor(tokens, fn, 'tokens');
    if (tokens.dtype !== 'int32' || tokens.shape.length !== 1) {
      throw new TypeError(`${fn}: tokens must be int32 [B], got ${tokens.dtype} [${tokens.shape.join(',')}]`);
    }
    if (!cache || !Array.isArray(cache.layers) || cache.layers.length !== this.layers.length) {
      throw new TypeError(`${fn}: cache must come from prefill() or decode() of this model`);
    }
    const B = tokens.shape[0]!;
    const next = noGrad(() =>
      tidy(() => {
        let x = this.embedTokens.forward(ops.reshape(tokens, [B, 1]));
        const layers = this.layers.map((layer, i) => {
          const r = layer.decode(x, cache.layers[i]!, cache.position);
          x = r.y;
          return r.cache;
        });
        const hidden = this.norm.forward(x);
        const logits = keep(this.head.forward(ops.reshape(hidden, [B, this.options.dModel])));
        const out = { layers, position: cache.position + 1 };
        cacheTensors(out).forEach((t) => keep(t));
        return { logits, cache: out };
      }),
    );
    const reused = new Set(cacheTensors(next.cache));
    for (const t of new Set(cacheTensors(cache))) if (!reused.has(t)) t.dispose();
    return next;
  }
}
