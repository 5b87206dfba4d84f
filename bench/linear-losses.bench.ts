// Cross-entropy straight from hidden states (losses.linearCrossEntropy)
// against our own unfused path measured in this process: logits = hidden ·
// weightᵀ (GEMM) → losses.crossEntropy (loss and d loss / d logits in one
// pass) → the matmul's backward (gradHidden = gradLogits · weight,
// gradWeight = gradLogitsᵀ · hidden). Both compute the same loss and
// gradients; the fused one never holds more than a chunk of logits.
//
// CPU: N 4096 × d 1024 × V 32 000 float32 (--quick: N 512); the default
// chunk size and a sweep of chunk sizes. GPU (only where a CUDA device
// exists): N 8192 × d 4096 × V 128 256 bfloat16, the shape of Liger's and
// CCE's benchmarks.
//
// Every case is validated before timing (loss, gradHidden, gradWeight against
// the unfused path: float32 1e-5 / 1e-4, bfloat16 1e-2, as ‖a − b‖ / ‖b‖).
// Times are medians of runs that alternate the two paths (the machine may be
// shared; alternating keeps the ratio fair). "peak extra" is the memory the
// path holds beyond its inputs and returned results, read right after
// everything is queued: outputs and workspaces are allocated when an op is
// queued, and the unfused path's logits and their gradient are alive
// together while the cross-entropy runs, so this is each path's peak.
import * as lmk from 'lmkernels';
import { denseKernels, type BenchContext, type BenchRow } from './harness';

const dense = denseKernels();

const BYTES: Record<lmk.DType, number> = { float32: 4, float64: 8, bfloat16: 2, float16: 2, int32: 4 };
const bytesOf = (ts: lmk.Tensor[]) => ts.reduce((s, t) => s + t.numel * BYTES[t.dtype], 0);

interface Problem {
  device: 'cpu' | 'cuda';
  hidden: lmk.Tensor;
  weight: lmk.Tensor;
  labels: lmk.Tensor;
}

/** What one path queued: the results it returns and the temporaries it holds. */
interface Queued {
  loss: lmk.Tensor;
  gradHidden: lmk.Tensor;
  gradWeight: lmk.Tensor;
  results: lmk.Tensor[];
  temporaries: lmk.Tensor[];
}

function unfused(p: Problem): Queued {
  const logits = dense.matmul(p.hidden, p.weight, { transB: true });
  const ce = lmk.losses.crossEntropy({ logits, labels: p.labels });
  const gradHidden = dense.matmul(ce.gradLogits!, p.weight);
  const gradWeight = dense.matmul(ce.gradLogits!, p.hidden, { transA: true });
  return {
    loss: ce.loss,
    gradHidden,
    gradWeight,
    results: [ce.loss, ce.lse, gradHidden, gradWeight],
    temporaries: [logits, ce.gradLogits!],
  };
}

function fused(p: Problem, chunkSize?: number): Queued {
  const r = lmk.losses.linearCrossEntropy({
    hidden: p.hidden,
    weight: p.weight,
    labels: p.labels,
    ...(chunkSize !== undefined ? { chunkSize } : {}),
  });
  return {
    loss: r.loss,
    gradHidden: r.gradHidden!,
    gradWeight: r.gradWeight!,
    results: [r.loss, r.lse, r.gradHidden!, r.gradWeight!],
    temporaries: [],
  };
}

const dispose = (q: Queued) => [...q.results, ...q.temporaries].forEach((t) => t.dispose());
const inUse = (device: 'cpu' | 'cuda') =>
  device === 'cpu' ? lmk.memory().bytesInUse.cpu : (lmk.memory().bytesInUse.cuda[0] ?? 0);

/** ‖a − b‖ / ‖b‖ computed on the device in float32 (the gradients are too large to read back on a GPU). */
async function relErr(a: lmk.Tensor, b: lmk.Tensor): Promise<number> {
  return lmk.noGrad(async () => {
    const a32 = a.dtype === 'float32' ? a : a.to('float32');
    const b32 = b.dtype === 'float32' ? b : b.to('float32');
    const diff = lmk.ops.sub(a32, b32);
    const num = lmk.ops.sum(lmk.ops.square(diff));
    const den = lmk.ops.sum(lmk.ops.square(b32));
    const [n, d] = [await num.item(), await den.item()];
    for (const t of [diff, num, den, ...(a32 !== a ? [a32] : []), ...(b32 !== b ? [b32] : [])]) t.dispose();
    return Math.sqrt(n / d);
  });
}

