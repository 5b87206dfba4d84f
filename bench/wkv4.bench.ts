// RWKV-4 WKV on the CPU (float32) at the shapes, B=8 T=1024 C=512 and
// B=1 T=16384 C=256: forward and forward+backward. Validated first against a
// direct formula (float64 sums over the past, written in this file) on
// sampled (b, c) columns and steps. Reported: ms, GB/s (forward: read k, v,
// write y; backward also
// reads gy and writes gk, gv), the fraction of this machine's copy bandwidth,
// and the speedup over a naive loop of tensor ops run in this process (per
// time step: ~20 element-wise kernels over [B, C], as a tensor library
// without a fused WKV kernel runs the recurrence).
import * as lmk from 'lmkernels';
import { gbps, timeMs, type BenchContext, type BenchRow } from './harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const dense = require('../../dist/cjs/kernels/dense.js') as {
  binary(op: string, a: lmk.Tensor, b: lmk.Tensor): lmk.Tensor;
  unary(op: string, x: lmk.Tensor): lmk.Tensor;
  slice(x: lmk.Tensor, dim: number, start: number, end: number): lmk.Tensor;
};

/** Direct formula for one (b, c) column, float64, log-sum-exp over the past. */
function directColumn(
  td: number,
  tf: number,
  k: Float32Array,
  v: Float32Array,
  T: number,
  C: number,
  b: number,
  c: number,
  steps: number[],
): number[] {
  const w = -Math.exp(td);
  return steps.map((t) => {
    let m = -Infinity;
    const terms: [number, number][] = [];
    for (let i = Math.max(0, t - 3000); i < t; i++)
      terms.push([(t - 1 - i) * w + k[(b * T + i) * C + c]!, v[(b * T + i) * C + c]!]);
    terms.push([tf + k[(b * T + t) * C + c]!, v[(b * T + t) * C + c]!]);
    for (const [l] of terms) m = Math.max(m, l);
    let n = 0,
      d = 0;
    for (const [l, x] of terms) {
      n += Math.exp(l - m) * x;
      d += Math.exp(l - m);
    }
    return n / d;
  });
}

