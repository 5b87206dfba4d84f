// The WKV-4 direct formula (docs/kernels.md#wkv4) in float64, written as sums over
// the past in log space — not the recurrence the library runs.
export interface Wkv4Inputs {
  B: number;
  T: number;
  C: number;
  timeDecay: Float64Array; // [C]
  timeFirst: Float64Array; // [C]
  k: Float64Array; // [B,T,C]
  v: Float64Array; // [B,T,C]
  state?: Float64Array; // [B,3,C] = (aa, bb, pp)
}

/** y [B,T,C] and the final state's represented numerator/denominator logs. */
export function wkv4Reference(x: Wkv4Inputs): {
  y: Float64Array;
  logNum: Float64Array;
  logDen: Float64Array;
  num: Float64Array;
} {
  const { B, T, C } = x;
  const y = new Float64Array(B * T * C);
  const num = new Float64Array(B * C),
    logDen = new Float64Array(B * C),
    logNum = new Float64Array(B * C);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      const w = -Math.exp(x.timeDecay[c]!),
        u = x.timeFirst[c]!;
      const aa0 = x.state ? x.state[(b * 3 + 0) * C + c]! : 0;
      const bb0 = x.state ? x.state[(b * 3 + 1) * C + c]! : 0;
      const pp0 = x.state ? x.state[(b * 3 + 2) * C + c]! : -1e38;
      const kk = (t: number) => x.k[(b * T + t) * C + c]!;
      const vv = (t: number) => x.v[(b * T + t) * C + c]!;
      // Terms (log weight, value) of the sums.
      const sums = (terms: [number, number][], stateLog: number) => {
        let m = stateLog;
        for (const [l] of terms) m = Math.max(m, l);
        let n = Math.exp(stateLog - m) * aa0,
          d = Math.exp(stateLog - m) * bb0;
        for (const [l, val] of terms) {
          n += Math.exp(l - m) * val;
          d += Math.exp(l - m);
        }
        return { n, d, m };
      };
      for (let t = 0; t < T; t++) {
        const terms: [number, number][] = [];
        for (let i = 0; i < t; i++) terms.push([(t - 1 - i) * w + kk(i), vv(i)]);
        terms.push([u + kk(t), vv(t)]);
        const { n, d } = sums(terms, pp0 + t * w);
        y[(b * T + t) * C + c] = n / d;
      }
      const terms: [number, number][] = [];
      for (let i = 0; i < T; i++) terms.push([(T - 1 - i) * w + kk(i), vv(i)]);
      const { n, d, m } = sums(terms, pp0 + T * w);
      num[b * C + c] = n;
      logDen[b * C + c] = Math.log(d) + m;
      logNum[b * C + c] = m; // n is scaled by e^-m
    }
  }
  return { y, logNum, logDen, num };
}

/** Deterministic pseudo-random float64 values in [lo, hi). */
export function uniform(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  let s = seed >>> 0 || 1;
  return Float64Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  });
}

export function relError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  let d = 0,
    r = 0;
  for (let i = 0; i < ref.length; i++) {
    d += (out[i]! - ref[i]!) ** 2;
    r += ref[i]! ** 2;
  }
  return r > 0 ? Math.sqrt(d / r) : Math.sqrt(d);
}
