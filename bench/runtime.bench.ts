// Runtime overheads: the CPU copy bandwidth every kernel is compared with, and
// the cost of dispatching a 1-element op (queued and completed), also through
// lmk.ops (autograd wrapper, tidy tracking) with await data() and dataSync().
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

  // The small-op path as a user meets it (issue 11 item 12): a 1-element
  // lmk.ops.add, queued / with await data() / with dataSync(). Reported as
  // the best of 9 runs, in wall time and in the process's CPU time (all
  // threads), which a machine shared with other work disturbs less.
  const a = lmk.full([1], 1),
    b = lmk.full([1], 2);
  if ((await lmk.ops.add(a, b).data())[0] !== 3) throw new Error('dispatch: ops.add(1, 2) is wrong');
  const loops: [string, number, (n: number) => Promise<void>][] = [
    [
      'ops.add 1 element, queued',
      ops,
      async (n) => {
        for (let i = 0; i < n; i++) lmk.ops.add(a, b).dispose();
        await lmk.synchronize('cpu');
      },
    ],
    [
      'ops.add 1 element + await data()',
      rounds * 2,
      async (n) => {
        for (let i = 0; i < n; i++) {
          const t = lmk.ops.add(a, b);
          await t.data();
          t.dispose();
        }
      },
    ],
    [
      'ops.add 1 element + dataSync()',
      rounds * 2,
      (n) => {
        for (let i = 0; i < n; i++) {
          const t = lmk.ops.add(a, b);
          t.dataSync();
          t.dispose();
        }
        return Promise.resolve();
      },
    ],
  ];
  for (const [name, n, loop] of loops) {
    await loop(n); // warm-up
    let wallUs = Infinity,
      cpuUs = Infinity;
    for (let run = 0; run < 9; run++) {
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      await loop(n);
      const wall = Number(process.hrtime.bigint() - t0) / 1e3;
      const cpu = process.cpuUsage(cpu0);
      wallUs = Math.min(wallUs, wall / n);
      cpuUs = Math.min(cpuUs, (cpu.user + cpu.system) / n);
    }
    rows.push({
      bench: 'runtime',
      case: name,
      ms: (wallUs * n) / 1e3,
      metrics: { 'µs/op': wallUs.toFixed(2), 'CPU µs/op': cpuUs.toFixed(2) },
    });
  }
  a.dispose();
  b.dispose();
  return rows;
}
