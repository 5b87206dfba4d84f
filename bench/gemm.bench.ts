// GEMM throughput on the CPU, float32: OpenBLAS (when libopenblas loads) and
// our builtin kernel on the same inputs, at 1024³ and 4096×4096×1024
// (M×N×K; --quick: 1024³ only). Each backend is validated first — 64 output
// elements against float64 dot products of the stored inputs — then timed
// (median after a warm-up). Reports GFLOP/s (2·M·N·K per product), the
// builtin/OpenBLAS ratio (the baseline measured in this process), and the
// product's minimal memory traffic as a fraction of the copy bandwidth (a GEMM
// this size is compute-bound: that fraction should be small).
import * as lmk from 'lmkernels';
import { denseKernels, timeMs, type BenchContext, type BenchRow } from './harness';

const dense = denseKernels();

async function spotCheck(
  a: lmk.Tensor,
  b: lmk.Tensor,
  c: lmk.Tensor,
  M: number,
  N: number,
  K: number,
): Promise<number> {
  const [av, bv, cv] = await Promise.all([a.data(), b.data(), c.data()]);
  let worst = 0;
  for (let s = 0; s < 64; s++) {
    const i = (s * 7919) % M,
      j = (s * 104729) % N;
    let ref = 0,
      scale = 0;
    for (let k = 0; k < K; k++) {
      const term = av[i * K + k]! * bv[k * N + j]!;
      ref += term;
      scale += Math.abs(term);
    }
    worst = Math.max(worst, Math.abs(cv[i * N + j]! - ref) / Math.max(scale, 1e-30));
  }
  return worst;
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const sizes: [number, number, number][] = [[1024, 1024, 1024]];
  if (!ctx.quick) sizes.push([4096, 4096, 1024]);
  const hasOpenblas = dense.gemmInfo().cpu === 'openblas';
  const backends: ('auto' | 'builtin')[] = hasOpenblas ? ['auto', 'builtin'] : ['builtin'];
  try {
    for (const [M, N, K] of sizes) {
      const a = lmk.rand([M, K], { seed: 1, low: -1, high: 1 });
      const b = lmk.rand([K, N], { seed: 2, low: -1, high: 1 });
      const flops = 2 * M * N * K;
      const runs = flops > 2 ** 33 ? 3 : 7;
      let baseline: number | undefined;
      for (const backend of backends) {
        dense.setGemmBackend(backend);
        const name = backend === 'auto' ? 'openblas' : 'builtin';
        const probe = dense.matmul(a, b);
        const error = await spotCheck(a, b, probe, M, N, K);
        probe.dispose();
        if (!(error <= 1e-5)) throw new Error(`gemm ${name} ${M}x${N}x${K}: wrong result (relative error ${error})`);
        const ms = await timeMs(
          async () => {
            const c = dense.matmul(a, b);
            await lmk.synchronize('cpu');
            c.dispose();
          },
          { warmup: 1, runs },
        );
        const gflops = flops / (ms / 1e3) / 1e9;
        if (backend === 'auto') baseline = gflops;
        const trafficBytes = 4 * (M * K + K * N + M * N);
        rows.push({
          bench: 'gemm',
          case: `cpu float32 ${M}x${N}x${K} ${name}`,
          ms,
          metrics: {
            'GFLOP/s': gflops.toFixed(1),
            'vs openblas':
              baseline !== undefined ? (gflops / baseline).toFixed(2) : hasOpenblas ? '' : 'n/a (not loadable)',
            'of copy BW': (trafficBytes / (ms / 1e3) / ctx.copyBandwidth).toFixed(3),
          },
        });
      }
      a.dispose();
      b.dispose();
    }
  } finally {
    dense.setGemmBackend('auto');
  }
  return rows;
}
