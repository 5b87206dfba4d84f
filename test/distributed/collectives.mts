// Run on 2 ranks by test/dist.test.ts (mpirun -n 2): every collective of
// `dist` against values computed here by hand, for every dtype, the in-order
// guarantee with other queued ops, the JS thread left free while a peer is
// late, and calls that differ across ranks. Each check prints "ok <name>"; the
// first failure prints "FAIL <name>: ..." and exits 1 (mpirun then ends the
// other rank).
import * as lmk from 'lmkernels';
import type { Tensor } from 'lmkernels';
import { roundTo16 } from '../reference.ts';

type FloatDType = 'float32' | 'float64' | 'bfloat16' | 'float16';
const floatDtypes: FloatDType[] = ['float32', 'float64', 'bfloat16', 'float16'];

const world = await lmk.dist.init();
const { rank, worldSize } = world;
const W = worldSize;

function fail(name: string, message: string): never {
  console.log(`FAIL ${name} (rank ${rank}): ${message}`);
  process.exit(1);
}

function pass(name: string): void {
  console.log(`ok ${name}`);
}

/** The value a dtype stores for x (float64 x; float32 rounding; 16-bit rounding). */
function stored(x: number, dtype: string): number {
  if (dtype === 'float64' || dtype === 'int32') return x;
  if (dtype === 'float32') return Math.fround(x);
  return roundTo16(x, dtype as 'bfloat16' | 'float16');
}

async function expectValues(name: string, t: Tensor, expected: number[]): Promise<void> {
  const got = Array.from(await t.data());
  if (got.length !== expected.length) fail(name, `${got.length} values, expected ${expected.length}`);
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], expected[i])) fail(name, `[${i}] = ${got[i]}, expected ${expected[i]}`);
  }
  pass(name);
}

async function expectError(name: string, promise: Promise<unknown>, fragments: string[]): Promise<void> {
  try {
    await promise;
  } catch (e) {
    const message = (e as Error).message;
    if (!(e instanceof Error) || e instanceof TypeError || e instanceof RangeError) {
      fail(name, `expected an Error, got ${(e as Error).constructor.name}: ${message}`);
    }
    for (const f of fragments) if (!message.includes(f)) fail(name, `message lacks '${f}': ${message}`);
    pass(name);
    return;
  }
  fail(name, 'no error');
}

// Rank r's element i: small multiples of 1/4, exact in every dtype, chosen so
// that max and min come from different ranks at different positions.
const n = 15;
const value = (r: number, i: number): number => (((r * 7 + i * 3) % 5) - 2) * 0.75 + r * 0.25 - i * 0.125;
const mine = (dtype: string): number[] => Array.from({ length: n }, (_, i) => stored(value(rank, i), dtype));
const over = (i: number, dtype: string): number[] => Array.from({ length: W }, (_, r) => stored(value(r, i), dtype));

// ---- the world ----
if (W < 2) fail('world', `worldSize ${W}: run me with mpirun -n 2`);
if (world.backend !== 'mpi') fail('world', `backend ${world.backend}`);
if (lmk.dist.rank() !== rank || lmk.dist.worldSize() !== W || !lmk.dist.isInitialized()) fail('world', 'accessors');
if (world.localRank !== rank) fail('world', `localRank ${world.localRank} on one host`);
pass('world');

