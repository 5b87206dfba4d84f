// Independent float64 references for the loss tests: plain loops written from
// docs/kernels.md#losses (and, for ORPO, a direct transcription of TRL's
// odds_ratio_loss), plus the goldfish rules with BigInt arithmetic. They
// share no code with the library.

const MASK64 = (1n << 64n) - 1n;
const GAMMA = 0x9e3779b97f4a7c15n;

/** The goldfish mix (splitmix64's finaliser), uint64 wrapping, with BigInt. */
export function mix64(z: bigint): bigint {
  z &= MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** u = double(x >> 11) · 2^-53 */
function unit(x: bigint): number {
  return Number(x >> 11n) / 2 ** 53;
}

export interface GoldfishSpec {
  k: number;
  strategy: 'hash' | 'static' | 'random';
  contextWidth: number;
  seed: number;
  startPosition: number;
}

/** The 0/1 keep mask of labels [rows, T] (ignored labels 0), from the spec. */
export function goldfishMaskRef(
  labels: ArrayLike<number>,
  T: number,
  g: GoldfishSpec,
  hashTokens?: ArrayLike<number>,
  ignoreIndex = -100,
): Int32Array {
  const tokens = hashTokens ?? labels;
  const out = new Int32Array(labels.length);
  const start = mix64(BigInt(g.seed) + GAMMA);
  for (let i = 0; i < labels.length; i++) {
    const row = Math.floor(i / T),
      t = i % T;
    let drop = false;
    if (g.strategy === 'static') {
      drop = t >= g.startPosition && (t - g.startPosition) % g.k === 0;
    } else if (g.strategy === 'hash') {
      if (t >= g.contextWidth - 1) {
        let x = start;
        for (let j = t - g.contextWidth + 1; j <= t; j++) x = mix64(x ^ BigInt(tokens[row * T + j]! >>> 0));
        drop = unit(x) < 1 / g.k;
      }
    } else {
      drop = unit(mix64(mix64(start ^ BigInt(row)) ^ BigInt(t))) < 1 / g.k;
    }
    out[i] = labels[i] !== ignoreIndex && !drop ? 1 : 0;
  }
  return out;
}

export interface RefRow {
  lse: number;
  logp: number;
  softmax: Float64Array;
}

export function refRow(z: ArrayLike<number>, offset: number, V: number, y: number): RefRow {
  let m = -Infinity;
  for (let j = 0; j < V; j++) m = Math.max(m, z[offset + j]!);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(z[offset + j]! - m);
  const lse = m + Math.log(s);
  const softmax = new Float64Array(V);
  for (let j = 0; j < V; j++) softmax[j] = Math.exp(z[offset + j]! - lse);
  return { lse, logp: y >= 0 ? z[offset + y]! - lse : 0, softmax };
}

export interface RefCrossEntropy {
  loss: number;
  perToken: Float64Array;
  lse: Float64Array;
  grad: Float64Array;
}

/** Cross-entropy over rows of z [N, V]; `keep` restricts the supervised set (goldfish). */
export function refCrossEntropy(
  z: ArrayLike<number>,
  labels: ArrayLike<number>,
  V: number,
  opts: {
    reduction?: 'mean' | 'sum' | 'none';
    weights?: ArrayLike<number>;
    keep?: ArrayLike<number>;
    gradScale?: number;
    ignoreIndex?: number;
  } = {},
): RefCrossEntropy {
  const N = labels.length,
    reduction = opts.reduction ?? 'mean',
    ignore = opts.ignoreIndex ?? -100;
  const supervised = (i: number) => labels[i] !== ignore && (!opts.keep || opts.keep[i] === 1);
  let count = 0;
  for (let i = 0; i < N; i++) if (supervised(i)) count++;
  const out: RefCrossEntropy = {
    loss: 0,
    perToken: new Float64Array(N),
    lse: new Float64Array(N),
    grad: new Float64Array(N * V),
  };
  let sum = 0;
  for (let i = 0; i < N; i++) {
    const row = refRow(z, i * V, V, supervised(i) ? labels[i]! : -1);
    out.lse[i] = row.lse;
    if (!supervised(i)) continue;
    const w = opts.weights ? opts.weights[i]! : 1;
    out.perToken[i] = -w * row.logp;
    sum += -w * row.logp;
    let c = (opts.gradScale ?? 1) * w;
    if (reduction === 'mean') c = count > 0 ? c / count : 0;
    for (let j = 0; j < V; j++) out.grad[i * V + j] = c * (row.softmax[j]! - (j === labels[i] ? 1 : 0));
  }
  out.loss = reduction === 'mean' ? (count > 0 ? sum / count : 0) : sum;
  return out;
}

export interface RefOrpo {
  loss: number;
  nllLoss: number;
  orLoss: number;
  chosenLogps: number[];
  rejectedLogps: number[];
  logOdds: number[];
  metrics: {
    rewardsChosen: number;
    rewardsRejected: number;
    rewardsAccuracy: number;
    rewardsMargin: number;
    logOddsRatio: number;
    logOddsChosen: number;
  };
  gradChosen: Float64Array;
  gradRejected: Float64Array;
}

function log1mexp(a: number): number {
  return a < -Math.LN2 ? Math.log1p(-Math.exp(a)) : Math.log(-Math.expm1(a));
}
function logSigmoid(x: number): number {
  return Math.min(x, 0) - Math.log1p(Math.exp(-Math.abs(x)));
}

/** ORPO per docs/kernels.md (the clamped, finite form), with its gradients. */
export function refOrpo(
  zw: ArrayLike<number>,
  zl: ArrayLike<number>,
  yw: ArrayLike<number>,
  yl: ArrayLike<number>,
  B: number,
  Tw: number,
  Tl: number,
  V: number,
  opts: { lambda?: number; nllLabels?: ArrayLike<number>; keep?: ArrayLike<number> } = {},
): RefOrpo {
  const lambda = opts.lambda ?? 0.1,
    ynll = opts.nllLabels ?? yw;
  const gradChosen = new Float64Array(B * Tw * V),
    gradRejected = new Float64Array(B * Tl * V);
  const sft = (i: number) => ynll[i] !== -100 && (!opts.keep || opts.keep[i] === 1);
  let nSft = 0,
    sftSum = 0;
  for (let i = 0; i < B * Tw; i++) if (sft(i)) nSft++;
  for (let i = 0; i < B * Tw; i++) {
    if (!sft(i)) continue;
    const row = refRow(zw, i * V, V, ynll[i]!);
    sftSum -= row.logp;
    for (let j = 0; j < V; j++)
      gradChosen[i * V + j] = gradChosen[i * V + j]! + (row.softmax[j]! - (j === ynll[i] ? 1 : 0)) / nSft;
  }
  const meanLogp = (z: ArrayLike<number>, y: ArrayLike<number>, b: number, T: number) => {
    let s = 0,
      n = 0;
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (y[i] === -100) continue;
      s += refRow(z, i * V, V, y[i]!).logp;
      n++;
    }
    return { a: s / n, n };
  };
  const res: RefOrpo = {
    loss: 0,
    nllLoss: nSft ? sftSum / nSft : 0,
    orLoss: 0,
    chosenLogps: [],
    rejectedLogps: [],
    logOdds: [],
    metrics: {
      rewardsChosen: 0,
      rewardsRejected: 0,
      rewardsAccuracy: 0,
      rewardsMargin: 0,
      logOddsRatio: 0,
      logOddsChosen: 0,
    },
    gradChosen,
    gradRejected,
  };
  for (let b = 0; b < B; b++) {
    const w = meanLogp(zw, yw, b, Tw),
      l = meanLogp(zl, yl, b, Tl);
    const cw = Math.min(w.a, -1e-30),
      cl = Math.min(l.a, -1e-30);
    const lo = cw - cl - (log1mexp(cw) - log1mexp(cl));
    const s = 1 / (1 + Math.exp(lo));
    res.chosenLogps.push(w.a);
    res.rejectedLogps.push(l.a);
    res.logOdds.push(lo);
    res.orLoss -= logSigmoid(lo) / B;
    res.metrics.rewardsChosen += (lambda * w.a) / B;
    res.metrics.rewardsRejected += (lambda * l.a) / B;
    res.metrics.rewardsAccuracy += (w.a > l.a ? 1 : 0) / B;
    res.metrics.rewardsMargin += (lambda * (w.a - l.a)) / B;
    res.metrics.logOddsRatio += logSigmoid(lo) / B;
    res.metrics.logOddsChosen += lo / B;
    const coefW = (lambda * s) / (B * w.n * -Math.expm1(cw)),
      coefL = (-lambda * s) / (B * l.n * -Math.expm1(cl));
    for (const [z, y, T, c, g] of [
      [zw, yw, Tw, coefW, gradChosen],
      [zl, yl, Tl, coefL, gradRejected],
    ] as const) {
      for (let t = 0; t < T; t++) {
        const i = b * T + t;
        if (y[i] === -100) continue;
        const row = refRow(z, i * V, V, y[i]!);
        for (let j = 0; j < V; j++) g[i * V + j] = g[i * V + j]! + c * (row.softmax[j]! - (j === y[i] ? 1 : 0));
      }
    }
  }
  res.loss = res.nllLoss + lambda * res.orLoss;
  return res;
}

