// RWKV-4 ("RWKV: Reinventing RNNs for the Transformer Era"): per block, time
// mixing (token shift, receptance, WKV, output) and channel mixing (token
// shift, squared ReLU), each with a residual and a LayerNorm in front; the
// model is embedding → LayerNorm → blocks → LayerNorm → head.
// forward() trains in parallel over the sequence; step() runs the same
// weights as an RNN, one token at a time, with the state it returns.
// Initialisation follows the authors' RWKV-4 code (layer-dependent decay and
// mixing curves), written from its formulas.
// The math is transformers' RwkvForCausalLM (modeling_rwkv.py): `ln0` is its
// blocks.0.pre_ln, the time mix its `attention` (attention_hidden_size wide),
// the channel mix its `feed_forward` (intermediate_size wide); lib/hub maps the
// parameter names. Its `rescale_every` halves activations and output weights
// every few layers at inference only, which changes nothing but float16 range.
import { tensor } from '../creation';
import { checkTensor, Tensor } from '../tensor';
import { checkInteger, checkFinite, checkOptions } from '../validate';
import { noGrad } from '../autograd/engine';
import * as ops from '../autograd/ops';
import { zeros } from '../creation';
import { tidy, keep } from '../scope';
import { Module } from './module';
import { Embedding, LayerNorm, Linear, layerPlacement, subSeed, type LayerOptions } from './layers';

/** x·mix + shifted·(1 − mix) = shifted + (x − shifted)·mix, with diff = x − shifted shared by a mixer's inputs. */
function mix(shifted: Tensor, diff: Tensor, m: Tensor): Tensor {
  return ops.add(shifted, ops.mul(diff, m));
}

function curve(
  n: number,
  f: (i: number) => number,
  placement: { device: LayerOptions['device']; dtype: 'float32' | 'float64' | 'bfloat16' | 'float16' },
) {
  return tensor(
    Float64Array.from({ length: n }, (_, i) => f(i)),
    { device: placement.device, dtype: placement.dtype },
  );
}

export class RWKV4TimeMix extends Module {
  readonly timeDecay: Tensor;
  readonly timeFirst: Tensor;
  readonly mixK: Tensor;
  readonly mixV: Tensor;
  readonly mixR: Tensor;
  readonly key: Linear;
  readonly value: Linear;
  readonly receptance: Linear;
  readonly output: Linear;

  constructor(dModel: number, layer: number, nLayers: number, opts: LayerOptions & { attentionSize?: number }) {
    super();
    const placement = layerPlacement({ device: opts.device, dtype: opts.dtype }, 'nn.RWKV4Model');
    const wkvDtype = placement.dtype === 'float64' ? 'float64' : 'float32';
    const r01 = nLayers > 1 ? layer / (nLayers - 1) : 0;
    const r10 = 1 - layer / nLayers;
    const C = opts.attentionSize ?? dModel;
    this.timeDecay = this.registerParameter(
      'timeDecay',
      curve(C, (h) => -5 + 8 * (h / Math.max(C - 1, 1)) ** (0.7 + 1.3 * r01), { ...placement, dtype: wkvDtype }),
    );
    this.timeFirst = this.registerParameter(
      'timeFirst',
      curve(C, (h) => Math.log(0.3) + (((h + 1) % 3) - 1) * 0.5, { ...placement, dtype: wkvDtype }),
    );
    const D = dModel;
    this.mixK = this.registerParameter(
      'mixK',
      curve(D, (i) => (i / D) ** r10, placement),
    );
    this.mixV = this.registerParameter(
      'mixV',
      curve(D, (i) => (i / D) ** r10 + 0.3 * r01, placement),
    );
    this.mixR = this.registerParameter(
      'mixR',
      curve(D, (i) => (i / D) ** (0.5 * r10), placement),
    );
    const lin = (k: number) => ({ ...placement, bias: false, seed: subSeed(opts.seed, k) });
    this.key = this.registerModule('key', new Linear(D, C, lin(1)));
    this.value = this.registerModule('value', new Linear(D, C, lin(2)));
    this.receptance = this.registerModule('receptance', new Linear(D, C, lin(3)));
    this.output = this.registerModule('output', new Linear(C, D, lin(4)));
  }

