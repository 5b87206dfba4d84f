// Independent float64 reference of TransformerFAM attention for the tests,
// written from docs/kernels.md#fam's table with plain loops: each query gets an
// explicit list of the keys it reads (memory segment, the block's FAM keys,
// its own block up to itself), then softmax attention over that list and its
// gradient, accumulated into every key the query read. Shares no code with
// the library.

export interface FamProblem {
  B: number;
  H: number;
  Hkv: number;
  T: number;
  D: number;
  L: number;
  m: number;
  F: number;
  fam: boolean;
  scale?: number;
  q: Float64Array; // [B,H,T,D]
  k: Float64Array; // [B,Hkv,T,D]
  v: Float64Array;
  famK: Float64Array; // [B,Hkv,NB,F,D] (empty when !fam)
  famV: Float64Array;
  gOut: Float64Array; // [B,H,T,D]
}

export interface FamResult {
  out: Float64Array;
  lse: Float64Array;
  gq: Float64Array;
  gk: Float64Array;
  gv: Float64Array;
  gFamK: Float64Array;
  gFamV: Float64Array;
}

export const numBlocks = (T: number, L: number): number => Math.ceil(T / L);

/** A small deterministic generator (mulberry32) with Box-Muller normals. */
export function normals(n: number, seed: number, scale = 1): Float64Array {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = uniform() + 1e-12;
    const u2 = uniform();
    out[i] = scale * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
}

export function makeProblem(
  shape: {
    B?: number;
    H?: number;
    Hkv?: number;
    T: number;
    D: number;
    L: number;
    m: number;
    F?: number;
    fam?: boolean;
    scale?: number;
  },
  seed: number,
  magnitude = 1,
): FamProblem {
  const B = shape.B ?? 1,
    H = shape.H ?? 2,
    Hkv = shape.Hkv ?? H,
    F = shape.F ?? 3,
    fam = shape.fam ?? true;
  const NB = numBlocks(shape.T, shape.L);
  const famSize = fam ? B * Hkv * NB * F * shape.D : 0;
  return {
    B,
    H,
    Hkv,
    T: shape.T,
    D: shape.D,
    L: shape.L,
    m: shape.m,
    F,
    fam,
    scale: shape.scale,
    q: normals(B * H * shape.T * shape.D, seed, magnitude),
    k: normals(B * Hkv * shape.T * shape.D, seed + 1, magnitude),
    v: normals(B * Hkv * shape.T * shape.D, seed + 2),
    famK: normals(famSize, seed + 3, magnitude),
    famV: normals(famSize, seed + 4),
    gOut: normals(B * H * shape.T * shape.D, seed + 5),
  };
}

interface KeyRow {
  k: Float64Array;
  v: Float64Array;
  gk: Float64Array;
  gv: Float64Array;
  offset: number;
}

/**
 * Softmax attention of one query (row at qOff of q) over `keys`; writes out and
 * lse, and adds the query's gradient contributions to gq and to every key.
 */
function attendRow(
  q: Float64Array,
  gOut: Float64Array,
  qOff: number,
  D: number,
  scale: number,
  keys: KeyRow[],
  out: Float64Array,
  lse: Float64Array,
  row: number,
  gq: Float64Array,
  deltaOut?: Float64Array,
): void {
  const s = keys.map((key) => {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qOff + d]! * key.k[key.offset + d]!;
    return scale * dot;
  });
  const max = Math.max(...s);
  let sum = 0;
  for (const x of s) sum += Math.exp(x - max);
  lse[row] = max + Math.log(sum);
  const p = s.map((x) => Math.exp(x - lse[row]!));
  for (let d = 0; d < D; d++) {
    let o = 0;
    keys.forEach((key, j) => (o += p[j]! * key.v[key.offset + d]!));
    out[qOff + d] = o;
  }
  let delta = 0;
  const o = deltaOut ?? out;
  for (let d = 0; d < D; d++) delta += gOut[qOff + d]! * o[qOff + d]!;
  keys.forEach((key, j) => {
    let dp = 0;
    for (let d = 0; d < D; d++) dp += gOut[qOff + d]! * key.v[key.offset + d]!;
    const ds = p[j]! * (dp - delta);
    for (let d = 0; d < D; d++) {
      gq[qOff + d] = gq[qOff + d]! + scale * ds * key.k[key.offset + d]!;
      key.gk[key.offset + d] = key.gk[key.offset + d]! + scale * ds * q[qOff + d]!;
      key.gv[key.offset + d] = key.gv[key.offset + d]! + p[j]! * gOut[qOff + d]!;
    }
  });
}

