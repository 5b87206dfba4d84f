// TransformerFAM attention on the CPU (float32), the shape: B=1 H=8
// D=64 L=512 m=2 F=64 at T=4096 and T=8192. Each case is validated against an
// independent float64 computation of sampled rows (explicit key lists) before
// it is timed. Effective GFLOP/s count only unmasked query·key pairs: 4·pairs·D
// forward, 2.5× that for the backward (the FlashAttention convention).
//
// Baseline measured in this process: full causal attention of the same
// length through the same kernel (one block holding every token, m = 0, no
// FAM) — what the model would run without the FAM structure. The dense masked
// T × (T + NB·F) attention baseline (every score computed and masked) lives in
// the C++ benchmark native/bench/fam_bench.cc, since the TypeScript API has no
// matmul to build it from.
import * as lmk from 'lmkernels';
import { timeMs, type BenchContext, type BenchRow } from './harness';

interface Case {
  B: number;
  H: number;
  T: number;
  D: number;
  L: number;
  m: number;
  F: number;
}

function unmaskedPairs(c: Case, fam = true): number {
  let pairs = 0;
  for (let t = 0; t < c.T; t++) {
    const tau = Math.floor(t / c.L);
    pairs += t + 1 - Math.max(0, tau - c.m) * c.L + (fam ? c.F : 0);
  }
  return pairs * c.B * c.H;
}

function inputs(c: Case, fam: boolean) {
  const NB = Math.ceil(c.T / c.L);
  return {
    q: lmk.randn([c.B, c.H, c.T, c.D], { seed: 1 }),
    k: lmk.randn([c.B, c.H, c.T, c.D], { seed: 2 }),
    v: lmk.randn([c.B, c.H, c.T, c.D], { seed: 3 }),
    ...(fam
      ? {
          famK: lmk.randn([c.B, c.H, NB, c.F, c.D], { seed: 4 }),
          famV: lmk.randn([c.B, c.H, NB, c.F, c.D], { seed: 5 }),
        }
      : {}),
    blockSize: c.L,
    memoryBlocks: c.m,
  };
}

type Inputs = ReturnType<typeof inputs>;

/** Rows of out against float64 attention over each row's explicit key list. */
async function validate(c: Case, x: Inputs, out: lmk.Tensor): Promise<void> {
  const [q, k, v, o] = await Promise.all([x.q.data(), x.k.data(), x.v.data(), out.data()]);
  const fk = x.famK ? await x.famK.data() : undefined;
  const fv = x.famV ? await x.famV.data() : undefined;
  const NB = Math.ceil(c.T / c.L);
  const scale = 1 / Math.sqrt(c.D);
  let diff = 0,
    norm = 0;
  for (let sample = 0; sample < 24; sample++) {
    const h = sample % c.H;
    const t = Math.floor((((sample * 7919) % 1000) / 1000) * c.T);
    const tau = Math.floor(t / c.L);
    const keys: [Float32Array | Float64Array | Int32Array, number, Float32Array | Float64Array | Int32Array][] = [];
    for (let j = Math.max(0, (tau - c.m) * c.L); j <= t; j++) keys.push([k, (h * c.T + j) * c.D, v]);
    if (fk && fv) for (let f = 0; f < c.F; f++) keys.push([fk, ((h * NB + tau) * c.F + f) * c.D, fv]);
    const s = keys.map(([kk, off]) => {
      let dot = 0;
      for (let d = 0; d < c.D; d++) dot += q[(h * c.T + t) * c.D + d]! * kk[off + d]!;
      return scale * dot;
    });
    const mx = Math.max(...s);
    const w = s.map((x) => Math.exp(x - mx));
    const sum = w.reduce((a, b) => a + b, 0);
    for (let d = 0; d < c.D; d++) {
      let ref = 0;
      keys.forEach(([, off, vv], j) => (ref += (w[j]! / sum) * vv[off + d]!));
      diff += (o[(h * c.T + t) * c.D + d]! - ref) ** 2;
      norm += ref ** 2;
    }
  }
  const err = Math.sqrt(diff / norm);
  if (!(err <= 1e-5)) throw new Error(`fam bench: T=${c.T} output differs from float64 by ${err}`);
}

function dispose(x: Inputs): void {
  for (const t of [x.q, x.k, x.v, x.famK, x.famV]) t?.dispose();
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const Ts = ctx.quick ? [4096] : [4096, 8192];
  for (const T of Ts) {
    const c: Case = { B: 1, H: 8, T, D: 64, L: 512, m: 2, F: 64 };
    const shape = `B=1 H=8 T=${T} D=64 L=512 m=2 F=64`;
    const flops = 4 * unmaskedPairs(c) * c.D;
    const x = inputs(c, true);
    const first = lmk.fam.blockAttention(x);
    await validate(c, x, first.out);
    const gOut = lmk.randn([c.B, c.H, c.T, c.D], { seed: 6 });
    const runs = { warmup: 1, runs: ctx.quick ? 3 : 5 };
    const fwdMs = await timeMs(async () => {
      const r = lmk.fam.blockAttention(x);
      await lmk.synchronize('cpu');
      r.out.dispose();
      r.lse.dispose();
    }, runs);
    const bothMs = await timeMs(async () => {
      const r = lmk.fam.blockAttention(x);
      const g = lmk.fam.blockAttentionBackward({ ...x, out: r.out, lse: r.lse, gOut });
      await lmk.synchronize('cpu');
      for (const t of [r.out, r.lse, g.gq, g.gk, g.gv, g.gFamK, g.gFamV]) t?.dispose();
    }, runs);

    // Baseline: full causal attention of the same length, same kernel.
    const causal: Case = { ...c, L: T, m: 0, F: 0 };
    const y = inputs(causal, false);
    const causalFirst = lmk.fam.blockAttention(y);
    await validate(causal, y, causalFirst.out);
    const causalMs = await timeMs(
      async () => {
        const r = lmk.fam.blockAttention(y);
        await lmk.synchronize('cpu');
        r.out.dispose();
        r.lse.dispose();
      },
      { warmup: 1, runs: 3 },
    );
    const causalFlops = 4 * unmaskedPairs(causal, false) * c.D;

    rows.push({
      bench: 'fam',
      case: `cpu f32 forward ${shape}`,
      ms: fwdMs,
      metrics: { 'GFLOP/s': (flops / fwdMs / 1e6).toFixed(1), 'vs causal': `${(causalMs / fwdMs).toFixed(2)}x` },
    });
    rows.push({
      bench: 'fam',
      case: `cpu f32 forward+backward ${shape}`,
      ms: bothMs,
      metrics: { 'GFLOP/s': ((3.5 * flops) / bothMs / 1e6).toFixed(1) },
    });
    rows.push({
      bench: 'fam',
      case: `cpu f32 baseline: full causal attention T=${T} (same kernel)`,
      ms: causalMs,
      metrics: { 'GFLOP/s': (causalFlops / causalMs / 1e6).toFixed(1) },
    });
    for (const t of [first.out, first.lse, causalFirst.out, causalFirst.lse, gOut]) t.dispose();
    dispose(x);
    dispose(y);
  }
  return rows;
}