function naiveForward(td: lmk.Tensor, tf: lmk.Tensor, k: lmk.Tensor, v: lmk.Tensor): lmk.Tensor[] {
  const [B, T, C] = k.shape as [number, number, number];
  const w = lmk.tidy(() => dense.unary('neg', dense.unary('exp', td)));
  let aa = lmk.zeros([B, C]),
    bb = lmk.zeros([B, C]),
    pp = lmk.full([B, C], -1e38);
  const ys: lmk.Tensor[] = [];
  for (let t = 0; t < T; t++) {
    const next = lmk.tidy(() => {
      const kt = dense.slice(k, 1, t, t + 1).reshape([B, C]);
      const vt = dense.slice(v, 1, t, t + 1).reshape([B, C]);
      const ww = dense.binary('add', kt, tf);
      const p = dense.binary('maximum', pp, ww);
      const e1 = dense.unary('exp', dense.binary('sub', pp, p));
      const e2 = dense.unary('exp', dense.binary('sub', ww, p));
      const y = dense.binary(
        'div',
        dense.binary('add', dense.binary('mul', e1, aa), dense.binary('mul', e2, vt)),
        dense.binary('add', dense.binary('mul', e1, bb), e2),
      );
      const ww2 = dense.binary('add', pp, w);
      const p2 = dense.binary('maximum', ww2, kt);
      const f1 = dense.unary('exp', dense.binary('sub', ww2, p2));
      const f2 = dense.unary('exp', dense.binary('sub', kt, p2));
      return {
        y,
        aa: dense.binary('add', dense.binary('mul', f1, aa), dense.binary('mul', f2, vt)),
        bb: dense.binary('add', dense.binary('mul', f1, bb), f2),
        pp: p2,
      };
    });
    aa.dispose();
    bb.dispose();
    pp.dispose();
    ({ aa, bb, pp } = next);
    ys.push(next.y);
  }
  aa.dispose();
  bb.dispose();
  pp.dispose();
  w.dispose();
  return ys;
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const shapes = ctx.quick
    ? [[2, 256, 128]]
    : [
        [8, 1024, 512],
        [1, 16384, 256],
      ];
  for (const [B, T, C] of shapes as [number, number, number][]) {
    const td = lmk.rand([C], { seed: 1, low: -3, high: 1 });
    const tf = lmk.rand([C], { seed: 2, low: -1, high: 1 });
    const k = lmk.rand([B, T, C], { seed: 3, low: -1, high: 1 });
    const v = lmk.rand([B, T, C], { seed: 4, low: -1, high: 1 });
    const gy = lmk.randn([B, T, C], { seed: 5 });

    // Validate: sampled columns against the direct formula.
    const { y, state } = lmk.wkv4.forward({ timeDecay: td, timeFirst: tf, k, v });
    const [yh, kh, vh, tdh, tfh] = await Promise.all([y.data(), k.data(), v.data(), td.data(), tf.data()]);
    const steps = [0, 1, T >> 1, T - 1];
    for (const [b, c] of [
      [0, 0],
      [B - 1, C - 1],
      [B >> 1, 7],
    ] as [number, number][]) {
      const ref = directColumn(tdh[c]!, tfh[c]!, kh as Float32Array, vh as Float32Array, T, C, b, c, steps);
      steps.forEach((t, i) => {
        const got = yh[(b * T + t) * C + c]!;
        if (Math.abs(got - ref[i]!) > 1e-4 * Math.max(1, Math.abs(ref[i]!))) {
          throw new Error(`wkv4 bench: y[${b},${t},${c}] = ${got}, direct formula ${ref[i]}`);
        }
      });
    }
    y.dispose();
    state.dispose();

    const fwdMs = await timeMs(async () => {
      const r = lmk.wkv4.forward({ timeDecay: td, timeFirst: tf, k, v });
      await lmk.synchronize('cpu');
      r.y.dispose();
      r.state.dispose();
    });
    const fbMs = await timeMs(
      async () => {
        const r = lmk.wkv4.forward({ timeDecay: td, timeFirst: tf, k, v });
        const g = lmk.wkv4.backward({ timeDecay: td, timeFirst: tf, k, v, y: r.y, gy });
        await lmk.synchronize('cpu');
        for (const t of [r.y, r.state, g.gk, g.gv, g.gTimeDecay, g.gTimeFirst]) t.dispose();
      },
      { warmup: 1, runs: 5 },
    );
    // Naive baseline on a prefix of the sequence (it is slow), scaled per token.
    const naiveT = Math.min(T, ctx.quick ? 64 : 256);
    const kp = dense.slice(k, 1, 0, naiveT),
      vp = dense.slice(v, 1, 0, naiveT);
    const naiveMs =
      (await timeMs(
        async () => {
          const ys = naiveForward(td, tf, kp, vp);
          await lmk.synchronize('cpu');
          ys.forEach((t) => t.dispose());
        },
        { warmup: 1, runs: 3 },
      )) *
      (T / naiveT);
    kp.dispose();
    vp.dispose();

    const elems = B * T * C;
    const fwdBytes = 3 * elems * 4;
    const fbBytes = fwdBytes + 2 * elems * 4 + 3 * elems * 4 + 3 * elems * 4; // fwd + (k,v,gy read; gk,gv write; backward replays k,v)
    const label = `B=${B} T=${T} C=${C} f32`;
    rows.push({
      bench: 'wkv4',
      case: `forward ${label}`,
      ms: fwdMs,
      metrics: {
        'GB/s': gbps(fwdBytes, fwdMs).toFixed(1),
        'of copy bw': (fwdBytes / (fwdMs / 1e3) / ctx.copyBandwidth).toFixed(2),
        speedup: `${(naiveMs / fwdMs).toFixed(1)}× naive loop`,
      },
    });
    rows.push({
      bench: 'wkv4',
      case: `forward+backward ${label}`,
      ms: fbMs,
      metrics: {
        'GB/s': gbps(fbBytes, fbMs).toFixed(1),
        'of copy bw': (fbBytes / (fbMs / 1e3) / ctx.copyBandwidth).toFixed(2),
      },
    });
    for (const t of [td, tf, k, v, gy]) t.dispose();
  }
  return rows;
}
