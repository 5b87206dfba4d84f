// The Tensor wrapper: owns one native handle, knows its shape/dtype/device,
// and takes part in tidy scopes. Memory lives until dispose (or tidy, or the
// GC finalizer as a safety net) AND every queued op using it has finished.
import { Device, deviceFromCode, deviceName, type DeviceSpec } from './device';
import type { DType } from './dtype';
import { native, type HostArray, type NativeHandle, type NativeTensor } from './native';
import { trackTensor, untrackTensor, type Scope } from './scope';
import { describe } from './validate';

/** What autograd attaches to a tensor (lib/autograd/engine.ts). */
export interface GradFn {
  readonly name: string;
}

// Installed by lib/autograd/engine.ts (kept apart to avoid an import cycle).
let backwardHook: ((root: Tensor, grad: Tensor | undefined) => void) | null = null;
export function installBackward(hook: (root: Tensor, grad: Tensor | undefined) => void): void {
  backwardHook = hook;
}

// This thread's view of the native metadata array (native/addon/tensor_handle.h):
// dtype, device, rank and sizes of every live handle, by slot.
let meta = new Float64Array(0);
let metaStride = 1;
let metaDims = 0;
let dtypeNames: readonly string[] = [];

/** The metadata array, read again when the native table has outgrown this view. */
function metaFor(slot: number): Float64Array {
  if ((slot + 1) * metaStride > meta.length) {
    const m = native().tensorMeta();
    meta = new Float64Array(m.table);
    metaStride = m.stride;
    metaDims = m.dims;
    dtypeNames = m.dtypes;
  }
  return meta;
}

const SLOTS_PER_GENERATION = 2 ** 32; // handle = generation · 2^32 + slot

// The safety net: a tensor the GC collects undisposed releases its handle
// (a disposed one's handle is stale by then, and release ignores it).
const collected = new FinalizationRegistry<NativeHandle>((handle) => native().release(handle));

