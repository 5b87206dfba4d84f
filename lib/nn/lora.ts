// LoRA (Hu et al. 2021, as PEFT implements it): each targeted Linear
// y = x Wᵀ (+ b) becomes
//     y = x Wᵀ (+ b) + s · B(A(dropout(x))),   s = alpha / rank,
// A [rank, in] initialised U(±1/√in) (PEFT's kaiming_uniform with a = √5),
// B [out, rank] initialised to 0, so the model starts unchanged. Every other
// parameter is frozen (requiresGrad = false) but still listed by
// model.parameters(); LoRA.parameters(model) lists what the optimiser trains.
// The adapters are sub-modules `lora_A`/`lora_B` of the Linear they adapt (so
// stateDict and namedParameters include them). Dropout (inverted, scale
// 1/(1−p)) applies only while gradients are recorded, i.e. when training.
import { tensor } from '../creation';
import { isGradEnabled, noGrad } from '../autograd/engine';
import * as ops from '../autograd/ops';
import * as dense from '../kernels/dense';
import { Tensor } from '../tensor';
import { checkInteger, checkFinite, checkOptions } from '../validate';
import { mulberry32 } from '../generate';
import { Linear, subSeed } from './layers';
import type { Module } from './module';

export interface LoRAOptions {
  rank: number;
  /** Default 8 (PEFT's lora_alpha). */
  alpha?: number;
  /** Default 0. */
  dropout?: number;
  /** Module names (or dotted suffixes of them) to adapt, e.g. ['q_proj', 'v_proj']. */
  targets: string[];
  /** s = alpha / √rank instead of alpha / rank (PEFT's use_rslora); default false. */
  rsLora?: boolean;
  /** Seed of the A initialisation. */
  seed?: number;
}

export interface LoRAConfig {
  rank: number;
  alpha: number;
  dropout: number;
  targets: string[];
  rsLora: boolean;
  scaling: number;
  /** Names of the adapted Linear modules (as in model.namedModules()). */
  modules: string[];
}

/** Names of adapter parameters in namedParameters(). */
export const LORA_PARAMETER = /\.lora_[AB]\.weight$/;

interface Adapted {
  linear: Linear;
  a: Linear;
  b: Linear;
}

const applied = new WeakMap<Module, { config: LoRAConfig; adapted: Adapted[]; frozen: Map<Tensor, boolean> }>();
/** The Linears that carry adapters now. */
const adaptedLinears = new WeakSet<Linear>();

/** Whether module name `name` is one of `targets` (PEFT: equal, or ending in '.' + target). */
function isTarget(name: string, targets: string[]): boolean {
  return targets.some((t) => name === t || name.endsWith(`.${t}`));
}

let dropoutCalls = 0;
function dropout(x: Tensor, p: number, seed: number): Tensor {
  if (p === 0 || !isGradEnabled()) return x;
  const random = mulberry32(seed + dropoutCalls++);
  const keep = 1 / (1 - p);
  const mask = Float32Array.from({ length: x.numel }, () => (random() < p ? 0 : keep));
  return ops.mul(x, tensor(mask, { shape: x.shape, dtype: x.dtype, device: x.device }));
}

