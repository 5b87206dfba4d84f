// TransformerFAM ("Feedback attention is working memory", Hwang et al. 2024):
// a pre-norm Transformer whose attention is block sliding-window attention
// plus feedback memory. Per layer (docs/kernels.md#fam):
//   1. q, k, v of every token in parallel (RoPE at the token positions);
//   2. a sequential scan over blocks: the FAM F_{τ-1} (normalised, projected by
//      this layer's own q/k/v weights, RoPE at the positions of the last F
//      tokens of the block it compressed) attends to [F_{τ-1}; block τ] with
//      memoryAttention, then goes through this layer's output projection,
//      residual and feed-forward, giving F_τ; the initial FAM is learned;
//   3. one blockAttention over all blocks, block τ reading the memory segment,
//      F_{τ-1}'s keys/values and itself causally; output projection, residual,
//      feed-forward.
// forward() runs a whole sequence; forwardChunk() runs it a chunk of whole
// blocks at a time with an explicit state (the FAM and the memory segment's
// keys/values per layer), giving the same outputs.
import { zeros } from '../creation';
import { tensor } from '../creation';
import { Tensor, checkTensor } from '../tensor';
import { checkInteger, checkOptions } from '../validate';
import * as ops from '../autograd/ops';
import { keep } from '../scope';
import { Module } from './module';
import { Embedding, Linear, RMSNorm, layerPlacement, subSeed, type LayerOptions } from './layers';
import { randn } from '../creation';

export interface FamModelOptions extends LayerOptions {
  vocabSize: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  nKvHeads?: number;
  blockSize: number;
  memoryBlocks: number;
  famLength: number;
}

/** Per layer: the current FAM [B,F,C] and the memory segment's RoPE'd keys/values [B,Hkv,M,D]. */
export interface FamLayerState {
  fam: Tensor;
  memK: Tensor | null;
  memV: Tensor | null;
}
export interface FamState {
  layers: FamLayerState[];
  /** Position of the next token. */
  position: number;
}

function int32(values: number[]): Tensor {
  return tensor(Int32Array.from(values));
}

class FeedForward extends Module {
  readonly up: Linear;
  readonly down: Linear;
  constructor(dModel: number, opts: LayerOptions) {
    super();
    this.up = this.registerModule(
      'up',
      new Linear(dModel, 4 * dModel, { ...opts, bias: false, seed: subSeed(opts.seed, 1) }),
    );
    this.down = this.registerModule(
      'down',
      new Linear(4 * dModel, dModel, { ...opts, bias: false, seed: subSeed(opts.seed, 2) }),
    );
  }
  forward(x: Tensor): Tensor {
    return this.down.forward(ops.silu(this.up.forward(x)));
  }
}

export class FamTransformerBlock extends Module {
  readonly norm1: RMSNorm;
  readonly norm2: RMSNorm;
  readonly wq: Linear;
  readonly wk: Linear;
  readonly wv: Linear;
  readonly wo: Linear;
  readonly ffn: FeedForward;
  readonly famInit: Tensor;
  readonly headDim: number;

  constructor(
    readonly cfg: Required<
      Pick<FamModelOptions, 'dModel' | 'nHeads' | 'nKvHeads' | 'blockSize' | 'memoryBlocks' | 'famLength'>
    >,
    opts: LayerOptions,
  ) {
    super();
    const { dModel, nHeads, nKvHeads } = cfg;
    this.headDim = dModel / nHeads;
    const lin = (k: number, out: number) =>
      new Linear(dModel, out, { ...opts, bias: false, seed: subSeed(opts.seed, k) });
    this.norm1 = this.registerModule('norm1', new RMSNorm(dModel, opts));
    this.norm2 = this.registerModule('norm2', new RMSNorm(dModel, opts));
    this.wq = this.registerModule('wq', lin(1, nHeads * this.headDim));
    this.wk = this.registerModule('wk', lin(2, nKvHeads * this.headDim));
    this.wv = this.registerModule('wv', lin(3, nKvHeads * this.headDim));
    this.wo = this.registerModule('wo', lin(4, dModel));
    this.ffn = this.registerModule('ffn', new FeedForward(dModel, { ...opts, seed: subSeed(opts.seed, 5) }));
    const { device, dtype } = layerPlacement(opts, 'nn.FamTransformerModel');
    this.famInit = this.registerParameter(
      'famInit',
      randn([cfg.famLength, dModel], { device, dtype, seed: subSeed(opts.seed, 6), std: 0.02 }),
    );
  }

