// Reverse-mode autograd: a tape of recorded ops. Each op's output remembers
// its GradFn (the op's backward and the inputs that need gradients);
// backward() walks the graph in reverse topological order, accumulating
// gradients, and frees every saved tensor as soon as its op has run.
import * as dense from '../kernels/dense';
import { native } from '../native';
import { installBackward, Tensor, type GradFn } from '../tensor';
import { keep } from '../scope';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording ops for autograd (also around async functions). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  let result: T;
  try {
    result = fn();
  } catch (error) {
    gradEnabled = previous;
    throw error;
  }
  if (result && typeof (result as { then?: unknown }).then === 'function') {
    return Promise.resolve(result).finally(() => {
      gradEnabled = previous;
    }) as T;
  }
  gradEnabled = previous;
  return result;
}

/**
 * Backward of one op: given the gradients of its outputs (null where an output
 * received none), the gradients of its inputs (null where not needed).
 */
export type BackwardFn = (gradOutputs: (Tensor | null)[]) => (Tensor | null | undefined)[];

export class Node implements GradFn {
  constructor(
    readonly name: string,
    readonly inputs: (Tensor | null)[],
    readonly outputCount: number,
    public backwardFn: BackwardFn | null,
    private saved: Tensor[],
  ) {}

  /** Drops the saved tensors; the node can no longer run backward. */
  release(): void {
    for (const t of this.saved) t.dispose();
    this.saved = [];
    this.backwardFn = null;
  }
}

/**
 * A handle on `t`'s memory that outlives t.dispose() and every tidy, for an
 * op's backward. Freed when the graph is released (after backward()).
 */
export function save(t: Tensor): Tensor {
  const alias = new Tensor(native().reshape({ x: t._handleFor('autograd'), shape: t.shape }));
  return keep(alias);
}

export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t instanceof Tensor && t._requiresGrad);
}

/**
 * Records an op if any input requires a gradient. `saved` are the aliases
 * (from save()) that backwardFn reads; they are released after backward().
 * Returns the outputs, now marked as requiring gradients.
 */
export function record<T extends Tensor[]>(
  name: string,
  inputs: readonly (Tensor | null | undefined)[],
  outputs: T,
  makeBackward: (save: (t: Tensor) => Tensor) => BackwardFn,
): T {
  if (!needsGrad(inputs)) return outputs;
  const saved: Tensor[] = [];
  const saveForBackward = (t: Tensor) => {
    const alias = save(t);
    saved.push(alias);
    return alias;
  };
  const backwardFn = makeBackward(saveForBackward);
  const node = new Node(
    name,
    inputs.map((t) => (t instanceof Tensor && t._requiresGrad ? t : null)),
    outputs.length,
    backwardFn,
    saved,
  );
  outputs.forEach((out, i) => {
    out._gradFn = node;
    out._outputIndex = i;
    out._requiresGrad = true;
  });
  return outputs;
}

function add(a: Tensor | null, b: Tensor): Tensor {
  if (!a) return b;
  const sum = dense.binary('add', a, b);
  a.dispose();
  b.dispose();
  return sum;
}

function onesLike(t: Tensor): Tensor {
  return new Tensor(
    native().full({ fn: 'Tensor.backward', shape: t.shape, value: 1, dtype: t.dtype, device: t.device.toString() }),
  );
}

function runBackward(root: Tensor, grad: Tensor | undefined): void {
  if (!root._requiresGrad) {
    throw new RangeError('Tensor.backward: tensor does not require grad and has no grad_fn');
  }
  if (grad === undefined) {
    if (root.numel !== 1) {
      throw new RangeError(
        `Tensor.backward: grad must be given for a non-scalar tensor of shape [${root.shape.join(',')}]`,
      );
    }
  } else {
    if (!(grad instanceof Tensor)) throw new TypeError('Tensor.backward: grad must be a Tensor');
    grad._handleFor('Tensor.backward', 'grad');
    if (grad.shape.join(',') !== root.shape.join(',')) {
      throw new RangeError(
        `Tensor.backward: grad has shape [${grad.shape.join(',')}] but the tensor has [${root.shape.join(',')}]`,
      );
    }
  }
  noGrad(() => {
    const rootGrad = grad ? grad.clone() : onesLike(root);
    keep(rootGrad);
    const rootNode = root._gradFn as Node | null;
    if (!rootNode) {
      accumulateLeaf(root, rootGrad);
      return;
    }
    // Reverse topological order by iterative DFS.
    const order: Node[] = [];
    const visited = new Set<Node>();
    const stack: [Node, number][] = [[rootNode, 0]];
    visited.add(rootNode);
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const [node, next] = top;
      if (next < node.inputs.length) {
        top[1]++;
        const parent = node.inputs[next]?._gradFn as Node | null | undefined;
        if (parent && !visited.has(parent)) {
          visited.add(parent);
          stack.push([parent, 0]);
        }
      } else {
        order.push(node);
        stack.pop();
      }
    }
    const pending = new Map<Node, (Tensor | null)[]>();
    pending.set(
      rootNode,
      Array.from({ length: rootNode.outputCount }, (_, i) => (i === root._outputIndex ? rootGrad : null)),
    );
    for (let i = order.length - 1; i >= 0; i--) {
      const node = order[i]!;
      const gradOutputs = pending.get(node);
      pending.delete(node);
      if (!gradOutputs || gradOutputs.every((g) => g === null)) {
        node.release();
        continue;
      }
      if (!node.backwardFn) {
        throw new Error(
          `Tensor.backward: the graph through ${node.name} was already released by an earlier backward()`,
        );
      }
      const gradInputs = node.backwardFn(gradOutputs);
      node.release();
      // A backward may hand back one of its gradOutputs, or one tensor for two
      // inputs: give every input a tensor of its own before disposing.
      const owned = new Set<Tensor>();
      const own = (g: Tensor): Tensor => {
        const mine = owned.has(g) ? g.clone() : g;
        owned.add(mine);
        return mine;
      };
      const inputGrads = node.inputs.map((input, k) => {
        const g = gradInputs[k];
        return input && g ? own(g) : null;
      });
      gradInputs.forEach((g) => {
        if (g && !owned.has(g) && !gradOutputs.includes(g)) g.dispose();
      });
      for (const g of gradOutputs) if (g && !owned.has(g)) g.dispose();
      node.inputs.forEach((input, k) => {
        const g = inputGrads[k];
        if (!input || !g) return;
        keep(g);
        const parent = input._gradFn as Node | null;
        if (!parent) {
          accumulateLeaf(input, g);
          return;
        }
        let slots = pending.get(parent);
        if (!slots) {
          slots = Array.from({ length: parent.outputCount }, () => null);
          pending.set(parent, slots);
        }
        slots[input._outputIndex] = add(slots[input._outputIndex] ?? null, g);
        keep(slots[input._outputIndex]!);
      });
    }
  });
}

function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  if (leaf._grad && !leaf._grad.isDisposed) {
    leaf._grad = keep(add(leaf._grad, g));
  } else {
    leaf._grad = keep(g.dtype === leaf.dtype ? g : g.to(leaf.dtype));
    if (leaf._grad !== g) g.dispose();
  }
}

installBackward(runBackward);
