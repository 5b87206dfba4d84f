// Independent float64 references for the dense kernels, written from the
// definitions with plain loops over Float64Arrays; they share no code with the
// library (test/dense.test.ts compares against them).

export type Shape = readonly number[];

export interface Arr {
  data: Float64Array;
  shape: Shape;
}

export function numel(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1]! * shape[d + 1]!;
  return s;
}

/** Multi-index of flat index i in shape. */
export function unravel(i: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return idx;
}

export function ravel(idx: readonly number[], shape: Shape): number {
  let o = 0;
  for (let d = 0; d < shape.length; d++) o = o * shape[d]! + idx[d]!;
  return o;
}

/** mulberry32: a small deterministic generator of uniform floats in [low, high). */
export function randomArray(n: number, seed: number, low = -1, high = 1): Float64Array {
  let s = seed >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = low + (high - low) * u;
  }
  return out;
}

/** ‖out − ref‖ / ‖ref‖ (docs/kernels.md's measure); ‖out‖ when ref is all zero. */
export function relError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) return Infinity;
  let diff = 0,
    norm = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i]! - ref[i]!;
    diff += d * d;
    norm += ref[i]! * ref[i]!;
  }
  return norm > 0 ? Math.sqrt(diff / norm) : Math.sqrt(diff);
}

// ---- broadcasting ------------------------------------------------------------------

export function broadcastShape(a: Shape, b: Shape): number[] | null {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)]!;
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)]!;
    if (da !== db && da !== 1 && db !== 1) return null;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Flat index into an operand of shape `own` read broadcast at output multi-index idx. */
export function broadcastIndex(idx: readonly number[], own: Shape): number {
  const lead = idx.length - own.length;
  let o = 0;
  for (let d = 0; d < own.length; d++) o = o * own[d]! + (own[d] === 1 ? 0 : idx[lead + d]!);
  return o;
}

export const binaryFns: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  maximum: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b)),
};

export function refBinary(op: string, a: Arr, b: Arr): Arr {
  const shape = broadcastShape(a.shape, b.shape);
  if (!shape) throw new Error('shapes do not broadcast');
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    out[i] = binaryFns[op]!(a.data[broadcastIndex(idx, a.shape)]!, b.data[broadcastIndex(idx, b.shape)]!);
  }
  return { data: out, shape };
}

export const scalarFns: Record<string, (x: number, s: number) => number> = {
  add: (x, s) => x + s,
  mul: (x, s) => x * s,
  pow: (x, s) => x ** s,
  rsub: (x, s) => s - x,
  div_by: (x, s) => s / x,
};

export const unaryFns: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  relu: (x) => Math.max(x, 0),
  square: (x) => x * x,
  tanh: Math.tanh,
  silu: (x) => x / (1 + Math.exp(-x)),
  sqrt: Math.sqrt,
  abs: Math.abs,
};

// ---- reductions ------------------------------------------------------------------

export function refSum(x: Arr, dims: readonly number[], keepDim: boolean): Arr {
  const rank = x.shape.length;
  const red = new Array<boolean>(rank).fill(dims.length === 0);
  for (const d of dims) red[d < 0 ? d + rank : d] = true;
  const kept = x.shape.map((s, d) => (red[d] ? 1 : s));
  const out = new Float64Array(numel(kept));
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape).map((v, d) => (red[d] ? 0 : v));
    out[ravel(idx, kept)]! += x.data[i]!;
  }
  return { data: out, shape: keepDim ? kept : x.shape.filter((_, d) => !red[d]) };
}

/** x summed down to `shape` (the reverse of broadcasting). */
export function refSumToShape(x: Arr, shape: Shape): Arr {
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < x.data.length; i++) out[broadcastIndex(unravel(i, x.shape), shape)]! += x.data[i]!;
  return { data: out, shape };
}

export function refExpandTo(x: Arr, shape: Shape): Arr {
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) out[i] = x.data[broadcastIndex(unravel(i, shape), x.shape)]!;
  return { data: out, shape };
}

// ---- matmul ----------------------------------------------------------------------

export function refMatmul(a: Arr, b: Arr, transA = false, transB = false): Arr {
  const ra = a.shape.length,
    rb = b.shape.length;
  const M = transA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const K = transA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const N = transB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  const batchA = a.shape.slice(0, ra - 2),
    batchB = b.shape.slice(0, rb - 2);
  const batch = broadcastShape(batchA, batchB)!;
  const out = new Float64Array(numel(batch) * M * N);
  for (let z = 0; z < numel(batch); z++) {
    const idx = unravel(z, batch);
    const ao = broadcastIndex(idx, batchA) * M * K,
      bo = broadcastIndex(idx, batchB) * K * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = transA ? a.data[ao + k * M + i]! : a.data[ao + i * K + k]!;
          const bv = transB ? b.data[bo + j * K + k]! : b.data[bo + k * N + j]!;
          s += av * bv;
        }
        out[(z * M + i) * N + j] = s;
      }
    }
  }
  return { data: out, shape: [...batch, M, N] };
}

// ---- norms -------------------------------------------------------------------------

export function refLayerNorm(x: Arr, weight: Float64Array | null, bias: Float64Array | null, eps: number, rms = false) {
  const C = x.shape[x.shape.length - 1]!;
  const rows = x.data.length / C;
  const y = new Float64Array(x.data.length),
    mean = new Float64Array(rows),
    rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    if (!rms) {
      for (let i = 0; i < C; i++) m += x.data[r * C + i]!;
      m /= C;
    }
    let v = 0;
    for (let i = 0; i < C; i++) v += (x.data[r * C + i]! - m) ** 2;
    const s = 1 / Math.sqrt(v / C + eps);
    mean[r] = m;
    rstd[r] = s;
    for (let i = 0; i < C; i++) {
      let o = (x.data[r * C + i]! - m) * s;
      if (weight) o *= weight[i]!;
      if (bias) o += bias[i]!;
      y[r * C + i] = o;
    }
  }
  return { y, mean, rstd };
}