  private kvr(x: Tensor, shifted: Tensor) {
    const diff = ops.sub(x, shifted);
    return {
      k: this.key.forward(mix(shifted, diff, this.mixK)),
      v: this.value.forward(mix(shifted, diff, this.mixV)),
      r: this.receptance.forward(mix(shifted, diff, this.mixR)),
    };
  }

  /** x [B,T,C] → [B,T,C] */
  forward(x: Tensor): Tensor {
    return this.sequence(x, ops.tokenShift(x)).out;
  }

  /** x [B,T,C] with its shifted copy and the WKV state before it → output and the state after it. */
  sequence(x: Tensor, shifted: Tensor, state?: Tensor): { out: Tensor; state: Tensor } {
    const { k, v, r } = this.kvr(x, shifted);
    const next = ops.wkv4({ timeDecay: this.timeDecay, timeFirst: this.timeFirst, k, v, ...(state ? { state } : {}) });
    return { out: this.output.forward(ops.mul(ops.sigmoid(r), next.y)), state: next.state };
  }
}

export class RWKV4ChannelMix extends Module {
  readonly mixK: Tensor;
  readonly mixR: Tensor;
  readonly key: Linear;
  readonly receptance: Linear;
  readonly value: Linear;

  constructor(dModel: number, layer: number, nLayers: number, opts: LayerOptions & { intermediateSize?: number }) {
    super();
    const placement = layerPlacement({ device: opts.device, dtype: opts.dtype }, 'nn.RWKV4Model');
    const r10 = 1 - layer / nLayers;
    const C = dModel;
    const I = opts.intermediateSize ?? 4 * C;
    this.mixK = this.registerParameter(
      'mixK',
      curve(C, (i) => (i / C) ** r10, placement),
    );
    this.mixR = this.registerParameter(
      'mixR',
      curve(C, (i) => (i / C) ** r10, placement),
    );
    const lin = (k: number) => ({ ...placement, bias: false, seed: subSeed(opts.seed, 10 + k) });
    this.key = this.registerModule('key', new Linear(C, I, lin(1)));
    this.receptance = this.registerModule('receptance', new Linear(C, C, lin(2)));
    this.value = this.registerModule('value', new Linear(I, C, lin(3)));
  }

  private apply(x: Tensor, shifted: Tensor): Tensor {
    const diff = ops.sub(x, shifted);
    const k = ops.square(ops.relu(this.key.forward(mix(shifted, diff, this.mixK))));
    return ops.mul(ops.sigmoid(this.receptance.forward(mix(shifted, diff, this.mixR))), this.value.forward(k));
  }

  forward(x: Tensor): Tensor {
    return this.apply(x, ops.tokenShift(x));
  }

  /** x [B,T,C] with its shifted copy (the previous token's inputs in front). */
  sequence(x: Tensor, shifted: Tensor): Tensor {
    return this.apply(x, shifted);
  }
}

export class RWKV4Block extends Module {
  readonly ln1: LayerNorm;
  readonly ln2: LayerNorm;
  readonly att: RWKV4TimeMix;
  readonly ffn: RWKV4ChannelMix;
  constructor(
    dModel: number,
    layer: number,
    nLayers: number,
    opts: LayerOptions & { attentionSize?: number; intermediateSize?: number; eps?: number },
  ) {
    super();
    const base = { device: opts.device, dtype: opts.dtype, seed: opts.seed };
    this.ln1 = this.registerModule('ln1', new LayerNorm(dModel, { ...base, eps: opts.eps }));
    this.ln2 = this.registerModule('ln2', new LayerNorm(dModel, { ...base, eps: opts.eps }));
    this.att = this.registerModule(
      'att',
      new RWKV4TimeMix(dModel, layer, nLayers, { ...base, attentionSize: opts.attentionSize }),
    );
    this.ffn = this.registerModule(
      'ffn',
      new RWKV4ChannelMix(dModel, layer, nLayers, { ...base, intermediateSize: opts.intermediateSize }),
    );
  }
  forward(x: Tensor): Tensor {
    const h = ops.add(x, this.att.forward(this.ln1.forward(x)));
    return ops.add(h, this.ffn.forward(this.ln2.forward(h)));
  }
}

/** Per layer: the previous token's normalised inputs of both mixers and the WKV state. */
export interface RWKV4State {
  layers: { attX: Tensor; wkv: Tensor; ffnX: Tensor }[];
}

