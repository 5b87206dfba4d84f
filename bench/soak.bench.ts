// The training soak of the demo's model (bench/soak.ts): the byte-level
// RWKV-4 of `npm run demo` (d 128, 4 layers, B 8, T 128, AdamW at lr 4e-3
// under a cosine schedule, gradient clipping, a held-out evaluation every 200
// steps) trained for 2 000 steps on examples/data/shakespeare.txt (200 with
// --quick). Reports:
// - memory()'s largest drift after the first step (0 when nothing leaks);
// - growth per 1 000 steps after a warm-up of a quarter of the steps
//   (least-squares slope of samples taken after a forced GC every 100 steps)
//   of the memory pools' reserved bytes, of RSS (also over the second half
//   alone: the allocator settles during the first few hundred steps, a leak
//   keeps growing) and of the live JavaScript heap (which includes the
//   soak's own per-step records, about 70 bytes a step);
// - as a ratio within the run, the step time of the last 200 steps over that
//   of steps 101-300 (1 when nothing slows down).
// Validated first: 20 steps of the same configuration must lower the loss.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as lmk from 'lmkernels';
import type { BenchContext, BenchRow } from './harness';
import { memoryDrift, memorySlope, requireGc, soak, type SoakOptions } from './soak';

const MiB = 2 ** 20;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  requireGc();
  const root = dirname(require.resolve('lmkernels/package.json'));
  const corpus = new Uint8Array(readFileSync(join(root, 'examples', 'data', 'shakespeare.txt')));
  const [dModel, nLayers, batch, seqLen] = [128, 4, 8, 128];
  const steps = ctx.quick ? 200 : 2000;
  const config = (model: SoakOptions['model'], n: number): SoakOptions => ({
    model,
    corpus,
    steps: n,
    batch,
    seqLen,
    lr: 4e-3,
    evalEvery: 200,
    rssEvery: 100,
    onStep: (step, loss) => {
      if (step % 100 === 0) process.stderr.write(`  soak step ${step}/${n}: loss ${loss.toFixed(3)}\n`);
    },
  });
  const newModel = () => new lmk.nn.RWKV4Model({ vocabSize: 256, dModel, nLayers, seed: 1 });

  // Validate: the configuration trains.
  const probe = newModel();
  const check = await soak({ ...config(probe, 20), onStep: undefined });
  probe.dispose();
  const [first, last] = [check.losses[0]!, check.losses.at(-1)!];
  if (!check.losses.every(Number.isFinite) || !(last < first - 0.5)) {
    throw new Error(`soak: the loss did not fall in 20 steps (${first} -> ${last})`);
  }

  const model = newModel();
  lmk.emptyCache(); // RSS from here on is the soak's (the harness measured copy bandwidth with 512 MiB)
  const r = await soak(config(model, steps));
  model.dispose();
  const drift = memoryDrift(r.memory, 1);
  const from = r.rss.find((x) => x.step >= steps / 4)!.step; // the first sample after the warm-up
  const per1000 = (key: 'rss' | 'heapUsed' | 'poolReserved', since: number) =>
    (memorySlope(r.rss, key, since) * 1000) / MiB;
  const signed = (v: number, digits: number) => (v >= 0 ? '+' : '') + v.toFixed(digits);
  const early = median(r.stepMs.slice(100, 300));
  const late = median(r.stepMs.slice(-200));
  const rss = (step: number) => r.rss.find((x) => x.step === step)!.rss / MiB;
  return [
    {
      bench: 'soak',
      case: `rwkv4 ${nLayers}×d${dModel} B=${batch} T=${seqLen}, ${steps} training steps (ms/step)`,
      ms: median(r.stepMs),
      metrics: {
        'tokens/s': ((steps * batch * seqLen) / r.seconds).toFixed(0),
        'memory() drift': `${drift.tensors} tensors, ${drift.bytesInUse} B`,
        'pool MiB/1000 steps': signed(per1000('poolReserved', from), 2),
        'RSS MiB/1000 steps': signed(per1000('rss', from), 2),
        'RSS MiB/1000, 2nd half': signed(per1000('rss', steps / 2), 2),
        'heap MiB/1000 steps': signed(per1000('heapUsed', from), 3),
        'RSS MiB (start→warm→end)': `${rss(0).toFixed(0)}→${rss(from).toFixed(0)}→${rss(steps).toFixed(0)}`,
        'late/early step': (late / early).toFixed(2),
        loss: `${r.losses[0]!.toFixed(2)}→${r.losses.at(-1)!.toFixed(2)}`,
      },
    },
  ];
}