// ---- embedding, rope, shape --------------------------------------------------------------

export function refEmbedding(weight: Float64Array, D: number, ids: ArrayLike<number>): Float64Array {
  const out = new Float64Array(ids.length * D);
  for (let n = 0; n < ids.length; n++) for (let d = 0; d < D; d++) out[n * D + d] = weight[ids[n]! * D + d]!;
  return out;
}

export function refEmbeddingBackward(g: Float64Array, D: number, ids: ArrayLike<number>, V: number): Float64Array {
  const out = new Float64Array(V * D);
  for (let n = 0; n < ids.length; n++) for (let d = 0; d < D; d++) out[ids[n]! * D + d]! += g[n * D + d]!;
  return out;
}

/** x [..., T, D]; positions [T] or [B, T] (B = shape[0]); interleaved pairs. */
export function refRope(x: Arr, positions: ArrayLike<number>, posShape: Shape, base: number, inverse: boolean) {
  const r = x.shape.length;
  const T = x.shape[r - 2]!,
    D = x.shape[r - 1]!;
  const out = new Float64Array(x.data.length);
  const perBatch = x.data.length / x.shape[0]!;
  for (let row = 0; row < x.data.length / D; row++) {
    const t = row % T;
    const b = Math.floor((row * D) / perBatch);
    const pos = posShape.length === 2 ? positions[b * T + t]! : positions[t]!;
    for (let i = 0; i < D / 2; i++) {
      const angle = pos * base ** ((-2 * i) / D);
      const c = Math.cos(angle),
        s = inverse ? -Math.sin(angle) : Math.sin(angle);
      const x0 = x.data[row * D + 2 * i]!,
        x1 = x.data[row * D + 2 * i + 1]!;
      out[row * D + 2 * i] = x0 * c - x1 * s;
      out[row * D + 2 * i + 1] = x0 * s + x1 * c;
    }
  }
  return out;
}

export function refPermute(x: Arr, dims: readonly number[]): Arr {
  const shape = dims.map((d) => x.shape[d]!);
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    const src = new Array<number>(x.shape.length);
    dims.forEach((d, k) => (src[d] = idx[k]!));
    out[i] = x.data[ravel(src, x.shape)]!;
  }
  return { data: out, shape };
}

export function refSlice(x: Arr, dim: number, start: number, end: number): Arr {
  const shape = [...x.shape];
  shape[dim] = end - start;
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    idx[dim]! += start;
    out[i] = x.data[ravel(idx, x.shape)]!;
  }
  return { data: out, shape };
}

export function refConcat(xs: Arr[], dim: number): Arr {
  const shape = [...xs[0]!.shape];
  shape[dim] = xs.reduce((s, x) => s + x.shape[dim]!, 0);
  const out = new Float64Array(numel(shape));
  let offset = 0;
  for (const x of xs) {
    for (let i = 0; i < x.data.length; i++) {
      const idx = unravel(i, x.shape);
      idx[dim]! += offset;
      out[ravel(idx, shape)] = x.data[i]!;
    }
    offset += x.shape[dim]!;
  }
  return { data: out, shape };
}

export function refTokenShift(x: Arr): Float64Array {
  const [B, T, C] = x.shape as [number, number, number];
  const out = new Float64Array(x.data.length);
  for (let b = 0; b < B; b++)
    for (let t = 1; t < T; t++) for (let c = 0; c < C; c++) out[(b * T + t) * C + c] = x.data[(b * T + t - 1) * C + c]!;
  return out;
}

// ---- optimizer -----------------------------------------------------------------------

/**
 * torch.optim.AdamW (amsgrad=False, maximize=False), one step transcribed:
 *   param.mul_(1 - lr*wd); exp_avg.lerp_(grad, 1-beta1);
 *   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2)
 *   step_size = lr / (1 - beta1**step); denom = exp_avg_sq.sqrt() / sqrt(1 - beta2**step) + eps
 *   param.addcdiv_(exp_avg, denom, value=-step_size)
 */
export function refAdamwStep(
  p: Float64Array,
  g: Float64Array,
  m: Float64Array,
  v: Float64Array,
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number },
): void {
  const bc1 = 1 - o.beta1 ** o.step,
    bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < p.length; i++) {
    p[i] = p[i]! * (1 - o.lr * o.weightDecay);
    m[i] = m[i]! + (1 - o.beta1) * (g[i]! - m[i]!);
    v[i] = v[i]! * o.beta2 + (1 - o.beta2) * g[i]! * g[i]!;
    const denom = Math.sqrt(v[i]!) / Math.sqrt(bc2) + o.eps;
    p[i] = p[i]! - (o.lr / bc1) * (m[i]! / denom);
  }
}

// ---- finite differences -----------------------------------------------------------------

/** Central differences of Σ_k w[k]·f(x)[k] with respect to every x[i]. */
export function numericGrad(
  f: (x: Float64Array) => ArrayLike<number>,
  x: Float64Array,
  w: ArrayLike<number>,
  h = 1e-6,
): Float64Array {
  const g = new Float64Array(x.length);
  const xs = Float64Array.from(x);
  for (let i = 0; i < x.length; i++) {
    const keep = xs[i]!;
    xs[i] = keep + h;
    const up = f(xs);
    xs[i] = keep - h;
    const down = f(xs);
    xs[i] = keep;
    let s = 0;
    for (let k = 0; k < w.length; k++) s += w[k]! * (up[k]! - down[k]!);
    g[i] = s / (2 * h);
  }
  return g;
}
