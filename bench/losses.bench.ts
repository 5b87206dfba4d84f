// Fused losses on the CPU: cross-entropy with its gradient in one pass
// (float32 and bfloat16), goldfish loss, ORPO. Reported per case: ms, GB/s
// over the bytes floor (logits read once + gradient written once), the
// fraction of ctx.copyBandwidth, and the extra memory the op allocates beyond
// its outputs (in use right after it is queued minus once it has finished).
//
// Baseline, measured in this process: an unfused cross-entropy in plain
// TypeScript loops over Float32Arrays — log-softmax into a full N×V buffer,
// gather, then softmax − onehot from that buffer into another N×V buffer —
// at fewer rows (it is slow). The C++ bench (native/bench/losses_bench.cc)
// has the like-for-like baseline: the same passes in C++ with the same
// vectorised exp and threads.
import * as lmk from 'lmkernels';
import { gbps, timeMs, type BenchContext, type BenchRow } from './harness';

const V = 32000;

function labelsFor(n: number, seed: number): lmk.Tensor {
  return lmk.tensor(
    Int32Array.from({ length: n }, (_, i) => (i * 7919 + seed * 104729) % V),
    { dtype: 'int32' },
  );
}

/** Unfused cross-entropy, plain loops; returns the mean loss and fills grad. */
function unfusedCrossEntropy(
  z: Float32Array,
  y: Int32Array,
  n: number,
  logsm: Float32Array,
  grad: Float32Array,
): number {
  for (let i = 0; i < n; i++) {
    // 1. log-softmax
    const o = i * V;
    let m = -Infinity;
    for (let j = 0; j < V; j++) if (z[o + j]! > m) m = z[o + j]!;
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(z[o + j]! - m);
    const lse = m + Math.log(s);
    for (let j = 0; j < V; j++) logsm[o + j] = z[o + j]! - lse;
  }
  let loss = 0; // 2. gather
  for (let i = 0; i < n; i++) loss -= logsm[i * V + y[i]!]!;
  for (let i = 0; i < n; i++) {
    // 3. softmax − onehot
    const o = i * V;
    for (let j = 0; j < V; j++) grad[o + j] = Math.exp(logsm[o + j]!) / n;
    grad[o + y[i]!]! -= 1 / n;
  }
  return loss / n;
}