function apply(model: Module, opts: LoRAOptions): LoRAConfig {
  const fn = 'nn.LoRA.apply';
  if (opts === undefined) throw new TypeError(`${fn}: options are required`);
  checkOptions(opts, fn, ['rank', 'alpha', 'dropout', 'targets', 'rsLora', 'seed']);
  if (applied.has(model)) throw new RangeError(`${fn}: the model already has LoRA adapters (merge them first)`);
  const rank = checkInteger(opts.rank, fn, 'rank', 1);
  const alpha = opts.alpha === undefined ? 8 : checkFinite(opts.alpha, fn, 'alpha');
  const p = opts.dropout === undefined ? 0 : checkFinite(opts.dropout, fn, 'dropout');
  if (!(p >= 0 && p < 1)) throw new RangeError(`${fn}: dropout must be in [0, 1), got ${p}`);
  if (!Array.isArray(opts.targets) || opts.targets.length === 0 || opts.targets.some((t) => typeof t !== 'string')) {
    throw new TypeError(`${fn}: targets must be a non-empty array of module names`);
  }
  const rsLora = opts.rsLora ?? false;
  const targets = [...opts.targets];
  const matches = model
    .namedModules()
    .filter((e): e is [string, Linear] => e[1] instanceof Linear && isTarget(e[0], targets));
  if (matches.length === 0) {
    const linears = model
      .namedModules()
      .filter(([, m]) => m instanceof Linear)
      .map(([n]) => n.split('.').pop());
    throw new RangeError(
      `${fn}: no nn.Linear matches targets [${targets.join(', ')}]; the model's are [${[...new Set(linears)].join(', ')}]`,
    );
  }
  const frozen = new Map<Tensor, boolean>();
  for (const t of model.parameters()) {
    frozen.set(t, t.requiresGrad);
    t.requiresGrad = false;
  }
  const scaling = rsLora ? alpha / Math.sqrt(rank) : alpha / rank;
  const seed = opts.seed ?? 0;
  const adapted = matches.map(([name, linear], i) => {
    const placement = { device: linear.weight.device, dtype: linear.weight.dtype };
    const a = linear.attachModule(
      'lora_A',
      new Linear(linear.inFeatures, rank, { ...placement, bias: false, seed: subSeed(opts.seed, 2 * i) }),
    );
    const b = linear.attachModule(
      'lora_B',
      new Linear(rank, linear.outFeatures, { ...placement, bias: false, seed: subSeed(opts.seed, 2 * i + 1) }),
    );
    noGrad(() => dense.fill_(b.weight, 0));
    const base = Linear.prototype.forward;
    linear.forward = (x: Tensor) =>
      ops.add(base.call(linear, x), ops.scale(b.forward(a.forward(dropout(x, p, seed + i * 7919))), scaling));
    adaptedLinears.add(linear);
    return { name, linear, a, b };
  });
  const config: LoRAConfig = {
    rank,
    alpha,
    dropout: p,
    targets,
    rsLora,
    scaling,
    modules: adapted.map((x) => x.name),
  };
  applied.set(model, { config, adapted, frozen });
  return config;
}

/** The adapter tensors (lora_A and lora_B weights), what the optimiser gets. */
function parameters(model: Module): Tensor[] {
  const state = applied.get(model);
  return state ? state.adapted.flatMap((x) => [x.a.weight, x.b.weight]) : [];
}

/** The options the adapters were made with, or undefined when the model has none. */
function config(model: Module): LoRAConfig | undefined {
  return applied.get(model)?.config;
}

/** Removes the adapters; with `fold`, first W += s · B A. requiresGrad is restored as it was before apply. */
function detach(model: Module, fold: boolean, fn: string): void {
  const state = applied.get(model);
  if (!state) throw new RangeError(`${fn}: the model has no LoRA adapters`);
  noGrad(() => {
    for (const { linear, a, b } of state.adapted) {
      if (fold) {
        const delta = dense.matmul(b.weight, a.weight);
        dense.addInPlace_(linear.weight, delta, state.config.scaling);
        delta.dispose();
      }
      delete (linear as { forward?: unknown }).forward;
      adaptedLinears.delete(linear);
      linear.detachModule('lora_A');
      linear.detachModule('lora_B');
      a.dispose();
      b.dispose();
    }
  });
  for (const [t, was] of state.frozen) if (!t.isDisposed) t.requiresGrad = was;
  applied.delete(model);
}

/** Folds the adapters into the base weights (W += s · B A) and removes them. */
function merge(model: Module): void {
  detach(model, true, 'nn.LoRA.merge');
}

/** Removes the adapters without folding them in. */
function remove(model: Module): void {
  detach(model, false, 'nn.LoRA.remove');
}

/**
 * Whether `linear` carries adapters now: its output is then not x·weightᵀ + bias,
 * so a loss from hidden states cannot take its weight (nn.lossHead).
 */
function adapts(linear: Linear): boolean {
  return adaptedLinears.has(linear);
}

export const LoRA = { apply, parameters, merge, remove, config, adapts };
