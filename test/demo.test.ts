// The training demo (examples/demo.mts) in a tiny configuration: it trains
// with a falling, finite loss, writes a loadable checkpoint, an SVG plot and
// metrics, prints a sample, and repeats itself exactly for the same seed.
// Also the small helpers of examples/lib/ it is made of.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { evalBatches, loadBytes, randomBatch, splitHoldout } from '../examples/lib/data.mts';
import { ema, niceTicks, svgPlot, terminalPlot } from '../examples/lib/plot.mts';
import { Rng } from '../examples/lib/rng.mts';
import { generate, sampleToken, type GenerativeModel } from '../examples/lib/sample.mts';
import { root, runExample } from './run-example';

const dir = mkdtempSync(join(tmpdir(), 'lmk-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const demo = (args: string[]) => runExample('examples/demo.mts', args);

interface Metrics {
  losses: number[];
  lossAllTokens: number[];
  val: [number, number][];
  metadata: Record<string, string>;
}

const STEPS = 12;
const args = (out: string, extra: string[] = []) => [
  '--tiny',
  '--steps',
  String(STEPS),
  '--device',
  'cpu',
  '--seed',
  '3',
  '--out',
  out,
  ...extra,
];

describe('demo (tiny)', () => {
  const out = join(dir, 'a');
  let run: ReturnType<typeof demo>;
  let metrics: Metrics;
  beforeAll(() => {
    run = demo(args(out));
    if (run.status !== 0) throw new Error(`demo exited with ${run.status}:\n${run.stdout}\n${run.stderr}`);
    metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
  });

  it('trains with a finite loss that falls', () => {
    const { losses, val } = metrics;
    expect(losses).toHaveLength(STEPS);
    expect(losses.every(Number.isFinite)).toBe(true);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-3))).toBeLessThan(mean(losses.slice(0, 3)) - 0.05);
    // Validation before training is about ln 256 (uniform bytes), and it falls too.
    expect(val[0]![0]).toBe(0);
    expect(Math.abs(val[0]![1] - Math.log(256))).toBeLessThan(0.2);
    expect(val.at(-1)![0]).toBe(STEPS);
    expect(val.at(-1)![1]).toBeLessThan(val[0]![1]);
  });

  it('writes a checkpoint that loads into a fresh model and gives the same logits', async () => {
    const path = join(out, 'model.safetensors');
    expect(existsSync(path)).toBe(true);
    const meta = await lmk.safetensorsMetadata(path);
    expect(meta.model).toBe('rwkv4');
    expect(meta.step).toBe(String(STEPS));
    expect(Number(meta.train_loss)).toBeCloseTo(
      metrics.losses.slice(-20).reduce((a, b) => a + b, 0) / Math.min(20, STEPS),
      6,
    );
    const config = JSON.parse(meta.config!);
    expect(config).toEqual({ vocabSize: 256, dModel: 32, nLayers: 2 });
    const sd = await lmk.loadSafetensors(path, { device: 'cpu' });
    const fresh = new lmk.nn.RWKV4Model({ ...config, device: 'cpu', seed: 12345 });
    const other = new lmk.nn.RWKV4Model({ ...config, device: 'cpu', seed: 12345 });
    fresh.loadStateDict(sd);
    const ids = lmk.tensor(new Int32Array([75, 73, 78, 71]), { shape: [1, 4] });
    const [a, b] = lmk.noGrad(() => [fresh.forward(ids), other.forward(ids)]);
    const [la, lb] = [await a!.data(), await b!.data()];
    expect(Array.from(la).every(Number.isFinite)).toBe(true);
    expect(Array.from(la)).not.toEqual(Array.from(lb)); // the trained weights, not the fresh ones
    for (const [name, t] of Object.entries(sd)) {
      expect(Array.from(await fresh.stateDict()[name]!.data())).toEqual(Array.from(await t.data()));
      t.dispose();
    }
    [a, b, ids].forEach((t) => t!.dispose());
    fresh.dispose();
    other.dispose();
  });

  it('writes the loss curve as SVG and prints it in the terminal', () => {
    const svg = readFileSync(join(out, 'loss.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('<polyline');
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(run.stdout).toContain('loss (nats per byte) by step');
    expect(run.stdout).toMatch(/[\u2801-\u28ff]/); // braille dots of the curve
  });

  it('prints a sample made by recurrent step decoding', () => {
    expect(run.stdout).toContain('recurrent step decoding');
    const text = readFileSync(join(out, 'sample.txt'));
    expect(text.subarray(0, 18).toString()).toBe('KING RICHARD III:\n');
    expect(text.length).toBeGreaterThanOrEqual(18 + 64 - 1); // 64 bytes (a stray byte may merge into U+FFFD)
  });

  it('repeats the same loss curve and sample for the same seed', () => {
    const again = join(dir, 'b');
    const r = demo(args(again));
    expect(r.status).toBe(0);
    const m2: Metrics = JSON.parse(readFileSync(join(again, 'metrics.json'), 'utf8'));
    expect(m2.losses).toEqual(metrics.losses);
    expect(m2.val).toEqual(metrics.val);
    expect(readFileSync(join(again, 'sample.txt'))).toEqual(readFileSync(join(out, 'sample.txt')));
  });
});

describe('demo options', () => {
  it('--help lists the flags', () => {
    const r = demo(['--help']);
    expect(r.status).toBe(0);
    for (const flag of ['--model', '--loss', '--steps', '--device', '--seed', '--help'])
      expect(r.stdout).toContain(flag);
  });

  it('rejects bad flags with exit code 2', () => {
    for (const bad of [['--model', 'gpt'], ['--loss', 'mse'], ['--steps', '0'], ['--frobnicate']]) {
      const r = demo(bad);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^demo: /);
    }
  });

  it('trains with goldfish loss', () => {
    const out = join(dir, 'goldfish');
    const r = demo(args(out, ['--loss', 'goldfish', '--sample-bytes', '8']));
    expect(r.status, r.stderr).toBe(0);
    const m: Metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(m.losses.every(Number.isFinite)).toBe(true);
    expect(m.lossAllTokens.every(Number.isFinite)).toBe(true);
    expect(m.metadata.loss).toBe('goldfish');
    // Goldfish drops about 1 in 4 tokens, so its loss differs from the all-token one.
    expect(m.losses).not.toEqual(m.lossAllTokens);
  });

  it('--model fam trains a TransformerFAM and decodes block by block', () => {
    const out = join(dir, 'fam');
    const r = demo(args(out, ['--model', 'fam', '--sample-bytes', '8']));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('block-recurrent decoding with forwardChunk');
    const m: Metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(m.metadata.model).toBe('fam');
    expect(m.losses).toHaveLength(STEPS);
    expect(m.losses.every(Number.isFinite)).toBe(true);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);
  });
});