const disposeSymbol: symbol = (Symbol as unknown as { dispose?: symbol }).dispose ?? Symbol.for('Symbol.dispose');

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- adds [Symbol.dispose] on Node 20
export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly device: Device;
  readonly numel: number;
  /** @internal */ _handle: NativeHandle | null;
  /** @internal */ _kept = false;
  /** @internal */ _scope: Scope | null = null;
  /** @internal The op that produced this tensor, when it was recorded for autograd. */
  _gradFn: GradFn | null = null;
  /** @internal Which output of _gradFn this is. */
  _outputIndex = 0;
  /** @internal */ _requiresGrad = false;
  /** @internal */ _grad: Tensor | null = null;

  /** @internal Tensors are made by creation functions and ops, not by `new`. */
  constructor(handle: NativeTensor) {
    this._handle = handle;
    const slot = handle % SLOTS_PER_GENERATION;
    const m = metaFor(slot);
    const base = slot * metaStride;
    this.dtype = dtypeNames[m[base]!] as DType;
    this.device = deviceFromCode(m[base + 1]!);
    const rank = m[base + 2]!;
    let shape: number[];
    if (rank <= metaDims) {
      shape = new Array<number>(rank);
      for (let i = 0; i < rank; i++) shape[i] = m[base + 3 + i]!;
    } else {
      shape = native().tensorShape(handle);
    }
    let numel = 1;
    for (let i = 0; i < rank; i++) numel *= shape[i]!;
    this.shape = Object.freeze(shape);
    this.numel = numel;
    collected.register(this, handle, this);
    trackTensor(this);
  }

  /** Whether gradients flow to (a leaf) or through (an op's output) this tensor. */
  get requiresGrad(): boolean {
    return this._requiresGrad;
  }
  set requiresGrad(value: boolean) {
    if (typeof value !== 'boolean') throw new TypeError(`Tensor.requiresGrad must be a boolean, got ${typeof value}`);
    if (this._gradFn && !value) {
      throw new RangeError(
        'Tensor.requiresGrad: cannot turn off gradients of a non-leaf tensor; use clone() under noGrad()',
      );
    }
    if (value && this.dtype === 'int32')
      throw new TypeError('Tensor.requiresGrad: int32 tensors cannot require gradients');
    this._requiresGrad = value;
  }

  /** The accumulated gradient of a leaf after backward(), or null. */
  get grad(): Tensor | null {
    return this._grad;
  }
  set grad(value: Tensor | null) {
    if (value !== null && !(value instanceof Tensor)) throw new TypeError('Tensor.grad must be a Tensor or null');
    this._grad = value;
  }

  /** Back-propagates from this tensor; grad defaults to 1 for a scalar. */
  backward(grad?: Tensor): void {
    this._handleFor('Tensor.backward');
    if (!backwardHook) throw new Error('Tensor.backward: autograd is not loaded');
    backwardHook(this, grad);
  }

  get isDisposed(): boolean {
    return this._handle === null;
  }

  /** @internal The native handle; TypeError naming fn/arg once disposed. */
  _handleFor(fn: string, arg?: string): NativeHandle {
    if (this._handle === null) throw new TypeError(`${fn}: ${arg ? `${arg} ` : ''}tensor was disposed`);
    return this._handle;
  }

  /** Copies the values to the host after all queued work; bfloat16/float16 read as Float32Array. */
  data(): Promise<Float32Array | Float64Array | Int32Array> {
    return native().read(this._handleFor('Tensor.data'));
  }

  /** Blocks until the values are on the host. Prefer data(). */
  dataSync(): Float32Array | Float64Array | Int32Array {
    return native().readSync(this._handleFor('Tensor.dataSync'));
  }

  async item(): Promise<number> {
    const handle = this._handleFor('Tensor.item');
    if (this.numel !== 1) {
      throw new RangeError(`Tensor.item: tensor must have exactly 1 element, got shape [${this.shape.join(',')}]`);
    }
    return (await native().read(handle))[0]!;
  }

  /** A new tensor on another device or with another dtype (always a copy). */
  to(target: DeviceSpec | DType): Tensor {
    const x = this._handleFor('Tensor.to');
    // A Device or a name starting with cpu/cuda is a device; any other string a dtype.
    if (target instanceof Device || (typeof target === 'string' && /^(cpu|cuda)/.test(target))) {
      return new Tensor(native().toDevice({ x, device: deviceName(target, 'Tensor.to', 'target') }));
    }
    if (typeof target !== 'string') {
      throw new TypeError(`Tensor.to: target must be a dtype, a device name or a Device, got ${describe(target)}`);
    }
    return new Tensor(native().toDtype({ x, dtype: target }));
  }

  /** A view sharing storage; one -1 is inferred. Dispose it like any tensor. */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(native().reshape({ x: this._handleFor('Tensor.reshape'), shape }));
  }

  clone(): Tensor {
    return new Tensor(native().clone(this._handleFor('Tensor.clone')));
  }

  /** Releases this tensor's reference to its memory. Idempotent. */
  dispose(): void {
    if (this._handle === null) return;
    native().release(this._handle);
    collected.unregister(this);
    this._handle = null;
    untrackTensor(this);
  }

  [Symbol.toPrimitive](hint: string): string | number {
    if (hint === 'number') return Number.NaN;
    return this.toString();
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(',')}] ${this.device}${this.isDisposed ? ', disposed' : ''})`;
  }
}

// `using t = ...` support (TypeScript 5.2+ / explicit resource management).
Object.defineProperty(Tensor.prototype, disposeSymbol, {
  value: function (this: Tensor) {
    this.dispose();
  },
  writable: true,
  configurable: true,
});

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface Tensor {
  [Symbol.dispose](): void;
}

/** TypeError naming fn/arg unless value is a live Tensor. */
export function checkTensor(value: unknown, fn: string, arg: string): Tensor {
  if (!(value instanceof Tensor)) throw new TypeError(`${fn}: ${arg} must be a Tensor, got ${typeof value}`);
  value._handleFor(fn, arg);
  return value;
}

export type { HostArray };
