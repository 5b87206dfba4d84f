// The training demo (examples/demo.mts) in a tiny configuration: it trains
// with a falling, finite loss, writes its model as a Hugging Face directory
// (RWKV-4 config, safetensors, the 256-byte tokenizer) that hub.loadModel,
// `lmkernels generate` and `lmkernels finetune` read, an SVG plot and
// metrics, prints a sample made by lmk.generate, and repeats itself exactly
// for the same seed. Also the small helpers of examples/lib/ it is made of.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as lmk from 'lmkernels';
import { evalBatches, loadBytes, randomBatch, splitHoldout } from '../examples/lib/data.mts';
import { ema, niceTicks, svgPlot, terminalPlot } from '../examples/lib/plot.mts';
import { Rng } from '../examples/lib/rng.mts';
import { BYTE_TOKENIZER_CONFIG, byteTokenizerJson, writeByteTokenizer } from '../examples/lib/byte-tokenizer.mts';
import { main as demoMain } from '../examples/demo.mts';
import { runCli } from './cli-helpers';
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

  it('writes its model as a Hugging Face directory: RWKV-4 config, safetensors, the byte tokenizer', async () => {
    for (const f of [
      'config.json',
      'model.safetensors',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ])
      expect(existsSync(join(out, f)), f).toBe(true);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      architectures: ['RwkvForCausalLM'],
      model_type: 'rwkv',
      vocab_size: 256,
      hidden_size: 32,
      num_hidden_layers: 2,
      bos_token_id: null,
      eos_token_id: null,
    });
    expect(metrics.metadata.model).toBe('rwkv4');
    expect(metrics.metadata.step).toBe(String(STEPS));
    // The tensors under transformers' names (a few of them), float32.
    const sd = await lmk.loadSafetensors(join(out, 'model.safetensors'), { device: 'cpu' });
    expect(sd['rwkv.embeddings.weight']!.shape).toEqual([256, 32]);
    expect(sd['rwkv.blocks.1.attention.time_mix_key']!.shape).toEqual([1, 1, 32]);
    expect(sd['head.weight']!.dtype).toBe('float32');
    for (const t of Object.values(sd)) t.dispose();
    // Its tokenizer's ids are the UTF-8 bytes the model was trained on, with no special tokens.
    const tokenizer = await lmk.hub.loadTokenizer(out);
    const text = 'KING RICHARD III:\nNow is the winter é 🙂';
    expect(Array.from(tokenizer.encode(text))).toEqual(Array.from(Buffer.from(text, 'utf8')));
    expect(tokenizer.decode(Buffer.from(text, 'utf8'))).toBe(text);
    expect([tokenizer.vocabSize, tokenizer.bosTokenId, tokenizer.eosTokenId]).toEqual([256, undefined, undefined]);
  });

  it('`lmkernels generate --model <run>` samples from it: the same text as the demo for the same seed', async () => {
    const r = await runCli([
      'generate',
      '--model',
      out,
      '--prompt',
      'KING RICHARD III:\n',
      '--max-new-tokens',
      '64',
      '--temperature',
      '0.8',
      '--seed',
      '3',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(readFileSync(join(out, 'sample.txt'), 'utf8') + '\n');
  });

  it('`lmkernels finetune --model <run> --method orpo` fine-tunes it on the shipped pairs', async () => {
    const orpo = join(dir, 'a-orpo');
    const pairs = join(root, 'examples', 'data', 'antonym-pairs.jsonl');
    const flags = ['--method', 'orpo', '--steps', '3', '--batch', '4', '--lr', '3e-3', '--max-length', '64'];
    const r = await runCli(['finetune', '--model', out, '--data', pairs, '--out', orpo, ...flags]);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(join(orpo, 'metrics.json'), 'utf8'));
    expect(m.steps).toBe(3);
    expect(m.losses.every(([, loss]: [number, number]) => Number.isFinite(loss))).toBe(true);
    // 38 of the 384 pairs are held out; TRL's metrics on them, at the start and at the end.
    expect(m.evalRows).toBe(38);
    for (const k of ['rewardsAccuracy', 'rewardsMargin', 'nllLoss', 'orLoss'])
      expect(Number.isFinite(m.evaluation[k]), k).toBe(true);
    const tuned = await lmk.hub.loadModel(orpo, { device: 'cpu' });
    expect(tuned.config.architectures).toEqual(['RwkvForCausalLM']);
    tuned.dispose();
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

  it('--model fam trains a Llama-architecture TransformerFAM and samples through its block state', () => {
    const out = join(dir, 'fam');
    const r = demo(args(out, ['--model', 'fam', '--sample-bytes', '8']));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('KV-cache decoding with the FAM block state');
    const m: Metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(m.metadata.model).toBe('fam');
    expect(m.losses).toHaveLength(STEPS);
    expect(m.losses.every(Number.isFinite)).toBe(true);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.architectures).toEqual(['LlamaForCausalLM']);
    expect(existsSync(join(out, 'tokenizer.json'))).toBe(true);
  });
});

