// Module: named parameters and sub-modules, state dicts, disposal.
import { Tensor } from '../tensor';
import { keep } from '../scope';
import * as dense from '../kernels/dense';
import { noGrad } from '../autograd/engine';

export abstract class Module {
  private readonly params = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  /** Registers a parameter: it requires gradients and survives every tidy. */
  protected registerParameter(name: string, t: Tensor): Tensor {
    t.requiresGrad = true;
    keep(t);
    this.params.set(name, t);
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /**
   * @internal Adds a sub-module after construction (nn.LoRA's adapters); its
   * parameters are listed, and saved, like any other.
   */
  attachModule<M extends Module>(name: string, m: M): M {
    if (this.children.has(name) || this.params.has(name)) {
      throw new RangeError(`Module.attachModule: '${name}' is already registered`);
    }
    return this.registerModule(name, m);
  }

  /** @internal Removes a sub-module added by attachModule (it is not disposed). */
  detachModule(name: string): void {
    this.children.delete(name);
  }

  /** [dotted name, parameter] in registration order, e.g. 'blocks.0.att.key.weight'. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [name, t] of this.params) out.push([prefix + name, t]);
    for (const [name, child] of this.children) out.push(...child.namedParameters(`${prefix}${name}.`));
    return out;
  }

  /** [dotted name, module] of this module ('') and every descendant, depth first. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix.replace(/\.$/, ''), this]];
    for (const [name, child] of this.children) out.push(...child.namedModules(`${prefix}${name}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** The parameters by name (the tensors themselves, as PyTorch's state_dict). */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedParameters());
  }

  /**
   * Copies values into the parameters. Every parameter must be present with
   * its shape; dtypes are converted. Missing, unexpected or mis-shaped
   * entries are one RangeError naming them all.
   */
  loadStateDict(sd: Record<string, Tensor>): void {
    if (typeof sd !== 'object' || sd === null)
      throw new TypeError('Module.loadStateDict: sd must be an object of Tensors');
    const own = new Map(this.namedParameters());
    const missing = [...own.keys()].filter((k) => !(k in sd));
    const unexpected = Object.keys(sd).filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [name, param] of own) {
      const src = sd[name];
      if (!src) continue;
      if (!(src instanceof Tensor)) throw new TypeError(`Module.loadStateDict: '${name}' must be a Tensor`);
      if (src.shape.join(',') !== param.shape.join(',')) {
        mismatched.push(`${name} (expected [${param.shape.join(',')}], got [${src.shape.join(',')}])`);
      }
    }
    if (missing.length || unexpected.length || mismatched.length) {
      const parts = [];
      if (missing.length) parts.push(`missing: ${missing.join(', ')}`);
      if (unexpected.length) parts.push(`unexpected: ${unexpected.join(', ')}`);
      if (mismatched.length) parts.push(`wrong shape: ${mismatched.join(', ')}`);
      throw new RangeError(`Module.loadStateDict: ${parts.join('; ')}`);
    }
    noGrad(() => {
      for (const [name, param] of own) {
        const src = sd[name]!;
        const converted =
          src.dtype === param.dtype && src.device === param.device ? src : src.to(param.device).to(param.dtype);
        dense.copyInto_(param, converted);
        if (converted !== src) converted.dispose();
      }
    });
  }

  /** Disposes every parameter (and its gradient). */
  dispose(): void {
    for (const t of this.parameters()) {
      t.grad?.dispose();
      t.grad = null;
      t.dispose();
    }
  }
}