  /** [B,N,C] → [B,heads,N,D] with RoPE at `positions`. */
  private heads(x: Tensor, proj: Linear, count: number, positions: Tensor | null): Tensor {
    const [B, N] = [x.shape[0]!, x.shape[1]!];
    const h = ops.transpose(ops.reshape(proj.forward(x), [B, N, count, this.headDim]), 1, 2);
    return positions ? ops.rope(h, positions) : h;
  }

  private merge(o: Tensor): Tensor {
    const [B, , N] = [o.shape[0]!, o.shape[1]!, o.shape[2]!];
    return ops.reshape(ops.transpose(o, 1, 2), [B, N, this.cfg.nHeads * this.headDim]);
  }

  /** Positions of the F FAM tokens that compressed the block ending before `blockStart`. */
  private famPositions(blockStart: number): Tensor {
    const F = this.cfg.famLength;
    return int32(Array.from({ length: F }, (_, j) => Math.max(0, blockStart - F + j)));
  }

  initialFam(batch: number): Tensor {
    const base = zeros([batch, this.cfg.famLength, this.cfg.dModel], {
      dtype: this.famInit.dtype,
      device: this.famInit.device,
    });
    return ops.add(base, this.famInit);
  }

  /**
   * x [B,T,C] starting at absolute position `start` (a multiple of L), with
   * the FAM entering the first block and the memory segment before it.
   * With `withState: false` (the model's forward) the state after the chunk is
   * not computed: the last FAM update and the memory segment would be recorded
   * for autograd on a branch no loss reaches, holding their saved tensors
   * until the garbage collector found them.
   */
  forward(x: Tensor, state: FamLayerState, start: number): { y: Tensor; state: FamLayerState };
  forward(x: Tensor, state: FamLayerState, start: number, opts: { withState: false }): { y: Tensor; state: null };
  forward(
    x: Tensor,
    state: FamLayerState,
    start: number,
    { withState = true }: { withState?: boolean } = {},
  ): { y: Tensor; state: FamLayerState | null } {
    const { blockSize: L, memoryBlocks: m, nHeads: H, nKvHeads: Hkv } = this.cfg;
    const [B, T] = [x.shape[0]!, x.shape[1]!];
    const positions = int32(Array.from({ length: T }, (_, t) => start + t));
    const xn = this.norm1.forward(x);
    const q = this.heads(xn, this.wq, H, positions);
    const k = this.heads(xn, this.wk, Hkv, positions);
    const v = this.heads(xn, this.wv, Hkv, null);
    const NB = Math.ceil(T / L);

    // The FAM scan over blocks.
    let famState = state.fam;
    const famKs: Tensor[] = [],
      famVs: Tensor[] = [];
    for (let tau = 0; tau < NB; tau++) {
      const blockStart = start + tau * L;
      const famPos = this.famPositions(blockStart);
      const fn = this.norm1.forward(famState);
      const fk = this.heads(fn, this.wk, Hkv, famPos);
      const fv = this.heads(fn, this.wv, Hkv, null);
      famKs.push(ops.reshape(fk, [B, Hkv, 1, this.cfg.famLength, this.headDim]));
      famVs.push(ops.reshape(fv, [B, Hkv, 1, this.cfg.famLength, this.headDim]));
      if (tau === NB - 1 && !withState) break; // the FAM after the last block only feeds the state
      const fq = this.heads(fn, this.wq, H, famPos);
      const end = Math.min(T, (tau + 1) * L);
      const { out: o, lse: famLse } = ops.famMemoryAttention({
        famQ: fq,
        famK: fk,
        famV: fv,
        blockK: ops.slice(k, 2, tau * L, end),
        blockV: ops.slice(v, 2, tau * L, end),
      });
      famLse.dispose();
      const h = ops.add(famState, this.wo.forward(this.merge(o)));
      famState = ops.add(h, this.ffn.forward(this.norm2.forward(h)));
    }
    const famK = famKs.length === 1 ? famKs[0]! : ops.concat(famKs, 2);
    const famV = famVs.length === 1 ? famVs[0]! : ops.concat(famVs, 2);

    // Block attention, with the cached memory segment as extra leading keys
    // (and zero queries whose outputs are dropped).
    const P = state.memK ? state.memK.shape[2]! : 0;
    let out: Tensor;
    if (P === 0) {
      const r = ops.famBlockAttention({ q, k, v, famK, famV, blockSize: L, memoryBlocks: m });
      r.lse.dispose();
      out = r.out;
    } else {
      const prefixBlocks = P / L;
      const qFull = ops.concat([zeros([B, H, P, this.headDim], { dtype: q.dtype, device: q.device }), q], 2);
      const kFull = ops.concat([state.memK!, k], 2);
      const vFull = ops.concat([state.memV!, v], 2);
      const pad = (t: Tensor) =>
        ops.concat([...Array.from({ length: prefixBlocks }, () => ops.slice(t, 2, 0, 1)), t], 2);
      const r = ops.famBlockAttention({
        q: qFull,
        k: kFull,
        v: vFull,
        famK: pad(famK),
        famV: pad(famV),
        blockSize: L,
        memoryBlocks: m,
      });
      r.lse.dispose();
      const full = r.out;
      out = ops.slice(full, 2, P, P + T);
    }
    const h = ops.add(x, this.wo.forward(this.merge(out)));
    const y = ops.add(h, this.ffn.forward(this.norm2.forward(h)));
    if (!withState) return { y, state: null };

    // The memory segment for the next chunk: the last m whole blocks' keys/values.
    let memK: Tensor | null = null,
      memV: Tensor | null = null;
    if (m > 0 && T % L === 0) {
      const allK = state.memK ? ops.concat([state.memK, k], 2) : k;
      const allV = state.memV ? ops.concat([state.memV, v], 2) : v;
      const keepTokens = Math.min(allK.shape[2]!, m * L);
      memK = ops.slice(allK, 2, allK.shape[2]! - keepTokens, allK.shape[2]!);
      memV = ops.slice(allV, 2, allV.shape[2]! - keepTokens, allV.shape[2]!);
    }
    return { y, state: { fam: famState, memK, memV } };
  }
}