// ---- allReduce: every op and dtype; 16-bit floats are reduced in float32 and rounded once ----
for (const dtype of [...floatDtypes, 'int32' as const]) {
  for (const op of ['sum', 'mean', 'max', 'min'] as const) {
    if (dtype === 'int32' && op === 'mean') continue;
    const values = dtype === 'int32' ? mine('float64').map((v) => Math.round(v * 8)) : mine(dtype);
    const t = lmk.tensor(values, { shape: [3, 5], dtype });
    const result = lmk.dist.allReduce(t, { op });
    if (result !== t) fail(`allReduce ${dtype} ${op}`, 'does not return t');
    const expected = Array.from({ length: n }, (_, i) => {
      const xs = dtype === 'int32' ? over(i, 'float64').map((v) => Math.round(v * 8)) : over(i, dtype);
      if (op === 'max') return Math.max(...xs);
      if (op === 'min') return Math.min(...xs);
      const accumulate = dtype === 'float64' ? (x: number) => x : Math.fround; // float32 for 32- and 16-bit
      let s = 0;
      for (const x of xs) s = dtype === 'int32' ? s + x : accumulate(s + x);
      if (op === 'mean') s = dtype === 'float64' ? s / W : Math.fround(s / W);
      return stored(s, dtype);
    });
    await expectValues(`allReduce ${dtype} ${op}`, t, expected);
    t.dispose();
  }
}

// A sum that rounds: float32 inputs whose exact sum is not a float32.
{
  const xs = (r: number) => Array.from({ length: 7 }, (_, i) => Math.fround(0.1 * (r + 1) + i / 3));
  const t = lmk.tensor(xs(rank), { dtype: 'float32' });
  lmk.dist.allReduce(t);
  const expected = Array.from({ length: 7 }, (_, i) => {
    let s = 0;
    for (let r = 0; r < W; r++) s = Math.fround(s + xs(r)[i]!);
    return s;
  });
  // With 2 ranks the sum is one rounding of the exact sum whatever MPI's order.
  if (W === 2) await expectValues('allReduce float32 sum rounds once', t, expected);
}

// ---- broadcast from each root, every dtype ----
for (const dtype of [...floatDtypes, 'int32' as const]) {
  for (let root = 0; root < W; root++) {
    const values = (r: number) =>
      Array.from({ length: 6 }, (_, i) => (dtype === 'int32' ? r * 100 + i : stored(value(r, i), dtype)));
    const t = lmk.tensor(values(rank), { shape: [2, 3], dtype });
    if (lmk.dist.broadcast(t, { root }) !== t) fail('broadcast', 'does not return t');
    await expectValues(`broadcast ${dtype} root ${root}`, t, values(root));
  }
}

// ---- allGather into [W, ...] and [W * d0, ...] ----
for (const dtype of [...floatDtypes, 'int32' as const]) {
  const values = (r: number) =>
    Array.from({ length: 6 }, (_, i) => (dtype === 'int32' ? r * 100 + i : stored(value(r, i), dtype)));
  const input = lmk.tensor(values(rank), { shape: [3, 2], dtype });
  const expected = Array.from({ length: W }, (_, r) => values(r)).flat();
  for (const shape of [
    [W, 3, 2],
    [W * 3, 2],
  ]) {
    const output = lmk.zeros(shape, { dtype });
    if (lmk.dist.allGather({ input, output }) !== output) fail('allGather', 'does not return output');
    await expectValues(`allGather ${dtype} into [${shape}]`, output, expected);
  }
}

// ---- reduceScatter: rank r gets block r of the reduction ----
for (const dtype of [...floatDtypes, 'int32' as const]) {
  for (const op of ['sum', 'mean', 'max', 'min'] as const) {
    if (dtype === 'int32' && op === 'mean') continue;
    const block = 4;
    const total = W * block;
    const x = (r: number, i: number) => (dtype === 'int32' ? r * 10 - i : stored(value(r, i), dtype));
    const input = lmk.tensor(
      Array.from({ length: total }, (_, i) => x(rank, i)),
      { shape: [W * 2, 2], dtype },
    );
    const output = lmk.zeros([2, 2], { dtype });
    if (lmk.dist.reduceScatter({ input, output, op }) !== output) fail('reduceScatter', 'does not return output');
    const expected = Array.from({ length: block }, (_, j) => {
      const xs = Array.from({ length: W }, (_, r) => x(r, rank * block + j));
      if (op === 'max') return Math.max(...xs);
      if (op === 'min') return Math.min(...xs);
      const add = dtype === 'int32' || dtype === 'float64' ? (a: number) => a : Math.fround;
      let s = 0;
      for (const v of xs) s = add(s + v);
      if (op === 'mean') s = dtype === 'float64' ? s / W : Math.fround(s / W);
      return stored(s, dtype);
    });
    await expectValues(`reduceScatter ${dtype} ${op}`, output, expected);
  }
}