export interface RWKV4Options extends LayerOptions {
  vocabSize: number;
  dModel: number;
  nLayers: number;
  /** Width of the time mix (key/value/receptance/WKV); default dModel (transformers' attention_hidden_size). */
  attentionSize?: number;
  /** Width of the channel mix; default 4·dModel (transformers' intermediate_size). */
  intermediateSize?: number;
  /** LayerNorm epsilon; default 1e-5 (transformers' layer_norm_epsilon). */
  layerNormEps?: number;
}

export class RWKV4Model extends Module {
  readonly vocabSize: number;
  readonly dModel: number;
  readonly nLayers: number;
  readonly emb: Embedding;
  readonly ln0: LayerNorm;
  readonly blocks: RWKV4Block[];
  readonly lnOut: LayerNorm;
  readonly head: Linear;
  /** The Hugging Face config fields (what hub.saveModel writes as config.json). */
  config: Record<string, unknown>;
  /** generation_config.json's fields when loaded by hub.loadModel (eos for generate). */
  generationConfig: Record<string, unknown> | undefined;

  constructor(opts: RWKV4Options) {
    super();
    const fn = 'nn.RWKV4Model';
    if (opts === undefined) throw new TypeError(`${fn}: options are required`);
    checkOptions(opts, fn, [
      'vocabSize',
      'dModel',
      'nLayers',
      'attentionSize',
      'intermediateSize',
      'layerNormEps',
      'device',
      'dtype',
      'seed',
    ]);
    this.vocabSize = checkInteger(opts.vocabSize, fn, 'vocabSize', 1);
    this.dModel = checkInteger(opts.dModel, fn, 'dModel', 1);
    this.nLayers = checkInteger(opts.nLayers, fn, 'nLayers', 1);
    const attentionSize = checkInteger(opts.attentionSize ?? this.dModel, fn, 'attentionSize', 1);
    const intermediateSize = checkInteger(opts.intermediateSize ?? 4 * this.dModel, fn, 'intermediateSize', 1);
    const eps = opts.layerNormEps === undefined ? 1e-5 : checkFinite(opts.layerNormEps, fn, 'layerNormEps');
    const base: LayerOptions = { device: opts.device, dtype: opts.dtype, seed: opts.seed };
    // transformers' RwkvConfig fields; rescale_every 0 because this model never rescales.
    this.config = {
      architectures: ['RwkvForCausalLM'],
      model_type: 'rwkv',
      vocab_size: this.vocabSize,
      hidden_size: this.dModel,
      num_hidden_layers: this.nLayers,
      attention_hidden_size: attentionSize,
      intermediate_size: intermediateSize,
      layer_norm_epsilon: eps,
      context_length: 1024,
      rescale_every: 0,
      tie_word_embeddings: false,
      bos_token_id: 0,
      eos_token_id: 0,
    };
    this.generationConfig = undefined;
    this.emb = this.registerModule(
      'emb',
      new Embedding(this.vocabSize, this.dModel, { ...base, seed: subSeed(opts.seed, 100), std: 1e-2 }),
    );
    this.ln0 = this.registerModule('ln0', new LayerNorm(this.dModel, { ...base, eps }));
    this.blocks = Array.from({ length: this.nLayers }, (_, i) =>
      this.registerModule(
        `blocks.${i}`,
        new RWKV4Block(this.dModel, i, this.nLayers, {
          ...base,
          seed: subSeed(opts.seed, 200 + i),
          attentionSize,
          intermediateSize,
          eps,
        }),
      ),
    );
    this.lnOut = this.registerModule('lnOut', new LayerNorm(this.dModel, { ...base, eps }));
    this.head = this.registerModule(
      'head',
      new Linear(this.dModel, this.vocabSize, { ...base, bias: false, seed: subSeed(opts.seed, 300) }),
    );
  }

  /** tokens [B,T] int32 → hidden states [B,T,d] after the final LayerNorm (the head's input). */
  hiddenStates(tokens: Tensor): Tensor {
    checkTokens(tokens, 'RWKV4Model.hiddenStates');
    let x = this.ln0.forward(this.emb.forward(tokens));
    for (const block of this.blocks) x = block.forward(x);
    return this.lnOut.forward(x);
  }

  /** tokens [B,T] int32 → logits [B,T,V] */
  forward(tokens: Tensor): Tensor {
    checkTokens(tokens, 'RWKV4Model.forward');
    return this.head.forward(this.hiddenStates(tokens));
  }

