// RWKV-4 ("RWKV: Reinventing RNNs for the Transformer Era"): per block, time
// mixing (token shift, receptance, WKV, output) and channel mixing (token
// shift, squared ReLU), each with a residual and a LayerNorm in front; the
// model is embedding → LayerNorm → blocks → LayerNorm → head.
// forward() trains in parallel over the sequence; step() runs the same
// weights as an RNN, one token at a time, with the state it returns.
// Initialisation follows the authors' RWKV-4 code (layer-dependent decay and
// mixing curves), written from its formulas.
import { tensor } from '../creation';
import { checkTensor, Tensor } from '../tensor';
import { checkInteger, checkOptions } from '../validate';
import { noGrad } from '../autograd/engine';
import * as ops from '../autograd/ops';
import { wkv4 as wkv4Kernel } from '../kernels/wkv4';
import { zeros } from '../creation';
import { tidy, keep } from '../scope';
import { Module } from './module';
import { Embedding, LayerNorm, Linear, layerPlacement, subSeed, type LayerOptions } from './layers';

/** x·mix + shifted·(1 − mix) = shifted + (x − shifted)·mix */
function mix(x: Tensor, shifted: Tensor, m: Tensor): Tensor {
  return ops.add(shifted, ops.mul(ops.sub(x, shifted), m));
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

  constructor(dModel: number, layer: number, nLayers: number, opts: LayerOptions) {
    super();
    const placement = layerPlacement(opts, 'nn.RWKV4Model');
    const wkvDtype = placement.dtype === 'float64' ? 'float64' : 'float32';
    const r01 = nLayers > 1 ? layer / (nLayers - 1) : 0;
    const r10 = 1 - layer / nLayers;
    const C = dModel;
    this.timeDecay = this.registerParameter(
      'timeDecay',
      curve(C, (h) => -5 + 8 * (h / Math.max(C - 1, 1)) ** (0.7 + 1.3 * r01), { ...placement, dtype: wkvDtype }),
    );
    this.timeFirst = this.registerParameter(
      'timeFirst',
      curve(C, (h) => Math.log(0.3) + (((h + 1) % 3) - 1) * 0.5, { ...placement, dtype: wkvDtype }),
    );
    this.mixK = this.registerParameter(
      'mixK',
      curve(C, (i) => (i / C) ** r10, placement),
    );
    this.mixV = this.registerParameter(
      'mixV',
      curve(C, (i) => (i / C) ** r10 + 0.3 * r01, placement),
    );
    this.mixR = this.registerParameter(
      'mixR',
      curve(C, (i) => (i / C) ** (0.5 * r10), placement),
    );
    const lin = (k: number) => ({ ...opts, bias: false, seed: subSeed(opts.seed, k) });
    this.key = this.registerModule('key', new Linear(C, C, lin(1)));
    this.value = this.registerModule('value', new Linear(C, C, lin(2)));
    this.receptance = this.registerModule('receptance', new Linear(C, C, lin(3)));
    this.output = this.registerModule('output', new Linear(C, C, lin(4)));
  }

  private kvr(x: Tensor, shifted: Tensor) {
    return {
      k: this.key.forward(mix(x, shifted, this.mixK)),
      v: this.value.forward(mix(x, shifted, this.mixV)),
      r: this.receptance.forward(mix(x, shifted, this.mixR)),
    };
  }

  /** x [B,T,C] → [B,T,C] */
  forward(x: Tensor): Tensor {
    const { k, v, r } = this.kvr(x, ops.tokenShift(x));
    const { y } = ops.wkv4({ timeDecay: this.timeDecay, timeFirst: this.timeFirst, k, v });
    return this.output.forward(ops.mul(ops.sigmoid(r), y));
  }

  /** One token: x [B,C], previous x [B,C] and WKV state [B,3,C]. */
  step(x: Tensor, previous: Tensor, state: Tensor): { out: Tensor; state: Tensor } {
    const { k, v, r } = this.kvr(x, previous);
    const next = wkv4Kernel.step({ timeDecay: this.timeDecay, timeFirst: this.timeFirst, k, v, state });
    return { out: this.output.forward(ops.mul(ops.sigmoid(r), next.y)), state: next.state };
  }
}

export class RWKV4ChannelMix extends Module {
  readonly mixK: Tensor;
  readonly mixR: Tensor;
  readonly key: Linear;
  readonly receptance: Linear;
  readonly value: Linear;

  constructor(dModel: number, layer: number, nLayers: number, opts: LayerOptions) {
    super();
    const placement = layerPlacement(opts, 'nn.RWKV4Model');
    const r10 = 1 - layer / nLayers;
    const C = dModel;
    this.mixK = this.registerParameter(
      'mixK',
      curve(C, (i) => (i / C) ** r10, placement),
    );
    this.mixR = this.registerParameter(
      'mixR',
      curve(C, (i) => (i / C) ** r10, placement),
    );
    const lin = (k: number) => ({ ...opts, bias: false, seed: subSeed(opts.seed, 10 + k) });
    this.key = this.registerModule('key', new Linear(C, 4 * C, lin(1)));
    this.receptance = this.registerModule('receptance', new Linear(C, C, lin(2)));
    this.value = this.registerModule('value', new Linear(4 * C, C, lin(3)));
  }

  private apply(x: Tensor, shifted: Tensor): Tensor {
    const k = ops.square(ops.relu(this.key.forward(mix(x, shifted, this.mixK))));
    return ops.mul(ops.sigmoid(this.receptance.forward(mix(x, shifted, this.mixR))), this.value.forward(k));
  }