export class FamTransformerModel extends Module {
  readonly config: Required<Omit<FamModelOptions, 'device' | 'dtype' | 'seed'>>;
  readonly emb: Embedding;
  readonly blocks: FamTransformerBlock[];
  readonly normOut: RMSNorm;
  readonly head: Linear;

  constructor(opts: FamModelOptions) {
    super();
    const fn = 'nn.FamTransformerModel';
    if (opts === undefined) throw new TypeError(`${fn}: options are required`);
    checkOptions(opts, fn, [
      'vocabSize',
      'dModel',
      'nLayers',
      'nHeads',
      'nKvHeads',
      'blockSize',
      'memoryBlocks',
      'famLength',
      'device',
      'dtype',
      'seed',
    ]);
    const vocabSize = checkInteger(opts.vocabSize, fn, 'vocabSize', 1);
    const dModel = checkInteger(opts.dModel, fn, 'dModel', 1);
    const nLayers = checkInteger(opts.nLayers, fn, 'nLayers', 1);
    const nHeads = checkInteger(opts.nHeads, fn, 'nHeads', 1);
    const nKvHeads = checkInteger(opts.nKvHeads ?? nHeads, fn, 'nKvHeads', 1);
    const blockSize = checkInteger(opts.blockSize, fn, 'blockSize', 1);
    const memoryBlocks = checkInteger(opts.memoryBlocks, fn, 'memoryBlocks', 0);
    const famLength = checkInteger(opts.famLength, fn, 'famLength', 1);
    if (dModel % nHeads !== 0 || (dModel / nHeads) % 2 !== 0) {
      throw new RangeError(`${fn}: dModel (${dModel}) must be nHeads (${nHeads}) times an even head dim`);
    }
    if (nHeads % nKvHeads !== 0)
      throw new RangeError(`${fn}: nHeads (${nHeads}) must be a multiple of nKvHeads (${nKvHeads})`);
    this.config = { vocabSize, dModel, nLayers, nHeads, nKvHeads, blockSize, memoryBlocks, famLength };
    const base: LayerOptions = { device: opts.device, dtype: opts.dtype, seed: opts.seed };
    this.emb = this.registerModule(
      'emb',
      new Embedding(vocabSize, dModel, { ...base, seed: subSeed(opts.seed, 100), std: 0.02 }),
    );
    this.blocks = Array.from({ length: nLayers }, (_, i) =>
      this.registerModule(
        `blocks.${i}`,
        new FamTransformerBlock(
          { dModel, nHeads, nKvHeads, blockSize, memoryBlocks, famLength },
          { ...base, seed: subSeed(opts.seed, 200 + i) },
        ),
      ),
    );
    this.normOut = this.registerModule('normOut', new RMSNorm(dModel, base));
    this.head = this.registerModule(
      'head',
      new Linear(dModel, vocabSize, { ...base, bias: false, seed: subSeed(opts.seed, 300) }),
    );
  }

