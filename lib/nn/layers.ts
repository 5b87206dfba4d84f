// Basic layers. Initialisation follows PyTorch: Linear weight and bias
// U(-1/sqrt(in), 1/sqrt(in)); Embedding N(0, 1); norms weight 1, bias 0.
import { defaultDevice, usableDevice, type DeviceSpec } from '../device';
import { checkDType, type DType } from '../dtype';
import { full, rand, randn } from '../creation';
import { Tensor, checkTensor } from '../tensor';
import { checkInteger, checkOptions } from '../validate';
import * as ops from '../autograd/ops';
import { Module } from './module';

export interface LayerOptions {
  device?: DeviceSpec;
  dtype?: DType;
  seed?: number;
}

export function layerPlacement(opts: LayerOptions, fn: string) {
  const device = opts.device === undefined ? defaultDevice() : usableDevice(opts.device, fn);
  const dtype = opts.dtype === undefined ? 'float32' : checkDType(opts.dtype, fn);
  if (dtype === 'int32') throw new TypeError(`${fn}: dtype must be a floating type, got int32`);
  return { device, dtype };
}

/** Derives distinct, reproducible seeds for a layer's tensors. */
export function subSeed(seed: number | undefined, k: number): number | undefined {
  return seed === undefined ? undefined : (seed * 1000003 + k * 7919) % Number.MAX_SAFE_INTEGER;
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LayerOptions & { bias?: boolean; weight?: Tensor } = {},
  ) {
    super();
    const fn = 'nn.Linear';
    checkInteger(inFeatures, fn, 'inFeatures', 1);
    checkInteger(outFeatures, fn, 'outFeatures', 1);
    checkOptions(opts, fn, ['bias', 'device', 'dtype', 'seed', 'weight']);
    const { device, dtype } = layerPlacement(opts, fn);
    const bound = 1 / Math.sqrt(inFeatures);
    if (opts.weight !== undefined) {
      // A weight shared with another module (tied embeddings): not a copy.
      checkTensor(opts.weight, fn, 'weight');
      if (opts.weight.shape.join(',') !== `${outFeatures},${inFeatures}`) {
        throw new RangeError(
          `${fn}: weight must have shape [${outFeatures},${inFeatures}], got [${opts.weight.shape}]`,
        );
      }
    }
    this.weight = this.registerParameter(
      'weight',
      opts.weight ??
        rand([outFeatures, inFeatures], { low: -bound, high: bound, device, dtype, seed: subSeed(opts.seed, 0) }),
    );
    this.bias =
      opts.bias === false
        ? null
        : this.registerParameter(
            'bias',
            rand([outFeatures], { low: -bound, high: bound, device, dtype, seed: subSeed(opts.seed, 1) }),
          );
  }
  forward(x: Tensor): Tensor {
    checkTensor(x, 'nn.Linear.forward', 'x');
    return ops.linear(x, this.weight, this.bias);
  }
}

export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    opts: LayerOptions & { std?: number } = {},
  ) {
    super();
    const fn = 'nn.Embedding';
    checkInteger(numEmbeddings, fn, 'num', 1);
    checkInteger(embeddingDim, fn, 'dim', 1);
    checkOptions(opts, fn, ['device', 'dtype', 'seed', 'std']);
    const { device, dtype } = layerPlacement(opts, fn);
    this.weight = this.registerParameter(
      'weight',
      randn([numEmbeddings, embeddingDim], { device, dtype, seed: opts.seed, std: opts.std ?? 1 }),
    );
  }
  forward(ids: Tensor): Tensor {
    return ops.embedding(this.weight, ids);
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly eps: number;
  constructor(
    readonly dim: number,
    opts: LayerOptions & { eps?: number } = {},
  ) {
    super();
    const fn = 'nn.LayerNorm';
    checkInteger(dim, fn, 'dim', 1);
    checkOptions(opts, fn, ['device', 'dtype', 'seed', 'eps']);
    const { device, dtype } = layerPlacement(opts, fn);
    this.eps = opts.eps ?? 1e-5;
    this.weight = this.registerParameter('weight', full([dim], 1, { device, dtype }));
    this.bias = this.registerParameter('bias', full([dim], 0, { device, dtype }));
  }
  forward(x: Tensor): Tensor {
    return ops.layerNorm(x, this.weight, this.bias, { eps: this.eps });
  }
}

export class RMSNorm extends Module {
  readonly weight: Tensor;
  readonly eps: number;
  constructor(
    readonly dim: number,
    opts: LayerOptions & { eps?: number } = {},
  ) {
    super();
    const fn = 'nn.RMSNorm';
    checkInteger(dim, fn, 'dim', 1);
    checkOptions(opts, fn, ['device', 'dtype', 'seed', 'eps']);
    const { device, dtype } = layerPlacement(opts, fn);
    this.eps = opts.eps ?? 1e-6;
    this.weight = this.registerParameter('weight', full([dim], 1, { device, dtype }));
  }
  forward(x: Tensor): Tensor {
    return ops.rmsNorm(x, this.weight, { eps: this.eps });
  }
}