/**
 * TRL's ORPOTrainer, transcribed directly in float64: get_batch_logps with
 * average_log_prob=True, then odds_ratio_loss:
 *   log_odds = (a_w − a_l) − (log1p(−exp(a_w)) − log1p(−exp(a_l)))
 *   ratio = logsigmoid(log_odds); losses = beta·ratio
 *   loss = nll_loss − mean(losses)
 * (no clamp: NaN/Inf where a model is certain).
 */
export function trlOrpo(
  zw: ArrayLike<number>,
  zl: ArrayLike<number>,
  yw: ArrayLike<number>,
  yl: ArrayLike<number>,
  B: number,
  Tw: number,
  Tl: number,
  V: number,
  beta: number,
) {
  const logps = (z: ArrayLike<number>, y: ArrayLike<number>, T: number) => {
    const out: number[] = [];
    for (let b = 0; b < B; b++) {
      let s = 0,
        n = 0;
      for (let t = 0; t < T; t++) {
        const i = b * T + t;
        if (y[i] === -100) continue;
        s += refRow(z, i * V, V, y[i]!).logp;
        n++;
      }
      out.push(s / n);
    }
    return out;
  };
  const chosen = logps(zw, yw, Tw),
    rejected = logps(zl, yl, Tl);
  let nll = 0,
    n = 0;
  for (let i = 0; i < B * Tw; i++) {
    if (yw[i] === -100) continue;
    nll -= refRow(zw, i * V, V, yw[i]!).logp;
    n++;
  }
  nll /= n;
  const logOdds = chosen.map(
    (c, b) => c - rejected[b]! - (Math.log1p(-Math.exp(c)) - Math.log1p(-Math.exp(rejected[b]!))),
  );
  const ratio = logOdds.map((x) => -Math.log1p(Math.exp(-x))); // F.logsigmoid as written in float64
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const chosenRewards = chosen.map((c) => beta * c),
    rejectedRewards = rejected.map((r) => beta * r);
  return {
    loss: nll - mean(ratio.map((r) => beta * r)),
    nllLoss: nll,
    logOdds,
    chosenLogps: chosen,
    rejectedLogps: rejected,
    metrics: {
      rewardsChosen: mean(chosenRewards),
      rewardsRejected: mean(rejectedRewards),
      rewardsAccuracy: mean(chosenRewards.map((c, b) => (c > rejectedRewards[b]! ? 1 : 0))),
      rewardsMargin: mean(chosenRewards.map((c, b) => c - rejectedRewards[b]!)),
      logOddsRatio: mean(ratio),
      logOddsChosen: mean(logOdds),
    },
  };
}

/** ‖out − ref‖ / ‖ref‖ (‖out‖ when ref is all zero). */
export function relErr(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  let d = 0,
    r = 0;
  for (let i = 0; i < ref.length; i++) {
    d += (out[i]! - ref[i]!) ** 2;
    r += ref[i]! ** 2;
  }
  return r > 0 ? Math.sqrt(d / r) : Math.sqrt(d);
}

/** Deterministic pseudo-random values (xorshift32 → approx. normal by summing uniforms). */
export function noise(n: number, seed: number, scale = 1): Float64Array {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() + next() + next() + next() - 2) * scale;
  return out;
}

export function randomLabels(n: number, V: number, seed: number, ignoredFraction = 0): Int32Array {
  const u = noise(2 * n, seed, 1);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const a = (u[2 * i]! + 2) / 4,
      b = (u[2 * i + 1]! + 2) / 4;
    out[i] = a < ignoredFraction ? -100 : Math.min(V - 1, Math.floor(b * V * 7919) % V);
  }
  return out;
}