/**
 * blockAttention and its gradient, from the table in docs/kernels.md#fam. The
 * backward's Δ = rowsum(gOut∘out) uses `deltaOut` when given: the `out` the
 * backward op receives (with 16-bit storage, the rounded forward result — an
 * input of the backward like q and k, so the reference sees it too).
 */
export function referenceBlockAttention(p: FamProblem, deltaOut?: Float64Array): FamResult {
  const { B, H, Hkv, T, D, L, m, F } = p;
  const NB = numBlocks(T, L);
  const scale = p.scale ?? 1 / Math.sqrt(D);
  const r: FamResult = {
    out: new Float64Array(p.q.length),
    lse: new Float64Array(B * H * T),
    gq: new Float64Array(p.q.length),
    gk: new Float64Array(p.k.length),
    gv: new Float64Array(p.v.length),
    gFamK: new Float64Array(p.famK.length),
    gFamV: new Float64Array(p.famV.length),
  };
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let t = 0; t < T; t++) {
        const tau = Math.floor(t / L);
        const keys: KeyRow[] = [];
        const seq = (j: number): void => {
          keys.push({ k: p.k, v: p.v, gk: r.gk, gv: r.gv, offset: ((b * Hkv + kvh) * T + j) * D });
        };
        // memory segment: previous m blocks, no mask
        for (let j = Math.max(0, (tau - m) * L); j < tau * L; j++) seq(j);
        // previous FAM: famK[τ], all F
        if (p.fam) {
          for (let f = 0; f < F; f++) {
            const offset = (((b * Hkv + kvh) * NB + tau) * F + f) * D;
            keys.push({ k: p.famK, v: p.famV, gk: r.gFamK, gv: r.gFamV, offset });
          }
        }
        // current block, causal
        for (let j = tau * L; j <= t; j++) seq(j);
        const row = (b * H + h) * T + t;
        attendRow(p.q, p.gOut, row * D, D, scale, keys, r.out, r.lse, row, r.gq, deltaOut);
      }
    }
  }
  return r;
}

export interface MemoryProblem {
  B: number;
  H: number;
  Hkv: number;
  F: number;
  Lb: number;
  D: number;
  famQ: Float64Array;
  famK: Float64Array;
  famV: Float64Array;
  blockK: Float64Array;
  blockV: Float64Array;
  gOut: Float64Array;
}

export function makeMemoryProblem(
  s: { B: number; H: number; Hkv: number; F: number; Lb: number; D: number },
  seed: number,
): MemoryProblem {
  return {
    ...s,
    famQ: normals(s.B * s.H * s.F * s.D, seed),
    famK: normals(s.B * s.Hkv * s.F * s.D, seed + 1),
    famV: normals(s.B * s.Hkv * s.F * s.D, seed + 2),
    blockK: normals(s.B * s.Hkv * s.Lb * s.D, seed + 3),
    blockV: normals(s.B * s.Hkv * s.Lb * s.D, seed + 4),
    gOut: normals(s.B * s.H * s.F * s.D, seed + 5),
  };
}

/** memoryAttention and its gradient: every FAM query reads [famK; blockK], no mask. */
export function referenceMemoryAttention(p: MemoryProblem): Record<string, Float64Array> {
  const { B, H, Hkv, F, Lb, D } = p;
  const scale = 1 / Math.sqrt(D);
  const out = new Float64Array(p.famQ.length),
    lse = new Float64Array(B * H * F),
    gFamQ = new Float64Array(p.famQ.length);
  const gFamK = new Float64Array(p.famK.length),
    gFamV = new Float64Array(p.famV.length);
  const gBlockK = new Float64Array(p.blockK.length),
    gBlockV = new Float64Array(p.blockV.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let i = 0; i < F; i++) {
        const keys: KeyRow[] = [];
        for (let f = 0; f < F; f++)
          keys.push({ k: p.famK, v: p.famV, gk: gFamK, gv: gFamV, offset: ((b * Hkv + kvh) * F + f) * D });
        for (let j = 0; j < Lb; j++)
          keys.push({ k: p.blockK, v: p.blockV, gk: gBlockK, gv: gBlockV, offset: ((b * Hkv + kvh) * Lb + j) * D });
        const row = (b * H + h) * F + i;
        attendRow(p.famQ, p.gOut, row * D, D, scale, keys, out, lse, row, gFamQ);
      }
    }
  }
  return { out, lse, gFamQ, gFamK, gFamV, gBlockK, gBlockV };
}

/** ‖a − b‖ / ‖b‖ (docs/kernels.md's measure); ‖a‖ when b is all zero. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0,
    norm = 0;
  for (let i = 0; i < b.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    norm += b[i]! ** 2;
  }
  return norm > 0 ? Math.sqrt(diff / norm) : Math.sqrt(diff);
}

export function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! ** 2;
  return Math.sqrt(s);
}