  forward(x: Tensor): Tensor {
    return this.apply(x, ops.tokenShift(x));
  }

  step(x: Tensor, previous: Tensor): Tensor {
    return this.apply(x, previous);
  }
}

export class RWKV4Block extends Module {
  readonly ln1: LayerNorm;
  readonly ln2: LayerNorm;
  readonly att: RWKV4TimeMix;
  readonly ffn: RWKV4ChannelMix;
  constructor(dModel: number, layer: number, nLayers: number, opts: LayerOptions) {
    super();
    this.ln1 = this.registerModule('ln1', new LayerNorm(dModel, opts));
    this.ln2 = this.registerModule('ln2', new LayerNorm(dModel, opts));
    this.att = this.registerModule('att', new RWKV4TimeMix(dModel, layer, nLayers, opts));
    this.ffn = this.registerModule('ffn', new RWKV4ChannelMix(dModel, layer, nLayers, opts));
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

  constructor(opts: RWKV4Options) {
    super();
    const fn = 'nn.RWKV4Model';
    checkOptions(opts, fn, ['vocabSize', 'dModel', 'nLayers', 'device', 'dtype', 'seed']);
    if (opts === undefined) throw new TypeError(`${fn}: options are required`);
    this.vocabSize = checkInteger(opts.vocabSize, fn, 'vocabSize', 1);
    this.dModel = checkInteger(opts.dModel, fn, 'dModel', 1);
    this.nLayers = checkInteger(opts.nLayers, fn, 'nLayers', 1);
    const base: LayerOptions = { device: opts.device, dtype: opts.dtype, seed: opts.seed };
    this.emb = this.registerModule(
      'emb',
      new Embedding(this.vocabSize, this.dModel, { ...base, seed: subSeed(opts.seed, 100), std: 1e-2 }),
    );
    this.ln0 = this.registerModule('ln0', new LayerNorm(this.dModel, base));
    this.blocks = Array.from({ length: this.nLayers }, (_, i) =>
      this.registerModule(
        `blocks.${i}`,
        new RWKV4Block(this.dModel, i, this.nLayers, { ...base, seed: subSeed(opts.seed, 200 + i) }),
      ),
    );
    this.lnOut = this.registerModule('lnOut', new LayerNorm(this.dModel, base));
    this.head = this.registerModule(
      'head',
      new Linear(this.dModel, this.vocabSize, { ...base, bias: false, seed: subSeed(opts.seed, 300) }),
    );
  }

  /** tokens [B,T] int32 → logits [B,T,V] */
  forward(tokens: Tensor): Tensor {
    checkTensor(tokens, 'RWKV4Model.forward', 'tokens');
    if (tokens.dtype !== 'int32' || tokens.shape.length !== 2) {
      throw new TypeError(
        `RWKV4Model.forward: tokens must be int32 [B,T], got ${tokens.dtype} [${tokens.shape.join(',')}]`,
      );
    }
    let x = this.ln0.forward(this.emb.forward(tokens));
    for (const block of this.blocks) x = block.forward(x);
    return this.head.forward(this.lnOut.forward(x));
  }

  /** A fresh state for a batch of B sequences. */
  initialState(batch: number): RWKV4State {
    const dtype = this.emb.weight.dtype;
    const acc = dtype === 'float64' ? 'float64' : 'float32';
    const device = this.emb.weight.device;
    return {
      layers: this.blocks.map(() => {
        // (aa, bb, pp) = (0, 0, -1e38): the empty state.
        const wkv = tensor(
          Float64Array.from({ length: batch * 3 * this.dModel }, (_, i) =>
            Math.floor(i / this.dModel) % 3 === 2 ? -1e38 : 0,
          ),
          {
            shape: [batch, 3, this.dModel],
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
   * One token per sequence (tokens [B] int32) → logits [B,V] and the next
   * state (recurrent generation; no gradients). The given state is not disposed.
   */
  step(tokens: Tensor, state?: RWKV4State): { logits: Tensor; state: RWKV4State } {
    checkTensor(tokens, 'RWKV4Model.step', 'tokens');
    if (tokens.dtype !== 'int32' || tokens.shape.length !== 1) {
      throw new TypeError(`RWKV4Model.step: tokens must be int32 [B], got ${tokens.dtype} [${tokens.shape.join(',')}]`);
    }
    const B = tokens.shape[0]!;
    const current = state ?? this.initialState(B);
    if (current.layers.length !== this.nLayers) {
      throw new RangeError(`RWKV4Model.step: state has ${current.layers.length} layers, the model ${this.nLayers}`);
    }
    return noGrad(() =>
      tidy(() => {
        let x = this.ln0.forward(this.emb.forward(tokens));
        const layers = this.blocks.map((block, i) => {
          const prev = current.layers[i]!;
          const xa = block.ln1.forward(x);
          const att = block.att.step(xa, prev.attX, prev.wkv);
          x = ops.add(x, att.out);
          const xf = block.ln2.forward(x);
          x = ops.add(x, block.ffn.step(xf, prev.ffnX));
          return { attX: keep(xa), wkv: keep(att.state), ffnX: keep(xf) };
        });
        const logits = keep(this.head.forward(this.lnOut.forward(x)));
        if (!state) for (const l of current.layers) [l.attX, l.wkv, l.ffnX].forEach((t) => t.dispose());
        return { logits, state: { layers } };
      }),
    );
  }
}

export function disposeRWKV4State(state: RWKV4State): void {
  for (const l of state.layers) [l.attX, l.wkv, l.ffnX].forEach((t) => t.dispose());
}
