// Runtime overheads: the CPU copy bandwidth every kernel is compared with, and
// the cost of dispatching a 1-element op (queued and completed).
import * as lmk from 'lmkernels';
import { timeMs, type BenchContext, type BenchRow } from './harness';

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  rows.push({
    bench: 'runtime',
    case: 'cpu copy 256 MiB (clone)',
    ms: ((2 * 256 * 2 ** 20) / ctx.copyBandwidth) * 1e3,
    metrics: { 'GB/s': (ctx.copyBandwidth / 1e9).toFixed(1) },
  });

  // Validate: a tiny op produces its value.
  const probe = lmk.full([1], 3);
  if ((await probe.data())[0] !== 3) throw new Error('dispatch: full([1], 3) is wrong');
  probe.dispose();

  // Throughput: many 1-element ops queued, then one sync.
  const ops = ctx.quick ? 2000 : 20000;
  const queuedMs = await timeMs(
    async () => {
      for (let i = 0; i < ops; i++) lmk.full([1], i).dispose();
      await lmk.synchronize('cpu');
    },
    { warmup: 1, runs: 5 },
  );
  rows.push({
    bench: 'runtime',
    case: `dispatch, ${ops} queued 1-element ops`,
    ms: queuedMs,
    metrics: { 'µs/op': ((queuedMs * 1e3) / ops).toFixed(2) },
  });

  // Latency: one op and its result back in JS (data() round trip).
  const rounds = ctx.quick ? 200 : 1000;
  const latencyMs = await timeMs(
    async () => {
      for (let i = 0; i < rounds; i++) {
        const t = lmk.full([1], i);
        await t.data();
        t.dispose();
      }
    },
    { warmup: 1, runs: 5 },
  );
  rows.push({
    bench: 'runtime',
    case: `round trip, op + await data()`,
    ms: latencyMs / rounds,
    metrics: { 'µs/op': ((latencyMs * 1e3) / rounds).toFixed(1) },
  });
  return rows;
}
