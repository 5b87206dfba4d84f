// Data-parallel benchmarks on this machine's CPU, 2 ranks under Open MPI (skipped without mpirun
// and mpicc). Each rank script validates its result before timing (bench/distributed/*).
//
// 1. allreduce bus bandwidth of float32 tensors, 1 MiB to 256 MiB: lmkernels' dist.allReduce
//    (bench/distributed/allreduce.mts, through `lmkernels launch`) against Open MPI's own
//    MPI_Allreduce called from C (bench/distributed/allreduce.c, compiled here with mpicc), both
//    in place, the minimum over repeats of the slowest rank's time. Bus bandwidth as nccl-tests
//    defines it: bytes / time × 2(W − 1)/W.
// 2. training throughput of the demo's model (bench/distributed/train.mts): tokens/s of 2 ranks
//    (one thread each) over 1 process with one thread; the minimum step time over the steps.
// The machine is shared with other builds: minimum of N, and the load average is recorded.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { BenchContext, BenchRow } from './harness';

const root = join(__dirname, '..', '..');
const cli = join(root, 'dist', 'cjs', 'cli.js');
const scripts = join(root, 'bench', 'distributed');
const RANKS = 2;
const MiB = 2 ** 20;

function onPath(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/** Runs a command, returns the last line of its output parsed as JSON. */
function jsonOf(command: string, args: string[], env: NodeJS.ProcessEnv = {}): unknown {
  const out = execFileSync(command, args, {
    cwd: root,
    encoding: 'utf8',
    env: {
      ...process.env,
      LMK_DEVICE: 'cpu',
      OMPI_ALLOW_RUN_AS_ROOT: '1',
      OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

const tsx = ['--import', 'tsx'];

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  if (!onPath('mpirun') || !onPath('mpicc')) {
    process.stderr.write('bench dist: skipped (needs Open MPI: apt-get install openmpi-bin libopenmpi-dev)\n');
    return [];
  }
  const rows: BenchRow[] = [];
  const load = () => loadavg()[0]!.toFixed(1);

  // 1. allreduce bus bandwidth.
  const sizes = (ctx.quick ? [1, 16] : [1, 4, 16, 64, 256]).map((m) => m * MiB);
  const repeats = ctx.quick ? 3 : 10;
  const binDir = join(root, 'build', 'bench-dist');
  mkdirSync(binDir, { recursive: true });
  const binary = join(binDir, 'allreduce');
  execFileSync('mpicc', ['-O2', '-o', binary, join(scripts, 'allreduce.c')], { stdio: 'inherit' });
  if (!existsSync(binary)) throw new Error('bench dist: mpicc did not produce the baseline');
  type Timing = { bytes: number; seconds: number }[];
  // Rounds alternate the two programs, so that a busy spell of the shared machine does not fall on
  // one of them only; the minimum over all rounds is kept.
  const rounds = ctx.quick ? 1 : 3;
  const best = (runs: Timing[]) =>
    sizes.map((bytes, i) => ({ bytes, seconds: Math.min(...runs.map((r) => r[i]!.seconds)) }));
  const baselineRuns: Timing[] = [],
    ourRuns: Timing[] = [];
  for (let round = 0; round < rounds; round++) {
    const args = [String(repeats), ...sizes.map(String)];
    baselineRuns.push(jsonOf('mpirun', ['-n', String(RANKS), binary, ...args]) as Timing);
    ourRuns.push(
      jsonOf(process.execPath, [cli, 'launch', '-n', String(RANKS), join(scripts, 'allreduce.mts'), ...args]) as Timing,
    );
  }
  const baseline = best(baselineRuns),
    ours = best(ourRuns);
  const busFactor = (2 * (RANKS - 1)) / RANKS;
  sizes.forEach((bytes, i) => {
    const busbw = (seconds: number) => ((bytes / seconds) * busFactor) / 1e9;
    const mine = busbw(ours[i]!.seconds),
      theirs = busbw(baseline[i]!.seconds);
    rows.push({
      bench: 'dist',
      case: `allReduce float32 ${bytes / MiB} MiB, ${RANKS} ranks (CPU, Open MPI)`,
      ms: ours[i]!.seconds * 1e3,
      metrics: {
        'busbw GB/s': mine.toFixed(2),
        'MPI_Allreduce (C) GB/s': theirs.toFixed(2),
        'vs MPI': (mine / theirs).toFixed(2),
        load: load(),
      },
    });
  });

  // 2. Training throughput: 2 ranks against 1 process, one thread each.
  const steps = String(ctx.quick ? 3 : 8);
  type Throughput = { worldSize: number; seconds: number; tokensPerSecond: number };
  const trainOne = () =>
    jsonOf(process.execPath, [...tsx, join(scripts, 'train.mts'), steps], { LMK_NUM_THREADS: '1' }) as Throughput;
  const trainTwo = () =>
    jsonOf(process.execPath, [cli, 'launch', '-n', String(RANKS), join(scripts, 'train.mts'), steps], {
      LMK_NUM_THREADS: '1',
    }) as Throughput;
  const fastest = (runs: Throughput[]) => runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  const ones: Throughput[] = [],
    twos: Throughput[] = [];
  for (let round = 0; round < rounds; round++) {
    ones.push(trainOne());
    twos.push(trainTwo());
  }
  const one = fastest(ones),
    two = fastest(twos);
  for (const r of [one, two]) {
    rows.push({
      bench: 'dist',
      case: `train demo model (rwkv4 4×d128, 8×128 bytes per rank), ${r.worldSize} rank${r.worldSize > 1 ? 's' : ''} × 1 thread`,
      ms: r.seconds * 1e3,
      metrics: {
        'tokens/s': r.tokensPerSecond.toFixed(0),
        ...(r.worldSize > 1 ? { scaling: (two.tokensPerSecond / one.tokensPerSecond).toFixed(2) } : {}),
        load: load(),
      },
    });
  }
  return rows;
}
