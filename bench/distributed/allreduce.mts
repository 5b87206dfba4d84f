// Rank script of bench/dist.bench.ts: lmkernels' dist.allReduce of float32 CPU tensors (in place,
// sum), timed as bench/distributed/allreduce.c times MPI_Allreduce: a barrier, one call awaited,
// the slowest rank's time, the minimum over REPEATS. Validated first (the sum of 1..W everywhere).
// Usage: lmkernels launch -n W allreduce.mts REPEATS BYTES... ; rank 0 prints one JSON line.
import * as lmk from 'lmkernels';

const [repeatsText, ...sizes] = process.argv.slice(2);
const repeats = Number(repeatsText);
const { rank, worldSize } = await lmk.dist.init();
const results: { bytes: number; seconds: number }[] = [];
for (const bytes of sizes.map(Number)) {
  const n = bytes / 4;
  const x = lmk.full([n], rank + 1);
  lmk.dist.allReduce(x, { op: 'sum' });
  const values = (await x.data()) as Float32Array;
  const expected = (worldSize * (worldSize + 1)) / 2;
  for (let i = 0; i < n; i += 4099) {
    if (values[i] !== expected) throw new Error(`allreduce.mts: element ${i} is ${values[i]}, expected ${expected}`);
  }
  let best = Infinity;
  for (let r = 0; r < repeats; r++) {
    await lmk.dist.barrier();
    const t0 = performance.now();
    lmk.dist.allReduce(x, { op: 'sum' });
    await lmk.synchronize('cpu');
    const elapsed = lmk.tensor([(performance.now() - t0) / 1000], { dtype: 'float64' });
    lmk.dist.allReduce(elapsed, { op: 'max' });
    best = Math.min(best, (await elapsed.data())[0]!);
    elapsed.dispose();
  }
  x.dispose();
  results.push({ bytes, seconds: best });
}
if (rank === 0) console.log(JSON.stringify(results));
await lmk.dist.finalize();