describe('README training example', () => {
  it('is examples/train-tiny.mts verbatim', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Training in TypeScript'));
    const block = /```ts\n([\s\S]*?)```/.exec(section);
    expect(block, 'a ```ts block after "## Training in TypeScript"').not.toBeNull();
    expect(block![1]).toBe(readFileSync(join(root, 'examples/train-tiny.mts'), 'utf8'));
  });

  it('runs, and its goldfish loss falls from about 5.8 to below 0.5 in 30 steps', () => {
    const r = runExample('examples/train-tiny.mts', []);
    expect(r.status, r.stderr).toBe(0);
    const losses = [...r.stdout.matchAll(/^step (\d+) {2}goldfish loss (\d+\.\d+)$/gm)].map((m) => [
      Number(m[1]),
      Number(m[2]),
    ]);
    expect(losses.map(([step]) => step)).toEqual([0, 5, 10, 15, 20, 25, 29]);
    expect(Math.abs(losses[0]![1]! - 5.8)).toBeLessThan(0.3); // near ln 256 = 5.55, a uniform guess
    expect(losses.at(-1)![1]).toBeLessThan(0.5);
  });
});

describe('example helpers', () => {
  it('Rng is deterministic and uniform enough', () => {
    const a = new Rng(7),
      b = new Rng(7),
      c = new Rng(8);
    const xs = Array.from({ length: 1000 }, () => a.float());
    expect(Array.from({ length: 1000 }, () => b.float())).toEqual(xs);
    expect(c.float()).not.toBe(xs[0]);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(Math.abs(xs.reduce((s, x) => s + x, 0) / xs.length - 0.5)).toBeLessThan(0.05);
    const counts = new Array<number>(3).fill(0);
    for (let i = 0; i < 3000; i++) counts[a.int(3)]! += 1;
    expect(Math.min(...counts)).toBeGreaterThan(850);
  });

  it('batches pair each input byte with the next one, and evaluation windows cover the split', () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) % 251);
    const { inputs, labels, shape } = randomBatch(bytes, 3, 16, new Rng(1));
    expect(shape).toEqual([3, 16]);
    for (let b = 0; b < 3; b++) {
      for (let t = 0; t < 15; t++) expect(labels[b * 16 + t]).toBe(inputs[b * 16 + t + 1]);
    }
    const batches = evalBatches(bytes, 4, 10);
    const windows = batches.reduce((n, x) => n + x.shape[0], 0);
    expect(windows).toBe(Math.floor(999 / 10));
    expect(batches[0]!.inputs[10]).toBe(bytes[10]);
    const corpus = loadBytes();
    const { train, val } = splitHoldout(corpus, 0.1);
    expect(train.length + val.length).toBe(corpus.length);
    expect(val.length / corpus.length).toBeGreaterThan(0.09);
    expect(train[train.length - 1]).toBe(10); // cut after a line break
  });

  it('sampleToken: temperature 0 is the argmax; sampling follows the softmax', () => {
    const logits = new Float32Array([0, 2, Math.log(3) + 2, -50]);
    expect(sampleToken(logits, { temperature: 0 })).toBe(2);
    const rng = new Rng(1);
    const counts = new Array<number>(4).fill(0);
    for (let i = 0; i < 4000; i++) {
      const k = sampleToken(logits, { temperature: 1, rng });
      counts[k] = counts[k]! + 1;
    }
    // p ≈ [0.03, 0.24, 0.73, 0]
    expect(counts[3]).toBe(0);
    expect(Math.abs(counts[2]! / 4000 - 0.727)).toBeLessThan(0.03);
    const top1 = Array.from({ length: 50 }, () => sampleToken(logits, { temperature: 5, topK: 1, rng }));
    expect(new Set(top1)).toEqual(new Set([2]));
  });

  it('generate: step decoding (RWKV-4) and block-recurrent decoding (FAM) agree with re-reading the whole text', async () => {
    const models = [
      new lmk.nn.RWKV4Model({ vocabSize: 256, dModel: 16, nLayers: 2, device: 'cpu', seed: 5 }),
      new lmk.nn.FamTransformerModel({
        vocabSize: 256,
        dModel: 16,
        nLayers: 2,
        nHeads: 2,
        blockSize: 4,
        memoryBlocks: 1,
        famLength: 2,
        device: 'cpu',
        seed: 5,
      }),
    ];
    for (const model of models) {
      // Only `forward`: every byte re-reads the prompt and all generated bytes.
      const plain: GenerativeModel = { forward: (x) => model.forward(x), parameters: () => model.parameters() };
      for (const opts of [{ temperature: 0 }, { temperature: 1, seed: 9 }]) {
        const a = await generate(model, { prompt: 'To be, or', length: 14, ...opts });
        const b = await generate(plain, { prompt: 'To be, or', length: 14, ...opts });
        expect(Array.from(a)).toEqual(Array.from(b));
      }
      model.dispose();
    }
  });

  it('plots: braille chart lines, SVG with escaped text and log axes', () => {
    const text = terminalPlot(
      [
        {
          name: 'a',
          points: [
            [0, 1],
            [10, 0],
          ],
        },
        { name: 'b', points: [[5, 0.5]], marker: '●' },
      ],
      { width: 20, height: 5, color: false },
    );
    const lines = text.split('\n');
    expect(lines.length).toBe(5 + 3);
    expect(text).toContain('●');
    const svg = svgPlot({
      title: 'a < b & c',
      series: [
        {
          name: 'x',
          points: [
            [1, 1],
            [100, 2],
            [10000, 3],
          ],
        },
      ],
      xScale: 'log',
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('a &lt; b &amp; c');
    expect(svg).toContain('>10000<');
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(ema([2, 2, 2])).toEqual([2, 2, 2]);
  });
});