// ---- in order with the ops queued around it, and the JS thread never waits ----
{
  // Rank 1 is late by 1 s; rank 0 queues scale -> allReduce -> add -> allReduce(max)
  // and keeps running JS meanwhile. Large enough tensors that no op runs inline.
  const size = 1 << 16;
  if (rank === 1) await new Promise((r) => setTimeout(r, 1000));
  const x = lmk.full([size], rank + 1, { dtype: 'float32' });
  const started = performance.now();
  const y = lmk.ops.scale(x, 2); // 2(r+1)
  lmk.dist.allReduce(y); // sum over r of 2(r+1) = W(W+1)
  const z = lmk.ops.add(y, lmk.full([size], rank, { dtype: 'float32' })); // W(W+1) + r
  lmk.dist.allReduce(z, { op: 'max' }); // W(W+1) + W-1
  const queuedMs = performance.now() - started;
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  const got = await z.data();
  clearInterval(timer);
  if (rank === 0 && queuedMs > 500) fail('in order', `queueing took ${queuedMs.toFixed(0)} ms: the JS thread waited`);
  if (rank === 0 && ticks < 5) fail('in order', `only ${ticks} timer ticks while rank 1 was late`);
  const want = W * (W + 1) + W - 1;
  if (got.some((v) => v !== want)) fail('in order', `got ${got[0]}, expected ${want}`);
  pass('in order with other ops, JS thread free');
}

// ---- calls that differ across ranks: an Error on every rank, no data moved, no hang ----
{
  const t = lmk.full(rank === 0 ? [2, 3] : [4], 5, { dtype: 'float32' });
  lmk.dist.allReduce(t);
  await expectError('mismatched shapes', t.data(), [
    'dist.allReduce',
    'rank 0: allReduce of float32 [2,3]',
    'rank 1: allReduce of float32 [4]',
  ]);
  const u = lmk.full([3], 1, { dtype: rank === 0 ? 'float32' : 'bfloat16' });
  lmk.dist.allReduce(u, { op: 'max' });
  await expectError('mismatched dtypes', u.data(), ['float32 [3]', 'bfloat16 [3]']);
  const v = lmk.full([3], 1);
  lmk.dist.allReduce(v, { op: rank === 0 ? 'sum' : 'min' });
  await expectError('mismatched ops', v.data(), ["op 'sum'", "op 'min'"]);
  const b = lmk.full([3], rank);
  lmk.dist.broadcast(b, { root: rank });
  await expectError('mismatched roots', b.data(), ['root 0', 'root 1']);
  const g = lmk.full([2], rank);
  if (rank === 0) lmk.dist.allGather({ input: g, output: lmk.zeros([W * 2]) });
  else lmk.dist.allReduce(g);
  await expectError('mismatched collectives', lmk.synchronize(), [
    'allGather of float32 [2]',
    'allReduce of float32 [2]',
  ]);
  // The ranks stay in step: the next matching call works.
  const after = lmk.full([4], rank + 1);
  lmk.dist.allReduce(after);
  await expectValues('a matching call after mismatches', after, Array(4).fill((W * (W + 1)) / 2));
}

// ---- barrier: resolves only once the late rank arrives ----
{
  const started = performance.now();
  if (rank === 1) await new Promise((r) => setTimeout(r, 300));
  await lmk.dist.barrier();
  const waited = performance.now() - started;
  if (rank === 0 && waited < 250) fail('barrier', `resolved after ${waited.toFixed(0)} ms, before rank 1 arrived`);
  pass('barrier');
}

await lmk.dist.finalize();
if (lmk.dist.isInitialized()) fail('finalize', 'still initialized');
pass('finalize');