  /** A fresh state for a batch of B sequences. */
  initialState(batch: number): RWKV4State {
    const dtype = this.emb.weight.dtype;
    const acc = dtype === 'float64' ? 'float64' : 'float32';
    const device = this.emb.weight.device;
    const A = this.blocks[0]!.att.timeDecay.shape[0]!;
    return {
      layers: this.blocks.map(() => {
        // (aa, bb, pp) = (0, 0, -1e38): the empty state.
        const wkv = tensor(
          Float64Array.from({ length: batch * 3 * A }, (_, i) => (Math.floor(i / A) % 3 === 2 ? -1e38 : 0)),
          {
            shape: [batch, 3, A],
            dtype: acc,
            device,
          },
        );
        return {
          attX: zeros([batch, this.dModel], { dtype, device }),
          wkv,
          ffnX: zeros([batch, this.dModel], { dtype, device }),
        };
      }),
    };
  }

  /**
   * A run of tokens [B,T] (T ≥ 1) in parallel, continuing `state` (fresh when
   * omitted; not disposed): the last position's logits [B,V] and the state
   * after it, as T calls of step() would give (no gradients).
   */
  prefill(tokens: Tensor, state?: RWKV4State, fn = 'RWKV4Model.prefill'): { logits: Tensor; state: RWKV4State } {
    checkTokens(tokens, fn);
    const [B, T] = [tokens.shape[0]!, tokens.shape[1]!];
    if (T < 1) throw new RangeError(`${fn}: tokens must hold at least one position`);
    if (state && state.layers.length !== this.nLayers) {
      throw new RangeError(`${fn}: state has ${state.layers.length} layers, the model ${this.nLayers}`);
    }
    const current = state ?? this.initialState(B);
    // x shifted by one along T with the previous token's value in front.
    const shiftIn = (x: Tensor, previous: Tensor) => {
      const first = ops.reshape(previous, [B, 1, x.shape[2]!]);
      return T === 1 ? first : ops.concat([first, ops.slice(x, 1, 0, T - 1)], 1);
    };
    const last = (x: Tensor) => ops.reshape(T === 1 ? x : ops.slice(x, 1, T - 1, T), [B, x.shape[2]!]);
    return noGrad(() =>
      tidy(() => {
        let x = this.ln0.forward(this.emb.forward(tokens));
        const layers = this.blocks.map((block, i) => {
          const prev = current.layers[i]!;
          const xa = block.ln1.forward(x);
          const att = block.att.sequence(xa, shiftIn(xa, prev.attX), prev.wkv);
          x = ops.add(x, att.out);
          const xf = block.ln2.forward(x);
          x = ops.add(x, block.ffn.sequence(xf, shiftIn(xf, prev.ffnX)));
          return { attX: keep(last(xa)), wkv: keep(att.state), ffnX: keep(last(xf)) };
        });
        const logits = keep(this.head.forward(last(this.lnOut.forward(x))));
        if (!state) disposeRWKV4State(current);
        return { logits, state: { layers } };
      }),
    );
  }

  /**
   * One token per sequence (tokens [B] int32) → logits [B,V] and the next
   * state (recurrent generation; no gradients). The given state is not disposed.
   */
  step(tokens: Tensor, state?: RWKV4State): { logits: Tensor; state: RWKV4State } {
    checkTensor(tokens, 'RWKV4Model.step', 'tokens');
    if (tokens.dtype !== 'int32' || tokens.shape.length !== 1) {
      throw new TypeError(`RWKV4Model.step: tokens must be int32 [B], got ${tokens.dtype} [${tokens.shape.join(',')}]`);
    }
    const column = tokens.reshape([tokens.shape[0]!, 1]);
    try {
      return this.prefill(column, state, 'RWKV4Model.step');
    } finally {
      column.dispose();
    }
  }
}

function checkTokens(tokens: Tensor, fn: string): void {
  checkTensor(tokens, fn, 'tokens');
  if (tokens.dtype !== 'int32' || tokens.shape.length !== 2) {
    throw new TypeError(`${fn}: tokens must be int32 [B,T], got ${tokens.dtype} [${tokens.shape.join(',')}]`);
  }
}

export function disposeRWKV4State(state: RWKV4State): void {
  for (const l of state.layers) [l.attX, l.wkv, l.ffnX].forEach((t) => t.dispose());
}
