// gradcheck: compares the analytic gradient of fn (backward with a random
// upstream gradient r, i.e. d<r, fn(x)>/dx) with central finite differences of
// <r, fn(x)>, in float64, as torch.autograd.gradcheck does.
import { native } from '../native';
import { Tensor, checkTensor } from '../tensor';
import { tidy } from '../scope';
import { checkOptions } from '../validate';
import { noGrad } from './engine';

function float64Leaf(values: Float64Array, like: Tensor, requiresGrad: boolean): Tensor {
  const t = new Tensor(native().fromHost({ data: values, shape: like.shape, dtype: 'float64', device: 'cpu' }));
  t.requiresGrad = requiresGrad;
  return t;
}

export function gradcheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: { eps?: number; atol?: number; rtol?: number; seed?: number } = {},
): true {
  if (typeof fn !== 'function') throw new TypeError('gradcheck: fn must be a function');
  if (!Array.isArray(inputs)) throw new TypeError('gradcheck: inputs must be an array of Tensors');
  checkOptions(opts, 'gradcheck', ['eps', 'atol', 'rtol', 'seed']);
  const eps = opts.eps ?? 1e-6,
    atol = opts.atol ?? 1e-5,
    rtol = opts.rtol ?? 1e-3;
  inputs.forEach((x, i) => {
    checkTensor(x, 'gradcheck', `inputs[${i}]`);
    if (x.dtype !== 'float64' && x.dtype !== 'int32') {
      throw new TypeError(`gradcheck: inputs[${i}] must be float64 (or int32, not differentiated), got ${x.dtype}`);
    }
    if (x.device.kind !== 'cpu') throw new TypeError(`gradcheck: inputs[${i}] must be on the cpu`);
  });
  const host = inputs.map((x) => (x.dtype === 'float64' ? (x.dataSync() as Float64Array) : null));
  const differentiable = inputs.map((x) => x.dtype === 'float64' && x.requiresGrad);
  if (!differentiable.some(Boolean)) throw new RangeError('gradcheck: no input has requiresGrad = true');

  return tidy(() => {
    // Analytic: backward with upstream r (deterministic pseudo-random weights).
    const leaves = inputs.map((x, i) => (host[i] ? float64Leaf(host[i]!, x, differentiable[i]!) : x));
    const out = fn(...leaves);
    if (!(out instanceof Tensor)) throw new TypeError('gradcheck: fn must return a Tensor');
    let state = (opts.seed ?? 1234) >>> 0;
    const r = new Float64Array(out.numel).map(() => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state / 2 ** 32 - 0.5;
    });
    const rTensor = new Tensor(
      native().fromHost({ data: r, shape: out.shape, dtype: out.dtype, device: out.device.toString() }),
    );
    out.backward(rTensor);
    const analytic = leaves.map((leaf, i) =>
      differentiable[i] ? (leaf.grad?.dataSync() as Float64Array | undefined) : undefined,
    );
    leaves.forEach((leaf, i) => {
      if (leaf !== inputs[i]) leaf.grad?.dispose();
    });

    const objective = (xs: Tensor[]): number =>
      noGrad(() =>
        tidy(() => {
          const y = fn(...xs).dataSync();
          let s = 0;
          for (let k = 0; k < y.length; k++) s += y[k]! * r[k]!;
          return s;
        }),
      );

    let worst = { excess: 0, input: -1, index: -1, analytic: 0, numeric: 0 };
    inputs.forEach((x, i) => {
      if (!differentiable[i]) return;
      const values = Float64Array.from(host[i]!);
      for (let j = 0; j < values.length; j++) {
        const original = values[j]!;
        const evalAt = (v: number) => {
          values[j] = v;
          const perturbed = float64Leaf(values, x, false);
          const xs = inputs.map((y, k) => (k === i ? perturbed : host[k] ? float64Leaf(host[k]!, y, false) : y));
          return objective(xs);
        };
        const numeric = (evalAt(original + eps) - evalAt(original - eps)) / (2 * eps);
        values[j] = original;
        const a = analytic[i]?.[j] ?? 0;
        const excess = Math.abs(a - numeric) - (atol + rtol * Math.abs(numeric));
        if (excess > worst.excess || !Number.isFinite(a)) {
          worst = { excess: Number.isFinite(a) ? excess : Infinity, input: i, index: j, analytic: a, numeric };
        }
      }
    });
    if (worst.input >= 0) {
      throw new Error(
        `gradcheck: gradient mismatch at inputs[${worst.input}][${worst.index}] (flat): analytic ${worst.analytic}, ` +
          `numeric ${worst.numeric} (atol ${atol}, rtol ${rtol}, eps ${eps})`,
      );
    }
    return true as const;
  });
}