async function validate(p: Problem, chunkSize: number | undefined, tol: { fwd: number; grad: number }, what: string) {
  const ref = unfused(p);
  const out = fused(p, chunkSize);
  const errors = {
    loss: await relErr(out.loss, ref.loss),
    gradHidden: await relErr(out.gradHidden, ref.gradHidden),
    gradWeight: await relErr(out.gradWeight, ref.gradWeight),
  };
  dispose(ref);
  dispose(out);
  if (!(errors.loss <= tol.fwd && errors.gradHidden <= tol.grad && errors.gradWeight <= tol.grad)) {
    throw new Error(`linear-losses bench: ${what} disagrees with the unfused path: ${JSON.stringify(errors)}`);
  }
}

/** Peak memory a path holds beyond its inputs and returned results (see the header). */
async function peakExtra(p: Problem, run: () => Queued): Promise<number> {
  await lmk.synchronize(p.device);
  const before = inUse(p.device);
  const q = run();
  const queued = inUse(p.device);
  await lmk.synchronize(p.device);
  const extra = queued - before - bytesOf(q.results);
  dispose(q);
  return extra;
}

/** Medians of `runs` timings of each path, alternating them. */
async function timeAlternating(p: Problem, paths: (() => Queued)[], runs: number): Promise<number[]> {
  const times: number[][] = paths.map(() => []);
  for (const path of paths) {
    dispose(path()); // warm-up
    await lmk.synchronize(p.device);
  }
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < paths.length; k++) {
      const t0 = process.hrtime.bigint();
      const q = paths[k]!();
      await lmk.synchronize(p.device);
      times[k]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
      dispose(q);
    }
  }
  return times.map((t) => [...t].sort((a, b) => a - b)[Math.floor(t.length / 2)]!);
}

const MB = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

async function benchCase(
  name: string,
  p: Problem,
  tol: { fwd: number; grad: number },
  chunkSizes: (number | undefined)[],
  runs: number,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const chunk of chunkSizes) await validate(p, chunk, tol, `${name} chunk ${chunk ?? 'default'}`);
  const baseMemory = await peakExtra(p, () => unfused(p));
  const paths = [() => unfused(p), ...chunkSizes.map((c) => () => fused(p, c))];
  const ms = await timeAlternating(p, paths, runs);
  rows.push({
    bench: 'linear-losses',
    case: `${name} unfused (GEMM → crossEntropy → GEMM backward)`,
    ms: ms[0]!,
    metrics: { 'peak extra MB': MB(baseMemory), 'time vs unfused': '1.00', 'memory vs unfused': '1' },
  });
  for (let k = 0; k < chunkSizes.length; k++) {
    const memory = await peakExtra(p, () => fused(p, chunkSizes[k]));
    rows.push({
      bench: 'linear-losses',
      case: `${name} linearCrossEntropy chunk ${chunkSizes[k] ?? 'default'}`,
      ms: ms[k + 1]!,
      metrics: {
        'peak extra MB': MB(memory),
        'time vs unfused': (ms[k + 1]! / ms[0]!).toFixed(2),
        'memory vs unfused': `1/${(baseMemory / Math.max(memory, 1)).toFixed(1)}`,
      },
    });
  }
  return rows;
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  {
    const [N, d, V] = [ctx.quick ? 512 : 4096, 1024, 32000];
    const p: Problem = {
      device: 'cpu',
      hidden: lmk.randn([N, d], { seed: 1 }),
      weight: lmk.randn([V, d], { seed: 2, std: 2 / Math.sqrt(d) }),
      labels: lmk.tensor(
        Int32Array.from({ length: N }, (_, i) => (i * 7919) % V),
        { dtype: 'int32' },
      ),
    };
    const sweep = [undefined]; // the default chunk size (a sweep: docs/api.md, bench/RESULTS.md)
    rows.push(
      ...(await benchCase(`cpu float32 N=${N} d=${d} V=${V}`, p, { fwd: 1e-5, grad: 1e-4 }, sweep, ctx.quick ? 2 : 3)),
    );
    for (const t of [p.hidden, p.weight, p.labels]) t.dispose();
  }
  if (lmk.cudaAvailable()) {
    const [N, d, V] = ctx.quick ? [1024, 1024, 32000] : [8192, 4096, 128256];
    const p: Problem = {
      device: 'cuda',
      hidden: lmk.randn([N, d], { seed: 1, dtype: 'bfloat16', device: 'cuda' }),
      weight: lmk.randn([V, d], { seed: 2, std: 2 / Math.sqrt(d), dtype: 'bfloat16', device: 'cuda' }),
      labels: lmk.tensor(
        Int32Array.from({ length: N }, (_, i) => (i * 7919) % V),
        { dtype: 'int32', device: 'cuda' },
      ),
    };
    rows.push(
      ...(await benchCase(`cuda bfloat16 N=${N} d=${d} V=${V}`, p, { fwd: 1e-2, grad: 1e-2 }, [undefined, 1024], 5)),
    );
    for (const t of [p.hidden, p.weight, p.labels]) t.dispose();
  }
  return rows;
}
