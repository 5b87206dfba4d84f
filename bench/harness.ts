// Shared benchmark plumbing: timing (median of runs after a warm-up), the
// machine's copy bandwidth measured in-process, and result rows.
import { dirname, join } from 'node:path';
import * as lmk from 'lmkernels';

/** The dense kernels the benchmarks call directly (GEMM with transposes, the backend switch). */
export interface DenseKernels {
  matmul(a: lmk.Tensor, b: lmk.Tensor, opts?: { transA?: boolean; transB?: boolean }): lmk.Tensor;
  gemmInfo(): { cpu: 'openblas' | 'builtin'; cuda: 'cublas' | 'builtin' | 'unavailable' };
  setGemmBackend(backend: 'auto' | 'builtin'): void;
}

/**
 * The dense kernels are internal to the package (lib/kernels/dense.ts): loaded
 * next to the entry point that 'lmkernels' resolves to.
 */
export function denseKernels(): DenseKernels {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- internal module, not a public export
  return require(join(dirname(require.resolve('lmkernels')), 'kernels', 'dense.js')) as DenseKernels;
}

export interface BenchRow {
  bench: string;
  case: string;
  ms: number;
  /** Extra columns: GB/s, fraction of copy bandwidth, speedup, ... */
  metrics: Record<string, string>;
}

export interface BenchContext {
  /** (bytes read + bytes written) / s of a large CPU tensor copy, measured once per run. */
  copyBandwidth: number;
  quick: boolean;
}

export async function timeMs(
  fn: () => Promise<void> | void,
  opts: { warmup?: number; runs?: number } = {},
): Promise<number> {
  const warmup = opts.warmup ?? 2;
  const runs = opts.runs ?? 7;
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** Copy bandwidth of this machine: a 256 MiB float32 clone on the CPU, read + write bytes per second. */
export async function measureCopyBandwidth(): Promise<number> {
  const n = 64 * 2 ** 20;
  const src = lmk.rand([n], { seed: 1 });
  // Validate before timing: the copy must be exact.
  const probe = src.clone();
  const [a, b] = await Promise.all([src.data(), probe.data()]);
  for (let i = 0; i < n; i += 4099) if (a[i] !== b[i]) throw new Error('copy bandwidth: clone is not exact');
  probe.dispose();
  const ms = await timeMs(async () => {
    const c = src.clone();
    await lmk.synchronize('cpu');
    c.dispose();
  });
  src.dispose();
  return (2 * n * 4) / (ms / 1e3);
}

export function gbps(bytes: number, ms: number): number {
  return bytes / (ms / 1e3) / 1e9;
}