describe('demo run in this process', () => {
  // main() returns the model it trained: what the directory holds must give its logits exactly
  // (float32 weights stored bit for bit, the same kernels on the CPU).
  const trainHere = async (name: string, extra: string[] = []) => {
    const quiet = [vi.spyOn(console, 'log').mockImplementation(() => {}), vi.spyOn(process.stdout, 'write')];
    quiet[1]!.mockImplementation(() => true);
    try {
      return await demoMain(args(join(dir, name), ['--sample-bytes', '0', ...extra]));
    } finally {
      quiet.forEach((s) => s.mockRestore());
    }
  };
  const logitsOf = async (model: lmk.hub.CausalLM, ids: Int32Array) => {
    const tokens = lmk.tensor(ids, { shape: [1, ids.length], device: 'cpu' });
    const logits = lmk.noGrad(() => model.forward(tokens));
    const values = Array.from(await logits.data());
    [tokens, logits].forEach((t) => t.dispose());
    return values;
  };

  it('RWKV-4: the directory loads with hub.loadModel and hub.loadTokenizer and gives the trained model’s logits', async () => {
    const { model, out } = await trainHere('here-rwkv4');
    const loaded = await lmk.hub.loadModel(out, { device: 'cpu' });
    const fresh = new lmk.nn.RWKV4Model({ vocabSize: 256, dModel: 32, nLayers: 2, device: 'cpu', seed: 3 });
    const ids = (await lmk.hub.loadTokenizer(out)).encode('ROMEO:\nWhat say you, my lord?');
    expect(loaded).toBeInstanceOf(lmk.nn.RWKV4Model);
    const expected = await logitsOf(model, ids);
    expect(expected.every(Number.isFinite)).toBe(true);
    expect(await logitsOf(loaded, ids)).toEqual(expected);
    expect(await logitsOf(fresh, ids)).not.toEqual(expected); // the trained weights, not the initial ones
    [model, loaded, fresh].forEach((m) => m.dispose());
  });

  it('fam: the directory records its FAM settings, loads as the trained TransformerFAM and gives its logits', async () => {
    const { model, out } = await trainHere('here-fam', ['--model', 'fam']);
    // --tiny --seq-len 32: blocks of 32 / 4 = 8 bytes, one memory block, 8 FAM slots.
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.fam).toEqual({ block_size: 8, memory_blocks: 1, fam_length: 8 });
    const loaded = await lmk.hub.loadModel(out, { device: 'cpu' });
    const explicit = await lmk.hub.loadModel(out, {
      device: 'cpu',
      fam: { blockSize: 8, memoryBlocks: 1, famLength: 8 },
    });
    const plain = await lmk.hub.loadModel(out, { device: 'cpu', fam: null });
    expect(plain.config.fam).toBeUndefined();
    const ids = (await lmk.hub.loadTokenizer(out)).encode('ROMEO:\nWhat say you, my lord?'); // 3+ blocks
    const expected = await logitsOf(model, ids);
    expect(await logitsOf(loaded, ids)).toEqual(expected);
    expect(await logitsOf(explicit, ids)).toEqual(expected);
    expect(await logitsOf(plain, ids)).not.toEqual(expected); // full causal attention is another model
    [model, loaded, explicit, plain].forEach((m) => m.dispose());
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

  it('the byte tokenizer is the one Python `tokenizers` made (fixture), with the ids Python gives', async () => {
    const fixtures = join(root, 'test', 'fixtures', 'tokenizers');
    const read = (f: string) => JSON.parse(readFileSync(join(fixtures, 'bytes', f), 'utf8'));
    expect(byteTokenizerJson()).toEqual(read('tokenizer.json'));
    expect(BYTE_TOKENIZER_CONFIG).toEqual(read('tokenizer_config.json'));
    const written = join(dir, 'byte-tokenizer');
    mkdirSync(written);
    writeByteTokenizer(written);
    const tokenizer = await lmk.hub.loadTokenizer(written);
    const cases = JSON.parse(readFileSync(join(fixtures, 'cases.json'), 'utf8')).bytes.texts;
    expect(cases.length).toBeGreaterThan(10);
    for (const c of cases as { text: string; ids: number[]; decoded: string }[]) {
      expect(Array.from(tokenizer.encode(c.text)), JSON.stringify(c.text)).toEqual(c.ids);
      expect(tokenizer.decode(c.ids)).toBe(c.decoded);
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