async function extraBytes(run: () => lmk.Tensor[]): Promise<number> {
  await lmk.synchronize('cpu');
  const outs = run();
  const queued = lmk.memory().bytesInUse.cpu;
  await lmk.synchronize('cpu');
  const done = lmk.memory().bytesInUse.cpu;
  for (const t of outs) t.dispose();
  return queued - done;
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const N = ctx.quick ? 1024 : 4096;
  const nBase = ctx.quick ? 128 : 512;

  for (const dtype of ['float32', 'bfloat16'] as const) {
    const logits = lmk.randn([N, V], { seed: 1, std: 2, dtype });
    const labels = labelsFor(N, 1);
    const bytes = 2 * N * V * (dtype === 'float32' ? 4 : 2);

    // Validate against the unfused baseline on the first rows (float64 sums there).
    const head = lmk.randn([nBase, V], { seed: 2, std: 2, dtype });
    const headLabels = labelsFor(nBase, 2);
    const z = Float32Array.from(await head.data());
    const y = (await headLabels.data()) as Int32Array;
    const logsm = new Float32Array(nBase * V),
      grad = new Float32Array(nBase * V);
    const baseLoss = unfusedCrossEntropy(z, y, nBase, logsm, grad);
    const check = lmk.losses.crossEntropy({ logits: head, labels: headLabels });
    const fusedLoss = (await check.loss.data())[0]!;
    const fusedGrad = await check.gradLogits!.data();
    let err = 0,
      norm = 0;
    for (let k = 0; k < grad.length; k++) {
      err += (fusedGrad[k]! - grad[k]!) ** 2;
      norm += grad[k]! ** 2;
    }
    const tol = dtype === 'float32' ? 1e-4 : 1e-2;
    if (Math.abs(fusedLoss - baseLoss) > tol * Math.abs(baseLoss) || Math.sqrt(err / norm) > tol) {
      throw new Error(`losses bench: fused ${dtype} cross-entropy disagrees with the unfused baseline`);
    }

    const ms = await timeMs(
      async () => {
        const r = lmk.losses.crossEntropy({ logits, labels });
        await lmk.synchronize('cpu');
        r.loss.dispose();
        r.lse.dispose();
        r.gradLogits!.dispose();
      },
      { warmup: 1, runs: 5 },
    );
    const extra = await extraBytes(() => {
      const r = lmk.losses.crossEntropy({ logits, labels });
      return [r.loss, r.lse, r.gradLogits!];
    });
    rows.push({
      bench: 'losses',
      case: `crossEntropy fwd+grad ${dtype} N=${N} V=${V}`,
      ms,
      metrics: {
        'GB/s': gbps(bytes, ms).toFixed(1),
        'of copy': (bytes / (ms / 1e3) / ctx.copyBandwidth).toFixed(2),
        'extra B/row': (extra / N).toFixed(1),
      },
    });

    // The baseline comparison at nBase rows.
    const fusedSmall = await timeMs(
      async () => {
        const r = lmk.losses.crossEntropy({ logits: head, labels: headLabels });
        await lmk.synchronize('cpu');
        r.loss.dispose();
        r.lse.dispose();
        r.gradLogits!.dispose();
      },
      { warmup: 1, runs: 5 },
    );
    const baseMs = await timeMs(
      () => {
        unfusedCrossEntropy(z, y, nBase, logsm, grad);
      },
      { warmup: 0, runs: 3 },
    );
    rows.push({
      bench: 'losses',
      case: `crossEntropy ${dtype} N=${nBase}: fused vs unfused TS loops`,
      ms: fusedSmall,
      metrics: {
        'baseline ms': baseMs.toFixed(1),
        speedup: (baseMs / fusedSmall).toFixed(1),
        'baseline extra B/row': String(2 * V * 4),
      },
    });
    head.dispose();
    headLabels.dispose();
    check.loss.dispose();
    check.lse.dispose();
    check.gradLogits!.dispose();

    // Goldfish loss (hash, k=4): the same fused pass plus the hash.
    const gms = await timeMs(
      async () => {
        const r = lmk.losses.goldfishLoss({
          logits: logits.reshape([8, N / 8, V]),
          labels: labels.reshape([8, N / 8]),
        });
        await lmk.synchronize('cpu');
        r.loss.dispose();
        r.gradLogits!.dispose();
      },
      { warmup: 1, runs: 5 },
    );
    rows.push({
      bench: 'losses',
      case: `goldfishLoss hash k=4 ${dtype} N=${N}`,
      ms: gms,
      metrics: {
        'GB/s': gbps(bytes, gms).toFixed(1),
        'of copy': (bytes / (gms / 1e3) / ctx.copyBandwidth).toFixed(2),
      },
    });

    // ORPO: the N rows as chosen and again as rejected; the floor counts each side once.
    const chosen = logits.reshape([4, N / 4, V]);
    const y2 = labels.reshape([4, N / 4]);
    const oms = await timeMs(
      async () => {
        const r = lmk.losses.orpo({
          chosenLogits: chosen,
          rejectedLogits: chosen,
          chosenLabels: y2,
          rejectedLabels: y2,
        });
        await lmk.synchronize('cpu');
        r.gradChosenLogits!.dispose();
        r.gradRejectedLogits!.dispose();
      },
      { warmup: 1, runs: 5 },
    );
    const orpoBytes = 2 * bytes; // both sides: logits read once + gradient written once
    const orpoExtra = await extraBytes(() => {
      const r = lmk.losses.orpo({ chosenLogits: chosen, rejectedLogits: chosen, chosenLabels: y2, rejectedLabels: y2 });
      return [
        r.loss,
        r.nllLoss,
        r.orLoss,
        r.chosenLogps,
        r.rejectedLogps,
        r.logOdds,
        r.gradChosenLogits!,
        r.gradRejectedLogits!,
        ...Object.values(r.metrics),
      ];
    });
    rows.push({
      bench: 'losses',
      case: `orpo 2 x ${N} rows ${dtype} (reads logits twice)`,
      ms: oms,
      metrics: {
        'GB/s': gbps(orpoBytes, oms).toFixed(1),
        'of copy': ((orpoBytes * 1.5) / (oms / 1e3) / ctx.copyBandwidth).toFixed(2),
        'extra B/row': (orpoExtra / (2 * N)).toFixed(1),
      },
    });
    logits.dispose();
    labels.dispose();
  }
  return rows;
}