  private checkTokens(tokens: Tensor, fn: string): void {
    checkTensor(tokens, fn, 'tokens');
    if (tokens.dtype !== 'int32' || tokens.shape.length !== 2) {
      throw new TypeError(`${fn}: tokens must be int32 [B,T], got ${tokens.dtype} [${tokens.shape.join(',')}]`);
    }
  }

  /** tokens [B,T] int32 → logits [B,T,V] */
  forward(tokens: Tensor): Tensor {
    this.checkTokens(tokens, 'FamTransformerModel.forward');
    return this.head.forward(this.hidden(tokens));
  }

  /** tokens [B,T] int32 → hidden states [B,T,d] after the final norm (the head's input). */
  hiddenStates(tokens: Tensor): Tensor {
    this.checkTokens(tokens, 'FamTransformerModel.hiddenStates');
    return this.hidden(tokens);
  }

  /** The whole sequence from a fresh state, keeping no state for a next chunk. */
  private hidden(tokens: Tensor): Tensor {
    const B = tokens.shape[0]!;
    let x = this.emb.forward(tokens);
    for (const block of this.blocks) {
      x = block.forward(x, { fam: block.initialFam(B), memK: null, memV: null }, 0, { withState: false }).y;
    }
    return this.normOut.forward(x);
  }

  /**
   * One chunk of a longer sequence: T must be a multiple of blockSize except
   * for the last chunk. Returns the logits and the state for the next chunk.
   */
  forwardChunk(tokens: Tensor, state?: FamState): { logits: Tensor; state: FamState } {
    this.checkTokens(tokens, 'FamTransformerModel.forwardChunk');
    const { hidden, state: next } = this.run(tokens, state, 'FamTransformerModel.forwardChunk');
    return { logits: this.head.forward(hidden), state: next };
  }

  private run(tokens: Tensor, state: FamState | undefined, fn: string): { hidden: Tensor; state: FamState } {
    const B = tokens.shape[0]!;
    const start = state?.position ?? 0;
    if (start % this.config.blockSize !== 0) {
      throw new RangeError(`${fn}: the previous chunk ended inside a block (position ${start})`);
    }
    let x = this.emb.forward(tokens);
    const layers: FamLayerState[] = [];
    this.blocks.forEach((block, i) => {
      const layerState = state?.layers[i] ?? { fam: block.initialFam(B), memK: null, memV: null };
      const r = block.forward(x, layerState, start);
      x = r.y;
      layers.push(r.state);
    });
    const hidden = this.normOut.forward(x);
    for (const l of layers) [l.fam, l.memK, l.memV].forEach((t) => t && keep(t));
    return { hidden, state: { layers, position: start + tokens.shape[1]! } };
  }
}

export function disposeFamState(state: FamState): void {
  for (const l of state.layers) [l.fam, l.memK, l.memV].forEach((t) => t?.dispose());
}
