// A training soak: a byte-level language model trained step after step the way
// the demo trains it (examples/lib/train.mts: forward, cross-entropy,
// backward, gradient clipping, AdamW under a cosine learning rate, a held-out
// evaluation without gradients now and then), recording after every step,
// with the device's stream drained, what memory() reports, and the process's
// RSS after a forced garbage collection every `rssEvery` steps.
//
// A library that leaks nothing returns memory() to exactly the same tensor
// count and bytes in use after every step once the optimiser's state exists
// (warm-up), and its RSS stops growing. Used by test/soak.test.ts (a small
// model, a few hundred steps) and bench/soak.bench.ts (the demo's model,
// 2 000 steps).
import * as lmk from 'lmkernels';

export interface SoakOptions {
  model: lmk.nn.Module & { forward(tokens: lmk.Tensor): lmk.Tensor };
  /** Training text as bytes (vocabulary 256); batches are windows of it. */
  corpus: Uint8Array;
  steps: number;
  batch: number;
  seqLen: number;
  lr: number;
  /** A held-out evaluation (no gradients) every this many steps; 0 = none. */
  evalEvery: number;
  /** RSS after a forced GC every this many steps (and after the last). */
  rssEvery: number;
  device?: lmk.DeviceSpec;
  /** Called after each step with its loss (progress display). */
  onStep?: (step: number, loss: number) => void;
}

/** memory() after a step: live tensors and bytes in use on every device. */
export interface MemorySample {
  tensors: number;
  bytesInUse: number;
}

export interface SoakResult {
  losses: number[];
  /** memory() after each step, index = step - 1. */
  memory: MemorySample[];
  /** Wall time of each step (with its evaluation, the drain and the RSS sample), index = step - 1. */
  stepMs: number[];
  /** The process's memory after a forced GC every rssEvery steps; step 0 = before training. */
  rss: RssSample[];
  seconds: number;
}

/** process.memoryUsage() after a forced collection, in bytes. */
export interface RssSample {
  step: number;
  /** Resident set size: everything the process holds. */
  rss: number;
  /** The JavaScript heap: live objects, and what V8 has reserved for them. */
  heapUsed: number;
  heapTotal: number;
  /** memory().bytesReserved on every device: the pools' blocks, in use or cached. */
  poolReserved: number;
}

type Gc = () => void;

/** The forced collection the RSS samples need (node --expose-gc). */
export function requireGc(): Gc {
  const gc = (globalThis as { gc?: Gc }).gc;
  if (typeof gc !== 'function') throw new Error('soak: run node with --expose-gc to measure RSS after a collection');
  return gc;
}

function memorySample(): MemorySample {
  const m = lmk.memory();
  return { tensors: m.tensors, bytesInUse: m.bytesInUse.cpu + m.bytesInUse.cuda.reduce((a, b) => a + b, 0) };
}

async function settledRss(gc: Gc, step: number): Promise<RssSample> {
  // Two collections with a turn of the event loop between them, so that
  // finalizers queued by the first have run.
  gc();
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  const { rss, heapUsed, heapTotal } = process.memoryUsage();
  const reserved = lmk.memory().bytesReserved;
  return { step, rss, heapUsed, heapTotal, poolReserved: reserved.cpu + reserved.cuda.reduce((a, b) => a + b, 0) };
}

/** Window `b` of step `step`: spread over the corpus, different every step. */
function windows(corpus: Uint8Array, step: number, B: number, T: number): { inputs: Int32Array; labels: Int32Array } {
  const span = corpus.length - (T + 1);
  if (span < 1) throw new RangeError(`soak: the corpus (${corpus.length} bytes) is shorter than seqLen + 2`);
  const inputs = new Int32Array(B * T),
    labels = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = (step * 7919 + b * 104729) % span;
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = corpus[start + t]!;
      labels[b * T + t] = corpus[start + t + 1]!;
    }
  }
  return { inputs, labels };
}

export async function soak(opts: SoakOptions): Promise<SoakResult> {
  const { model, corpus, steps, batch: B, seqLen: T, lr, evalEvery, rssEvery, device } = opts;
  const gc = requireGc();
  const params = model.parameters();
  const optimizer = new lmk.optim.AdamW(params, { lr, weightDecay: 0.01 });
  const schedule = lmk.optim.cosineSchedule({
    maxLr: lr,
    minLr: lr / 10,
    warmupSteps: Math.min(50, Math.ceil(steps / 10)),
    totalSteps: steps,
  });
  const shape = [B, T];
  const held = windows(corpus, -1 >>> 1, B, T); // one fixed held-out batch
  const losses: number[] = [];
  const memory: MemorySample[] = [];
  const stepMs: number[] = [];
  const rss: RssSample[] = [await settledRss(gc, 0)];
  const start = performance.now();
  for (let step = 1; step <= steps; step++) {
    const t0 = performance.now();
    optimizer.lr = schedule(step - 1);
    const { inputs, labels } = windows(corpus, step, B, T);
    const loss = lmk.tidy(() => {
      const x = lmk.tensor(inputs, { shape, device });
      const y = lmk.tensor(labels, { shape, device });
      const { loss } = lmk.ops.crossEntropy({ logits: model.forward(x), labels: y });
      loss.backward();
      lmk.clipGradNorm(params, 1);
      optimizer.step();
      optimizer.zeroGrad();
      return loss;
    });
    losses.push(await loss.item());
    loss.dispose();
    if (evalEvery > 0 && step % evalEvery === 0) {
      const val = lmk.noGrad(() =>
        lmk.tidy(() => {
          const x = lmk.tensor(held.inputs, { shape, device });
          const y = lmk.tensor(held.labels, { shape, device });
          return lmk.ops.crossEntropy({ logits: model.forward(x), labels: y }).loss;
        }),
      );
      await val.item();
      val.dispose();
    }
    for (const d of lmk.devices()) await lmk.synchronize(d);
    memory.push(memorySample());
    if (step % rssEvery === 0 || step === steps) rss.push(await settledRss(gc, step));
    stepMs.push(performance.now() - t0);
    opts.onStep?.(step, losses.at(-1)!);
  }
  const seconds = (performance.now() - start) / 1000;
  optimizer.dispose();
  return { losses, memory, stepMs, rss, seconds };
}

/** The largest change of memory() after `warmup` steps from its value at step `warmup`. */
export function memoryDrift(memory: MemorySample[], warmup: number): MemorySample {
  const base = memory[warmup - 1];
  if (!base) throw new RangeError(`memoryDrift: ${memory.length} steps are fewer than the warm-up (${warmup})`);
  let tensors = 0,
    bytes = 0;
  for (const m of memory.slice(warmup)) {
    tensors = Math.max(tensors, Math.abs(m.tensors - base.tensors));
    bytes = Math.max(bytes, Math.abs(m.bytesInUse - base.bytesInUse));
  }
  return { tensors, bytesInUse: bytes };
}

/** Least-squares slope of one of the memory figures against step, over the samples from step `from` on, in bytes per step. */
export function memorySlope(samples: RssSample[], key: 'rss' | 'heapUsed' | 'poolReserved', from: number): number {
  const pts = samples.filter((s) => s.step >= from).map((s): [number, number] => [s.step, s[key]]);
  if (pts.length < 2) throw new RangeError(`memorySlope: fewer than two samples from step ${from}`);
  const mx = pts.reduce((s, [x]) => s + x, 0) / pts.length;
  const my = pts.reduce((s, [, y]) => s + y, 0) / pts.length;
  let num = 0,
    den = 0;
  for (const [x, y] of pts) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return num / den;
}
